// @edge-memory/langgraph: a LangGraph.js checkpointer and a LangChain.js chat history
// backed by edge-memory (one Durable Object per thread), from Node or inside a Worker.
export { EdgeMemorySaver } from './saver.js';
export { EdgeMemoryChatMessageHistory } from './history.js';
export { EdgeMemoryError } from './http.js';
export { MESSAGE_LIST_TYPE } from './message_list.js';
