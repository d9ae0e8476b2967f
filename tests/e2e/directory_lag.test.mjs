// A turn that moves only its thread's time (no new metadata, no status change) reaches
// the thread directory late, from the thread object's alarm, even when each turn finds a
// fresh instance of the object (as a person's turns do: an idle object is evicted after
// ~10 s). Before, such a turn cost its directory shard a request and two rows written
// each time. Counted from the shards' own request counters (dev builds); the lag is
// shortened to 4 s with DEV_DIRECTORY_TIME_LAG_MS so the test sees it arrive.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, tempPersistDir, removeDir, sleep } from './harness.mjs';

const SERVICE_KEY = 'directory-lag-key';
const LAG_MS = 4000;
let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('directory-lag');
  worker = await startWorker({
    persistDir,
    vars: { API_KEYS: SERVICE_KEY, DEV_MODE: 'true', DEV_DIRECTORY_TIME_LAG_MS: String(LAG_MS) },
  });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

async function call(method, path, body) {
  const res = await fetch(`${worker.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', 'x-api-key': SERVICE_KEY },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path} → ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The shared shards' request counters. Each reading counts itself in its shard. */
async function readShards() {
  const shards = [];
  for (let i = 0; ; i += 1) {
    const res = await fetch(`${worker.url}/__dev/directory/s/${i}`, { headers: { 'x-api-key': SERVICE_KEY } });
    const body = await res.json();
    if (res.status === 404) break;
    shards.push({ instance: body.instance, requests: body.requests });
  }
  return shards;
}

/** Directory updates the shards received between two readings (the readings apart). */
function updatesBetween(a, b) {
  assert.equal(a.length, b.length);
  a.forEach((s, i) => assert.equal(b[i].instance, s.instance, `shard ${i} was evicted between readings`));
  return b.reduce((sum, s, i) => sum + s.requests - a[i].requests, 0) - a.length;
}

const turn = (thread, text) => call('POST', `/threads/${thread}/runs/wait`, {
  assistant_id: 'agent', input: { messages: [{ role: 'user', content: text }] },
});

/** A turn in a fresh instance of the thread's object; answers the rows it wrote. */
async function coldTurn(thread, text) {
  await call('POST', `/__dev/cold-start/${thread}`);
  await sleep(300);
  await turn(thread, text);
  await sleep(500); // the run's directory work is done after its answer
  return (await call('GET', `/__dev/storage/${thread}`)).rows_written;
}

test('a quiet turn in a fresh object waits for one alarm, then arrives', async () => {
  const { thread_id: thread } = await call('POST', '/threads', {});
  await turn(thread, 'first turn: stamps the graph ids, sent at once');
  // The first run's end is coalesced for 10 s: let it go out before counting.
  await sleep(11_000);

  const start = await readShards();
  const armedAt = Date.now();
  const armed = await coldTurn(thread, 'a quiet turn in a fresh instance');
  const afterFirst = await readShards();
  assert.equal(updatesBetween(start, afterFirst), 0, 'a quiet turn is not sent at once');

  const again = await coldTurn(thread, 'another quiet turn in another fresh instance');
  const afterSecond = await readShards();
  assert.equal(updatesBetween(afterFirst, afterSecond), 0, 'nor is the next one');
  assert.ok(again < armed, `the pending alarm is found, not set again (rows written ${again} vs ${armed})`);

  await sleep(armedAt + LAG_MS + 1500 - Date.now());
  const delivered = await readShards();
  assert.equal(updatesBetween(afterSecond, delivered), 1, 'the alarm sends the record once');
  const [found] = await call('POST', '/threads/search', { ids: [thread] });
  assert.equal(found.thread_id, thread);

  // What search filters on is not held back.
  const beforeRename = await readShards();
  await call('PATCH', `/threads/${thread}`, { metadata: { title: 'renamed' } });
  const renamed = await readShards();
  assert.equal(updatesBetween(beforeRename, renamed), 1, 'a metadata change goes at once');
  const byTitle = await call('POST', '/threads/search', { metadata: { title: 'renamed' } });
  assert.deepEqual(byTitle.map((t) => t.thread_id), [thread]);
});
