// The demo in www/, driven in real headless Chromium (Debian's /usr/bin/chromium) by
// playwright-core 1.65.1, against the worker in workerd on 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launchChromium } from './chromium.mjs';
import { startWorker, tempPersistDir, removeDir, ROOT } from '../e2e/harness.mjs';

const OUT = join(ROOT, 'test-output');
let worker;
let persistDir;
let browser;

before(async () => {
  mkdirSync(OUT, { recursive: true });
  persistDir = tempPersistDir('demo');
  worker = await startWorker({ persistDir, vars: { DEV_MODE: 'true' } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await worker?.kill();
  removeDir(persistDir);
});

async function open(page, path = '/') {
  await page.goto(`${worker.url}${path}`);
  await page.waitForSelector('body[data-ready="true"]');
}

async function say(page, text) {
  const before = await page.locator('#messages li.ai').count();
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
  await page.waitForFunction((n) => {
    const replies = document.querySelectorAll('#messages li.ai');
    return replies.length > n && !document.querySelector('#send').disabled
      && replies[replies.length - 1].querySelector('.body').textContent.length > 0;
  }, before);
  return page.locator('#messages li.ai .body').last().textContent();
}

test('memory survives a reload and a runtime restart; the inspector follows; forks and new chats', async () => {
  const page = await browser.newPage();
  await open(page);
  assert.match(await page.textContent('#backend'), /durable_object/);
  assert.equal(await page.isVisible('#cold-start'), true, 'dev mode shows the cold-start button');

  assert.match(await say(page, 'My name is Sam'), /Nice to meet you, Sam/);
  const threadId = new URL(page.url()).searchParams.get('thread');
  assert.ok(threadId, 'the thread id is in the URL');
  const head1 = await page.textContent('#head-id');
  assert.match(head1, /^[0-9a-f-]{36}$/);

  // Reload: the conversation comes back from the thread's state.
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForFunction(() => document.querySelectorAll('#messages li.human, #messages li.ai').length === 2);
  assert.equal(await page.textContent('#head-id'), head1);

  // Stop the runtime process and start a new one on the same storage.
  await worker.kill();
  worker = await startWorker({ persistDir, port: worker.port, vars: { DEV_MODE: 'true' } });
  assert.match(await say(page, "What's my name?"), /Sam/);
  const head2 = await page.textContent('#head-id');
  assert.notEqual(head2, head1, 'the head checkpoint changes after a turn');
  assert.equal(await page.textContent('#message-count'), '4');

  // The dev cold start of the thread's object: a new instance, and still remembered.
  const instance = async () => (await (await fetch(`${worker.url}/__dev/storage/${threadId}`)).json()).instance;
  const warm = await instance();
  assert.equal(await instance(), warm, 'the same instance while warm');
  await page.click('#cold-start');
  await page.waitForFunction(() => /reset/.test(document.querySelector('#cold-start-status').textContent));
  assert.match(await say(page, "What's my name?"), /Sam/);
  assert.notEqual(await instance(), warm, 'the object started cold');

  // Fork from the first checkpoint: the new branch does not see the later turns.
  await page.click(`#history button[data-checkpoint="${head1}"]`);
  await page.click('#continue-here');
  assert.equal(await page.isVisible('#fork-banner'), true);
  const recap = await say(page, 'What did I say?');
  assert.match(recap, /My name is Sam/);
  assert.doesNotMatch(recap, /What's my name/);
  // The branch starts with the fork's input; its reply follows.
  assert.match(await page.locator('#history li').nth(1).textContent(), /fork/);
  assert.match(await page.locator('#history li').first().textContent(), /loop/);
  assert.equal(await page.textContent('#message-count'), '4', 'the branch has turn one and the fork');

  await page.screenshot({ path: join(OUT, 'demo.png'), fullPage: true });

  // New chat: a thread that does not know Sam; the old one stays in the list.
  await page.click('#new-chat');
  assert.match(await say(page, "What's my name?"), /don't know/);
  const newThread = new URL(page.url()).searchParams.get('thread');
  assert.notEqual(newThread, threadId);
  const options = await page.locator('#thread-list option').allTextContents();
  assert.ok(options.some((o) => o.includes(threadId.slice(0, 8))), `the first thread is listed: ${options}`);
  await page.close();
});

test('usable at 375 px wide, keyboard first', async () => {
  const page = await browser.newPage({ viewport: { width: 375, height: 740 } });
  await open(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 375, `no horizontal scroll at 375 px (${overflow})`);
  assert.equal(await page.getAttribute('#input', 'id'), 'input');
  assert.equal(await page.locator('label[for="input"]').count(), 1, 'the input has a label');
  await page.focus('#input');
  assert.match(await say(page, 'hello from a phone'), /You said: hello from a phone/);
  await page.screenshot({ path: join(OUT, 'demo-375.png'), fullPage: true });
  await page.close();
});

test('an API failure is shown, and the page keeps working', async () => {
  const page = await browser.newPage();
  await open(page, '/?thread=does-not-exist');
  // An unknown thread id in the URL is dropped; the next message makes a fresh thread.
  assert.equal(await page.textContent('#thread-id'), 'none yet');
  await page.route('**/runs/stream', (route) => route.fulfill({
    status: 409, contentType: 'application/json', body: JSON.stringify({ detail: 'Thread is busy with another run' }),
  }));
  await page.fill('#input', 'hi');
  await page.press('#input', 'Enter');
  await page.waitForSelector('#error:not([hidden])');
  assert.match(await page.textContent('#error'), /busy/);
  assert.equal(await page.isDisabled('#send'), false, 'send is enabled again');
  await page.unroute('**/runs/stream');
  assert.match(await say(page, 'hi again'), /You said: hi again/);
  await page.close();
});

test('a server that lost the conversation is caught, not answered as a stranger (amnesia guard)', async () => {
  // The in-memory backend forgets on restart, as MemorySaver does.
  const dir = tempPersistDir('demo-amnesia');
  let forgetful = await startWorker({ persistDir: dir, vars: { MEMORY_BACKEND: 'memory' } });
  try {
    const page = await browser.newPage();
    await page.goto(`${forgetful.url}/`);
    await page.waitForSelector('body[data-ready="true"]');
    assert.match(await say(page, 'My name is Sam'), /Sam/);
    await page.waitForFunction(() => document.querySelector('#head-id').textContent.length > 8);
    await forgetful.kill();
    forgetful = await startWorker({ persistDir: dir, port: forgetful.port, vars: { MEMORY_BACKEND: 'memory' } });
    const replies = await page.locator('#messages li.ai').count();
    await page.fill('#input', "What's my name?");
    await page.press('#input', 'Enter');
    await page.waitForFunction(() => !document.querySelector('#error').hidden);
    assert.match(await page.textContent('#error'), /no longer has this conversation.*Memory mismatch/);
    assert.equal(await page.locator('#messages li.ai').count(), replies, 'no reply from a server that forgot');
    await page.screenshot({ path: join(OUT, 'demo-amnesia.png'), fullPage: true });
    await page.close();
  } finally {
    await forgetful.kill();
    removeDir(dir);
  }
});

test('the inspector shows the memory doctor\'s hint to a client that starts a new thread per message', async () => {
  const page = await browser.newPage();
  await open(page);
  assert.equal(await page.isVisible('#hints-none'), true);
  // A simulated client that opens a New chat for every message: each thread gets one turn.
  // The worker judges a client's recent runs once it has 16 (src/api/diagnostics).
  for (let i = 0; i < 16; i += 1) {
    await page.click('#new-chat');
    await say(page, `question ${i}`);
    if (i < 15) assert.equal(await page.locator('#hints li').count(), 0, `no hint after ${i + 1} threads`);
  }
  const hint = page.locator('#hints li[data-code="new_thread_per_request"]');
  await hint.waitFor();
  assert.match(await hint.textContent(), /Fix: create a thread once per conversation/);
  assert.equal(await page.isVisible('#hints-none'), false);
  await page.screenshot({ path: join(OUT, 'demo-doctor-hint.png'), fullPage: true });
  await page.close();
});
