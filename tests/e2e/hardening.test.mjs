// Concurrency, retries and crashes in workerd: nothing lost, nothing duplicated, no
// fork nobody asked for, no thread stuck busy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, tempPersistDir, removeDir, api, say, sleep, assertLinear as linear } from './harness.mjs';

const assertLinear = (entries, label) => linear(assert, entries, label);

let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('hardening');
  worker = await startWorker({ persistDir });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

async function newThread() {
  return (await api(worker.url, 'POST', '/threads', {})).body.thread_id;
}

async function history(thread) {
  const r = await api(worker.url, 'POST', `/threads/${thread}/history`, { limit: 1000 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

function humanTexts(state) {
  return state.values.messages.filter((m) => m.type === 'human').map((m) => m.content);
}

test('20 concurrent runs on one thread: reject → some 200, the rest 409, history linear', async () => {
  const thread = await newThread();
  const results = await Promise.all([...Array(20).keys()].map((i) =>
    api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say(`reject ${i}`))));
  const ok = results.filter((r) => r.status === 200);
  const busy = results.filter((r) => r.status === 409);
  assert.ok(ok.length >= 1, 'at least one run goes through');
  assert.equal(ok.length + busy.length, 20, `only 200 or 409: ${results.map((r) => r.status)}`);
  for (const r of busy) assert.match(r.body.detail, /busy/);
  const state = (await api(worker.url, 'GET', `/threads/${thread}/state`)).body;
  assert.equal(state.values.messages.length, ok.length * 2, 'one turn per 200, nothing else');
  assertLinear(await history(thread), 'reject');
});

test('20 concurrent runs on one thread: enqueue → all 20 applied once, in some order', async () => {
  const thread = await newThread();
  const results = await Promise.all([...Array(20).keys()].map((i) =>
    api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say(`enqueue ${i}`, { multitask_strategy: 'enqueue' }))));
  assert.deepEqual(results.map((r) => r.status), Array(20).fill(200));
  const state = (await api(worker.url, 'GET', `/threads/${thread}/state`)).body;
  const texts = humanTexts(state);
  assert.equal(texts.length, 20);
  assert.deepEqual([...texts].sort(), [...Array(20).keys()].map((i) => `enqueue ${i}`).sort(), 'none lost, none duplicated');
  const types = state.values.messages.map((m) => m.type);
  assert.deepEqual(types, Array(20).fill(['human', 'ai']).flat(), 'each input followed by its reply');
  const entries = await history(thread);
  assert.equal(entries.length, 40);
  assertLinear(entries, 'enqueue');
});

test('the same run sent 3× with one Idempotency-Key is one turn', async () => {
  const thread = await newThread();
  const send = () => fetch(`${worker.url}/threads/${thread}/runs/wait`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'retry-key-1' },
    body: JSON.stringify(say('My name is Sam')),
  }).then(async (r) => ({ status: r.status, body: await r.json(), head: r.headers.get('x-thread-head') }));
  const first = await send();
  const second = await send();
  const third = await send();
  for (const r of [first, second, third]) assert.equal(r.status, 200);
  assert.deepEqual(second.body, first.body);
  assert.deepEqual(third.body, first.body);
  assert.equal(third.head, first.head);
  const entries = await history(thread);
  assert.equal(entries.length, 2, 'one input and one reply');
  // Concurrent duplicates with the key and enqueue: still one turn.
  const concurrent = await Promise.all([...Array(5).keys()].map(() => fetch(`${worker.url}/threads/${thread}/runs/wait`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': 'retry-key-2' },
    body: JSON.stringify(say("What's my name?", { multitask_strategy: 'enqueue' })),
  }).then((r) => r.json())));
  for (const body of concurrent) assert.deepEqual(body, concurrent[0]);
  assert.equal(concurrent[0].messages.at(-1).content, 'Your name is Sam.');
  assert.equal((await history(thread)).length, 4);
});

