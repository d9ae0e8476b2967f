// The promise of the project, in a test that can fail: a turn, a SIGKILL of the
// runtime, a fresh process on the same storage, and the next turn still remembers.
// The negative control runs the same scenario on the per-isolate memory backend
// (what MemorySaver does) and must show the memory lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, tempPersistDir, removeDir, api, say, assertLinear as linear } from './harness.mjs';

const assertLinear = (history) => linear(assert, history);

async function coldStartScenario(vars) {
  const persistDir = tempPersistDir('cold-start');
  let worker = await startWorker({ persistDir, vars });
  try {
    const created = await api(worker.url, 'POST', '/threads', {});
    assert.equal(created.status, 200);
    const threadA = created.body.thread_id;
    const first = await api(worker.url, 'POST', `/threads/${threadA}/runs/wait`, say('My name is Sam'));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.equal(first.body.messages.length, 2);
    const afterFirst = await api(worker.url, 'GET', `/threads/${threadA}/state`);
    const firstCheckpoint = afterFirst.body.checkpoint.checkpoint_id;

    // Cold start: kill the runtime by its process group, start a new one.
    const oldPid = worker.pid;
    await worker.kill();
    worker = await startWorker({ persistDir, port: worker.port, vars });
    assert.notEqual(worker.pid, oldPid);

    const second = await api(worker.url, 'POST', `/threads/${threadA}/runs/wait`,
      say("What's my name?", { if_not_exists: 'create' }));
    assert.equal(second.status, 200, JSON.stringify(second.body));
    const state = await api(worker.url, 'GET', `/threads/${threadA}/state`);
    const history = await api(worker.url, 'POST', `/threads/${threadA}/history`, { limit: 10 });

    const created2 = await api(worker.url, 'POST', '/threads', {});
    const threadB = created2.body.thread_id;
    const other = await api(worker.url, 'POST', `/threads/${threadB}/runs/wait`, say("What's my name?"));
    assert.equal(other.status, 200);
    assert.match(other.body.messages.at(-1).content, /don't know/, 'thread B must not know Sam');
    return { second, state, firstCheckpoint, history: history.body };
  } finally {
    await worker.kill();
    removeDir(persistDir);
  }
}

test('durable object storage remembers across a runtime SIGKILL and restart', async () => {
  const { second, state, firstCheckpoint, history } = await coldStartScenario({ MEMORY_BACKEND: 'durable_object' });
  const reply = second.body.messages.at(-1);
  assert.equal(reply.type, 'ai');
  assert.match(reply.content, /Sam/);
  assert.equal(state.body.values.messages.length, 4);
  assert.deepEqual(state.body.values.messages.map((m) => m.type), ['human', 'ai', 'human', 'ai']);
  // Parent chain intact: each turn stores its input, then its reply, and the turn after
  // the kill continues from the checkpoint made before it.
  assert.equal(state.body.metadata.step, 4);
  assert.deepEqual(history.map((h) => h.metadata.source), ['loop', 'input', 'loop', 'input']);
  assert.equal(history[2].checkpoint.checkpoint_id, firstCheckpoint);
  assertLinear(history);
});

test('the KV backend remembers across the same restart', async () => {
  const { second, state, firstCheckpoint, history } = await coldStartScenario({ MEMORY_BACKEND: 'kv' });
  assert.match(second.body.messages.at(-1).content, /Sam/);
  assert.equal(state.body.values.messages.length, 4);
  assert.equal(history[2].checkpoint.checkpoint_id, firstCheckpoint);
  assertLinear(history);
});

test('negative control: the in-memory backend forgets on the same restart', async () => {
  const { second, state, history } = await coldStartScenario({ MEMORY_BACKEND: 'memory' });
  assert.match(second.body.messages.at(-1).content, /don't know/);
  assert.equal(state.body.values.messages.length, 2, 'only the post-restart turn is left');
  assert.equal(history.length, 2, 'only the post-restart turn is left');
  assertLinear(history);
});
