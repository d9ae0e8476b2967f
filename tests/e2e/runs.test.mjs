// Runs as records with the real @langchain/langgraph-sdk (JS, pinned in package.json)
// against the built worker in workerd: background runs, get/list/join, cancel, the
// interrupt and rollback double-texting strategies, joinStream with Last-Event-ID after a
// client left, and a runtime SIGKILL with runs pending and running. The model is the mock
// OpenAI-compatible server, whose replies hold their last piece until a test lets go.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, sleep, until } from './harness.mjs';
import { startMockOpenAi, behaviours } from './mock_openai.mjs';

let mock;
let worker;
let persistDir;
let port;
const client = () => new Client({ apiUrl: worker.url, apiKey: null });
const human = (content) => ({ messages: [{ role: 'user', content }] });
const contents = (values) => values.messages.map((m) => m.content);

/** A reply in `pieces` whose last piece waits until `release()`. */
function heldReply(pieces) {
  let release;
  const gate = new Promise((r) => { release = r; });
  mock.next(behaviours.stream(pieces, { gate }));
  return release;
}

async function startOn(existingPort) {
  worker = await startWorker({
    persistDir,
    port: existingPort,
    vars: {
      MODEL_PROVIDER: 'openai',
      OPENAI_BASE_URL: mock.url,
      OPENAI_MODEL: 'mock-model',
      OPENAI_API_KEY: 'sk-runs-test',
      MODEL_DEADLINE_MS: '60000',
      // A TTL minute lasts one second here (dev builds with DEV_MODE only).
      DEV_MODE: 'true',
      DEV_TTL_MINUTE_MS: '1000',
    },
  });
  port = worker.port;
}

before(async () => {
  mock = await startMockOpenAi();
  persistDir = tempPersistDir('runs');
  await startOn();
});

after(async () => {
  await worker?.kill();
  await mock?.close();
  removeDir(persistDir);
});

test('a background run: pending or running at once, busy thread, join, get, list by status', async () => {
  const c = client();
  const thread = await c.threads.create();
  const release = heldReply(['Background ', 'reply ', 'done.']);
  let created;
  const run = await c.runs.create(thread.thread_id, 'agent', {
    input: human('work in the background'),
    onRunCreated: (meta) => { created = meta; },
  });
  assert.ok(['pending', 'running'].includes(run.status), run.status);
  assert.equal(run.thread_id, thread.thread_id);
  assert.equal(run.multitask_strategy, 'enqueue', "LangGraph's default for background runs");
  assert.equal(created?.run_id, run.run_id, 'Content-Location names the run (onRunCreated)');
  assert.deepEqual(run.kwargs.input, human('work in the background'));
  await until(() => c.runs.get(thread.thread_id, run.run_id), (r) => r.status === 'running');
  assert.equal((await c.threads.get(thread.thread_id)).status, 'busy');
  const running = await c.runs.list(thread.thread_id, { status: 'running' });
  assert.deepEqual(running.map((r) => r.run_id), [run.run_id]);
  assert.deepEqual(await c.runs.list(thread.thread_id, { status: 'success' }), []);
  const joined = c.runs.join(thread.thread_id, run.run_id);
  release();
  const values = await joined;
  assert.deepEqual(contents(values), ['work in the background', 'Background reply done.']);
  const done = await c.runs.get(thread.thread_id, run.run_id);
  assert.equal(done.status, 'success');
  assert.equal((await c.threads.get(thread.thread_id)).status, 'idle');
  const all = await c.runs.list(thread.thread_id);
  assert.deepEqual(all.map((r) => [r.run_id, r.status]), [[run.run_id, 'success']]);
  // A waited run is a run too, listed newest first.
  await c.runs.wait(thread.thread_id, 'agent', { input: human('and a waited one') });
  const listed = await c.runs.list(thread.thread_id);
  assert.equal(listed.length, 2);
  assert.equal(listed[1].run_id, run.run_id);
  assert.equal(listed[0].status, 'success');
  // Join of a finished run answers at once; a finished run cannot be cancelled.
  assert.equal((await c.runs.join(thread.thread_id, run.run_id)).messages.length, 4);
  await assert.rejects(c.runs.cancel(thread.thread_id, run.run_id), /404/);
  await c.runs.delete(thread.thread_id, run.run_id);
  await assert.rejects(c.runs.get(thread.thread_id, run.run_id), /404/);
  await assert.rejects(c.runs.delete(thread.thread_id, run.run_id), /404/);
});

