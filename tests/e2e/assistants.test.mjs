// Assistants in workerd with the pinned JS SDK: create, get, update (a version each),
// versions, latest, search, count, graph, schemas, subgraphs, delete (with its
// threads); a run on an assistant uses its system prompt, model, temperature and
// max_tokens (as the mock OpenAI server receives them); JWT users see only their own;
// everything survives a restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, signHs256, sleep } from './harness.mjs';
import { startMockOpenAi, behaviours } from './mock_openai.mjs';

const SERVICE_KEY = 'assistants-service-key';
const JWT_SECRET = 'e2e-assistants-secret-0123456789-abcdef';
const DEPLOYMENT_PROMPT = 'You are the deployment default.';
const SYSTEM_UUID = 'fe096781-5601-53d2-b2f6-0d3403f7e9ca';
let mock;
let worker;
let persistDir;
const vars = () => ({
  AUTH_MODE: 'jwt', JWT_SECRET, API_KEYS: SERVICE_KEY,
  MODEL_PROVIDER: 'openai', OPENAI_BASE_URL: mock.url, OPENAI_MODEL: 'mock-model',
  OPENAI_API_KEY: 'sk-mock', SYSTEM_PROMPT: DEPLOYMENT_PROMPT,
});
const service = () => new Client({ apiUrl: worker.url, apiKey: SERVICE_KEY });
const user = (sub) => new Client({
  apiUrl: worker.url,
  apiKey: null,
  defaultHeaders: { authorization: `Bearer ${signHs256({ sub, exp: Math.floor(Date.now() / 1000) + 600 }, JWT_SECRET)}` },
});
const human = (content) => ({ messages: [{ role: 'user', content }] });
const lastRequest = () => mock.requests.at(-1).body;

before(async () => {
  mock = await startMockOpenAi();
  persistDir = tempPersistDir('assistants');
  worker = await startWorker({ persistDir, vars: vars() });
});

after(async () => {
  await worker?.kill();
  await mock?.close();
  removeDir(persistDir);
});

test('create, get, update, versions, latest, search, count, graph and schemas with the JS SDK', async () => {
  const c = service();
  const created = await c.assistants.create({
    graphId: 'agent',
    name: 'ref-assistant',
    description: 'reference',
    config: { configurable: { greeting: 'hi', level: 1 } },
    metadata: { team: 'e2e', v: 1 },
  });
  assert.equal(created.version, 1);
  assert.deepEqual(created.context, { greeting: 'hi', level: 1 }, 'the context copies config.configurable');
  const id = created.assistant_id;
  assert.deepEqual(await c.assistants.get(id), created);

  const kept = await c.assistants.create({ graphId: 'agent', assistantId: id, ifExists: 'do_nothing', name: 'other' });
  assert.equal(kept.name, 'ref-assistant');
  await assert.rejects(c.assistants.create({ graphId: 'agent', assistantId: id }), (err) => err.status === 409);
  await assert.rejects(c.assistants.create({ graphId: 'nope' }), (err) => err.status === 404);

  const v2 = await c.assistants.update(id, { name: 'renamed', metadata: { v: 2, extra: 'x' } });
  assert.equal(v2.version, 2);
  assert.deepEqual(v2.metadata, { team: 'e2e', v: 2, extra: 'x' }, 'metadata is merged');
  const v3 = await c.assistants.update(id, { config: { configurable: { greeting: 'hello' } } });
  assert.equal(v3.version, 3);
  assert.deepEqual(v3.config, { configurable: { greeting: 'hello' } }, 'config is replaced');
  assert.deepEqual(v3.context, { greeting: 'hello' });
  assert.equal(v3.created_at, created.created_at);

  const versions = await c.assistants.getVersions(id);
  assert.deepEqual(versions.map((v) => v.version), [3, 2, 1]);
  assert.deepEqual((await c.assistants.getVersions(id, { limit: 1, offset: 1 })).map((v) => v.version), [2]);
  assert.deepEqual((await c.assistants.getVersions(id, { metadata: { v: 1 } })).map((v) => v.version), [1]);

  const latest = await c.assistants.setLatest(id, 1);
  assert.equal(latest.version, 1);
  assert.equal(latest.name, 'ref-assistant');
  assert.equal((await c.assistants.get(id)).version, 1);
  await assert.rejects(c.assistants.setLatest(id, 99), (err) => err.status === 404);
  assert.equal((await c.assistants.update(id, { metadata: { v: 4 } })).version, 4);

  const found = await c.assistants.search({ metadata: { team: 'e2e' } });
  assert.deepEqual(found.map((a) => a.assistant_id), [id]);
  const all = await c.assistants.search({ limit: 100 });
  assert.ok(all.some((a) => a.assistant_id === SYSTEM_UUID && a.metadata.created_by === 'system' && a.name === 'agent'));
  assert.deepEqual((await c.assistants.search({ name: 'ref-assist' })).map((a) => a.assistant_id), [id]);
  const page = await c.assistants.search({ limit: 1, includePagination: true, sortBy: 'name', sortOrder: 'asc' });
  assert.equal(page.assistants.length, 1);
  assert.equal(page.next, '1');
  assert.equal(await c.assistants.count({ metadata: { team: 'e2e' } }), 1);
  assert.equal(await c.assistants.count({ graphId: 'agent' }), all.length);

  const graph = await c.assistants.getGraph(id, { xray: true });
  assert.deepEqual(graph.nodes.map((n) => n.id), ['__start__', 'agent', '__end__']);
  assert.deepEqual(graph.edges, [{ source: '__start__', target: 'agent' }, { source: 'agent', target: '__end__' }]);
  const schemas = await c.assistants.getSchemas(id);
  assert.equal(schemas.graph_id, 'agent');
  for (const key of ['input_schema', 'output_schema', 'state_schema']) assert.ok(schemas[key].properties.messages, key);
  assert.deepEqual(await c.assistants.getSubgraphs(id), {});
  assert.equal((await c.assistants.getGraph('agent')).nodes.length, 3);

  await c.assistants.delete(id);
  await assert.rejects(c.assistants.get(id), (err) => err.status === 404);
  await assert.rejects(c.assistants.delete(id), (err) => err.status === 404);
});

