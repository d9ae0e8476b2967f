// agent-chat-ui's production setup: its Next.js API route is the real
// `langgraph-nextjs-api-passthrough` handler (tests/proxy, from npm), called here in Node
// with the requests a browser sends, no Next.js server needed. The LangGraph JS SDK talks
// to the worker through it: the proxy forwards JSON bodies as `text/plain` and copies
// our response headers after its `fetch` decoded the body, so what the browser would get
// must still be readable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { register } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from '@langchain/langgraph-sdk';
import { startWorker, tempPersistDir, removeDir, ROOT } from './harness.mjs';

// Next.js has no `exports` map, so Node cannot resolve the handler's `next/server` import
// by itself (Next's bundler does): name the file.
register('data:text/javascript,' + encodeURIComponent(
  "export async function resolve(s, c, next) { return next(s === 'next/server' ? 'next/server.js' : s, c); }",
));
const PROXY_MODULES = join(ROOT, 'tests/proxy/node_modules');
const { NextRequest } = await import(pathToFileURL(join(PROXY_MODULES, 'next/server.js')));
const { initApiPassthrough } = await import(
  pathToFileURL(join(PROXY_MODULES, 'langgraph-nextjs-api-passthrough/dist/index.js')));

const SITE = 'http://localhost:3000';
let persistDir;

before(() => { persistDir = tempPersistDir('nextjs-proxy'); });
after(() => removeDir(persistDir));

/** A `fetch` that hands each request to the route handler, as Next.js would, and
 * records what the browser would receive. */
function throughProxy(handlers, seen) {
  return async (url, init = {}) => {
    const method = (init.method ?? 'GET').toUpperCase();
    // What a browser adds: it accepts compressed bodies.
    const headers = new Headers(init.headers);
    headers.set('accept-encoding', 'gzip, deflate, br, zstd');
    const req = new NextRequest(String(url), { ...init, method, headers });
    const res = await handlers[method](req);
    seen.push({ method, path: new URL(String(url)).pathname, status: res.status, encoding: res.headers.get('content-encoding') });
    return res;
  };
}

async function run(vars, apiKey) {
  const worker = await startWorker({ persistDir, vars });
  try {
    const handlers = initApiPassthrough({ apiUrl: worker.url, apiKey, runtime: 'edge', disableWarningLog: true });
    const seen = [];
    const client = new Client({ apiUrl: `${SITE}/api`, callerOptions: { fetch: throughProxy(handlers, seen), maxRetries: 0 } });
    return await use(client, seen);
  } finally {
    await worker.kill();
  }
}

async function use(client, seen) {
  const thread = await client.threads.create({ metadata: { graph_id: 'agent' } });
  const events = [];
  for await (const chunk of client.runs.stream(thread.thread_id, 'agent', {
    input: { messages: [{ type: 'human', content: [{ type: 'text', text: 'My name is Sam' }] }] },
    streamMode: ['values', 'messages-tuple', 'custom'],
    streamSubgraphs: true,
    streamResumable: true,
    onDisconnect: 'continue',
  })) events.push(chunk);
  const second = await client.runs.wait(thread.thread_id, 'agent', {
    input: { messages: [{ role: 'user', content: "What's my name?" }] },
  });
  const found = await client.threads.search({ metadata: { graph_id: 'agent' }, limit: 100 });
  const history = await client.threads.getHistory(thread.thread_id, { limit: 10 });
  return { thread, events, second, found, history, seen };
}

test('the Next.js passthrough proxy: create, search, stream and history work; bodies stay readable', async () => {
  const r = await run({ DEV_MODE: 'true' }, 'remove-me');
  assert.ok(r.events.some((e) => e.event === 'messages'), 'reply chunks streamed through the proxy');
  assert.match(r.events.at(-1).data.messages.at(-1).content, /Sam/);
  assert.match(r.second.messages.at(-1).content, /Your name is Sam/);
  assert.ok(r.found.some((t) => t.thread_id === r.thread.thread_id), 'search finds the thread');
  assert.equal(r.history.length, 4, 'two turns, two checkpoints each');
  const posts = r.seen.filter((s) => s.method === 'POST');
  assert.ok(posts.length >= 5);
  for (const s of r.seen) {
    assert.ok(s.status < 300, `${s.method} ${s.path}: ${s.status}`);
    // The proxy's fetch has decoded the body: a compressed content-encoding passed on
    // would make the browser fail to read it (`identity` says the body is as it is).
    assert.ok([null, 'identity'].includes(s.encoding), `${s.method} ${s.path}: content-encoding ${s.encoding}`);
  }
});

test('the proxy with an API key: LANGSMITH_API_KEY is sent as x-api-key', async () => {
  const r = await run({ API_KEYS: 'proxy-key' }, 'proxy-key');
  assert.match(r.second.messages.at(-1).content, /Your name is Sam/);
  const worker = await startWorker({ persistDir, vars: { API_KEYS: 'proxy-key' } });
  try {
    const handlers = initApiPassthrough({ apiUrl: worker.url, apiKey: 'remove-me', disableWarningLog: true });
    const res = await handlers.POST(new NextRequest(`${SITE}/api/threads`, { method: 'POST', body: '{}' }));
    assert.equal(res.status, 401);
    assert.equal((await res.json()).code, 'unauthorized');
  } finally {
    await worker.kill();
  }
});
