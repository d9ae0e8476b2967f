// The test graph: LangGraph.js StateGraph with MessagesAnnotation, a deterministic chat
// node and a tool node. "remember X" is acknowledged; "recall" calls the `recall` tool,
// which answers every fact remembered in the thread; the chat node then repeats it. The
// Python twin is tests/python/js_twin.py (same nodes, same replies).
import { AIMessage, ToolMessage } from '@langchain/core/messages';
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';

const text = (message) => (typeof message.content === 'string' ? message.content : JSON.stringify(message.content));

function chat(state) {
  const last = state.messages.at(-1);
  if (last.getType() === 'tool') return { messages: [new AIMessage(`I remember: ${text(last)}`)] };
  const said = text(last);
  if (said.startsWith('recall')) {
    const id = `call-${state.messages.length}`;
    return { messages: [new AIMessage({ content: '', tool_calls: [{ id, name: 'recall', args: {}, type: 'tool_call' }] })] };
  }
  return { messages: [new AIMessage(`Noted (${state.messages.length} messages so far): ${said}`)] };
}

function tools(state) {
  const call = state.messages.at(-1).tool_calls[0];
  const facts = state.messages
    .filter((m) => m.getType() === 'human' && text(m).startsWith('remember '))
    .map((m) => text(m).slice('remember '.length));
  return { messages: [new ToolMessage({ content: facts.join(', ') || 'nothing', tool_call_id: call.id, name: call.name })] };
}

const route = (state) => (state.messages.at(-1).tool_calls?.length ? 'tools' : END);

/** The graph, compiled with `checkpointer`. */
export function buildGraph(checkpointer) {
  return new StateGraph(MessagesAnnotation)
    .addNode('chat', chat)
    .addNode('tools', tools)
    .addEdge(START, 'chat')
    .addConditionalEdges('chat', route, ['tools', END])
    .addEdge('tools', 'chat')
    .compile({ checkpointer });
}

/** One turn: the reply's text, the number of messages, and each as [type, text, id]. */
export async function turn(graph, threadId, said) {
  const state = await graph.invoke({ messages: [{ role: 'user', content: said }] }, { configurable: { thread_id: threadId } });
  return {
    reply: text(state.messages.at(-1)),
    count: state.messages.length,
    messages: state.messages.map((m) => [m.getType(), text(m), m.id]),
  };
}
