// MODEL_PROVIDER=openai in workerd against a mock OpenAI-compatible server on
// 127.0.0.1: what the worker sends (trimmed history, system prompt, key), tokens
// streamed to the client as the model produces them, the reply stored whole, and each
// failure mode (500, 429, malformed stream, error mid-stream, hang) answered with a
// clear error that leaves the input stored, the thread idle and the next turn working.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, api, say } from './harness.mjs';
import { startMockOpenAi, behaviours } from './mock_openai.mjs';

const KEY = 'sk-test-0123456789-secret';
const SYSTEM_PROMPT = 'You are terse. Answer in one sentence.';
const TIMEOUT_MS = 1500;
const DEADLINE_MS = 3000;
let mock;
let worker;
let persistDir;
const client = () => new Client({ apiUrl: worker.url, apiKey: null });
const human = (content) => ({ messages: [{ role: 'user', content }] });

before(async () => {
  mock = await startMockOpenAi();
  persistDir = tempPersistDir('openai');
  worker = await startWorker({
    persistDir,
    vars: {
      MODEL_PROVIDER: 'openai',
      OPENAI_BASE_URL: mock.url,
      OPENAI_MODEL: 'mock-model',
      OPENAI_API_KEY: KEY,
      SYSTEM_PROMPT,
      CONTEXT_MAX_MESSAGES: '4',
      MODEL_TIMEOUT_MS: String(TIMEOUT_MS),
      MODEL_DEADLINE_MS: String(DEADLINE_MS),
    },
  });
});

after(async () => {
  await worker?.kill();
  await mock?.close();
  removeDir(persistDir);
});

async function newThread() {
  const created = await api(worker.url, 'POST', '/threads', {});
  assert.equal(created.status, 200);
  return created.body.thread_id;
}

async function messages(thread) {
  return (await api(worker.url, 'GET', `/threads/${thread}/state`)).body.values.messages;
}

test('sends the trimmed history with the system prompt and the key; streams tokens as they come; stores the reply whole', async () => {
  const thread = await newThread();
  for (let i = 1; i <= 3; i += 1) {
    mock.next(behaviours.stream([`Reply ${i}.`]));
    const r = await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say(`Message ${i}`));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.messages.at(-1).content, `Reply ${i}.`);
  }
  // The last piece waits until the client has seen the first: only a real stream passes.
  let release;
  const gate = new Promise((r) => { release = r; });
  mock.next(behaviours.stream(['Hello ', 'again, ', 'Sam.'], { gate }));
  const seen = mock.requests.length;
  const events = [];
  let firstTokenBeforeLast = false;
  for await (const part of client().runs.stream(thread, 'agent', {
    input: human('Message 4'),
    streamMode: ['messages-tuple', 'values'],
  })) {
    events.push(part);
    if (part.event === 'messages' && part.data[0].content && !firstTokenBeforeLast) {
      firstTokenBeforeLast = true;
      release();
    }
  }
  assert.ok(firstTokenBeforeLast, 'a token reached the client before the model finished');
  const chunks = events.filter((e) => e.event === 'messages').map((e) => e.data[0]);
  assert.equal(chunks.map((c) => c.content).join(''), 'Hello again, Sam.');
  assert.ok(chunks.length >= 3, 'one event per piece');
  const last = chunks.at(-1);
  assert.equal(last.response_metadata.finish_reason, 'stop');
  assert.deepEqual(last.usage_metadata, { input_tokens: 11, output_tokens: 3, total_tokens: 14 });

  // Stored once, whole, under the streamed id.
  const stored = await messages(thread);
  assert.equal(stored.length, 8);
  assert.equal(stored.at(-1).content, 'Hello again, Sam.');
  assert.ok(chunks.every((c) => c.id === stored.at(-1).id), 'chunks carry the stored id');
  const state = await api(worker.url, 'GET', `/threads/${thread}/state`);
  assert.deepEqual(state.body.metadata.usage, { input_tokens: 11, output_tokens: 3 });

  // What the model was sent: system prompt, then at most 4 messages, starting on a human.
  const request = mock.requests[seen];
  assert.equal(request.path, '/v1/chat/completions');
  assert.equal(request.headers.authorization, `Bearer ${KEY}`);
  assert.equal(request.body.model, 'mock-model');
  assert.equal(request.body.stream, true);
  assert.deepEqual(request.body.stream_options, { include_usage: true });
  const sent = request.body.messages;
  assert.deepEqual(sent[0], { role: 'system', content: SYSTEM_PROMPT });
  assert.deepEqual(sent.slice(1), [
    { role: 'user', content: 'Message 3' },
    { role: 'assistant', content: 'Reply 3.' },
    { role: 'user', content: 'Message 4' },
  ], 'the newest 4 messages, cut to start on a human one');
  assert.equal(stored[0].content, 'Message 1', 'stored history is not trimmed');

  // The key is never returned.
  for (const path of ['/info', `/threads/${thread}`, `/threads/${thread}/state`]) {
    const r = await fetch(`${worker.url}${path}`);
    assert.ok(!(await r.text()).includes(KEY), `${path} does not show the key`);
  }
  const info = await api(worker.url, 'GET', '/info');
  assert.equal(info.body.model, 'openai:mock-model');
});

