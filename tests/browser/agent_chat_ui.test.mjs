// agent-chat-ui at the door: a page served from a second local origin drives the worker
// through the real LangGraph JS SDK and its `useStream` hook, as agent-chat-ui does
// (agent_chat_ui/app.mjs), in real headless Chromium. In dev mode it works with no
// configuration; a deployment (DEV_MODE=false) without ALLOWED_ORIGINS refuses it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, servePage } from './chromium.mjs';
import { startWorker, tempPersistDir, removeDir } from '../e2e/harness.mjs';

let browser;
let site;
let siteUrl;
const dirs = [];

before(async () => {
  site = await servePage('tests/browser/agent_chat_ui/app.mjs', 'agent-chat-ui stand-in');
  siteUrl = site.url;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  site?.close();
  for (const dir of dirs) removeDir(dir);
});

async function worker(vars) {
  const persistDir = tempPersistDir('agent-chat-ui');
  dirs.push(persistDir);
  return startWorker({ persistDir, vars });
}

/** Opens the page on `apiUrl`; returns the page and the run bodies it sends. */
async function openUi(apiUrl, threadId) {
  const page = await browser.newPage();
  const runs = [];
  page.on('request', (req) => {
    if (req.method() === 'POST' && req.url().endsWith('/runs/stream')) runs.push(JSON.parse(req.postData()));
  });
  const query = new URLSearchParams({ apiUrl, ...(threadId ? { threadId } : {}) });
  await page.goto(`${siteUrl}/?${query}`);
  await page.waitForFunction(() => window.ui && window.ui.info !== 'pending');
  return { page, runs };
}

async function send(page, text) {
  const before = await page.evaluate(() => window.ui.messages.length);
  await page.evaluate((t) => window.send(t), text);
  await page.waitForFunction((n) => {
    const { messages, loading, error } = window.ui;
    return error || (!loading && messages.length >= n + 2 && messages.at(-1).type === 'ai' && messages.at(-1).text);
  }, before, { timeout: 20_000 });
  const ui = await page.evaluate(() => window.ui);
  assert.equal(ui.error, null, `no error in the UI: ${ui.error}`);
  return ui.messages.at(-1).text;
}

test('dev mode: a frontend on another local origin works with no configuration', async () => {
  const api = await worker({ DEV_MODE: 'true' });
  try {
    const { page, runs } = await openUi(api.url);
    assert.equal(await page.evaluate(() => window.ui.info), 'ok', 'GET /info passes CORS');
    assert.match(await send(page, 'My name is Sam'), /Sam/);
    assert.match(await send(page, "What's my name?"), /Your name is Sam/);
    const threadId = await page.evaluate(() => window.ui.threadId);
    assert.ok(threadId, 'the hook created a thread');
    // The options agent-chat-ui sends reached the worker, and were served.
    const run = runs[0];
    assert.deepEqual([...run.stream_mode].sort(), ['custom', 'messages-tuple', 'values']);
    assert.equal(run.stream_subgraphs, true);
    assert.equal(run.stream_resumable, true);
    assert.equal(run.on_disconnect, 'continue');
    assert.deepEqual(run.input.messages[0].content, [{ type: 'text', text: 'My name is Sam' }]);
    // The history sidebar lists the thread (search by metadata.graph_id).
    await page.waitForFunction((id) => window.ui.threads.includes(id), threadId);

    // A reload restores the conversation from the URL's thread id.
    const reloaded = await openUi(api.url, threadId);
    await reloaded.page.waitForFunction(() => window.ui.messages.length === 4);
    assert.deepEqual(await reloaded.page.evaluate(() => window.ui.messages.map((m) => m.type)),
      ['human', 'ai', 'human', 'ai']);

    // A new thread forgets; the old one is still there.
    const fresh = await openUi(api.url);
    assert.match(await send(fresh.page, "What's my name?"), /don't know your name/);
    const back = await openUi(api.url, threadId);
    await back.page.waitForFunction(() => window.ui.messages.length === 4);
    assert.match(await send(back.page, "What's my name?"), /Your name is Sam/);
  } finally {
    await api.kill();
  }
});

test('a deployment without ALLOWED_ORIGINS refuses a local frontend', async () => {
  const api = await worker({ DEV_MODE: 'false', AUTH_MODE: 'none' });
  try {
    const { page } = await openUi(api.url);
    assert.equal(await page.evaluate(() => window.ui.info), 'failed', 'the browser refuses /info');
    const search = await page.evaluate(async (url) => {
      try {
        await fetch(`${url}/threads/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        return 'allowed';
      } catch {
        return 'refused';
      }
    }, api.url);
    assert.equal(search, 'refused');
  } finally {
    await api.kill();
  }
});
