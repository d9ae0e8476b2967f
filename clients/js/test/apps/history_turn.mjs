// One process, one LangChain.js turn with RunnableWithMessageHistory over
// EdgeMemoryChatMessageHistory: `node history_turn.mjs <url> <session> <text>` prints
// {reply}. The deterministic "model" answers with what the user said before.
import { AIMessage } from '@langchain/core/messages';
import { RunnableLambda, RunnableWithMessageHistory } from '@langchain/core/runnables';
import { EdgeMemoryChatMessageHistory } from '@edge-memory/langgraph';

const [url, sessionId, said] = process.argv.slice(2);
const model = RunnableLambda.from(({ input, history }) => {
  const earlier = history.filter((m) => m.getType() === 'human').map((m) => m.content);
  return new AIMessage(`You said "${input}"; before that: ${earlier.join(' | ') || 'nothing'}`);
});
const chain = new RunnableWithMessageHistory({
  runnable: model,
  getMessageHistory: (id) => new EdgeMemoryChatMessageHistory({ url, sessionId: id }),
  inputMessagesKey: 'input',
  historyMessagesKey: 'history',
});
const reply = await chain.invoke({ input: said }, { configurable: { sessionId } });
console.log(JSON.stringify({ reply: reply.content }));
