// The Vercel AI SDK's chat client against the worker in workerd: `AbstractChat` with
// `DefaultChatTransport` from the real `ai` package (6.0.325, and 5.0.277 installed as
// `ai-v5`), and `useChat` of @ai-sdk/react 3.0.328 in the README's app
// (examples/ai-sdk/Chat.jsx) through react-test-renderer. A chat
// is a LangGraph thread: the LangGraph JS SDK reads the same messages and runs.
//
// Two workers: the built-in responder (memory across turns, a SIGKILL restart, JWT
// users), and the mock OpenAI server whose replies hold their last piece until a test
// lets go (a client that leaves mid-reply and resumes; model failures).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import React from 'react';
import TestRenderer, { act } from 'react-test-renderer';
import * as ai6 from 'ai';
import * as ai5 from 'ai-v5';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, sleep, signHs256, until, ROOT } from './harness.mjs';
import { startMockOpenAi, behaviours } from './mock_openai.mjs';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const SECRET = 'aisdk-test-secret-of-at-least-32-bytes';
const token = (sub) => signHs256({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);
const SAM = token('sam');
const EVE = token('eve');

let demo;
let demoDir;
let mock;
let model;
let modelDir;

before(async () => {
  demoDir = tempPersistDir('aisdk-demo');
  modelDir = tempPersistDir('aisdk-model');
  mock = await startMockOpenAi();
  [demo, model] = await Promise.all([
    startWorker({ persistDir: demoDir, vars: { JWT_SECRET: SECRET } }),
    startWorker({
      persistDir: modelDir,
      vars: {
        MODEL_PROVIDER: 'openai',
        OPENAI_BASE_URL: mock.url,
        OPENAI_MODEL: 'mock-model',
        OPENAI_API_KEY: 'sk-aisdk-test',
        MODEL_DEADLINE_MS: '60000',
      },
    }),
  ]);
});

after(async () => {
  await demo?.kill();
  await model?.kill();
  await mock?.close();
  removeDir(demoDir);
  removeDir(modelDir);
});

/** A chat's state held in plain fields (what `useChat` keeps in React state). */
class NodeChatState {
  constructor(messages = []) {
    this.status = 'ready';
    this.error = undefined;
    this.messages = messages;
  }
  pushMessage(message) { this.messages = this.messages.concat(message); }
  popMessage() { this.messages = this.messages.slice(0, -1); }
  replaceMessage(index, message) {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  }
  snapshot(thing) { return structuredClone(thing); }
}

/** A chat of AI SDK `sdk` on `worker` as `user` (a bearer token, or none); `slim`: send
 * only the new message, with `trigger` and `messageId` (the README's snippet). */
function newChat(sdk, worker, { id, user, slim = false, messages = [], fetch: fetchFn } = {}) {
  const transport = new sdk.DefaultChatTransport({
    api: `${worker.url}/api/chat`,
    headers: user ? { authorization: `Bearer ${user}` } : {},
    fetch: fetchFn,
    prepareSendMessagesRequest: slim
      ? ({ id: chatId, messages: all, trigger, messageId }) => ({
        body: { id: chatId, message: all.at(-1), trigger, messageId },
      })
      : undefined,
  });
  class Chat extends sdk.AbstractChat {
    constructor() { super({ id, transport, state: new NodeChatState(messages) }); }
  }
  return new Chat();
}

const textOf = (message) => message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');
const say = (chat, text) => chat.sendMessage({ text });

async function chatMessages(worker, id, user) {
  const res = await fetch(`${worker.url}/api/chat/${id}/messages`, {
    headers: user ? { authorization: `Bearer ${user}` } : {},
  });
  return { status: res.status, body: await res.json() };
}

for (const [version, sdk] of [['6', ai6], ['5', ai5]]) {
  test(`ai ${version}: two turns remember with the whole transcript, stored once, the same LangGraph thread`, async () => {
    const id = `chat-whole-v${version}`;
    const chat = newChat(sdk, demo, { id, user: SAM });
    await say(chat, 'My name is Sam');
    await say(chat, "What's my name?");
    assert.equal(chat.status, 'ready', chat.error?.message);
    assert.equal(textOf(chat.messages[3]), 'Your name is Sam.');
    const metadata = chat.messages[3].metadata;
    assert.equal(metadata.turns, 2);
    // The server's messages are the client's: same ids, once each, same parts.
    const stored = await chatMessages(demo, id, SAM);
    assert.equal(stored.status, 200);
    assert.deepEqual(stored.body.map((m) => m.id), chat.messages.map((m) => m.id));
    const plain = (value) => JSON.parse(JSON.stringify(value));
    assert.deepEqual(stored.body.map((m) => m.parts), plain(chat.messages.map((m) => m.parts)));
    // The LangGraph JS SDK reads the same thread: its state, its head, its runs.
    const client = new Client({ apiUrl: demo.url, defaultHeaders: { authorization: `Bearer ${SAM}` } });
    const state = await client.threads.getState(id);
    assert.deepEqual(state.values.messages.map((m) => m.id), chat.messages.map((m) => m.id));
    assert.equal(state.checkpoint.checkpoint_id, metadata.checkpointId);
    const runs = await client.runs.list(id);
    assert.equal(runs.length, 2);
    assert.ok(runs.some((r) => r.run_id === metadata.runId), 'message-metadata names the run');
    assert.ok(runs.every((r) => r.status === 'success' && r.metadata.source_protocol === 'ai-sdk'));
  });

  test(`ai ${version}: the slim body; another chat id knows nothing`, async () => {
    const id = `chat-slim-v${version}`;
    const chat = newChat(sdk, demo, { id, user: SAM, slim: true });
    await say(chat, 'My name is Ada');
    await say(chat, "What's my name?");
    assert.equal(textOf(chat.messages.at(-1)), 'Your name is Ada.');
    const other = newChat(sdk, demo, { id: `${id}-other`, user: SAM, slim: true });
    await say(other, "What's my name?");
    assert.match(textOf(other.messages.at(-1)), /don't know your name/);
    assert.equal((await chatMessages(demo, id, SAM)).body.length, 4);
  });

  test(`ai ${version}: regenerate replaces the last reply, history keeps the old one`, async () => {
    const id = `chat-regen-v${version}`;
    const chat = newChat(sdk, model, { id });
    mock.next(behaviours.stream(['First ', 'answer.']));
    await say(chat, 'Tell me something');
    const old = chat.messages[1];
    mock.next(behaviours.stream(['Second ', 'answer.']));
    await chat.regenerate();
    assert.equal(chat.messages.length, 2);
    assert.equal(textOf(chat.messages[1]), 'Second answer.');
    const stored = (await chatMessages(model, id)).body;
    assert.deepEqual(stored.map((m) => m.id), chat.messages.map((m) => m.id));
    assert.notEqual(stored[1].id, old.id);
    const history = await new Client({ apiUrl: model.url }).threads.getHistory(id, { limit: 10 });
    assert.ok(history.some((s) => s.values.messages?.some((m) => m.id === old.id && m.content === 'First answer.')));
  });
}

test('ai 6: file, data and unknown parts and metadata are stored as sent and come back; the text reaches the model', async () => {
  const id = 'chat-parts';
  const chat = newChat(ai6, model, { id });
  const parts = [
    { type: 'file', mediaType: 'text/plain', filename: 'note.txt', url: 'data:text/plain;base64,aGk=' },
    { type: 'data-weather', id: 'w1', data: { city: 'Oslo', celsius: -3 } },
    { type: 'text', text: 'Describe the weather' },
    { type: 'something-new', anything: [1, 2] },
  ];
  mock.next(behaviours.stream(['Cold.']));
  await chat.sendMessage({ role: 'user', parts, metadata: { sentFrom: 'test' } });
  assert.equal(chat.status, 'ready', chat.error?.message);
  const stored = (await chatMessages(model, id)).body;
  assert.deepEqual(stored[0].parts, parts);
  assert.deepEqual(stored[0].metadata, { sentFrom: 'test' });
  assert.equal(stored[0].id, chat.messages[0].id);
  const sent = mock.requests.at(-1).body.messages.at(-1);
  assert.deepEqual(sent, { role: 'user', content: 'Describe the weather' });
  // LangGraph clients see LangChain content blocks: the parts as they were sent.
  const state = await new Client({ apiUrl: model.url }).threads.getState(id);
  assert.deepEqual(state.values.messages[0].content, parts);
  // The echoed transcript stores nothing twice.
  mock.next(behaviours.stream(['Still cold.']));
  await say(chat, 'And tomorrow?');
  assert.equal((await chatMessages(model, id)).body.length, 4);
});

test('ai 6: a client that drops mid-reply resumes with exactly the stored reply; nothing in flight is 204', async () => {
  const id = 'chat-resume';
  let drop = false;
  const statuses = [];
  // A fetch whose chat response breaks off after its first chunk, as a lost network does.
  const flaky = async (url, init) => {
    const res = await fetch(url, init);
    statuses.push(`${init?.method ?? 'GET'} ${res.status}`);
    if (!drop || init?.method !== 'POST') return res;
    const reader = res.body.getReader();
    const body = new ReadableStream({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) return controller.close();
        controller.enqueue(value);
        if (new TextDecoder().decode(value).includes('text-delta')) {
          reader.cancel().catch(() => {});
          controller.error(new TypeError('network connection lost'));
        }
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  };
  const chat = newChat(ai6, model, { id, fetch: flaky });
  let release;
  const gate = new Promise((r) => { release = r; });
  mock.next(behaviours.stream(['Resumed ', 'replies ', 'are ', 'whole.'], { gate }));
  drop = true;
  await say(chat, 'Say something slowly');
  assert.equal(chat.status, 'error', 'the dropped response ends in error');
  drop = false;
  const resumed = chat.resumeStream();
  await sleep(200);
  release();
  await resumed;
  assert.equal(chat.status, 'ready', chat.error?.message);
  assert.equal(chat.messages.length, 2);
  const stored = (await chatMessages(model, id)).body;
  assert.deepEqual(chat.messages.map((m) => m.id), stored.map((m) => m.id));
  assert.equal(textOf(chat.messages[1]), 'Resumed replies are whole.');
  assert.equal(textOf(stored[1]), 'Resumed replies are whole.');
  assert.ok(statuses.includes('GET 200'), statuses.join());
  // Nothing in flight: 204, and the chat stays ready with what it has.
  await chat.resumeStream();
  assert.equal(statuses.at(-1), 'GET 204');
  assert.equal(chat.status, 'ready');
  assert.equal(chat.messages.length, 2);
});

test('ai 5: stop mid-reply, then resumeStream follows the same run to its end', async () => {
  const id = 'chat-resume-v5';
  const chat = newChat(ai5, model, { id });
  let release;
  const gate = new Promise((r) => { release = r; });
  mock.next(behaviours.stream(['One ', 'two ', 'three.'], { gate }));
  const sent = say(chat, 'Count');
  await until(() => chat.messages[1] && textOf(chat.messages[1]), (t) => t && t.length > 0);
  await chat.stop();
  await sent;
  const resumed = chat.resumeStream();
  await sleep(200);
  release();
  await resumed;
  assert.equal(textOf(chat.messages[1]), 'One two three.');
  assert.equal(textOf((await chatMessages(model, id)).body[1]), 'One two three.');
});

test('a LangGraph joinStream and a resumed chat stream follow one run', async () => {
  const id = 'chat-one-run';
  const chat = newChat(ai6, model, { id });
  let release;
  const gate = new Promise((r) => { release = r; });
  mock.next(behaviours.stream(['Shared ', 'run.'], { gate }));
  const sent = say(chat, 'Hello');
  const client = new Client({ apiUrl: model.url });
  const [run] = await until(() => client.runs.list(id).catch(() => []), (runs) => runs.length === 1 && runs[0].status === 'running');
  // A second tab that knows only the chat id resumes the same run.
  const watcher = newChat(ai6, model, { id });
  const watched = watcher.resumeStream();
  const joined = (async () => {
    const events = [];
    for await (const event of client.runs.joinStream(id, run.run_id, { lastEventId: '-1' })) events.push(event);
    return events;
  })();
  await sleep(100);
  release();
  await sent;
  const events = await joined;
  const pieces = events.filter((e) => e.event === 'messages').map((e) => e.data[0].content).join('');
  assert.equal(pieces, 'Shared run.');
  assert.equal(events.find((e) => e.event === 'messages').data[0].id, chat.messages[1].id);
  assert.equal(chat.messages[1].metadata.runId, run.run_id);
  await watched;
  assert.equal(watcher.messages.length, 1);
  assert.equal(watcher.messages[0].id, chat.messages[1].id);
  assert.equal(textOf(watcher.messages[0]), 'Shared run.');
});

test('model failures before and after the first token: an error, the input kept, the next turn works', async () => {
  const id = 'chat-failures';
  const chat = newChat(ai6, model, { id });
  mock.next(behaviours.status(500, 'the mock model is down'));
  await say(chat, 'First try');
  assert.equal(chat.status, 'error');
  assert.match(chat.error.message, /upstream|model|502|mock/i);
  let stored = (await chatMessages(model, id)).body;
  assert.deepEqual(stored.map((m) => textOf(m)), ['First try']);

  mock.next(behaviours.errorMidStream('Half an '));
  await say(chat, 'Second try');
  assert.equal(chat.status, 'error');
  assert.match(chat.error.message, /overloaded|model/i);
  stored = (await chatMessages(model, id)).body;
  assert.deepEqual(stored.map((m) => textOf(m)), ['First try', 'Second try'], 'an unfinished reply is not stored');

  mock.next(behaviours.stream(['Working ', 'again.']));
  await say(chat, 'Third try');
  assert.equal(chat.status, 'ready', chat.error?.message);
  assert.equal(textOf(chat.messages.at(-1)), 'Working again.');
  // The model saw every input, each once.
  const seen = mock.requests.at(-1).body.messages.filter((m) => m.role === 'user').map((m) => m.content);
  assert.deepEqual(seen.slice(-3), ['First try', 'Second try', 'Third try']);
});

test('a fresh client that knows only the chat id continues after a runtime SIGKILL and restart', async () => {
  const id = 'chat-restart';
  const chat = newChat(ai6, demo, { id, user: SAM });
  await say(chat, 'My name is Kim');
  await demo.kill();
  demo = await startWorker({ persistDir: demoDir, port: demo.port, vars: { JWT_SECRET: SECRET } });
  const loaded = await chatMessages(demo, id, SAM);
  assert.deepEqual(loaded.body.map((m) => m.id), chat.messages.map((m) => m.id));
  const fresh = newChat(ai6, demo, { id, user: SAM, slim: true, messages: loaded.body });
  await say(fresh, "What's my name?");
  assert.equal(textOf(fresh.messages.at(-1)), 'Your name is Kim.');
  assert.equal(fresh.messages.length, 4);
});

test("JWT users: another user's chat is unknown to every chat route", async () => {
  const id = 'chat-private';
  const chat = newChat(ai6, demo, { id, user: SAM });
  await say(chat, 'My name is Sam');
  const intruder = newChat(ai6, demo, { id, user: EVE });
  await say(intruder, "What's my name?");
  assert.equal(intruder.status, 'error');
  assert.match(intruder.error.message, /not found/i);
  assert.equal((await chatMessages(demo, id, EVE)).status, 404);
  const resume = await fetch(`${demo.url}/api/chat/${id}/stream`, { headers: { authorization: `Bearer ${EVE}` } });
  assert.equal(resume.status, 204);
  const anonymous = await fetch(`${demo.url}/api/chat`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, messages: [] }),
  });
  assert.equal(anonymous.status, 401);
  assert.equal((await chatMessages(demo, id, SAM)).body.length, 2, "the owner's chat is unchanged");
});

