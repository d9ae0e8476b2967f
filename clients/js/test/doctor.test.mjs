// The memory doctor's hints in the JS saver, against the worker in workerd: a LangGraph.js
// graph invoked with a new thread id per call writes checkpoints it never reads back, and
// the worker says so (`checkpoints_unread`); the saver warns (console.warn) the first time
// only. The same graph on one stable thread gets no hint. Each is a client of its own (an
// API key each).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';

import { AIMessage, HumanMessage } from '@langchain/core/messages';
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';

import { EdgeMemorySaver } from '../src/index.js';
import { removeDir, startWorker, tempPersistDir } from '../../../tests/e2e/harness.mjs';

// The worker judges a client's last 8 saver reads (src/api/diagnostics/detect.rs).
const SAVER_WINDOW = 8;
const KEYS = ['js-new-id-per-call', 'js-stable-thread'];

let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('js-doctor');
  worker = await startWorker({ persistDir, vars: { AUTH_MODE: 'api_key', API_KEYS: KEYS.join(',') } });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

const reply = (state) => ({ messages: [new AIMessage(`${state.messages.length} messages so far`)] });
const graphOn = (saver) => new StateGraph(MessagesAnnotation)
  .addNode('reply', reply).addEdge(START, 'reply').addEdge('reply', END).compile({ checkpointer: saver });

/** Runs `body` with console.warn recorded; the warnings. */
async function warningsOf(body) {
  const warnings = [];
  const original = console.warn;
  console.warn = (...args) => warnings.push(args.join(' '));
  try {
    await body();
  } finally {
    console.warn = original;
  }
  return warnings;
}

test('a new thread id per invocation: checkpoints_unread, warned once', async () => {
  const graph = graphOn(new EdgeMemorySaver({ url: worker.url, apiKey: KEYS[0] }));
  const warnings = await warningsOf(async () => {
    for (let i = 0; i < SAVER_WINDOW + 2; i += 1) {
      await graph.invoke({ messages: [new HumanMessage(`call ${i}`)] }, { configurable: { thread_id: randomUUID() } });
    }
  });
  const hinted = warnings.filter((w) => w.includes('checkpoints_unread'));
  assert.equal(hinted.length, 1, warnings.join('\n'));
  assert.match(hinted[0], /Checkpoints exist but aren't used/);
  assert.match(hinted[0], /Fix: pass the same config/);
});

test('one stable thread: no hint', async () => {
  const graph = graphOn(new EdgeMemorySaver({ url: worker.url, apiKey: KEYS[1] }));
  const thread = randomUUID();
  let state;
  const warnings = await warningsOf(async () => {
    for (let i = 0; i < SAVER_WINDOW + 2; i += 1) {
      state = await graph.invoke({ messages: [new HumanMessage(`call ${i}`)] }, { configurable: { thread_id: thread } });
    }
  });
  assert.equal(state.messages.length, 2 * (SAVER_WINDOW + 2));
  assert.deepEqual(warnings.filter((w) => w.includes('edge-memory hint')), []);
});
