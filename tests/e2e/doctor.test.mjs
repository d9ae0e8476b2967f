// The memory doctor in workerd: each detector fires on its scenario (a new thread per
// request, a changing thread id, memory that forgets) and stays silent on healthy
// conversations (many turns on few threads; many users each with their own threads),
// through the `x-edge-memory-hint` header, the structured log line and the owner-scoped
// `GET /diagnostics`. Each scenario is its own JWT user: its own client. The saver's
// `checkpoints_unread` is tested with the real savers (clients/js/test/doctor.test.mjs,
// tests/python/test_doctor.py).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, signHs256, until } from './harness.mjs';

const JWT_SECRET = 'e2e-doctor-secret-0123456789-abcdefghij';
const HINT = 'x-edge-memory-hint';
// The detectors judge a client's last 24 runs once they have 16 (src/api/diagnostics).
const JUDGED_MIN = 16;

let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('doctor');
  worker = await startWorker({ persistDir, vars: { AUTH_MODE: 'jwt', JWT_SECRET, API_KEYS: 'doctor-key' } });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

const tokenFor = (sub) => signHs256({ sub, exp: Math.floor(Date.now() / 1000) + 600 }, JWT_SECRET);

/** A client of one JWT user: raw calls that return status, body and the hint header. */
function as(sub) {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${tokenFor(sub)}` };
  const call = async (method, path, body) => {
    const res = await fetch(`${worker.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, hint: res.headers.get(HINT), headers: res.headers };
  };
  return {
    call,
    sdk: new Client({ apiUrl: worker.url, apiKey: null, defaultHeaders: { authorization: headers.authorization } }),
    newThread: async () => (await call('POST', '/threads', {})).body.thread_id,
    run: (thread, content, extra = {}) => call('POST', `/threads/${thread}/runs/wait`, {
      assistant_id: 'agent', input: { messages: [{ role: 'user', content }] }, ...extra,
    }),
    diagnostics: async () => (await call('GET', '/diagnostics')).body,
  };
}

const codes = (report) => report.hints.map((h) => h.code);

test('new_thread_per_request: a client that makes a thread per message is told, with the fix', async () => {
  const client = as('per-request');
  let last;
  for (let i = 0; i < JUDGED_MIN; i += 1) {
    last = await client.run(await client.newThread(), `question ${i}`);
    assert.equal(last.status, 200);
    if (i < JUDGED_MIN - 1) assert.equal(last.hint, null, `no hint before the window is judged (run ${i})`);
  }
  assert.equal(last.hint, 'new_thread_per_request');
  // Streamed runs carry it too (the header of the stream's opening).
  const res = await fetch(`${worker.url}/threads/${await client.newThread()}/runs/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenFor('per-request')}` },
    body: JSON.stringify({ assistant_id: 'agent', input: { messages: [{ role: 'user', content: 'one more' }] }, stream_mode: ['values'] }),
  });
  await res.text();
  assert.equal(res.headers.get(HINT), 'new_thread_per_request');
  assert.equal(res.headers.get('x-edge-memory-turn'), '1');
  const report = await client.diagnostics();
  assert.deepEqual(codes(report), ['new_thread_per_request']);
  const [hint] = report.hints;
  assert.equal(hint.count, 2);
  assert.match(hint.fix, /reuse its thread_id/);
  assert.ok(Date.parse(hint.first_seen) <= Date.parse(hint.last_seen));
  // Logged once for the client (one structured line), not once per response.
  const lines = await until(() => worker.logText().split('\n').filter((l) => l.includes('"client":"user:per-request"')), (l) => l.length > 0);
  assert.equal(lines.length, 1, lines.join('\n'));
  const logged = JSON.parse(lines[0].slice(lines[0].indexOf('{')));
  assert.equal(logged.event, 'edge_memory_hint');
  assert.equal(logged.hint, 'new_thread_per_request');
  // Owner-scoped: another user sees none of it.
  assert.deepEqual((await as('someone-else').diagnostics()).hints, []);
});

test('healthy: many turns on few threads, and many users each with their own threads, get no hint', async () => {
  const few = as('few-threads');
  const threads = [await few.newThread(), await few.newThread()];
  for (let i = 0; i < 2 * JUDGED_MIN; i += 1) {
    const r = await few.run(threads[i % 2], `message ${i}`);
    assert.equal(r.status, 200);
    assert.equal(r.hint, null, `run ${i}`);
  }
  assert.deepEqual(codes(await few.diagnostics()), []);
  // A service (one client) serving many users, each with their own thread, interleaved:
  // three turns each, users arriving in bursts.
  const service = as('service-of-many');
  const users = Array.from({ length: 12 }, (_, i) => `user-${i}-${Date.now()}`);
  for (let turn = 0; turn < 3; turn += 1) {
    for (const user of users) {
      const r = await service.run(user, turn ? `and then ${turn}` : `hello, I am ${user}`, { if_not_exists: 'create' });
      assert.equal(r.status, 200);
      assert.equal(r.hint, null, `${user} turn ${turn}`);
    }
  }
  assert.deepEqual(codes(await service.diagnostics()), []);
});

