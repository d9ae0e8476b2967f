// The bad-input corpus (bad_inputs.mjs) against the worker in workerd: every case is a
// 4xx with a JSON {"detail"}, and the target thread's state and history hash the same
// before and after it. Requests go out raw (node:http), so paths like `/threads/..`
// reach the worker as written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { startWorker, tempPersistDir, removeDir, api, say } from './harness.mjs';
import { cases } from './bad_inputs.mjs';

let worker;
let persistDir;
let thread;

before(async () => {
  persistDir = tempPersistDir('bad-input');
  worker = await startWorker({ persistDir });
  thread = (await api(worker.url, 'POST', '/threads', { metadata: { purpose: 'corpus' } })).body.thread_id;
  // Keyed: the corpus reuses the key with another body.
  const turn = await fetch(`${worker.url}/threads/${thread}/runs/wait`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'corpus-key' },
    body: JSON.stringify(say('My name is Sam')),
  });
  assert.equal(turn.status, 200);
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

function raw(method, path, headers, body) {
  const { port } = new URL(worker.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { ...headers, 'content-length': body.length } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function stateHash() {
  const state = await api(worker.url, 'GET', `/threads/${thread}/state`);
  const history = await api(worker.url, 'POST', `/threads/${thread}/history`, { limit: 100 });
  const thread_ = await api(worker.url, 'GET', `/threads/${thread}`);
  return createHash('sha256')
    .update(JSON.stringify([state.body, history.body, thread_.body.metadata, thread_.body.values]))
    .digest('hex');
}

test(`bad-input corpus: ${cases.length} cases, each 4xx JSON {detail, code}, the thread unchanged`, async () => {
  assert.ok(cases.length >= 100, `at least 100 cases (${cases.length})`);
  let hash = await stateHash();
  const failures = [];
  for (const c of cases) {
    const path = c.path.replace(/\/T(?=\/|$)/g, `/${thread}`);
    let body = c.body ?? '';
    if (body && typeof body === 'object' && !Buffer.isBuffer(body)) {
      if (body.thread_id === 'T') body = { ...body, thread_id: thread };
      if (body.id === 'T') body = { ...body, id: thread }; // an AI SDK chat id
      body = JSON.stringify(body);
    }
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    const res = await raw(c.method, path, c.headers ?? {}, bytes);
    let parsed = null;
    try { parsed = JSON.parse(res.text); } catch { /* reported below */ }
    const problems = [];
    if (res.status < 400 || res.status > 499) problems.push(`status ${res.status}`);
    if (c.status && res.status !== c.status) problems.push(`status ${res.status}, expected ${c.status}`);
    if (!parsed || typeof parsed.detail !== 'string' || !parsed.detail) problems.push(`body ${res.text.slice(0, 120)}`);
    if (parsed && !/^[a-z_]+$/.test(parsed.code ?? '')) problems.push(`no machine-readable code: ${res.text.slice(0, 120)}`);
    if (!String(res.headers['content-type']).startsWith('application/json')) problems.push(`content-type ${res.headers['content-type']}`);
    const now = await stateHash();
    if (now !== hash) {
      problems.push('the thread changed');
      hash = now; // report each case on its own
    }
    if (problems.length) failures.push(`${c.name}: ${problems.join('; ')}`);
  }
  assert.deepEqual(failures, [], failures.join('\n'));
});