test("a run on an assistant uses its system prompt and model settings; the system assistant the deployment's", async () => {
  const c = service();
  const pirate = await c.assistants.create({
    graphId: 'agent',
    name: 'pirate',
    config: { configurable: { system_prompt: 'Talk like a pirate.', model: 'pirate-model', temperature: 0.2, max_tokens: 77 } },
  });
  const thread = await c.threads.create();
  mock.next(behaviours.stream(['Arr ', 'matey.']));
  const out = await c.runs.wait(thread.thread_id, pirate.assistant_id, { input: human('hello') });
  assert.equal(out.messages.at(-1).content, 'Arr matey.');
  let sent = lastRequest();
  assert.deepEqual(sent.messages[0], { role: 'system', content: 'Talk like a pirate.' });
  assert.equal(sent.model, 'pirate-model');
  assert.equal(sent.temperature, 0.2);
  assert.equal(sent.max_tokens, 77);
  assert.equal((await c.threads.get(thread.thread_id)).metadata.assistant_id, pirate.assistant_id);

  // A streamed run too, and a context key beats config.configurable.
  await c.assistants.update(pirate.assistant_id, { context: { system_prompt: 'Talk like a parrot.' } });
  const chunks = [];
  for await (const part of c.runs.stream(thread.thread_id, pirate.assistant_id, { input: human('again'), streamMode: 'values' })) chunks.push(part);
  assert.ok(chunks.length > 0);
  sent = lastRequest();
  assert.deepEqual(sent.messages[0], { role: 'system', content: 'Talk like a parrot.' }, 'the update shows at once in this isolate');
  assert.equal(sent.model, 'pirate-model');

  await c.runs.wait(thread.thread_id, 'agent', { input: human('plain') });
  sent = lastRequest();
  assert.deepEqual(sent.messages[0], { role: 'system', content: DEPLOYMENT_PROMPT });
  assert.equal(sent.model, 'mock-model');
  assert.equal(sent.temperature, undefined);
  assert.equal((await c.threads.get(thread.thread_id)).metadata.assistant_id, SYSTEM_UUID);

  await c.runs.wait(null, pirate.assistant_id, { input: human('stateless') });
  assert.deepEqual(lastRequest().messages[0], { role: 'system', content: 'Talk like a parrot.' });
  await assert.rejects(
    c.runs.wait(thread.thread_id, '00000000-0000-4000-8000-000000000000', { input: human('x') }),
    (err) => err.status === 404 && /No assistant found/.test(err.message),
  );
});

