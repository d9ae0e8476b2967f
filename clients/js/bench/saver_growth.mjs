// Storage growth of a LangGraph.js MessagesAnnotation conversation: EdgeMemorySaver (the
// worker at --url, with dev routes for its storage stats) beside LangGraph.js's
// MemorySaver (the bytes its serializer produced), in one run; the twin of
// bench/saver_growth.py. Prints JSON: per turn, bytes stored, bytes sent (request
// bodies) and HTTP requests.
//   node clients/js/bench/saver_growth.mjs --url http://127.0.0.1:8787 [--turns 200]
import { parseArgs } from 'node:util';

import { AIMessage, HumanMessage } from '@langchain/core/messages';
import { END, MemorySaver, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';

import { EdgeMemorySaver } from '../src/index.js';

const SAVER_TABLES = [
  'em_saver_checkpoints', 'em_saver_blobs', 'em_saver_writes',
  'em_saver_messages', 'em_saver_list_versions', 'em_saver_list_rows',
];
const { values: args } = parseArgs({ options: { url: { type: 'string' }, turns: { type: 'string', default: '200' }, thread: { type: 'string', default: 'js-saver-growth' } } });
const turns = Number(args.turns);

const chat = (state) => ({
  messages: [new AIMessage(`You said: ${state.messages.at(-1).content}. (This thread holds ${state.messages.length - 1} earlier messages.)`)],
});
const graphWith = (checkpointer) => new StateGraph(MessagesAnnotation)
  .addNode('chat', chat).addEdge(START, 'chat').addEdge('chat', END).compile({ checkpointer });
const text = (turn) => `Turn ${turn}: `.padEnd(200, 'x');

async function storedOnWorker(thread) {
  const { tables } = await (await fetch(`${args.url}/__dev/storage/${thread}`)).json();
  return SAVER_TABLES.reduce((sum, table) => sum + (tables[table]?.bytes ?? 0), 0);
}

/** What a MemorySaver holds: its serialized checkpoints, metadata and writes. */
function memoryStored(saver) {
  let bytes = 0;
  for (const namespaces of Object.values(saver.storage)) {
    for (const checkpoints of Object.values(namespaces)) {
      for (const [checkpoint, metadata] of Object.values(checkpoints)) bytes += checkpoint.length + metadata.length;
    }
  }
  for (const writes of Object.values(saver.writes)) {
    for (const [, channel, value] of Object.values(writes)) bytes += channel.length + value.length;
  }
  return bytes;
}

const metered = { sent: 0, requests: 0 };
const meteredFetch = (url, init) => {
  metered.requests += 1;
  metered.sent += init?.body ? new TextEncoder().encode(init.body).length : 0;
  return fetch(url, init);
};
const config = { configurable: { thread_id: args.thread } };
const ours = { stored: [], sent: [], requests: [] };
let graph = graphWith(new EdgeMemorySaver({ url: args.url, fetch: meteredFetch }));
let before = 0;
for (let turn = 1; turn <= turns; turn += 1) {
  const { sent, requests } = metered;
  await graph.invoke({ messages: [new HumanMessage(text(turn))] }, config);
  ours.sent.push(metered.sent - sent);
  ours.requests.push(metered.requests - requests);
  const now = await storedOnWorker(args.thread);
  ours.stored.push(now - before);
  before = now;
}
const check = await graphWith(new EdgeMemorySaver({ url: args.url })).getState(config);
if (check.values.messages.length !== 2 * turns) throw new Error(`expected ${2 * turns} messages, read ${check.values.messages.length}`);

const memory = new MemorySaver();
graph = graphWith(memory);
const theirs = { stored: [] };
before = 0;
for (let turn = 1; turn <= turns; turn += 1) {
  await graph.invoke({ messages: [new HumanMessage(text(turn))] }, config);
  const now = memoryStored(memory);
  theirs.stored.push(now - before);
  before = now;
}
console.log(JSON.stringify({ turns, ours, memory: theirs }));
