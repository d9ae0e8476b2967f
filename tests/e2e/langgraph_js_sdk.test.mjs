// The real @langchain/langgraph-sdk (JS) against the built worker in workerd.
// Client version: @langchain/langgraph-sdk 2.0.0 (pinned in package.json).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, assertLinear } from './harness.mjs';

const SDK_VERSION = '2.0.0';
let worker;
let persistDir;
// apiKey: null keeps the SDK from reading LANGGRAPH_API_KEY & co. from the environment.
const client = () => new Client({ apiUrl: worker.url, apiKey: null });
const human = (content) => ({ messages: [{ role: 'user', content }] });

before(async () => {
  persistDir = tempPersistDir('js-sdk');
  worker = await startWorker({ persistDir });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

test(`threads.create + runs.wait twice remembers (SDK ${SDK_VERSION})`, async () => {
  const c = client();
  const thread = await c.threads.create({ metadata: { user: 'js-sdk' } });
  assert.equal(thread.status, 'idle');
  const first = await c.runs.wait(thread.thread_id, 'agent', { input: human('My name is Sam') });
  assert.equal(first.messages.length, 2);
  const second = await c.runs.wait(thread.thread_id, 'agent', { input: human("What's my name?") });
  assert.equal(second.messages.length, 4);
  assert.equal(second.messages[3].content, 'Your name is Sam.');
});

test('runs.stream with values, messages-tuple and updates', async () => {
  const c = client();
  const thread = await c.threads.create();
  await c.runs.wait(thread.thread_id, 'agent', { input: human('My name is Sam') });
  const events = [];
  for await (const chunk of c.runs.stream(thread.thread_id, 'agent', {
    input: human("What's my name?"),
    streamMode: ['values', 'messages-tuple', 'updates'],
  })) {
    events.push(chunk);
  }
  const names = events.map((e) => e.event);
  assert.equal(names[0], 'metadata');
  assert.ok(events[0].data.run_id);
  assert.equal(names[1], 'values');
  assert.equal(events[1].data.messages.length, 3, 'values after the input');
  const final = events.at(-1);
  assert.equal(final.event, 'values');
  const reply = final.data.messages.at(-1);
  assert.equal(reply.content, 'Your name is Sam.');
  const chunks = events.filter((e) => e.event === 'messages');
  assert.ok(chunks.length >= 2, 'the reply streams in several chunks');
  for (const { data: [chunk, meta] } of chunks) {
    assert.equal(chunk.id, reply.id, 'chunk id = final AI message id');
    assert.equal(chunk.type, 'AIMessageChunk');
    assert.equal(meta.langgraph_node, 'agent');
  }
  assert.equal(chunks.map((e) => e.data[0].content).join(''), reply.content);
  const updates = events.find((e) => e.event === 'updates');
  assert.deepEqual(updates.data.agent.messages[0].id, reply.id);
});

test('getState, getHistory (limit, before), updateState', async () => {
  const c = client();
  const thread = await c.threads.create();
  for (const text of ['one', 'two', 'three']) {
    await c.runs.wait(thread.thread_id, 'agent', { input: human(text) });
  }
  const state = await c.threads.getState(thread.thread_id);
  assert.equal(state.values.messages.length, 6);
  const history = await c.threads.getHistory(thread.thread_id, { limit: 10 });
  // Each turn stores its input (durable before the model runs), then its reply.
  assert.equal(history.length, 6);
  assert.deepEqual(history.map((h) => h.metadata.source), ['loop', 'input', 'loop', 'input', 'loop', 'input']);
  assert.equal(history[0].checkpoint.checkpoint_id, state.checkpoint.checkpoint_id);
  assertLinear(assert, history);
  const limited = await c.threads.getHistory(thread.thread_id, { limit: 1 });
  assert.equal(limited.length, 1);
  const older = await c.threads.getHistory(thread.thread_id, {
    limit: 10,
    before: { configurable: { checkpoint_id: history[0].checkpoint.checkpoint_id } },
  });
  assert.deepEqual(older.map((s) => s.checkpoint.checkpoint_id), history.slice(1).map((s) => s.checkpoint.checkpoint_id));
  const atFirst = await c.threads.getState(thread.thread_id, history[4].checkpoint.checkpoint_id);
  assert.equal(atFirst.values.messages.length, 2);
  const firstInput = await c.threads.getState(thread.thread_id, history[5].checkpoint.checkpoint_id);
  assert.equal(firstInput.values.messages.length, 1, 'the input alone, before the reply');

  const updated = await c.threads.updateState(thread.thread_id, {
    values: { messages: [{ type: 'human', content: 'added by updateState' }] },
    asNode: 'agent',
  });
  assert.ok(updated.checkpoint.checkpoint_id);
  const after = await c.threads.getState(thread.thread_id);
  assert.equal(after.checkpoint.checkpoint_id, updated.checkpoint.checkpoint_id);
  assert.equal(after.metadata.source, 'update');
  assert.equal(after.values.messages.at(-1).content, 'added by updateState');
});

test('copy, search by metadata.graph_id, delete then 404', async () => {
  const c = client();
  const thread = await c.threads.create({ metadata: { owner: 'copy-test' } });
  await c.runs.wait(thread.thread_id, 'agent', { input: human('My name is Sam') });
  const copy = await c.threads.copy(thread.thread_id);
  assert.notEqual(copy.thread_id, thread.thread_id);
  const copied = await c.threads.getState(copy.thread_id);
  assert.equal(copied.values.messages.length, 2);
  const answer = await c.runs.wait(copy.thread_id, 'agent', { input: human("What's my name?") });
  assert.equal(answer.messages.at(-1).content, 'Your name is Sam.');

  // Threads with an `owner` live in that owner's directory shard: a search names it.
  const found = await c.threads.search({ metadata: { owner: 'copy-test', graph_id: 'agent' }, limit: 100 });
  const ids = found.map((t) => t.thread_id);
  assert.ok(ids.includes(thread.thread_id) && ids.includes(copy.thread_id), 'both threads found');
  assert.ok(found.every((t) => t.metadata.graph_id === 'agent'));
  const sorted = found.map((t) => t.updated_at);
  assert.deepEqual(sorted, [...sorted].sort().reverse(), 'newest updated_at first');
  const mine = await c.threads.search({ metadata: { owner: 'copy-test' } });
  assert.equal(mine.length, 2, 'the copy keeps the metadata');
  assert.equal(mine[0].values.messages.length, mine[0].thread_id === copy.thread_id ? 4 : 2);

  await c.threads.delete(thread.thread_id);
  await assert.rejects(c.threads.get(thread.thread_id), (err) => err.status === 404);
  const afterDelete = await c.threads.search({ metadata: { owner: 'copy-test' } });
  assert.deepEqual(afterDelete.map((t) => t.thread_id), [copy.thread_id]);
});

test('fork from an older checkpoint keeps both branches in history', async () => {
  const c = client();
  const thread = await c.threads.create();
  await c.runs.wait(thread.thread_id, 'agent', { input: human('My name is Sam') });
  const first = await c.threads.getState(thread.thread_id);
  await c.runs.wait(thread.thread_id, 'agent', { input: human('I like tea') });
  const main = await c.threads.getState(thread.thread_id);
  const forked = await c.runs.wait(thread.thread_id, 'agent', {
    input: human('What did I say?'),
    checkpoint: { checkpoint_id: first.checkpoint.checkpoint_id },
  });
  assert.equal(forked.messages.length, 4, 'the fork does not see "I like tea"');
  assert.doesNotMatch(forked.messages.at(-1).content, /tea/);
  const head = await c.threads.getState(thread.thread_id);
  const forkInput = await c.threads.getState(thread.thread_id, head.parent_checkpoint.checkpoint_id);
  assert.equal(forkInput.metadata.source, 'fork', 'the branch starts with the input');
  assert.equal(forkInput.parent_checkpoint.checkpoint_id, first.checkpoint.checkpoint_id);
  assert.equal(head.metadata.source, 'loop');
  const history = await c.threads.getHistory(thread.thread_id, { limit: 10 });
  const ids = history.map((s) => s.checkpoint.checkpoint_id);
  assert.ok(ids.includes(main.checkpoint.checkpoint_id), 'the old branch stays in history');
  const oldBranch = await c.threads.getState(thread.thread_id, main.checkpoint.checkpoint_id);
  assert.match(oldBranch.values.messages[2].content, /tea/);
});

test('assistants and errors the SDK surfaces', async () => {
  const c = client();
  const assistant = await c.assistants.get('agent');
  assert.equal(assistant.graph_id, 'agent');
  const list = await c.assistants.search();
  assert.equal(list.length, 1);
  await assert.rejects(c.assistants.get('nope'), (err) => err.status === 404);
  await assert.rejects(c.runs.wait('no-such-thread', 'agent', { input: human('hi') }), (err) => err.status === 404);
  const thread = await c.threads.create();
  await assert.rejects(c.runs.wait(thread.thread_id, 'agent', { input: { question: 'hi' } }),
    (err) => err.status === 422 && /messages/.test(JSON.stringify(err)));
  await assert.rejects(c.threads.create({ threadId: thread.thread_id }), (err) => err.status === 409);
});

test('state survives a runtime restart between turns', async () => {
  const c = client();
  const thread = await c.threads.create();
  await c.runs.wait(thread.thread_id, 'agent', { input: human('My name is Sam') });
  await worker.kill();
  worker = await startWorker({ persistDir, port: worker.port });
  const answer = await client().runs.wait(thread.thread_id, 'agent', { input: human("What's my name?") });
  assert.equal(answer.messages.at(-1).content, 'Your name is Sam.');
  const found = await client().threads.search({ ids: [thread.thread_id] });
  assert.equal(found.length, 1, 'the thread index survives too');
});

test('a client that disconnects mid-stream leaves the thread idle and whole', async () => {
  const c = client();
  const thread = await c.threads.create();
  await c.runs.wait(thread.thread_id, 'agent', { input: human('My name is Sam') });
  const controller = new AbortController();
  const stream = c.runs.stream(thread.thread_id, 'agent', {
    input: human('I like tea'),
    streamMode: ['messages-tuple', 'values'],
    signal: controller.signal,
  });
  // Whether the abort surfaces as an error depends on how much of the body had already
  // arrived; what matters is the thread afterwards.
  try {
    for await (const part of stream) {
      if (part.event === 'metadata') controller.abort();
    }
  } catch (err) {
    assert.equal(err.name, 'AbortError');
  }
  // The run goes on without its client: the reply is stored, and the thread takes the
  // next run.
  let state;
  for (let i = 0; i < 50; i += 1) {
    state = await c.threads.getState(thread.thread_id);
    if (state.values.messages.length === 4) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(state.values.messages.length, 4, 'the reply is stored after the client left');
  assert.equal(state.values.messages.at(-1).type, 'ai');
  const t = await c.threads.get(thread.thread_id);
  assert.equal(t.status, 'idle');
  const next = await c.runs.wait(thread.thread_id, 'agent', { input: human("What's my name?") });
  assert.equal(next.messages.at(-1).content, 'Your name is Sam.');
  assert.equal(next.messages.length % 2, 0);
});