test('runs.cancel (interrupt, wait) keeps the reply so far; the thread is interrupted, then idle again', async () => {
  const c = client();
  const thread = await c.threads.create();
  heldReply(['Partial ', 'answer ', 'never sent']);
  const run = await c.runs.create(thread.thread_id, 'agent', { input: human('slow question') });
  // The reply's first pieces are stored only when the run stops: wait until they streamed.
  await until(() => c.runs.get(thread.thread_id, run.run_id), (r) => r.status === 'running');
  await sleep(300);
  await c.runs.cancel(thread.thread_id, run.run_id, true, 'interrupt');
  assert.equal((await c.runs.get(thread.thread_id, run.run_id)).status, 'interrupted');
  const interrupted = await c.threads.get(thread.thread_id);
  assert.equal(interrupted.status, 'interrupted');
  const state = await c.threads.getState(thread.thread_id);
  assert.deepEqual(contents(state.values), ['slow question', 'Partial answer ']);
  assert.equal(state.metadata.interrupted, true);
  await c.runs.wait(thread.thread_id, 'agent', { input: human('go on') });
  assert.equal((await c.threads.get(thread.thread_id)).status, 'idle');
});

test('double texting: interrupt stops the running run and keeps its partial reply', async () => {
  const c = client();
  const thread = await c.threads.create();
  heldReply(['First ', 'reply ', 'cut']);
  const first = await c.runs.create(thread.thread_id, 'agent', { input: human('first') });
  await until(() => c.runs.get(thread.thread_id, first.run_id), (r) => r.status === 'running');
  await sleep(300);
  mock.next(behaviours.stream(['Second ', 'reply.']));
  const second = await c.runs.create(thread.thread_id, 'agent', {
    input: human('second'),
    multitaskStrategy: 'interrupt',
  });
  const values = await c.runs.join(thread.thread_id, second.run_id);
  assert.deepEqual(contents(values), ['first', 'First reply ', 'second', 'Second reply.']);
  assert.equal((await c.runs.get(thread.thread_id, first.run_id)).status, 'interrupted');
  assert.equal((await c.runs.get(thread.thread_id, second.run_id)).status, 'success');
  const history = await c.threads.getHistory(thread.thread_id, { limit: 10 });
  assert.deepEqual(history.map((s) => s.values.messages.length), [4, 3, 2, 1]);
});

test('double texting: rollback removes the running run, its record and every checkpoint it wrote', async () => {
  const c = client();
  const thread = await c.threads.create();
  await c.runs.wait(thread.thread_id, 'agent', { input: human('before') });
  heldReply(['Doomed ', 'reply ', 'x']);
  const doomed = await c.runs.create(thread.thread_id, 'agent', { input: human('doomed') });
  await until(() => c.runs.get(thread.thread_id, doomed.run_id), (r) => r.status === 'running');
  mock.next(behaviours.stream(['Kept ', 'reply.']));
  const kept = await c.runs.create(thread.thread_id, 'agent', {
    input: human('kept'),
    multitaskStrategy: 'rollback',
  });
  const values = await c.runs.join(thread.thread_id, kept.run_id);
  assert.deepEqual(contents(values), ['before', 'Hello from the mock.', 'kept', 'Kept reply.']);
  await assert.rejects(c.runs.get(thread.thread_id, doomed.run_id), /404/);
  const history = await c.threads.getHistory(thread.thread_id, { limit: 10 });
  assert.deepEqual(
    history.map((s) => contents(s.values)),
    [
      ['before', 'Hello from the mock.', 'kept', 'Kept reply.'],
      ['before', 'Hello from the mock.', 'kept'],
      ['before', 'Hello from the mock.'],
      ['before'],
    ],
    'the rolled-back run left no checkpoint',
  );
});

test('reject refuses a second run while a background run is pending or running; enqueue waits', async () => {
  const c = client();
  const thread = await c.threads.create();
  const release = heldReply(['One ', 'two.']);
  const first = await c.runs.create(thread.thread_id, 'agent', { input: human('first') });
  await assert.rejects(
    c.runs.wait(thread.thread_id, 'agent', { input: human('rejected'), multitaskStrategy: 'reject' }),
    /409/,
  );
  const queued = await c.runs.create(thread.thread_id, 'agent', { input: human('queued') });
  assert.equal((await c.runs.get(thread.thread_id, queued.run_id)).status, 'pending');
  release();
  const values = await c.runs.join(thread.thread_id, queued.run_id);
  assert.deepEqual(contents(values), ['first', 'One two.', 'queued', 'Hello from the mock.']);
  assert.equal((await c.runs.get(thread.thread_id, first.run_id)).status, 'success');
});

