// The Rust conformance suite, run inside workerd against Durable Object SQLite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, tempPersistDir, removeDir, api, say } from './harness.mjs';

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
    // The saver store's suite (EdgeMemorySaver's contract), on the same object's SQLite.
    const saver = res.body.saver;
    assert.ok(saver, `no saver report: ${JSON.stringify(res.body)}`);
    assert.equal(saver.backend, 'durable_object_sql');
    assert.deepEqual(saver.cases.filter((c) => !c.passed), [], 'failing saver cases');
    assert.equal(saver.passed, saver.total);
    assert.ok(saver.total >= 17, `ran ${saver.total} saver cases`);
    const ran = new Set(saver.cases.map((c) => c.name));
    for (const name of ['put_then_get_round_trips', 'put_writes_retries_keep_regular_and_replace_special_writes',
      'prune_delete_removes_everything', 'blobs_up_to_the_limit_round_trip', 'export_import_copies_exactly',
      'forks_keep_separate_message_lists', 'long_message_lists_keep_their_order']) {
      assert.ok(ran.has(name), `saver case ${name} ran`);
    }
    console.log(`saver conformance in workerd: ${saver.passed}/${saver.total} cases passed on ${saver.backend}`);
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

test('the release build has no dev routes, even with DEV_MODE=true', async () => {
  const persistDir = tempPersistDir('release');
  const worker = await startWorker({ persistDir, release: true, vars: { DEV_MODE: 'true' } });
  try {
    const thread = (await api(worker.url, 'POST', '/threads', {})).body.thread_id;
    for (const [method, path] of [['POST', '/__dev/conformance'], ['GET', `/__dev/storage/${thread}`],
      ['POST', `/__dev/cold-start/${thread}`], ['GET', `/__dev/last-run/${thread}`]]) {
      const res = await api(worker.url, method, path);
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(res.body.code, 'route_not_found');
    }
    // The release build serves turns as the dev build does.
    const turn = await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say('My name is Sam'));
    assert.equal(turn.status, 200);
  } finally {
    await worker.kill();
    removeDir(persistDir);
  }
});
