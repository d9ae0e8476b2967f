// Scale simulation: many threads × a few turns from many concurrent clients, then the
// share of all Durable Object requests that the busiest single object served. A global
// object on every turn's path would show ~50%; per-thread objects and sharded directory
// updates should show each object well under 1%.
//
// Counting: each object counts the requests and alarms it served (`requests` in
// `GET /__dev/storage/{thread}` and `GET /__dev/directory/{s/N|u/OWNER}`, dev builds
// only), per instance. Local workerd evicts an object idle for ~10 s and its successor
// counts from zero, so a thread's counter is read a few seconds after its last turn
// (after its coalesced directory update has gone out, before it can be evicted), and the
// directory shards are read every few seconds during the load (which keeps them alive;
// a change of instance is detected and its count carried over). Every stats read counts
// itself in the object it reads: those reads are subtracted, they are not the load.
import { signHs256, sleep } from '../tests/e2e/harness.mjs';
import { createThread, turn } from './runtime.mjs';

/**
 * `mode`: 'ownerless' (threads created with the API key: the hashed shared shards) or
 * 'jwt' (`users` JWT users, each thread owned by one: a shard per user).
 */
/** The shared directory shards (`s/0` … `s/N-1`): the dev route answers 404 past the
 * last, so the bench follows the worker's constant instead of repeating it. */
async function sharedShards(url, headers) {
  const names = [];
  for (let i = 0; i < 1024; i += 1) {
    const res = await fetch(`${url}/__dev/directory/s/${i}`, { headers });
    await res.arrayBuffer();
    if (res.status === 404) break;
    if (!res.ok) throw new Error(`/__dev/directory/s/${i} → ${res.status}`);
    names.push(`s/${i}`);
  }
  return names;
}

export async function scaleSim(url, { mode, threads, turns, clients, users = 0, apiKey, jwtSecret, searchEvery = 50, statsDelayMs = 3000, pollMs = 3000 }) {
  const admin = apiKey ? { 'x-api-key': apiKey } : {};
  const tokens = mode !== 'jwt' ? [] : [...Array(users).keys()].map((u) => signHs256({ sub: `user-${u}`, exp: Math.floor(Date.now() / 1000) + 3600 }, jwtSecret));
  const callerOf = (i) => (mode === 'jwt' ? { authorization: `Bearer ${tokens[i % users]}` } : admin);
  const getJson = async (path) => {
    const res = await fetch(`${url}${path}`, { headers: admin });
    if (!res.ok) throw new Error(`${path} → ${res.status}: ${(await res.text()).slice(0, 200)}`);
    return res.json();
  };
  const shardNames = mode === 'jwt' ? [...Array(users).keys()].map((u) => `u/user-${u}`) : await sharedShards(url, admin);

  // Directory shards: read every pollMs. The first reading is the baseline (a shard may
  // have served earlier work); a new instance banks its predecessor's count.
  const shards = Object.fromEntries(shardNames.map((n) => [n, { banked: 0, instance: null, base: 0, requests: 0, reads: 0, restarts: 0, rowsBanked: 0, rowsBase: 0, rows: 0 }]));
  const served = (acc) => acc.requests - acc.base - acc.reads;
  const pollShards = () => Promise.all(shardNames.map(async (name) => {
    const s = await getJson(`/__dev/directory/${name}`);
    const acc = shards[name];
    const rows = s.directory_rows_written ?? 0;
    if (acc.instance === null) {
      acc.base = s.requests - 1;
      acc.rowsBase = rows;
    } else if (acc.instance !== s.instance) {
      acc.banked += served(acc);
      acc.rowsBanked += acc.rows - acc.rowsBase;
      Object.assign(acc, { base: 0, reads: 0, restarts: acc.restarts + 1, rowsBase: 0 });
    }
    acc.instance = s.instance;
    acc.requests = s.requests;
    acc.rows = rows;
    acc.reads += 1;
  }));
  let loading = true;
  await pollShards();
  const poller = (async () => {
    while (loading) {
      await sleep(pollMs);
      await pollShards();
    }
  })();

  // Thread objects: read statsDelayMs after the thread's last turn.
  const threadCounts = [];
  const reads = [];
  let searches = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all([...Array(clients).keys()].map(async () => {
    for (let i = next++; i < threads; i = next++) {
      const headers = callerOf(i);
      const thread = await createThread(url, headers);
      for (let n = 1; n <= turns; n += 1) await turn(url, thread, n, headers);
      reads.push(sleep(statsDelayMs).then(async () => {
        const s = await getJson(`/__dev/storage/${thread}`);
        threadCounts.push({ thread, requests: s.requests - 1 });
      }));
      if (searchEvery && (i + 1) % searchEvery === 0) {
        // What a thread list does: a page of the caller's threads, and their count.
        for (const [path, body] of [['/threads/search', { limit: 10 }], ['/threads/count', {}]]) {
          const res = await fetch(`${url}${path}`, {
            method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
          });
          if (!res.ok) throw new Error(`${path} → ${res.status}`);
          await res.text();
          searches += 1;
        }
      }
    }
  }));
  const loadSeconds = (performance.now() - started) / 1000;
  await Promise.all(reads);
  loading = false;
  await poller;
  await pollShards(); // after the last threads' coalesced updates

  if (threadCounts.length !== threads) throw new Error(`scale: read ${threadCounts.length} of ${threads} threads' counts`);
  const shardCounts = Object.entries(shards).map(([name, a]) => ({ name, requests: a.banked + served(a), restarts: a.restarts }));
  const all = [
    ...threadCounts.map((t) => ({ name: `thread ${t.thread}`, requests: t.requests })),
    ...shardCounts.map((s) => ({ name: `directory ${s.name}`, requests: s.requests })),
  ];
  const total = all.reduce((sum, o) => sum + o.requests, 0);
  const busiest = all.reduce((a, b) => (b.requests > a.requests ? b : a));
  const busiestThread = threadCounts.reduce((a, b) => (b.requests > a.requests ? b : a));
  const busiestShard = shardCounts.reduce((a, b) => (b.requests > a.requests ? b : a));
  const shardTotal = shardCounts.reduce((sum, s) => sum + s.requests, 0);
  const shardRows = Object.values(shards).reduce((sum, a) => sum + a.rowsBanked + a.rows - a.rowsBase, 0);
  return {
    mode,
    threads,
    turns,
    clients,
    users: mode === 'jwt' ? users : 0,
    shards: shardNames.length,
    turnsPerSecond: (threads * turns) / loadSeconds,
    searches,
    totalRequests: total,
    objectRequestsPerTurn: total / (threads * turns),
    directoryRequestsPerTurn: shardTotal / (threads * turns),
    // Rows the directory shards wrote (copies and their two indexes), per turn.
    directoryRowsWrittenPerTurn: shardRows / (threads * turns),
    // A thread read with fewer requests than its creation and turns was evicted between
    // them (its first instance's count is lost; the share is then overstated, not hidden).
    threadsUndercounted: threadCounts.filter((t) => t.requests < 1 + turns).length,
    shardRestarts: shardCounts.reduce((sum, s) => sum + s.restarts, 0),
    maxShare: busiest.requests / total,
    busiest: busiest.name,
    maxThreadShare: busiestThread.requests / total,
    maxShardShare: busiestShard.requests / total,
  };
}
