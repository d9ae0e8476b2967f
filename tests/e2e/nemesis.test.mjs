// Nemesis (issue 20): lost responses. A proxy between the client and the worker in
// workerd forwards each request, lets the worker commit it, then loses the answer (the
// connection is cut before, or in the middle of, the response). A client that retries
// with the same Idempotency-Key must see each logical run happen exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { startWorker, tempPersistDir, removeDir, api, say, freePort, assertLinear } from './harness.mjs';

let worker;
let persistDir;
let proxy;

/** Forwards to the worker; `lose(req)` decides, per request, to cut the answer: 'before'
 * (nothing of it reaches the client) or 'midway' (the head and a first chunk do). */
async function startLossyProxy(target, lose) {
  const { port: targetPort } = new URL(target);
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const how = lose(req);
      const upstream = request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers }, (up) => {
        if (how === 'before') {
          // Read the whole answer (the run completes and commits), then drop the client.
          up.resume();
          up.on('end', () => res.socket.destroy());
          return;
        }
        res.writeHead(up.statusCode, up.headers);
        let first = true;
        up.on('data', (c) => {
          if (how === 'midway' && !first) return;
          res.write(c);
          if (how === 'midway' && first) {
            first = false;
            // The rest is read upstream (the run finishes) but never delivered.
            setTimeout(() => res.socket.destroy(), 20);
          }
        });
        up.on('end', () => { if (how !== 'midway') res.end(); });
      });
      upstream.end(Buffer.concat(chunks));
    });
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

let losses = [];
before(async () => {
  persistDir = tempPersistDir('nemesis');
  worker = await startWorker({ persistDir });
  // Each queued loss applies to the next request whose path matches it.
  proxy = await startLossyProxy(worker.url, (req) => {
    const i = losses.findIndex((l) => req.url.endsWith(l.suffix));
    if (i < 0) return null;
    return losses.splice(i, 1)[0].how;
  });
});

after(async () => {
  await proxy?.close();
  await worker?.kill();
  removeDir(persistDir);
});

