// Nemesis (issue 20): KV lag. The KV backend (MEMORY_BACKEND=kv) under the dev-mode
// fault switch DEV_KV_FAULTS: every write shows to reads and listings only after a random
// delay, reads that miss keep missing for a while (KV caches misses), and the thread
// objects start cold between turns (their memory of their own writes gone), once with
// the whole runtime SIGKILLed. Clients run many turns, some sending `expected_head` (the
// head they last saw, or an older one). The property: every acknowledged turn is an
// ancestor of the thread's head, and was answered from a state holding every turn
// acknowledged before it; a request that cannot be served so gets 409.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, tempPersistDir, removeDir, api, say, sleep } from './harness.mjs';

const LAG_MS = 1200;
const VARS = { DEV_MODE: 'true', MEMORY_BACKEND: 'kv', DEV_KV_FAULTS: `lag=${LAG_MS},miss=${LAG_MS}` };
const THREADS = 4;
const ROUNDS = 10;

const persistDir = tempPersistDir('nemesis-kv-lag');
let worker;

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

/** A small seeded generator: a failure replays with the same choices. */
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** One client's turns on its thread, adding what it saw acknowledged to `acked`. */
async function client(thread, index, pick, counts, acked) {
  for (let round = 0; round < ROUNDS; round += 1) {
    if (pick() < 0.6) {
      const cold = await api(worker.url, 'POST', `/__dev/cold-start/${thread}`);
      assert.equal(cold.status, 200, JSON.stringify(cold.body));
    }
    const text = `thread ${index} turn ${acked.length}.${round}`;
    const roll = pick();
    const guard = {};
    if (roll < 0.35 && acked.length) guard.expected_head = acked.at(-1).head;
    else if (roll < 0.5 && acked.length > 1) guard.expected_head = acked[Math.floor(pick() * (acked.length - 1))].head;
    const res = await api(worker.url, 'POST', `/threads/${thread}/runs/wait`, say(text, guard));
    if (res.status === 409) {
      counts.conflicts += 1;
      await sleep(pick() * LAG_MS / 2);
      continue;
    }
    assert.equal(res.status, 200, `${text}: ${JSON.stringify(res.body)}`);
    const humans = res.body.messages.filter((m) => m.type === 'human').map((m) => m.content);
    for (const earlier of acked) {
      assert.ok(humans.includes(earlier.text), `${text} (${JSON.stringify(guard)}) was answered without the acknowledged "${earlier.text}": ${JSON.stringify(humans)}`);
    }
    assert.equal(humans.at(-1), text);
    acked.push({ text, head: res.headers.get('x-thread-head') });
    if (guard.expected_head) counts.guarded += 1;
  }
}

/** The checkpoint ids from the thread's head back to its root. */
async function ancestors(thread) {
  const history = (await api(worker.url, 'POST', `/threads/${thread}/history`, { limit: 1000 })).body;
  const parent = new Map(history.map((e) => [e.checkpoint.checkpoint_id, e.parent_checkpoint?.checkpoint_id ?? null]));
  const head = (await api(worker.url, 'GET', `/threads/${thread}/state`)).body.checkpoint.checkpoint_id;
  const line = new Set();
  for (let id = head; id; id = parent.get(id)) line.add(id);
  return line;
}

test('KV lag, cached misses and cold starts: every acknowledged turn is an ancestor of the head, or the request is 409', async (t) => {
  worker = await startWorker({ persistDir, vars: VARS });
  const threads = [];
  for (let i = 0; i < THREADS; i += 1) {
    const created = await api(worker.url, 'POST', '/threads', {});
    assert.equal(created.status, 200);
    threads.push(created.body.thread_id);
  }
  const counts = { conflicts: 0, guarded: 0 };
  const acked = threads.map(() => []);
  const run = (seed) => Promise.all(threads.map((t, i) => client(t, i, random(seed + i), counts, acked[i])));
  await run(20);
  // The whole runtime killed between turns, then more turns on the same storage.
  await worker.kill();
  worker = await startWorker({ persistDir, port: worker.port, vars: VARS });
  await run(40);

  await sleep(2 * LAG_MS + 200); // every write shows by now
  for (const [i, thread] of threads.entries()) {
    const line = await ancestors(thread);
    for (const turn of acked[i]) {
      assert.ok(line.has(turn.head), `acknowledged "${turn.text}" (${turn.head}) is an ancestor of the head`);
    }
  }
  const served = acked.flat().length;
  t.diagnostic(`${served} turns acknowledged, ${counts.guarded} with expected_head, ${counts.conflicts} answered 409`);
  assert.ok(served >= THREADS * ROUNDS / 2, `most turns were served (${served} acknowledged, ${counts.conflicts} 409s)`);
  assert.ok(counts.guarded >= 5, `turns sent expected_head (${counts.guarded})`);
  assert.ok(counts.conflicts > 0, 'the lag was seen: some requests were 409');
});
