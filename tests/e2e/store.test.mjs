// The Store API (long-term memory) in workerd, driven by the real @langchain/langgraph-sdk
// (JS, pinned in package.json) store client: items, filters, semantic search, pages,
// namespaces, TTL, owners, a runtime SIGKILL and restart, and the OpenAI-compatible
// embeddings port against the mock server, and Workers AI embeddings through an `AI`
// binding that is a stand-in Worker (tests/e2e/workers_ai/).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, api, signHs256, sleep, until } from './harness.mjs';
import { startMockOpenAi } from './mock_openai.mjs';
import { fileURLToPath } from 'node:url';

const JWT_SECRET = 'e2e-store-secret-0123456789-abcdefghij';
const API_KEY = 'store-service-key';
// DEV_MODE: /__dev/store/{shard} shows a shard's rows (the TTL alarm's test).
const VARS = { AUTH_MODE: 'jwt', JWT_SECRET, API_KEYS: API_KEY, DEV_MODE: 'true' };
let worker;
let persistDir;

const service = () => new Client({ apiUrl: worker.url, apiKey: API_KEY });
const bearer = (sub) => `Bearer ${signHs256({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, JWT_SECRET)}`;
const user = (sub) => new Client({ apiUrl: worker.url, apiKey: null, defaultHeaders: { authorization: bearer(sub) } });
const keys = (items) => items.map((i) => `${i.namespace.join('.')}/${i.key}`);