/** A run through the proxy, retried with its key until an answer arrives whole. */
async function keyedRun(thread, kind, body, key) {
  for (let attempt = 0; attempt < 10; attempt += 1) {
    try {
      const res = await fetch(`${proxy.url}/threads/${thread}/runs/${kind}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      if (kind === 'stream' && !/event: values[^]*event: values/.test(text)) throw new Error('stream cut short');
      return { status: res.status, text, attempts: attempt + 1 };
    } catch {
      // Lost: send it again with the same key.
    }
  }
  throw new Error('no answer after 10 attempts');
}

async function humans(thread) {
  const state = await api(worker.url, 'GET', `/threads/${thread}/state`);
  return state.body.values.messages.filter((m) => m.type === 'human').map((m) => m.content);
}

async function newThread() {
  return (await api(worker.url, 'POST', '/threads', {})).body.thread_id;
}

test('runs/wait whose answer is lost, retried with its key: one turn', async () => {
  const thread = await newThread();
  losses.push({ suffix: '/runs/wait', how: 'before' }, { suffix: '/runs/wait', how: 'before' });
  const r = await keyedRun(thread, 'wait', say('My name is Sam'), 'lost-wait-1');
  assert.equal(r.status, 200);
  assert.equal(r.attempts, 3, 'two answers were lost');
  assert.match(JSON.parse(r.text).messages.at(-1).content, /Nice to meet you, Sam/);
  assert.deepEqual(await humans(thread), ['My name is Sam']);
  const history = (await api(worker.url, 'POST', `/threads/${thread}/history`, { limit: 100 })).body;
  assert.equal(history.length, 2, 'one input and one reply');
});

test('runs/stream cut midway, retried with its key: the reply replayed whole, one turn', async () => {
  const thread = await newThread();
  await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say('My name is Sam'));
  losses.push({ suffix: '/runs/stream', how: 'midway' });
  const r = await keyedRun(thread, 'stream', say("What's my name?", { stream_mode: ['values', 'messages-tuple'] }), 'lost-stream-1');
  assert.equal(r.attempts, 2);
  assert.match(r.text, /Your name is Sam/);
  assert.deepEqual(await humans(thread), ['My name is Sam', "What's my name?"]);
  const history = (await api(worker.url, 'POST', `/threads/${thread}/history`, { limit: 100 })).body;
  assert.equal(history.length, 4);
  assertLinear(assert, history);
});

test('20 enqueued keyed runs, every other answer lost: each run exactly once, in one line', async () => {
  const thread = await newThread();
  for (let i = 0; i < 10; i += 1) losses.push({ suffix: '/runs/wait', how: i % 2 ? 'midway' : 'before' });
  const runs = await Promise.all([...Array(20).keys()].map((i) => keyedRun(
    thread, 'wait', say(`message ${i}`, { multitask_strategy: 'enqueue' }), `enqueued-${i}`,
  )));
  for (const r of runs) assert.equal(r.status, 200);
  assert.ok(runs.filter((r) => r.attempts > 1).length >= 5, 'answers were lost and retried');
  const sent = (await humans(thread)).sort();
  assert.deepEqual(sent, [...Array(20).keys()].map((i) => `message ${i}`).sort(), 'each run once');
  const history = (await api(worker.url, 'POST', `/threads/${thread}/history`, { limit: 100 })).body;
  assert.equal(history.length, 40);
  assertLinear(assert, history);
  losses = [];
});

// Kill mid-copy: the runtime is SIGKILLed at a random moment during `POST
// /threads/{id}/copy` of a long thread, then restarted on the same storage. A copy that
// search shows is complete (its history equals the source's); a partial one is never
// shown. The source is untouched.
test('SIGKILL during thread copy: every copy search shows is complete, the source intact', async () => {
  const tag = `copy-nemesis-${Date.now()}`;
  const source = (await api(worker.url, 'POST', '/threads', { metadata: { nemesis: tag } })).body.thread_id;
  for (let i = 0; i < 30; i += 1) {
    assert.equal((await api(worker.url, 'POST', `/threads/${source}/runs/wait`, say(`turn ${i}`))).status, 200);
  }
  const sourceHistory = (await api(worker.url, 'POST', `/threads/${source}/history`, { limit: 1000 })).body;
  const contents = (entries) => entries.map((e) => e.values.messages.map((m) => m.content));
  let answered = 0;
  for (let round = 0; round < 4; round += 1) {
    const copy = fetch(`${worker.url}/threads/${source}/copy`, { method: 'POST' })
      .then((r) => { answered += r.ok ? 1 : 0; }, () => {});
    await new Promise((r) => setTimeout(r, 2 + Math.floor(Math.random() * 25)));
    const port = worker.port;
    await worker.kill();
    await copy;
    worker = await startWorker({ persistDir, port });
    await proxy.close();
    proxy = await startLossyProxy(worker.url, () => null);
  }
  const found = (await api(worker.url, 'POST', '/threads/search', { metadata: { nemesis: tag }, limit: 100 })).body;
  assert.ok(found.some((t) => t.thread_id === source), 'the source is listed');
  const copies = found.filter((t) => t.thread_id !== source);
  assert.ok(copies.length >= answered, `every acknowledged copy is listed (${copies.length} listed, ${answered} acknowledged)`);
  for (const t of copies) {
    const history = (await api(worker.url, 'POST', `/threads/${t.thread_id}/history`, { limit: 1000 })).body;
    assert.deepEqual(contents(history), contents(sourceHistory), `copy ${t.thread_id} is complete`);
  }
  const after = (await api(worker.url, 'POST', `/threads/${source}/history`, { limit: 1000 })).body;
  assert.deepEqual(contents(after), contents(sourceHistory), 'the source is untouched');
});
