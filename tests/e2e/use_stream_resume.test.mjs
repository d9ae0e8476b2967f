// `useStream({ reconnectOnMount })` (@langchain/langgraph-sdk 2.0.0 /react, through
// react-test-renderer) against the worker in workerd: the page goes away mid-answer, a
// new page with the same session storage rejoins the run and shows the whole reply. The
// model is the mock OpenAI-compatible server, holding its last piece until the test lets go.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mountHook as mountUseStream, waitFor, act } from './use_stream_hook.mjs';
import { startWorker, tempPersistDir, removeDir, sleep } from './harness.mjs';
import { startMockOpenAi, behaviours } from './mock_openai.mjs';

/** A page's `sessionStorage`, kept across the two mounts as a browser tab keeps it. */
class SessionStorage {
  #items = new Map();
  getItem(key) { return this.#items.has(key) ? this.#items.get(key) : null; }
  setItem(key, value) { this.#items.set(key, String(value)); }
  removeItem(key) { this.#items.delete(key); }
}

// The hook rejoins only where `window` exists (a browser); its storage comes from the
// `reconnectOnMount` function, so a bare `window` is enough here.
globalThis.window ??= {};

let mock;
let worker;
let persistDir;

before(async () => {
  mock = await startMockOpenAi();
  persistDir = tempPersistDir('use-stream-resume');
  worker = await startWorker({
    persistDir,
    vars: {
      MODEL_PROVIDER: 'openai',
      OPENAI_BASE_URL: mock.url,
      OPENAI_MODEL: 'mock-model',
      OPENAI_API_KEY: 'sk-resume-test',
      MODEL_DEADLINE_MS: '60000',
    },
  });
});

after(async () => {
  await worker?.kill();
  await mock?.close();
  removeDir(persistDir);
});

const mountHook = (options) => mountUseStream({ apiUrl: worker.url, ...options });

test('useStream with reconnectOnMount: unmounted mid-answer, the next mount shows the whole reply', async () => {
  const storage = new SessionStorage();
  let release;
  const gate = new Promise((r) => { release = r; });
  mock.next(behaviours.stream(['The ', 'answer ', 'is ', 'forty-two.'], { gate }));
  const first = await mountHook({ reconnectOnMount: () => storage });
  await act(async () => {
    first.probe.current.submit({ messages: [{ type: 'human', content: 'What is the answer?' }] });
  });
  await waitFor(
    () => first.probe.current.messages.at(-1)?.content === 'The answer is ',
    'the first pieces of the reply',
  );
  const threadId = first.probe.threadIds.at(-1);
  assert.ok(threadId);
  const runId = storage.getItem(`lg:stream:${threadId}`);
  assert.ok(runId, 'the hook kept the run id to rejoin (Content-Location)');
  await act(async () => first.renderer.unmount()); // the page reloads mid-answer

  const second = await mountHook({ threadId, reconnectOnMount: () => storage });
  await waitFor(() => second.probe.current.isLoading, 'the rejoin to start');
  release();
  await waitFor(
    () => !second.probe.current.isLoading && second.probe.current.messages.length === 2,
    'the whole reply after the rejoin',
  );
  assert.deepEqual(
    second.probe.current.messages.map((m) => m.content),
    ['What is the answer?', 'The answer is forty-two.'],
  );
  assert.equal(storage.getItem(`lg:stream:${threadId}`), null, 'the finished run is forgotten');
  const state = await (await fetch(`${worker.url}/threads/${threadId}/state`)).json();
  assert.equal(state.values.messages.at(-1).content, 'The answer is forty-two.');
  await act(async () => second.renderer.unmount());
});
