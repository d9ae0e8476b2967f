// A LangGraph.js app as a Worker: the test graph (../apps/graph.mjs) with EdgeMemorySaver
// over a service binding to edge-memory (no public URL), or MemorySaver for the negative
// control. POST {thread, text, saver: "edge" | "memory"} → {reply, count, messages}.
import { MemorySaver } from '@langchain/langgraph';
import { EdgeMemorySaver } from '@edge-memory/langgraph';

import { buildGraph, turn } from '../apps/graph.mjs';

// What MemorySaver holds lives as long as this isolate.
const memory = new MemorySaver();

export default {
  async fetch(request, env) {
    if (request.method !== 'POST') return new Response('ok');
    const { thread, text, saver } = await request.json();
    const checkpointer = saver === 'memory'
      ? memory
      : new EdgeMemorySaver({ url: 'https://edge-memory', fetch: env.EDGE_MEMORY.fetch.bind(env.EDGE_MEMORY) });
    return Response.json(await turn(buildGraph(checkpointer), thread, text));
  },
};
