// The React hook `useStream` (@langchain/langgraph-sdk 2.0.0 /react) mounted without a
// browser through react-test-renderer, for the useStream tests.
import React from 'react';
import TestRenderer, { act } from 'react-test-renderer';
import { useStream } from '@langchain/langgraph-sdk/react';
import { sleep } from './harness.mjs';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

/** Mounts a component whose hook value is `probe.current`; its thread ids go to `probe.threadIds`. */
export async function mountHook(options) {
  const probe = { current: null, threadIds: [] };
  function Chat() {
    const stream = useStream({
      apiKey: null,
      assistantId: 'agent',
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

/** Lets React work until `check()` holds; fails after `timeoutMs`. */
export async function waitFor(check, what, timeoutMs = 15_000) {
  const started = Date.now();
  for (;;) {
    let ok = false;
    await act(async () => { await sleep(50); });
    try { ok = check(); } catch { ok = false; }
    if (ok) return;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
  }
}

export { act };
