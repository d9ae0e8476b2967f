// Compiled by test/package.test.mjs (tsc --noEmit): the declarations fit LangGraph.js's types.
import { MemorySaver, MessagesAnnotation, StateGraph } from '@langchain/langgraph';
import type { BaseCheckpointSaver } from '@langchain/langgraph-checkpoint';
import type { BaseListChatMessageHistory } from '@langchain/core/chat_history';
import { AIMessage } from '@langchain/core/messages';
import { EdgeMemoryChatMessageHistory, EdgeMemoryError, EdgeMemorySaver } from '@edge-memory/langgraph';

const saver = new EdgeMemorySaver({ url: 'http://127.0.0.1:8787', apiKey: 'key', retries: 2, timeoutMs: 5000 });
const asBase: BaseCheckpointSaver = saver;
const graph = new StateGraph(MessagesAnnotation)
  .addNode('chat', async () => ({ messages: [new AIMessage('hi')] }))
  .addEdge('__start__', 'chat')
  .compile({ checkpointer: saver });
const memory = new StateGraph(MessagesAnnotation)
  .addNode('chat', async () => ({ messages: [] }))
  .addEdge('__start__', 'chat')
  .compile({ checkpointer: new MemorySaver() });
const history: BaseListChatMessageHistory = new EdgeMemoryChatMessageHistory({ url: 'http://x', sessionId: 's' });
const bound = new EdgeMemorySaver({ url: 'https://edge-memory', fetch: (input, init) => fetch(input, init) });
function code(error: unknown): string | undefined {
  return error instanceof EdgeMemoryError ? error.code : undefined;
}
export { asBase, bound, code, graph, history, memory };