test('joinStream with lastEventId after the client left returns exactly the missed events', async () => {
  const c = client();
  const thread = await c.threads.create();
  const release = heldReply(['Resumed ', 'stream ', 'end.']);
  const controller = new AbortController();
  const seen = [];
  let runId;
  const stream = c.runs.stream(thread.thread_id, 'agent', {
    input: human('resume me'),
    streamMode: ['values', 'messages-tuple', 'updates'],
    streamResumable: true,
    signal: controller.signal,
    onRunCreated: (meta) => { runId = meta.run_id; },
  });
  for await (const part of stream) {
    seen.push(part);
    if (part.event === 'messages') break; // the page reloads mid-answer
  }
  controller.abort();
  assert.ok(runId, 'the stream named its run (Content-Location)');
  const lastId = seen.at(-1).id;
  assert.ok(lastId, 'resumable events carry ids');
  const rest = [];
  const joined = (async () => {
    for await (const part of c.runs.joinStream(thread.thread_id, runId, { lastEventId: lastId })) {
      rest.push(part);
    }
  })();
  await sleep(200);
  release();
  await joined;
  const ids = [...seen, ...rest].map((p) => Number(p.id));
  assert.deepEqual(ids, ids.map((_, i) => i + 1), 'no event missed or repeated');
  const chunks = [...seen, ...rest]
    .filter((p) => p.event === 'messages')
    .map((p) => p.data[0].content)
    .join('');
  const state = await c.threads.getState(thread.thread_id);
  assert.equal(state.values.messages.at(-1).content, chunks, 'the stored reply is the streamed one');
  assert.equal(chunks, 'Resumed stream end.');
  // After the end: all of it again with -1, only updates with ?stream_mode=updates.
  const replay = [];
  for await (const part of c.runs.joinStream(thread.thread_id, runId, { lastEventId: '-1' })) replay.push(part.event);
  assert.deepEqual(replay, [...seen, ...rest].map((p) => p.event));
  const updates = [];
  for await (const part of c.runs.joinStream(thread.thread_id, runId, { lastEventId: '-1', streamMode: 'updates' })) updates.push(part.event);
  assert.deepEqual(updates, ['updates']);
});

test('a runtime SIGKILL: the cut-off run is error, the pending one runs after the restart', async () => {
  const c = client();
  const thread = await c.threads.create();
  await c.runs.wait(thread.thread_id, 'agent', { input: human('acknowledged turn') });
  heldReply(['Never ', 'finished']);
  const cut = await c.runs.create(thread.thread_id, 'agent', { input: human('cut off') });
  await until(() => c.runs.get(thread.thread_id, cut.run_id), (r) => r.status === 'running');
  const other = await c.threads.create();
  const pending = await c.runs.create(other.thread_id, 'agent', {
    input: human('later'),
    afterSeconds: 2,
  });
  assert.equal(pending.status, 'pending');
  await worker.kill();
  await startOn(port);
  const after = client();
  const cutOff = await until(() => after.runs.get(thread.thread_id, cut.run_id), (r) => r.status !== 'running');
  assert.equal(cutOff.status, 'error');
  const state = await after.threads.getState(thread.thread_id);
  assert.deepEqual(contents(state.values).slice(0, 2), ['acknowledged turn', 'Hello from the mock.'], 'no acknowledged turn is lost');
  assert.notEqual((await after.threads.get(thread.thread_id)).status, 'busy');
  const ran = await until(() => after.runs.get(other.thread_id, pending.run_id), (r) => r.status === 'success', 20_000);
  assert.equal(ran.status, 'success');
  const values = await after.runs.join(other.thread_id, pending.run_id);
  assert.deepEqual(contents(values), ['later', 'Hello from the mock.']);
  // The thread takes new runs.
  await after.runs.wait(thread.thread_id, 'agent', { input: human('after the restart') });
});

test('interrupt_before stops before the model; a run with no input or command.resume continues', async () => {
  const c = client();
  const thread = await c.threads.create();
  const paused = await c.runs.wait(thread.thread_id, 'agent', { input: human('pause before me'), interruptBefore: ['agent'] });
  assert.deepEqual(contents(paused), ['pause before me']);
  assert.equal((await c.threads.get(thread.thread_id)).status, 'interrupted');
  const state = await c.threads.getState(thread.thread_id);
  assert.deepEqual(state.next, ['agent']);
  assert.equal(state.tasks[0].name, 'agent');
  const asked = () => mock.requests.filter((r) => r.body?.messages?.at(-1)?.content === 'pause before me').length;
  assert.equal(asked(), 0, 'the model was not asked');
  const resumed = await c.runs.wait(thread.thread_id, 'agent', { input: null });
  assert.deepEqual(contents(resumed), ['pause before me', 'Hello from the mock.']);
  assert.equal(asked(), 1);
  assert.equal((await c.threads.get(thread.thread_id)).status, 'idle');
  assert.deepEqual((await c.threads.getState(thread.thread_id)).next, []);
  // `*` and a stream: metadata, values, then the interrupt as an update.
  const events = [];
  for await (const part of c.runs.stream(thread.thread_id, 'agent', {
    input: human('second'), interruptBefore: '*', streamMode: ['values', 'updates'],
  })) events.push(part);
  assert.deepEqual(events.map((e) => e.event), ['metadata', 'values', 'updates']);
  assert.deepEqual(events[2].data, { __interrupt__: [] });
  const viaCommand = await c.runs.wait(thread.thread_id, 'agent', { command: { resume: 'go on' } });
  assert.deepEqual(contents(viaCommand).slice(-2), ['second', 'Hello from the mock.']);
  // interrupt_after ends with the graph (our one node is the last): nothing waits.
  await c.runs.wait(thread.thread_id, 'agent', { input: human('third'), interruptAfter: ['agent'] });
  assert.equal((await c.threads.get(thread.thread_id)).status, 'idle');
});

