// Directory nemesis (issue 19): the thread directory is sharded (one shard per JWT user,
// hashed shards for ownerless threads) and updated by each thread's own object, off the
// response path. With the dev fault switch, directory updates are dropped (the sender
// retries from its alarm), delayed (so they arrive out of order) and followed by stale
// duplicates of the previous copy. While creates, renames, runs, deletes and copies go
// on across two users and a service key, no search ever shows another owner's thread
// or a deleted one; afterwards the directory converges (counts, which read the
// directory alone, and searches by the new names are exact).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, tempPersistDir, removeDir, signHs256, sleep } from './harness.mjs';

const JWT_SECRET = 'directory-nemesis-secret-0123456789abcdef';
const SERVICE_KEY = 'directory-service-key';
let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('directory');
  worker = await startWorker({
    persistDir,
    vars: {
      JWT_SECRET,
      API_KEYS: SERVICE_KEY,
      DEV_MODE: 'true',
      DEV_DIRECTORY_FAULTS: 'drop=0.25,delay=250,stale=0.3',
    },
  });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

const token = (sub) => signHs256({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, JWT_SECRET);
const callers = {
  alice: { authorization: `Bearer ${token('alice')}` },
  bob: { authorization: `Bearer ${token('bob')}` },
  service: { 'x-api-key': SERVICE_KEY },
};

async function call(who, method, path, body) {
  const res = await fetch(`${worker.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...callers[who] },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const say = (text) => ({ input: { messages: [{ role: 'user', content: text }] } });

/** What each caller's threads should be: id → title. */
const live = { alice: new Map(), bob: new Map(), service: new Map() };
const deleted = new Set();

/** Every search a caller can make shows only its own live threads. */
async function assertNoLeak(label) {
  for (const who of Object.keys(live)) {
    const found = await call(who, 'POST', '/threads/search', { limit: 1000 });
    assert.equal(found.status, 200, `${label}: ${who} searches`);
    for (const thread of found.body) {
      assert.ok(!deleted.has(thread.thread_id), `${label}: ${who} sees deleted ${thread.thread_id}`);
      const owner = thread.metadata.owner;
      if (who === 'service') assert.equal(owner, undefined, `${label}: an unscoped search lists ownerless threads`);
      else assert.equal(owner, who, `${label}: ${who} sees ${owner}'s ${thread.thread_id}`);
    }
  }
}

async function create(who, n) {
  const id = `${who}-t${n}`;
  const title = `${who} thread ${n}`;
  // Half are created by a run (if_not_exists), half by POST /threads.
  if (n % 2 === 0) {
    assert.equal((await call(who, 'POST', '/threads', { thread_id: id, metadata: { title } })).status, 200);
  } else {
    const run = await call(who, 'POST', `/threads/${id}/runs/wait`, { ...say(`hello ${n}`), if_not_exists: 'create' });
    assert.equal(run.status, 200, JSON.stringify(run.body));
    assert.equal((await call(who, 'PATCH', `/threads/${id}`, { metadata: { title } })).status, 200);
  }
  live[who].set(id, title);
  return id;
}

test('no search leaks through a faulty directory, and the directory converges', async () => {
  const ids = { alice: [], bob: [], service: [] };
  for (let n = 0; n < 6; n += 1) {
    await Promise.all(Object.keys(ids).map(async (who) => ids[who].push(await create(who, n))));
    await assertNoLeak(`after create ${n}`);
  }
  // Turns (coalesced updates), renames (sent at once), in parallel across callers.
  for (let round = 0; round < 3; round += 1) {
    await Promise.all(Object.keys(ids).map(async (who) => {
      for (const id of ids[who].slice(0, 4)) {
        const run = await call(who, 'POST', `/threads/${id}/runs/wait`, say(`turn ${round}`));
        assert.equal(run.status, 200);
      }
      const renamed = ids[who][round];
      const title = `${who} renamed ${round}`;
      assert.equal((await call(who, 'PATCH', `/threads/${renamed}`, { metadata: { title } })).status, 200);
      live[who].set(renamed, title);
    }));
    await assertNoLeak(`after round ${round}`);
  }
  // Deletes and copies.
  for (const who of Object.keys(ids)) {
    for (const id of ids[who].slice(4, 6)) {
      assert.equal((await call(who, 'DELETE', `/threads/${id}`)).status, 204);
      live[who].delete(id);
      deleted.add(id);
    }
    const copy = await call(who, 'POST', `/threads/${ids[who][0]}/copy`);
    assert.equal(copy.status, 200);
    live[who].set(copy.body.thread_id, live[who].get(ids[who][0]));
    await assertNoLeak(`after deletes and a copy by ${who}`);
  }
  // Bob cannot reach alice's threads by any route.
  assert.equal((await call('bob', 'GET', `/threads/${ids.alice[0]}`)).status, 404);
  const asAlice = await call('bob', 'POST', '/threads/search', { metadata: { owner: 'alice' } });
  assert.ok(asAlice.body.every((t) => t.metadata.owner === 'bob'), 'an owner filter cannot name someone else');

  // Convergence: retries come from alarms; searches repair stale copies as they go.
  const converged = async () => {
    await assertNoLeak('converging');
    for (const [who, threads] of Object.entries(live)) {
      const count = await call(who, 'POST', '/threads/count', {});
      if (count.body !== threads.size) return `${who}: count ${count.body}, expected ${threads.size}`;
      const found = await call(who, 'POST', '/threads/search', { limit: 1000 });
      const foundIds = found.body.map((t) => t.thread_id).sort();
      if (JSON.stringify(foundIds) !== JSON.stringify([...threads.keys()].sort())) {
        return `${who}: found ${foundIds}`;
      }
      for (const [id, title] of threads) {
        const byTitle = await call(who, 'POST', '/threads/search', { metadata: { title } });
        if (!byTitle.body.some((t) => t.thread_id === id)) return `${who}: ${id} not found as ${title}`;
      }
    }
    return null;
  };
  let why = 'not checked';
  for (const started = Date.now(); Date.now() - started < 60_000; await sleep(1_000)) {
    why = await converged();
    if (why === null) break;
  }
  assert.equal(why, null, 'the directory converged');
});