test('thread_id_not_stable: a follow-up on a thread the server never saw; ids that change per request', async () => {
  const client = as('changing-id');
  // The 404 explains what it usually means and what to pass.
  const lost = await client.run(`never-seen-${Date.now()}`, "What's my name?");
  assert.equal(lost.status, 404);
  assert.equal(lost.body.code, 'thread_not_found');
  assert.match(lost.body.detail, /usually means the client's thread id is not stable/);
  assert.match(lost.body.detail, /if_not_exists/);
  assert.equal(lost.hint, 'thread_id_not_stable');
  // The same follow-up with if_not_exists=create on a fresh id: a thread is made, and told.
  const created = await client.run(`fresh-${Date.now()}`, 'And what did I say before?', { if_not_exists: 'create' });
  assert.equal(created.status, 200);
  assert.equal(created.hint, 'thread_id_not_stable');
  // A client that names a new thread on every request (uuid per call, as the articles warn).
  const namer = as('uuid-per-call');
  let last;
  for (let i = 0; i < JUDGED_MIN; i += 1) {
    last = await namer.run(crypto.randomUUID(), `request ${i}`, { if_not_exists: 'create' });
  }
  assert.equal(last.hint, 'thread_id_not_stable');
  assert.deepEqual(codes(await namer.diagnostics()), ['thread_id_not_stable']);
  // Negative: a first message on an unknown thread is a 404 with no hint; a new
  // conversation under the client's own stable id continues without one.
  const fine = as('stable-id');
  const unknown = await fine.run(`unknown-${Date.now()}`, 'Hello there');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.hint, null);
  const id = `stable-${Date.now()}`;
  for (const text of ['My name is Sam', "What's my name?", 'And my dog?']) {
    const r = await fine.run(id, text, { if_not_exists: 'create' });
    assert.equal(r.status, 200);
    assert.equal(r.hint, null, text);
  }
  assert.deepEqual(codes(await fine.diagnostics()), []);
});

test('ephemeral_memory: a client that remembers a checkpoint the server lost', async () => {
  const client = as('amnesia');
  const thread = await client.newThread();
  const first = await client.run(thread, 'My name is Sam');
  const head = first.headers.get('x-thread-head');
  assert.ok(head);
  // Negative: the head it saw is there.
  const ok = await client.run(thread, "What's my name?", { expected_head: head });
  assert.equal(ok.status, 200);
  assert.equal(ok.hint, null);
  // Positive: a head this server never had (a restarted in-memory server forgot it).
  const bogus = head.replace(/.$/, (c) => (c === '0' ? '1' : '0'));
  const lost = await client.run(thread, 'Still there?', { expected_head: bogus });
  assert.equal(lost.status, 409);
  assert.equal(lost.body.code, 'memory_mismatch');
  assert.equal(lost.hint, 'ephemeral_memory');
  assert.deepEqual(codes(await client.diagnostics()), ['ephemeral_memory']);
});

test('ephemeral_memory: MEMORY_BACKEND=memory outside DEV_MODE is on every response; durable storage is not', async () => {
  const dir = tempPersistDir('doctor-memory');
  const memory = await startWorker({ persistDir: dir, vars: { MEMORY_BACKEND: 'memory' } });
  try {
    const res = await fetch(`${memory.url}/threads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get(HINT), 'ephemeral_memory');
    const report = await (await fetch(`${memory.url}/diagnostics`)).json();
    assert.equal(report.storage_backend, 'memory');
    assert.deepEqual(codes(report), ['ephemeral_memory']);
  } finally {
    await memory.kill();
    removeDir(dir);
  }
  const durable = await as('durable').call('POST', '/threads', {});
  assert.equal(durable.hint, null);
});

test('GET /diagnostics: closed to callers without credentials, lists every code', async () => {
  const anonymous = await fetch(`${worker.url}/diagnostics`);
  assert.equal(anonymous.status, 401);
  await anonymous.text();
  const report = await as('lister').diagnostics();
  assert.equal(report.client, 'user:lister');
  assert.deepEqual(report.codes.map((c) => c.code).sort(),
    ['checkpoints_unread', 'ephemeral_memory', 'new_thread_per_request', 'thread_id_not_stable']);
  // An API key is a client of its own (named by a digest, never the key).
  const keyed = await (await fetch(`${worker.url}/diagnostics`, { headers: { 'x-api-key': 'doctor-key' } })).json();
  assert.match(keyed.client, /^key:[0-9a-f]{12}$/);
});

test("a client's record lives in its own diagnostics object: it outlives the isolate", async () => {
  // A fresh runtime: no isolate remembers anything of 'per-request' (first test).
  await worker.kill();
  worker = await startWorker({ persistDir, port: worker.port, vars: { AUTH_MODE: 'jwt', JWT_SECRET, API_KEYS: 'doctor-key' } });
  const client = as('per-request');
  const report = await client.diagnostics();
  assert.deepEqual(codes(report), ['new_thread_per_request']);
  assert.equal(report.hints[0].count, 2);
  // The fresh isolate judges with the record's window: told again within a few runs,
  // where a client it had never seen needs 16.
  let runs = 0;
  let hint = null;
  while (hint === null && runs < 4) {
    const r = await client.run(await client.newThread(), `after the restart ${runs}`);
    assert.equal(r.status, 200);
    hint = r.hint;
    runs += 1;
  }
  assert.equal(hint, 'new_thread_per_request', `no hint after ${runs} runs`);
  assert.equal((await client.diagnostics()).hints[0].count, 3);
  // A healthy client's record stays empty across the restart too.
  assert.deepEqual(codes(await as('few-threads').diagnostics()), []);
});