test('an Idempotency-Key is kept for a day, not a number of turns: a retry 170 turns on is the same run; another body is 422', async () => {
  const thread = await newThread();
  const send = (text, key) => fetch(`${worker.url}/threads/${thread}/runs/wait`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify(say(text)),
  }).then(async (r) => ({ status: r.status, body: await r.json(), head: r.headers.get('x-thread-head') }));
  const first = await send('My name is Sam', 'kept-key');
  assert.equal(first.status, 200);
  // More turns than the newest checkpoints a key used to be looked for in (160).
  for (let i = 0; i < 170; i += 1) assert.equal((await send(`turn ${i}`)).status, 200);
  const messages = async () => (await api(worker.url, 'GET', `/threads/${thread}/state`)).body.values.messages.length;
  const before = await messages();
  assert.equal(before, 2 + 2 * 170);
  const retry = await send('My name is Sam', 'kept-key');
  assert.equal(retry.status, 200);
  assert.deepEqual(retry.body, first.body, 'the original answer');
  assert.equal(await messages(), before, 'nothing appended');
  const reused = await send('Transfer everything', 'kept-key');
  assert.equal(reused.status, 422);
  assert.equal(reused.body.code, 'invalid_input');
  assert.match(reused.body.detail, /different request body/);
  assert.equal(await messages(), before, 'the thread unchanged');
});

test('crash: 16 clients on 8 threads, SIGKILL mid-load, restart, go on: every acknowledged turn exactly once', async () => {
  const threads = [];
  for (let i = 0; i < 8; i += 1) threads.push(await newThread());
  const acknowledged = new Map(threads.map((t) => [t, []]));
  let stop = false;
  let sent = 0;
  const client = async (c) => {
    const thread = threads[c % 8];
    for (let turn = 0; !stop; turn += 1) {
      const text = `client ${c} turn ${turn}`;
      sent += 1;
      try {
        const r = await api(worker.url, 'POST', `/threads/${thread}/runs/wait`,
          say(text, { multitask_strategy: 'enqueue' }));
        if (r.status === 200) acknowledged.get(thread).push(text);
      } catch {
        await sleep(50); // the runtime is down: try the next turn
      }
    }
  };
  const clients = [...Array(16).keys()].map(client);
  await sleep(1500);
  const beforeKill = [...acknowledged.values()].reduce((n, a) => n + a.length, 0);
  assert.ok(beforeKill > 0, 'turns were acknowledged before the crash');
  await worker.kill(); // SIGKILL of the runtime mid-load
  worker = await startWorker({ persistDir, port: worker.port });
  await sleep(1500);
  stop = true;
  await Promise.all(clients);
  const total = [...acknowledged.values()].reduce((n, a) => n + a.length, 0);
  assert.ok(total > beforeKill, `turns were acknowledged after the restart (${beforeKill} → ${total} of ${sent})`);
  for (const thread of threads) {
    const state = (await api(worker.url, 'GET', `/threads/${thread}/state`)).body;
    const stored = humanTexts(state);
    for (const text of acknowledged.get(thread)) {
      assert.equal(stored.filter((t) => t === text).length, 1, `${thread}: "${text}" stored exactly once`);
    }
    assert.equal(new Set(stored).size, stored.length, `${thread}: no input stored twice`);
    assertLinear(await history(thread), thread);
    // Not stuck busy: a run with the default strategy goes straight through.
    const next = await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say('after the crash'));
    assert.equal(next.status, 200, `${thread}: ${JSON.stringify(next.body)}`);
  }
});

test('input keys beside messages are ignored and named in a header, on wait and stream', async () => {
  const thread = await newThread();
  const input = { messages: [{ role: 'user', content: 'My name is Sam' }], history: [], user_id: 'u1' };
  for (const kind of ['wait', 'stream']) {
    const res = await fetch(`${worker.url}/threads/${thread}/runs/${kind}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ assistant_id: 'agent', input }),
    });
    await res.text();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-edge-memory-ignored-input-keys'), 'history, user_id', kind);
  }
  const plain = await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say('What is my name?'));
  assert.equal(plain.status, 200);
  assert.equal(plain.headers.get('x-edge-memory-ignored-input-keys'), null, 'nothing ignored, no header');
  assert.match(JSON.stringify(plain.body), /Sam/);
});