before(async () => {
  persistDir = tempPersistDir('store');
  worker = await startWorker({ persistDir, vars: VARS });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

test('put, get, update, search with filters and pages, namespaces, delete (JS SDK)', async () => {
  const s = service().store;
  await s.putItem(['ref', 'users'], 'u1', { name: 'Ada', lang: 'en' });
  await s.putItem(['ref', 'users'], 'u2', { name: 'Bob', lang: 'fr', age: 20 });
  await s.putItem(['ref', 'users'], 'u3', { name: 'Cy', lang: 'en', age: 30 });
  await s.putItem(['ref', 'prefs', 'ui'], 'theme', { dark: true });
  await s.putItem(['other'], 'x', { n: 1 });
  const u1 = await s.getItem(['ref', 'users'], 'u1');
  assert.deepEqual(u1.value, { name: 'Ada', lang: 'en' });
  assert.deepEqual(u1.namespace, ['ref', 'users']);
  assert.match(u1.createdAt, /^\d{4}-\d\d-\d\dT.*\+00:00$/);
  await s.putItem(['ref', 'users'], 'u1', { name: 'Ada L.', lang: 'en' });
  const updated = await s.getItem(['ref', 'users'], 'u1');
  assert.equal(updated.value.name, 'Ada L.');
  assert.equal(updated.created_at, u1.created_at, 'an update keeps created_at');
  assert.equal(await s.getItem(['ref', 'users'], 'nope'), null);

  const all = await s.searchItems(['ref']);
  assert.deepEqual(keys(all.items), ['ref.prefs.ui/theme', 'ref.users/u1', 'ref.users/u2', 'ref.users/u3']);
  assert.equal(all.items[0].score, null);
  const en = await s.searchItems(['ref'], { filter: { lang: 'en' } });
  assert.deepEqual(keys(en.items), ['ref.users/u1', 'ref.users/u3']);
  const older = await s.searchItems(['ref'], { filter: { age: { $gt: 25 } } });
  assert.deepEqual(keys(older.items), ['ref.users/u3'], 'an item without the field does not match');
  const page = await s.searchItems(['ref', 'users'], { limit: 1, offset: 1 });
  assert.deepEqual(keys(page.items), ['ref.users/u2']);

  const listed = await s.listNamespaces({ prefix: ['ref'] });
  assert.deepEqual(listed.namespaces, [['ref', 'prefs', 'ui'], ['ref', 'users']]);
  const depth = await s.listNamespaces({ maxDepth: 1 });
  assert.ok(depth.namespaces.some((n) => n.length === 1 && n[0] === 'ref'));
  assert.ok(depth.namespaces.every((n) => n.length === 1));
  const suffix = await s.listNamespaces({ suffix: ['ui'] });
  assert.deepEqual(suffix.namespaces, [['ref', 'prefs', 'ui']]);

  await s.deleteItem(['other'], 'x');
  assert.equal(await s.getItem(['other'], 'x'), null);
  const after = await s.listNamespaces({ prefix: ['other'] });
  assert.deepEqual(after.namespaces, [], 'a namespace without items is not listed');
});

test('semantic search with the local embedder ranks the stored fact first, with a filter', async () => {
  const s = service().store;
  const facts = [
    ['alice', "Alice's favourite programming language is Rust", 'pref'],
    ['bob', 'Bob paid invoice 4411 by bank transfer on Tuesday', 'billing'],
    ['carol', 'Carol prefers dark mode in every editor', 'pref'],
    ['dave', 'The design review with Dave moved to Thursday', 'calendar'],
  ];
  for (const [who, text, kind] of facts) await s.putItem(['facts', who], 'f', { text, kind });
  const found = await s.searchItems(['facts'], { query: 'which programming language does Alice like?' });
  assert.equal(keys(found.items)[0], 'facts.alice/f');
  assert.ok(found.items.every((i) => typeof i.score === 'number'));
  assert.ok(found.items[0].score > found.items[1].score);
  const prefs = await s.searchItems(['facts'], { query: 'dark editor', filter: { kind: 'pref' }, limit: 1 });
  assert.deepEqual(keys(prefs.items), ['facts.carol/f']);
  // index: false stores no vector: it is listed after the ranked items.
  await s.putItem(['facts', 'erin'], 'f', { text: 'Erin likes Rust too' }, { index: false });
  const ranked = await s.searchItems(['facts'], { query: 'Rust programming language', limit: 10 });
  assert.equal(ranked.items.at(-1).key, 'f');
  assert.deepEqual(ranked.items.at(-1).namespace, ['facts', 'erin']);
  assert.equal(ranked.items.at(-1).score, null);
});

test('TTL: an item is gone once its minutes pass, before any sweep', async () => {
  const s = service().store;
  await s.putItem(['ttl'], 'short', { v: 1 }, { ttl: 0.02 }); // 1.2 s
  await s.putItem(['ttl'], 'kept', { v: 2 });
  assert.ok(await s.getItem(['ttl'], 'short', { refreshTtl: false }));
  await sleep(1500);
  assert.equal(await s.getItem(['ttl'], 'short'), null);
  assert.deepEqual(keys((await s.searchItems(['ttl'])).items), ['ttl/kept']);
});

test("TTL: the shard's alarm deletes expired rows from storage", async () => {
  const tina = user('tina').store;
  await tina.putItem(['ttl'], 'short', { text: 'gone soon' }, { ttl: 0.02 }); // 1.2 s
  await tina.putItem(['ttl'], 'kept', { text: 'stays' });
  const rows = async () => {
    const res = await fetch(`${worker.url}/__dev/store/u/tina`, { headers: { authorization: bearer('tina') } });
    assert.equal(res.status, 200);
    return res.json();
  };
  const before = await rows();
  assert.deepEqual([before.items, before.vectors], [2, 2]);
  assert.ok(before.next_expiry_ms > Date.now() - 5_000);
  // Nothing reads the items meanwhile: only the alarm can remove the row.
  const after = await until(rows, (r) => r.items === 1, 15_000);
  assert.deepEqual([after.items, after.vectors, after.next_expiry_ms], [1, 1, null]);
  assert.deepEqual((await tina.getItem(['ttl'], 'kept')).value, { text: 'stays' });
  // Another user cannot read this shard's statistics.
  const other = await fetch(`${worker.url}/__dev/store/u/tina`, { headers: { authorization: bearer('eve') } });
  assert.equal(other.status, 404);
});

test('a JWT user sees only their own items; a service and another user see none of them', async () => {
  const alice = user('alice').store;
  const eve = user('eve').store;
  await alice.putItem(['prefs'], 'theme', { dark: true });
  assert.deepEqual((await alice.getItem(['prefs'], 'theme')).value, { dark: true });
  assert.equal(await eve.getItem(['prefs'], 'theme'), null);
  assert.deepEqual((await eve.searchItems([])).items, []);
  assert.deepEqual((await eve.listNamespaces()).namespaces, []);
  await eve.putItem(['prefs'], 'theme', { dark: false });
  assert.deepEqual((await alice.getItem(['prefs'], 'theme')).value, { dark: true }, 'not overwritten by eve');
  assert.equal(await service().store.getItem(['prefs'], 'theme'), null, "a service's own space is apart");
  const anonymous = await api(worker.url, 'POST', '/store/items/search', {});
  assert.equal(anonymous.status, 401);
});

test("a service reads, searches and writes a user's items through the root label user:<sub>", async () => {
  const s = service().store;
  const carol = user('carol').store;
  await carol.putItem(['memories'], 'm1', { text: 'Carol prefers tea' });
  // The service names carol's ['memories'] as ['user:carol', 'memories'].
  const item = await s.getItem(['user:carol', 'memories'], 'm1');
  assert.deepEqual(item.value, { text: 'Carol prefers tea' });
  assert.deepEqual(item.namespace, ['user:carol', 'memories']);
  const found = await s.searchItems(['user:carol'], { query: 'what does Carol drink?' });
  assert.deepEqual(keys(found.items), ['user:carol.memories/m1']);
  assert.equal(typeof found.items[0].score, 'number');
  assert.deepEqual((await s.listNamespaces({ prefix: ['user:carol'] })).namespaces, [['user:carol', 'memories']]);
  // What the service writes into carol's root, carol reads as her own; dave sees none of it.
  await s.putItem(['user:carol', 'memories'], 'm2', { text: 'Carol moved to Lyon' });
  assert.deepEqual((await carol.getItem(['memories'], 'm2')).value, { text: 'Carol moved to Lyon' });
  assert.deepEqual(keys((await carol.searchItems(['memories'])).items), ['memories/m1', 'memories/m2']);
  const dave = user('dave').store;
  assert.equal(await dave.getItem(['memories'], 'm2'), null);
  assert.deepEqual((await dave.searchItems([])).items, []);
  // A user's `user:carol` label is a label of the user's own space, not carol's root.
  assert.equal(await dave.getItem(['user:carol', 'memories'], 'm1'), null);
  assert.deepEqual((await dave.listNamespaces()).namespaces, []);
  // Without a root label a service's search covers its own space only, never users' items.
  const shared = await s.searchItems([], { limit: 100 });
  assert.ok(shared.items.every((i) => !i.namespace[0].startsWith('user:')));
  await s.deleteItem(['user:carol', 'memories'], 'm2');
  assert.equal(await carol.getItem(['memories'], 'm2'), null);
});

test('bad input is a 4xx naming the problem and stores nothing', async () => {
  const headers = { 'content-type': 'application/json', 'x-api-key': API_KEY };
  for (const [body, field] of [
    [{ namespace: 'bad', key: 'k', value: {} }, 'namespace'],
    [{ namespace: ['bad.x'], key: 'k', value: {} }, 'namespace'],
    [{ namespace: ['bad'], key: 'k', value: 'text' }, 'value'],
    [{ namespace: ['bad'], key: 'k', value: { t: 'x'.repeat(1024 * 1024 + 1) } }, 'value'],
  ]) {
    const res = await fetch(`${worker.url}/store/items`, { method: 'PUT', headers, body: JSON.stringify(body) });
    assert.ok(res.status >= 400 && res.status < 500, `${field}: ${res.status}`);
    const answer = await res.json();
    assert.match(answer.detail, new RegExp(field));
  }
  const res = await fetch(`${worker.url}/store/items/search`, {
    method: 'POST', headers, body: JSON.stringify({ filter: { age: { $regex: 'x' } } }),
  });
  assert.equal(res.status, 422);
  assert.match((await res.json()).detail, /unknown operator/);
  const listed = await service().store.listNamespaces({ prefix: ['bad'] });
  assert.deepEqual(listed.namespaces, []);
});

test('items survive a runtime SIGKILL and restart', async () => {
  await service().store.putItem(['durable', 'x'], 'k', { kept: true }, { ttl: 60 });
  await user('alice').store.putItem(['durable'], 'mine', { kept: 'alice' });
  await worker.kill();
  worker = await startWorker({ persistDir, vars: VARS });
  assert.deepEqual((await service().store.getItem(['durable', 'x'], 'k')).value, { kept: true });
  assert.deepEqual((await user('alice').store.getItem(['durable'], 'mine')).value, { kept: 'alice' });
  const found = await service().store.searchItems(['facts'], { query: 'programming language', limit: 1 });
  assert.deepEqual(keys(found.items), ['facts.alice/f'], 'vectors survive too');
});

test('the OpenAI-compatible embeddings port: request shape, key header, ranking', async () => {
  const mock = await startMockOpenAi();
  const dir = tempPersistDir('store-openai');
  const embedWorker = await startWorker({
    persistDir: dir,
    vars: {
      AUTH_MODE: 'none',
      STORE_EMBEDDINGS: 'openai',
      STORE_EMBEDDINGS_BASE_URL: mock.url,
      STORE_EMBEDDINGS_MODEL: 'mock-embed-1',
      STORE_EMBEDDINGS_API_KEY: 'sk-embed-test',
    },
  });
  try {
    const s = new Client({ apiUrl: embedWorker.url, apiKey: null }).store;
    await s.putItem(['docs'], 'jazz', { text: 'jazz quiz' }, { index: ['text'] });
    await s.putItem(['docs'], 'bread', { text: 'bread and butter' }, { index: ['text'] });
    const found = await s.searchItems(['docs'], { query: 'a quiz about jazz' });
    assert.deepEqual(found.items.map((i) => i.key), ['jazz', 'bread']);
    const calls = mock.requests.filter((r) => r.path === '/v1/embeddings');
    assert.equal(calls.length, 3);
    assert.equal(calls[0].headers.authorization, 'Bearer sk-embed-test');
    assert.deepEqual(calls[0].body.input, ['jazz quiz']);
    assert.equal(calls[0].body.model, 'mock-embed-1');
    assert.deepEqual(calls[2].body.input, ['a quiz about jazz']);
  } finally {
    await embedWorker.kill();
    await mock.close();
    removeDir(dir);
  }
});

test('Workers AI embeddings (@cf/baai/bge-*) through the AI binding: request shape, ranking', async () => {
  const configs = ['edge-memory.toml', 'mock-ai.toml']
    .map((name) => fileURLToPath(new URL(`workers_ai/${name}`, import.meta.url)));
  const dir = tempPersistDir('store-workers-ai');
  const aiWorker = await startWorker({ persistDir: dir, config: configs });
  try {
    const s = new Client({ apiUrl: aiWorker.url, apiKey: null }).store;
    // The stand-in refuses another model or input shape: each put and query would fail.
    await s.putItem(['docs'], 'jazz', { text: 'jazz quiz night' });
    await s.putItem(['docs'], 'bread', { text: 'bread and butter' }, { index: ['text'] });
    await s.putItem(['docs'], 'tags', { tags: ['rust', 'wasm'] }, { index: ['tags[*]'] });
    const found = await s.searchItems(['docs'], { query: 'a jazz quiz' });
    assert.equal(found.items[0].key, 'jazz');
    assert.ok(found.items[0].score > 0.5 && found.items[1].score < found.items[0].score);
    const tagged = await s.searchItems(['docs'], { query: 'wasm', limit: 1 });
    assert.deepEqual(tagged.items.map((i) => i.key), ['tags']);
  } finally {
    await aiWorker.kill();
    removeDir(dir);
  }
});