test('delete with deleteThreads deletes exactly the threads that ran on the assistant', async () => {
  const c = service();
  const doomed = await c.assistants.create({ graphId: 'agent', name: 'doomed' });
  const mine = [];
  for (let i = 0; i < 2; i += 1) {
    const t = await c.threads.create();
    await c.runs.wait(t.thread_id, doomed.assistant_id, { input: human(`hi ${i}`) });
    mine.push(t.thread_id);
  }
  const other = await c.threads.create();
  await c.runs.wait(other.thread_id, 'agent', { input: human('not mine') });
  // The thread directory learns the stamped assistant in the background: wait for it.
  for (let i = 0; i < 50; i += 1) {
    const listed = await c.threads.search({ metadata: { assistant_id: doomed.assistant_id } });
    if (listed.length === 2) break;
    await sleep(100);
  }
  await c.assistants.delete(doomed.assistant_id, { deleteThreads: true });
  for (const t of mine) await assert.rejects(c.threads.get(t), (err) => err.status === 404);
  assert.equal((await c.threads.get(other.thread_id)).thread_id, other.thread_id);
  await assert.rejects(c.assistants.get(doomed.assistant_id), (err) => err.status === 404);

  const keeper = await c.assistants.create({ graphId: 'agent', name: 'keeper' });
  const kept = await c.threads.create();
  await c.runs.wait(kept.thread_id, keeper.assistant_id, { input: human('hello') });
  await c.assistants.delete(keeper.assistant_id);
  assert.equal((await c.threads.get(kept.thread_id)).metadata.assistant_id, keeper.assistant_id);
  await assert.rejects(
    c.runs.wait(kept.thread_id, keeper.assistant_id, { input: human('again') }),
    (err) => err.status === 404,
  );
});

test('JWT users see only their own assistants; services do not see theirs', async () => {
  const ann = user('ann');
  const bob = user('bob');
  const anns = await ann.assistants.create({ graphId: 'agent', name: 'anns', config: { configurable: { system_prompt: 'Ann only.' } } });
  for (const attempt of [
    () => bob.assistants.get(anns.assistant_id),
    () => bob.assistants.update(anns.assistant_id, { name: 'mine now' }),
    () => bob.assistants.delete(anns.assistant_id),
    () => bob.assistants.getVersions(anns.assistant_id),
    () => bob.runs.wait(null, anns.assistant_id, { input: human('hi') }),
    () => service().assistants.get(anns.assistant_id),
  ]) await assert.rejects(attempt(), (err) => err.status === 404);
  assert.deepEqual((await bob.assistants.search()).map((a) => a.assistant_id), [SYSTEM_UUID]);
  assert.equal(await bob.assistants.count(), 1);
  assert.equal((await ann.assistants.search({ name: 'anns' })).length, 1);
  const thread = await ann.threads.create();
  await ann.runs.wait(thread.thread_id, anns.assistant_id, { input: human('hello') });
  assert.deepEqual(lastRequest().messages[0], { role: 'system', content: 'Ann only.' });
});

test('assistants and their versions survive a restart', async () => {
  const c = service();
  const a = await c.assistants.create({ graphId: 'agent', name: 'durable', config: { configurable: { system_prompt: 'Still here.' } } });
  await c.assistants.update(a.assistant_id, { metadata: { round: 2 } });
  const anns = await user('ann').assistants.search({ name: 'anns' });
  await worker.kill();
  worker = await startWorker({ persistDir, vars: vars() });
  const back = await service().assistants.get(a.assistant_id);
  assert.equal(back.version, 2);
  assert.deepEqual(back.metadata, { round: 2 });
  assert.deepEqual((await service().assistants.getVersions(a.assistant_id)).map((v) => v.version), [2, 1]);
  assert.deepEqual(await user('ann').assistants.search({ name: 'anns' }), anns);
  const thread = await service().threads.create();
  await service().runs.wait(thread.thread_id, a.assistant_id, { input: human('hello') });
  assert.deepEqual(lastRequest().messages[0], { role: 'system', content: 'Still here.' });
});
