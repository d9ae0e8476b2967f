// EdgeMemorySaver's client rules against the worker in workerd: the full-list fallback
// when the worker lacks a delta's base, errors before any request and on 4xx, retries
// only where the call is idempotent (faults injected in front of the real worker).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { AIMessage, HumanMessage } from '@langchain/core/messages';
import { emptyCheckpoint, uuid6 } from '@langchain/langgraph-checkpoint';

import { EdgeMemoryError, EdgeMemorySaver } from '../src/index.js';
import { removeDir, signHs256, startWorker, tempPersistDir } from '../../../tests/e2e/harness.mjs';

let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('js-saver');
  worker = await startWorker({ persistDir });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

/** A fetch that records each request's path and answers `faults` (statuses) first. */
function faultyFetch(faults = []) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push(`${init.method} ${new URL(url).pathname}`);
    const status = faults.shift();
    if (status) return new Response(JSON.stringify({ detail: 'injected', code: 'unavailable' }), { status });
    return fetch(url, init);
  };
  return { fn, calls };
}

function checkpointWith(messages, version) {
  return { ...emptyCheckpoint(), id: uuid6(-1), channel_values: { messages }, channel_versions: { messages: version } };
}

test('a delta whose base the worker lacks is resent whole', async () => {
  const { fn, calls } = faultyFetch();
  const saver = new EdgeMemorySaver({ url: worker.url, fetch: fn });
  const thread = `fallback-${Date.now()}`;
  const first = [new HumanMessage({ content: 'one', id: 'm1' })];
  let config = await saver.put({ configurable: { thread_id: thread, checkpoint_ns: '' } },
    checkpointWith(first, saver.getNextVersion(undefined)), { source: 'input', step: -1 }, { messages: 1 });
  // Another client empties the thread: the version this saver remembers is gone.
  await saver.prune([thread], 'delete');
  const second = [...first, new AIMessage({ content: 'two', id: 'm2' })];
  const version = saver.getNextVersion(1);
  config = await saver.put(config, checkpointWith(second, version), { source: 'loop', step: 0 }, { messages: version });
  const tuple = await saver.getTuple(config);
  assert.deepEqual(tuple.checkpoint.channel_values.messages.map((m) => m.content), ['one', 'two']);
  // The first put, the refused delta (409 base_version_missing), the whole list.
  assert.equal(calls.filter((c) => c === `POST /threads/${thread}/saver/put`).length, 3);
});

test('missing thread_id throws before any request; a 4xx names the problem', async () => {
  const { fn, calls } = faultyFetch();
  const saver = new EdgeMemorySaver({ url: worker.url, fetch: fn });
  await assert.rejects(saver.put({ configurable: {} }, emptyCheckpoint(), {}, {}), /needs config\.configurable\.thread_id/);
  await assert.rejects(saver.putWrites({ configurable: {} }, [], 'task'), /thread_id/);
  assert.equal(await saver.getTuple({ configurable: {} }), undefined);
  assert.deepEqual(calls, []);
  const bad = saver.put({ configurable: { thread_id: 'not a valid id!' } }, emptyCheckpoint(), {}, {});
  await assert.rejects(bad, (error) => error instanceof EdgeMemoryError && error.status >= 400 && error.status < 500
    && /thread/i.test(error.detail));
});

test('idempotent calls are retried on 503; copyThread is not', async () => {
  const thread = `retry-${Date.now()}`;
  const { fn, calls } = faultyFetch([503, 503]);
  const saver = new EdgeMemorySaver({ url: worker.url, fetch: fn, retries: 3 });
  const config = await saver.put({ configurable: { thread_id: thread, checkpoint_ns: '' } }, emptyCheckpoint(),
    { source: 'input', step: -1 }, {});
  assert.ok(await saver.getTuple(config));
  assert.equal(calls.filter((c) => c === 'POST /threads').length, 3, 'the thread creation, tried three times');
  const copy = faultyFetch([503]);
  const copier = new EdgeMemorySaver({ url: worker.url, fetch: copy.fn, retries: 3 });
  await assert.rejects(copier.copyThread(thread, `${thread}-copy`), (error) => error.status === 503);
  assert.equal(copy.calls.length, 1);
});

test('with a JWT, the saver makes its threads its user\'s; another user sees nothing', { timeout: 120_000 }, async () => {
  const secret = 'js-saver-jwt-secret-0123456789-abcdef';
  const dir = tempPersistDir('js-saver-jwt');
  const jwtWorker = await startWorker({ persistDir: dir, vars: { AUTH_MODE: 'jwt', JWT_SECRET: secret } });
  try {
    const token = (sub) => signHs256({ sub, exp: Math.floor(Date.now() / 1000) + 600 }, secret);
    const alice = new EdgeMemorySaver({ url: jwtWorker.url, token: token('alice') });
    const bob = new EdgeMemorySaver({ url: jwtWorker.url, token: token('bob') });
    const config = await alice.put({ configurable: { thread_id: 'jwt-thread', checkpoint_ns: '' } },
      checkpointWith([new HumanMessage({ content: 'secret', id: 'm1' })], 1), { source: 'input', step: -1 }, { messages: 1 });
    assert.equal((await alice.getTuple(config)).checkpoint.channel_values.messages[0].content, 'secret');
    assert.equal(await bob.getTuple(config), undefined);
    const listed = async (saver) => { const out = []; for await (const t of saver.list({})) out.push(t); return out; };
    assert.equal((await listed(alice)).length, 1);
    assert.equal((await listed(bob)).length, 0);
    await assert.rejects(bob.put(config, checkpointWith([], 2), { source: 'loop', step: 0 }, {}), (e) => e.status === 404);
  } finally {
    await jwtWorker.kill();
    removeDir(dir);
  }
});
