// The React hook `useStream` (@langchain/langgraph-sdk 2.0.0 /react), driven without a
// browser through react-test-renderer 19.3.1, against the worker in workerd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mountHook as mountUseStream, waitFor, act } from './use_stream_hook.mjs';
import { startWorker, tempPersistDir, removeDir, sleep } from './harness.mjs';

let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('use-stream');
  worker = await startWorker({ persistDir });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

/** Mounts a component that exposes the hook's current value through `probe.current`. */
const mountHook = (options) => mountUseStream({ apiUrl: worker.url, fetchStateHistory: true, ...options });

test('useStream: submit twice, then a fresh hook with the thread id restores the conversation', async () => {
  const { probe, renderer } = await mountHook({});
  await act(async () => {
    probe.current.submit({ messages: [{ type: 'human', content: 'My name is Sam' }] });
  });
  await waitFor(() => !probe.current.isLoading && probe.current.messages.length === 2, 'first reply');
  await act(async () => {
    probe.current.submit({ messages: [{ type: 'human', content: "What's my name?" }] });
  });
  await waitFor(() => !probe.current.isLoading && probe.current.messages.length === 4, 'second reply');
  assert.equal(probe.current.messages[3].content, 'Your name is Sam.');
  assert.equal(probe.current.error, undefined);
  const threadId = probe.threadIds.at(-1);
  assert.ok(threadId, 'the hook reported its thread id');
  await act(async () => renderer.unmount());

  // A page reload: a new hook that knows only the thread id.
  const reloaded = await mountHook({ threadId });
  await waitFor(() => reloaded.probe.current.messages.length === 4, 'restored messages');
  assert.deepEqual(
    reloaded.probe.current.messages.map((m) => m.content),
    ['My name is Sam', "Nice to meet you, Sam! I'll remember that.", "What's my name?", 'Your name is Sam.'],
  );
  await act(async () => reloaded.renderer.unmount());
});
