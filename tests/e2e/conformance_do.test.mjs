// The Rust conformance suite, run inside workerd against Durable Object SQLite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, tempPersistDir, removeDir, api } from './harness.mjs';

test('conformance suite passes on Durable Object SQL storage', async () => {
  const persistDir = tempPersistDir('conformance');
  const worker = await startWorker({ persistDir, vars: { DEV_MODE: 'true' } });
  try {
    const res = await api(worker.url, 'POST', '/__dev/conformance');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const failed = res.body.cases.filter((c) => !c.passed);
    assert.deepEqual(failed, [], 'failing cases');
    assert.equal(res.body.passed, res.body.total);
    assert.ok(res.body.total >= 14, `ran ${res.body.total} cases`);
    console.log(`conformance in workerd: ${res.body.passed}/${res.body.total} cases passed on ${res.body.backend}`);
  } finally {
    await worker.kill();
    removeDir(persistDir);
  }
});

test('conformance suite passes on Workers KV (MEMORY_BACKEND=kv)', async () => {
  const persistDir = tempPersistDir('conformance-kv');
  const worker = await startWorker({ persistDir, vars: { DEV_MODE: 'true', MEMORY_BACKEND: 'kv' } });
  try {
    const res = await api(worker.url, 'POST', '/__dev/conformance');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.backend, 'workers_kv');
    assert.deepEqual(res.body.cases.filter((c) => !c.passed), [], 'failing cases');
    console.log(`conformance in workerd: ${res.body.passed}/${res.body.total} cases passed on ${res.body.backend}`);
    const info = await api(worker.url, 'GET', '/info');
    assert.equal(info.body.storage_backend, 'kv');
  } finally {
    await worker.kill();
    removeDir(persistDir);
  }
});

test('dev routes are off unless DEV_MODE=true', async () => {
  const persistDir = tempPersistDir('devmode');
  const worker = await startWorker({ persistDir });
  try {
    const res = await api(worker.url, 'POST', '/__dev/conformance');
    assert.equal(res.status, 404);
  } finally {
    await worker.kill();
    removeDir(persistDir);
  }
});