/** The README's app (examples/ai-sdk/Chat.jsx), compiled by esbuild, its packages
 * resolved from here (so it shares this React). */
async function readmeApp() {
  const { build } = await import('esbuild');
  const bare = {
    name: 'resolve-here',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, (args) => ({ path: import.meta.resolve(args.path), external: true }));
    },
  };
  const outfile = join(demoDir, 'Chat.mjs');
  await build({
    entryPoints: [join(ROOT, 'examples/ai-sdk/Chat.jsx')],
    bundle: true, format: 'esm', jsx: 'automatic', outfile, plugins: [bare], logLevel: 'silent',
  });
  return import(pathToFileURL(outfile).href);
}

test("the README's useChat app through react-test-renderer: resume on mount, two turns, reloaded", async () => {
  const { Chat, loadMessages } = await readmeApp();
  const api = `${demo.url}/api/chat`;
  const headers = { authorization: `Bearer ${SAM}` };
  const id = 'chat-react';
  const mount = async (initialMessages) => {
    let renderer;
    await act(async () => {
      renderer = TestRenderer.create(React.createElement(Chat, { api, id, headers, initialMessages }));
    });
    return renderer;
  };
  const lines = (renderer) => renderer.root.findAllByType('li').map((li) => li.children.join(''));
  const type = async (renderer, text) => {
    await act(async () => renderer.root.findByType('input').props.onChange({ target: { value: text } }));
    await act(async () => renderer.root.findByType('form').props.onSubmit({ preventDefault() {} }));
  };
  const settle = async (renderer, count) => {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      await act(async () => { await sleep(50); });
      const input = renderer.root.findByType('input');
      if (lines(renderer).length === count && !input.props.disabled) return;
    }
    assert.fail(`not settled: ${JSON.stringify(lines(renderer))}`);
  };
  let renderer = await mount(await loadMessages(api, id, headers));
  await settle(renderer, 0); // resume: true on a new chat: 204, ready
  await type(renderer, 'My name is Lee');
  await settle(renderer, 2);
  await type(renderer, "What's my name?");
  await settle(renderer, 4);
  assert.equal(renderer.root.findAllByProps({ role: 'alert' }).length, 0);
  await act(async () => renderer.unmount());
  renderer = await mount(await loadMessages(api, id, headers));
  assert.deepEqual(lines(renderer), [
    'user: My name is Lee', "assistant: Nice to meet you, Lee! I'll remember that.",
    "user: What's my name?", 'assistant: Your name is Lee.',
  ]);
  await act(async () => renderer.unmount());
});

test('the README shows the app the tests run', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const app = readFileSync(join(ROOT, 'examples/ai-sdk/Chat.jsx'), 'utf8');
  const body = app.slice(app.indexOf('import { useChat }'));
  assert.ok(readme.includes(body), 'README.md holds examples/ai-sdk/Chat.jsx from its first import on');
});