test('thread TTL: the thread object deletes its thread when the time comes, and search forgets it', async () => {
  const c = client();
  const doomed = await c.threads.create({ metadata: { ttl_test: 'yes' }, ttl: { strategy: 'delete', ttl: 2 } });
  const kept = await c.threads.create({ metadata: { ttl_test: 'yes' } });
  await c.runs.wait(doomed.thread_id, 'agent', { input: human('short-lived') });
  const patched = await c.threads.create({ metadata: { ttl_test: 'yes' } });
  await c.threads.update(patched.thread_id, { ttl: { strategy: 'delete', ttl: 1 } });
  // A run that creates its thread may give it a TTL too.
  const byRun = `ttl-run-${Date.now()}`;
  const res = await fetch(`${worker.url}/threads/${byRun}/runs/wait`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ assistant_id: 'agent', input: human('made by a run'), if_not_exists: 'create', ttl: { ttl: 1 } }),
  });
  assert.equal(res.status, 200);
  const listed = async () => (await c.threads.search({ metadata: { ttl_test: 'yes' }, limit: 10 })).map((t) => t.thread_id).sort();
  assert.deepEqual(await listed(), [doomed.thread_id, kept.thread_id, patched.thread_id].sort());
  await until(async () => {
    try { await c.threads.get(doomed.thread_id); return false; } catch (err) { return /404/.test(String(err)); }
  }, (gone) => gone, 15_000);
  await assert.rejects(c.threads.get(patched.thread_id), /404/);
  await until(async () => {
    try { await c.threads.get(byRun); return false; } catch (err) { return /404/.test(String(err)); }
  }, (gone) => gone, 15_000);
  await assert.rejects(c.runs.list(doomed.thread_id), /404/);
  assert.deepEqual(await listed(), [kept.thread_id]);
  assert.equal((await c.threads.get(kept.thread_id)).thread_id, kept.thread_id);
});

test('supersteps: a thread created from a list of updates, one checkpoint each, that runs go on from', async () => {
  const c = client();
  const thread = await c.threads.create({
    supersteps: [
      { updates: [{ values: { messages: [{ type: 'human', content: 'copied question', id: 'h-1' }] }, as_node: '__input__' }] },
      { updates: [{ values: { messages: [{ type: 'ai', content: 'copied answer', id: 'a-1' }] }, as_node: 'agent' }] },
    ],
  });
  assert.deepEqual(contents(thread.values), ['copied question', 'copied answer']);
  const history = await c.threads.getHistory(thread.thread_id, { limit: 10 });
  assert.equal(history.length, 2);
  const after = await c.runs.wait(thread.thread_id, 'agent', { input: human('and then') });
  assert.deepEqual(contents(after), ['copied question', 'copied answer', 'and then', 'Hello from the mock.']);
});

test('stream_mode events: the graph, its node and the chat model, as astream_events v2', async () => {
  const c = client();
  const thread = await c.threads.create();
  const parts = [];
  for await (const part of c.runs.stream(thread.thread_id, 'agent', { input: human('tell events'), streamMode: 'events' })) {
    parts.push(part);
  }
  const told = parts.filter((p) => p.event === 'events').map((p) => p.data);
  assert.deepEqual(told.slice(0, 3).map((e) => [e.event, e.name]), [
    ['on_chain_start', 'agent'], ['on_chain_start', 'agent'], ['on_chat_model_start', 'ChatModel'],
  ]);
  const streamed = told.filter((e) => e.event === 'on_chat_model_stream').map((e) => e.data.chunk.content).join('');
  assert.equal(streamed, 'Hello from the mock.');
  const end = told.find((e) => e.event === 'on_chat_model_end');
  assert.equal(end.data.output.content, 'Hello from the mock.');
  assert.deepEqual(end.parent_ids.length, 2);
  const graphEnd = told.at(-1);
  assert.equal(graphEnd.event, 'on_chain_end');
  assert.deepEqual(graphEnd.data.output.messages.map((m) => m.content), ['tell events', 'Hello from the mock.']);
});
