// The React hook `useStream` (@langchain/langgraph-sdk 2.0.0 /react), driven without a
// browser through react-test-renderer 19.3.1, against the worker in workerd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import React from 'react';
import TestRenderer, { act } from 'react-test-renderer';
import { useStream } from '@langchain/langgraph-sdk/react';
import { startWorker, tempPersistDir, removeDir, sleep } from './harness.mjs';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
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
async function mountHook(options) {
  const probe = { current: null, threadIds: [] };
  function Chat() {
    const stream = useStream({
      apiUrl: worker.url,
      apiKey: null,
      assistantId: 'agent',
      fetchStateHistory: true,
      onThreadId: (id) => probe.threadIds.push(id),
      ...options,
    });
    probe.current = stream;
    return React.createElement('ul', null,
      stream.messages.map((m) => React.createElement('li', { key: m.id }, `${m.type}: ${m.content}`)));
  }
  let renderer;
  await act(async () => {
    renderer = TestRenderer.create(React.createElement(Chat));
  });
  return { probe, renderer };
}

async function waitFor(check, what, timeoutMs = 15_000) {
  const started = Date.now();
  for (;;) {
    let ok = false;
    await act(async () => { await sleep(50); });
    try { ok = check(); } catch { ok = false; }
    if (ok) return;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
  }
}

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
