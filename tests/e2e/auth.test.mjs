// API keys (API_KEYS): every route but GET /ok needs x-api-key, the header the
// LangGraph SDKs send; dev routes too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, api, signHs256 } from './harness.mjs';

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

// JWT users (JWT_SECRET): the token's `sub` owns the threads it creates; another user
// gets 404 for every read or write and never finds them; bad tokens are 401.
const JWT_SECRET = 'e2e-jwt-secret-0123456789-abcdefghij';

const sign = (claims, secret = JWT_SECRET) => signHs256(claims, secret);

const now = () => Math.floor(Date.now() / 1000);
const tokenFor = (sub, extra = {}) => sign({ sub, exp: now() + 600, iss: 'e2e-issuer', ...extra });

test('JWT users: isolation (404), search scoping, bad tokens (401), CORS allowlist', async () => {
  const persistDir = tempPersistDir('jwt');
  const worker = await startWorker({
    persistDir,
    vars: {
      AUTH_MODE: 'jwt', JWT_SECRET, JWT_ISSUER: 'e2e-issuer', API_KEYS: 'service-key',
      ALLOWED_ORIGINS: 'https://app.example',
    },
  });
  const as = (sub) => ({ authorization: `Bearer ${tokenFor(sub)}` });
  const call = async (method, path, body, headers = {}) => {
    const res = await fetch(`${worker.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
  };
  try {
    // Alice works through the real SDK with her token.
    const alice = new Client({ apiUrl: worker.url, apiKey: null, defaultHeaders: as('alice') });
    const thread = await alice.threads.create({ metadata: { topic: 'tea' } });
    assert.equal(thread.metadata.owner, 'alice');
    await alice.runs.wait(thread.thread_id, 'agent', { input: { messages: [{ role: 'user', content: 'My name is Sam' }] } });
    const history = await alice.threads.getHistory(thread.thread_id);
    const before = await alice.threads.getState(thread.thread_id);
    const a = thread.thread_id;
    const say = { assistant_id: 'agent', input: { messages: [{ role: 'user', content: 'hi' }] } };

    const bob = as('bob');
    const attempts = [
      ['GET', `/threads/${a}`],
      ['GET', `/threads/${a}/state`],
      ['POST', `/threads/${a}/history`, {}],
      ['PATCH', `/threads/${a}`, { metadata: { x: 1 } }],
      ['POST', `/threads/${a}/state`, { values: { messages: [{ role: 'user', content: 'x' }] } }],
      ['POST', `/threads/${a}/runs/wait`, say],
      ['POST', `/threads/${a}/runs/stream`, { ...say, stream_mode: ['messages-tuple'] }],
      ['POST', `/threads/${a}/runs/wait`, { ...say, if_not_exists: 'create' }],
      ['POST', `/threads/${a}/runs/wait`, { ...say, checkpoint_id: history.at(-1).checkpoint.checkpoint_id }],
      ['POST', `/threads/${a}/copy`, {}],
      ['DELETE', `/threads/${a}`],
    ];
    for (const [method, path, body] of attempts) {
      const r = await call(method, path, body, bob);
      assert.equal(r.status, 404, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.detail, /not found/);
    }
    assert.deepEqual((await call('POST', '/threads/search', {}, bob)).body, [], 'Bob finds nothing');
    assert.equal((await call('POST', '/threads/count', {}, bob)).body, 0);
    assert.equal((await call('POST', '/threads/search', { metadata: { owner: 'alice' } }, bob)).body.length, 0);
    assert.equal((await call('POST', '/threads', { metadata: { owner: 'alice' } }, bob)).status, 422, 'no claiming owners');

    const after = await alice.threads.getState(thread.thread_id);
    assert.deepEqual(after, before, "Alice's thread is untouched");
    assert.equal((await alice.threads.search()).length, 1);
    assert.equal((await call('GET', `/threads/${a}`, undefined, { 'x-api-key': 'service-key' })).status, 200, 'services see every thread');

    // Missing, expired, forged, wrong-issuer and alg-none tokens: 401, saying nothing of threads.
    const noneAlg = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'alice', exp: now() + 600 })).toString('base64url')}.`;
    for (const [label, headers] of [
      ['missing', {}],
      ['expired', { authorization: `Bearer ${tokenFor('alice', { exp: now() - 3600 })}` }],
      ['forged', { authorization: `Bearer ${sign({ sub: 'alice', exp: now() + 600, iss: 'e2e-issuer' }, 'wrong-secret')}` }],
      ['wrong issuer', { authorization: `Bearer ${tokenFor('alice', { iss: 'someone' })}` }],
      ['alg none', { authorization: `Bearer ${noneAlg}` }],
    ]) {
      const r = await call('GET', `/threads/${a}`, undefined, headers);
      assert.equal(r.status, 401, label);
      assert.ok(!JSON.stringify(r.body).includes(a), `${label}: no thread details`);
    }

    // CORS: the listed origin gets itself back (with credentials), others nothing; preflights.
    const allowed = await fetch(`${worker.url}/threads/search`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.equal(allowed.headers.get('access-control-allow-credentials'), 'true');
    assert.match(allowed.headers.get('access-control-allow-headers'), /authorization/);
    const refused = await fetch(`${worker.url}/threads/search`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
    const cross = await call('POST', '/threads/search', {}, { ...as('alice'), origin: 'https://app.example' });
    assert.equal(cross.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(cross.headers.get('access-control-expose-headers'), /x-thread-head/);
    const stream = await fetch(`${worker.url}/threads/${a}/runs/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://app.example', ...as('alice') },
      body: JSON.stringify({ ...say, stream_mode: ['messages-tuple'] }),
    });
    assert.equal(stream.headers.get('access-control-allow-origin'), 'https://app.example', 'streams carry CORS too');
    await stream.text();
    const evil = await call('POST', '/threads/search', {}, { ...as('alice'), origin: 'https://evil.example' });
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
  } finally {
    await worker.kill();
    removeDir(persistDir);
  }
});
