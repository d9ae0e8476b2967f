// The memory doctor's hints in the JS saver, against the worker in workerd: a LangGraph.js
// graph invoked with a new thread id per call writes checkpoints it never reads back, and
// the worker says so (`checkpoints_unread`); the saver warns (console.warn) the first time
// only. The same graph on one stable thread gets no hint. Each is a client of its own (an
// API key each). The `doctor` command: healthy, on memory that forgets (through runs:
// that backend has no checkpointer storage), and `--state` across restarts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { AIMessage, HumanMessage } from '@langchain/core/messages';
import { END, MessagesAnnotation, START, StateGraph } from '@langchain/langgraph';

import { EdgeMemorySaver } from '../src/index.js';
import { removeDir, startWorker, tempPersistDir } from '../../../tests/e2e/harness.mjs';

const CLI = new URL('../bin/edge-memory.js', import.meta.url).pathname;

/** Runs `edge-memory doctor URL ...args` as npx would; its exit status and output. */
async function doctor(url, ...args) {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'doctor', url, ...args], { timeout: 120_000 });
    return { status: 0, out: stdout };
  } catch (error) {
    return { status: error.code, out: `${error.stdout}${error.stderr}` };
  }
}

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

test('npx @edge-memory/langgraph doctor: every row ✓ on a healthy worker (with --api-key), exit 0', async () => {
  const { status, out } = await doctor(worker.url, '--api-key', KEYS[1]);
  assert.equal(status, 0, out);
  assert.equal((out.match(/^ {2}✓/gm) ?? []).length, 5, out);
  assert.match(out, /all 5 rows passed/);
  // Without credentials the worker refuses: the doctor cannot check (exit 2).
  assert.equal((await doctor(worker.url)).status, 2);
});

test('npx @edge-memory/langgraph doctor: MEMORY_BACKEND=memory is a ✗ naming ephemeral_memory, exit 1', async () => {
  const dir = tempPersistDir('js-doctor-memory');
  let memory = await startWorker({ persistDir: dir, vars: { MEMORY_BACKEND: 'memory' } });
  const state = join(dir, 'doctor-state.json');
  try {
    const { status, out } = await doctor(memory.url, '--state', state);
    assert.equal(status, 1, out);
    assert.match(out, /✗ {2}Works locally only +ephemeral_memory/);
    assert.match(out, /fix: set MEMORY_BACKEND=durable_object/);
    // No checkpointer storage on this backend: the conversation is checked through runs.
    assert.match(out, /✓ {2}First message persists, second doesn't/);
    assert.match(out, /✓ {2}Checkpoints exist but aren't used/);
    assert.ok(existsSync(state), out);
    // Restarted, the worker has forgotten the probe thread the last run left.
    await memory.kill();
    memory = await startWorker({ persistDir: dir, port: memory.port, vars: { MEMORY_BACKEND: 'memory' } });
    const again = await doctor(memory.url, '--state', state);
    assert.equal(again.status, 1, again.out);
    assert.match(again.out, /is gone: memory did not survive/);
  } finally {
    await memory.kill();
    removeDir(dir);
  }
});

test('npx @edge-memory/langgraph doctor --state: the probe thread outlives a restart of durable storage', async () => {
  const state = join(persistDir, 'doctor-state.json');
  const first = await doctor(worker.url, '--api-key', KEYS[1], '--state', state);
  assert.equal(first.status, 0, first.out);
  await worker.kill();
  worker = await startWorker({ persistDir, port: worker.port, vars: { AUTH_MODE: 'api_key', API_KEYS: KEYS.join(',') } });
  const second = await doctor(worker.url, '--api-key', KEYS[1], '--state', state);
  assert.equal(second.status, 0, second.out);
  assert.match(second.out, /the probe thread of the last run \(.+\) is still there/);
});
