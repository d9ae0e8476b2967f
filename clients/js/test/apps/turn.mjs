// One process, one turn: `node turn.mjs <url> <thread> <text>` prints {reply, count, messages}.
import { EdgeMemorySaver } from '@edge-memory/langgraph';

import { buildGraph, turn } from './graph.mjs';

const [url, threadId, said] = process.argv.slice(2);
const graph = buildGraph(new EdgeMemorySaver({ url }));
console.log(JSON.stringify(await turn(graph, threadId, said)));