const failures = [
  {
    name: 'HTTP 500',
    behaviour: () => behaviours.status(500, 'the mock exploded'),
    status: 502,
    detail: /failed \(500\).*the mock exploded/,
  },
  {
    name: 'HTTP 429',
    behaviour: () => behaviours.status(429, 'Rate limit reached', { 'retry-after': '7' }),
    status: 503,
    detail: /rate-limiting.*retry after 7 s/,
  },
  {
    name: 'HTTP 401 (a wrong key, never echoed)',
    behaviour: () => behaviours.status(401, `Incorrect API key provided: ${KEY}`),
    status: 502,
    detail: /refused the credentials \(401\); check OPENAI_API_KEY/,
  },
  {
    name: 'a malformed stream',
    behaviour: () => behaviours.malformed(),
    status: 502,
    detail: /malformed stream chunk/,
  },
  {
    name: 'a hang',
    behaviour: () => behaviours.hang(),
    status: 504,
    detail: new RegExp(`nothing received for ${TIMEOUT_MS} ms`),
  },
];

for (const failure of failures) {
  for (const mode of ['wait', 'stream']) {
    test(`runs/${mode}: ${failure.name} → ${failure.status}, input kept, thread idle, next turn works`, async () => {
      const thread = await newThread();
      mock.next(behaviours.stream(['First reply.']));
      assert.equal((await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say('hello'))).status, 200);
      mock.next(failure.behaviour());
      const body = mode === 'stream' ? say('this one fails', { stream_mode: ['messages-tuple'] }) : say('this one fails');
      const failed = await api(worker.url, 'POST', `/threads/${thread}/runs/${mode}`, body);
      assert.equal(failed.status, failure.status, JSON.stringify(failed.body));
      assert.match(failed.body.detail, failure.detail);
      assert.ok(!JSON.stringify(failed.body).includes(KEY), 'the key is never echoed');
      // The input is durable; no partial reply was stored.
      const after = await messages(thread);
      assert.deepEqual(after.map((m) => [m.type, m.content]), [
        ['human', 'hello'], ['ai', 'First reply.'], ['human', 'this one fails'],
      ]);
      const t = await api(worker.url, 'GET', `/threads/${thread}`);
      assert.equal(t.body.status, 'idle');
      mock.next(behaviours.stream(['Back again.']));
      const next = await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say('retry'));
      assert.equal(next.status, 200, JSON.stringify(next.body));
      assert.equal(next.body.messages.at(-1).content, 'Back again.');
      assert.equal(next.body.messages.length, 5);
    });
  }
}

test('an error after the first token ends the stream with an error event; nothing partial is stored', async () => {
  const thread = await newThread();
  mock.next(behaviours.errorMidStream('Partial '));
  const res = await fetch(`${worker.url}/threads/${thread}/runs/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(say('go', { stream_mode: ['messages-tuple'] })),
  });
  assert.equal(res.status, 200, 'the stream had opened');
  const text = await res.text();
  assert.match(text, /event: messages\ndata: \[\{[^\n]*"content":"Partial "/);
  const error = /event: error\ndata: (.*)\n/.exec(text);
  assert.ok(error, text);
  const data = JSON.parse(error[1]);
  assert.equal(data.error, 'UpstreamError');
  assert.match(data.message, /overloaded/);
  assert.deepEqual((await messages(thread)).map((m) => m.type), ['human']);
  mock.next(behaviours.stream(['Fine now.']));
  const next = await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say('again'));
  assert.equal(next.status, 200);
  assert.equal(next.body.messages.at(-1).content, 'Fine now.');
});

test('model calls have an idle timeout but no total deadline: a reply that drips forever ends at MODEL_DEADLINE_MS', async () => {
  const thread = await newThread();
  // A token every 200 ms, never finishing: the idle timeout (1.5 s) never fires.
  mock.next(behaviours.drip('tok ', 200));
  const started = Date.now();
  const res = await fetch(`${worker.url}/threads/${thread}/runs/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(say('never ending', { stream_mode: ['messages-tuple'] })),
  });
  assert.equal(res.status, 200, 'the stream had opened');
  const text = await res.text();
  const took = Date.now() - started;
  assert.ok(took >= DEADLINE_MS - 200 && took < DEADLINE_MS + 5000, `ended near the deadline (${took} ms)`);
  assert.match(text, /"content":"tok "/, 'tokens streamed until then');
  const error = JSON.parse(/event: error\ndata: (.*)\n/.exec(text)[1]);
  assert.equal(error.status, 504);
  assert.match(error.message, new RegExp(`within ${DEADLINE_MS} ms \\(MODEL_DEADLINE_MS\\)`));
  assert.deepEqual((await messages(thread)).map((m) => m.type), ['human'], 'the input kept, nothing partial');
  mock.next(behaviours.stream(['Done now.']));
  const next = await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say('again'));
  assert.equal(next.status, 200);
  assert.equal(next.body.messages.at(-1).content, 'Done now.');
});

test('a client that leaves mid-stream: the run finishes and stores the whole reply', async () => {
  const thread = await newThread();
  let release;
  const gate = new Promise((r) => { release = r; });
  mock.next(behaviours.stream(['Still ', 'here ', 'after you left.'], { gate }));
  const controller = new AbortController();
  const res = await fetch(`${worker.url}/threads/${thread}/runs/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(say('leave early', { stream_mode: ['messages-tuple'] })),
    signal: controller.signal,
  });
  const reader = res.body.getReader();
  const { value } = await reader.read();
  assert.match(new TextDecoder().decode(value), /event: /);
  controller.abort();
  release();
  let stored = [];
  for (let i = 0; i < 50 && stored.length < 2; i += 1) {
    await new Promise((r) => setTimeout(r, 100));
    stored = await messages(thread);
  }
  assert.deepEqual(stored.map((m) => [m.type, m.content]), [
    ['human', 'leave early'], ['ai', 'Still here after you left.'],
  ]);
});
