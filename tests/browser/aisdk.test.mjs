// The README's useChat app (examples/ai-sdk/Chat.jsx, @ai-sdk/react 3.0.328 and ai
// 6.0.325, bundled with esbuild) in real headless Chromium, served from a second local
// origin, against the worker in workerd (dev mode: local origins allowed) and the mock
// OpenAI server: a conversation restored after a reload, and a reload mid-reply that
// picks the reply up where it is (`resume: true`) and ends with exactly the stored reply.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium, servePage } from './chromium.mjs';
import { startWorker, tempPersistDir, removeDir } from '../e2e/harness.mjs';
import { startMockOpenAi, behaviours } from '../e2e/mock_openai.mjs';

let browser;
let site;
let siteUrl;
let mock;
let worker;
let persistDir;

before(async () => {
  site = await servePage('tests/browser/aisdk/main.jsx', 'useChat on edge-memory');
  siteUrl = site.url;
  mock = await startMockOpenAi();
  persistDir = tempPersistDir('aisdk-browser');
  worker = await startWorker({
    persistDir,
    vars: {
      DEV_MODE: 'true',
      MODEL_PROVIDER: 'openai',
      OPENAI_BASE_URL: mock.url,
      OPENAI_MODEL: 'mock-model',
      OPENAI_API_KEY: 'sk-aisdk-browser',
      MODEL_DEADLINE_MS: '60000',
    },
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  site?.close();
  await worker?.kill();
  await mock?.close();
  removeDir(persistDir);
});

async function open(page, id) {
  const query = new URLSearchParams({ api: `${worker.url}/api/chat`, id });
  await page.goto(`${siteUrl}/?${query}`);
  await page.waitForFunction(() => window.loaded !== undefined && document.querySelector('input'));
}

const lines = (page) => page.$$eval('li', (items) => items.map((li) => li.textContent));

async function send(page, text, count) {
  await page.waitForSelector('input:not([disabled])');
  await page.fill('input', text);
  await page.press('input', 'Enter');
  await page.waitForFunction((n) => document.querySelectorAll('li').length === n
    && !document.querySelector('input').disabled, count, { timeout: 20_000 });
}

async function storedReply(id) {
  const res = await fetch(`${worker.url}/api/chat/${id}/messages`);
  const messages = await res.json();
  return messages.map((m) => `${m.role}: ${m.parts.filter((p) => p.type === 'text').map((p) => p.text).join('')}`);
}

test('useChat in Chromium: two turns from another origin, then a reload restores them', async () => {
  const page = await browser.newPage();
  const id = 'browser-chat';
  await open(page, id);
  mock.next(behaviours.stream(['Hello ', 'Sam.']));
  await send(page, 'My name is Sam', 2);
  mock.next(behaviours.stream(['You ', 'are ', 'Sam.']));
  await send(page, "What's my name?", 4);
  const shown = await lines(page);
  assert.deepEqual(shown, ['user: My name is Sam', 'assistant: Hello Sam.', "user: What's my name?", 'assistant: You are Sam.']);
  // The model saw the whole conversation, each message once.
  assert.deepEqual(mock.requests.at(-1).body.messages.map((m) => m.content),
    ['My name is Sam', 'Hello Sam.', "What's my name?"]);
  await page.reload();
  await page.waitForFunction(() => window.loaded === 4);
  assert.deepEqual(await lines(page), shown);
  assert.equal(await page.$('[role=alert]'), null);
  await page.close();
});

test('useChat in Chromium: a reload mid-reply resumes the reply (resume: true) and ends with the stored one', async () => {
  const page = await browser.newPage();
  const id = 'browser-resume';
  await open(page, id);
  let release;
  const gate = new Promise((r) => { release = r; });
  mock.next(behaviours.stream(['Half ', 'way ', 'there, ', 'then done.'], { gate }));
  await page.fill('input', 'Take your time');
  await page.press('input', 'Enter');
  await page.waitForFunction(() => [...document.querySelectorAll('li')].some((li) => li.textContent.includes('Half way')));
  await page.reload();
  // The stored conversation has the question; the reply comes from the run under way.
  await page.waitForFunction(() => window.loaded === 1);
  await page.waitForFunction(() => [...document.querySelectorAll('li')].some((li) => li.textContent.includes('Half way')));
  release();
  await page.waitForFunction(() => document.querySelectorAll('li')[1]?.textContent === 'assistant: Half way there, then done.'
    && !document.querySelector('input').disabled, null, { timeout: 20_000 });
  assert.deepEqual(await lines(page), await storedReply(id));
  assert.equal(await page.$('[role=alert]'), null);
  await page.close();
});
