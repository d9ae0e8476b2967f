// A page that talks to the API exactly as agent-chat-ui does (src/providers/Stream.tsx,
// Thread.tsx, components/thread/index.tsx at commit fdc87e6): GET /info first, the
// thread list by `metadata.graph_id`, the real `useStream` hook with
// `fetchStateHistory: true` and an `onCustomEvent` handler, and each message sent with
// `streamMode: ["values"], streamSubgraphs: true, streamResumable: true` and content
// blocks. Bundled for the browser by the test (esbuild); served from another origin.
import { createElement as h, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { Client } from '@langchain/langgraph-sdk';
import { useStream } from '@langchain/langgraph-sdk/react';

const params = new URLSearchParams(location.search);
const apiUrl = params.get('apiUrl');
const assistantId = 'agent';
const client = new Client({ apiUrl });
window.ui = { info: 'pending', threads: [], messages: [], loading: false, error: null, threadId: null };

function textOf(message) {
  const { content } = message;
  if (typeof content === 'string') return content;
  return content.filter((p) => p.type === 'text').map((p) => p.text).join(' ');
}

function App() {
  const [threadId, setThreadId] = useState(params.get('threadId'));
  const [threads, setThreads] = useState([]);
  const refreshThreads = () => client.threads.search({ metadata: { graph_id: assistantId }, limit: 100 })
    .then(setThreads, (e) => { window.ui.error = String(e); });
  const stream = useStream({
    apiUrl,
    assistantId,
    threadId,
    fetchStateHistory: true,
    onCustomEvent: () => {},
    onThreadId: (id) => {
      setThreadId(id);
      const url = new URL(location.href);
      url.searchParams.set('threadId', id);
      history.replaceState(null, '', url);
    },
    onFinish: () => refreshThreads(),
  });
  useEffect(() => {
    fetch(`${apiUrl}/info`).then((r) => { window.ui.info = r.ok ? 'ok' : `status ${r.status}`; },
      () => { window.ui.info = 'failed'; });
    refreshThreads();
  }, []);
  window.ui.threads = threads.map((t) => t.thread_id);
  window.ui.messages = stream.messages.map((m) => ({ type: m.type, text: textOf(m) }));
  window.ui.loading = stream.isLoading;
  window.ui.threadId = threadId;
  if (stream.error) window.ui.error = String(stream.error?.message ?? stream.error);
  window.send = (text) => stream.submit(
    { messages: [{ type: 'human', content: [{ type: 'text', text }] }] },
    { streamMode: ['values'], streamSubgraphs: true, streamResumable: true },
  );
  window.newThread = () => setThreadId(null);
  return h('ul', { id: 'messages' },
    stream.messages.map((m) => h('li', { key: m.id, className: m.type }, textOf(m))));
}

createRoot(document.getElementById('root')).render(h(App));
