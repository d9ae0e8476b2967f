// API keys (API_KEYS): every route but GET /ok needs x-api-key, the header the
// LangGraph SDKs send; dev routes too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, api } from './harness.mjs';

test('API keys: 401 without, the SDK with apiKey works', async () => {
  const persistDir = tempPersistDir('auth');
  const worker = await startWorker({ persistDir, vars: { API_KEYS: 'key-one,key-two', DEV_MODE: 'true' } });
  try {
    assert.equal((await api(worker.url, 'GET', '/ok')).status, 200);
    const denied = await api(worker.url, 'POST', '/threads', {});
    assert.equal(denied.status, 401);
    assert.match(denied.body.detail, /x-api-key/);
    assert.equal((await api(worker.url, 'POST', '/__dev/conformance')).status, 401, 'dev routes need the key too');
    const wrong = await fetch(`${worker.url}/threads/search`, { method: 'POST', headers: { 'x-api-key': 'nope' }, body: '{}' });
    assert.equal(wrong.status, 401);

    const client = new Client({ apiUrl: worker.url, apiKey: 'key-two' });
    const thread = await client.threads.create();
    const out = await client.runs.wait(thread.thread_id, 'agent', { input: { messages: [{ role: 'user', content: 'My name is Sam' }] } });
    assert.equal(out.messages.length, 2);
    const anonymous = new Client({ apiUrl: worker.url, apiKey: null });
    await assert.rejects(anonymous.threads.get(thread.thread_id), (err) => err.status === 401);
  } finally {
    await worker.kill();
    removeDir(persistDir);
  }
});
