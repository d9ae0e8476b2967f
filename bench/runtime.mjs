// The runtime's cost, measured from outside: workerd's process CPU per turn (from
// /proc schedstat, as ../shared/peers/cf-agents/ measures AIChatAgent), the same for the
// floor (bench/floor/: a Worker and a Durable Object that answer a constant), and the
// cold first read of a 1-turn thread in a fresh runtime.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startWorker, ROOT } from '../tests/e2e/harness.mjs';

/** wrangler's environment for every measured runtime: local observability and the
 * explorer off (dev-only tooling that adds ~9 ms CPU to each request). */
export const RUNTIME_ENV = { X_LOCAL_OBSERVABILITY: 'false', X_LOCAL_EXPLORER: 'false' };

export const FLOOR_CONFIG = join(ROOT, 'bench/floor/wrangler.toml');

/** CPU ns of the workerd processes of process group `pgid`, summed over their threads
 * (first field of /proc/<pid>/task/<tid>/schedstat). */
export function workerdCpuNs(pgid) {
  let ns = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    if (Number(stat.slice(close + 2).split(' ')[2]) !== pgid) continue;
    if (!stat.slice(stat.indexOf('(') + 1, close).startsWith('workerd')) continue;
    try {
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        try {
          ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
        } catch { /* thread gone */ }
      }
    } catch { /* process gone */ }
  }
  return ns;
}

const userText = (turn) => {
  const head = `Turn ${turn}: `;
  return head + 'x'.repeat(Math.max(0, 200 - head.length));
};

/** One turn, as a chat UI makes it: `runs/stream` with `messages-tuple`, read to the end. */
export async function turn(url, thread, n, headers = {}) {
  const res = await fetch(`${url}/threads/${thread}/runs/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      assistant_id: 'agent',
      input: { messages: [{ role: 'user', content: userText(n) }] },
      stream_mode: ['messages-tuple'],
    }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`turn ${n} on ${thread} → ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

export async function createThread(url, headers = {}) {
  const res = await fetch(`${url}/threads`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{}',
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`create thread → ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text).thread_id;
}

/**
 * workerd CPU per turn on one new thread: turns (1, early] and (steadyFrom, steadyTo],
 * each window bounded by CPU readings with nothing but turns between them. The floor
 * takes the same requests (it answers each with a constant).
 */
export async function cpuPerTurn(worker, { early = 11, steadyFrom, steadyTo }) {
  const thread = await createThread(worker.url);
  await turn(worker.url, thread, 1);
  const window = async (from, to) => {
    const before = workerdCpuNs(worker.pid);
    for (let n = from + 1; n <= to; n += 1) await turn(worker.url, thread, n);
    return (workerdCpuNs(worker.pid) - before) / 1e6 / (to - from);
  };
  const earlyMs = await window(1, early);
  for (let n = early + 1; n <= steadyFrom; n += 1) await turn(worker.url, thread, n);
  const steadyMs = await window(steadyFrom, steadyTo);
  return { earlyMs, steadyMs };
}

/** Starts the floor worker in the same harness as ours. */
export function startFloor(persistDir) {
  return startWorker({ persistDir, config: FLOOR_CONFIG, env: RUNTIME_ENV });
}

/**
 * The first request in a fresh runtime: `runs` times, restart wrangler on the same
 * persist dir, wait for "Ready on" (no request before ours) and time `GET path`, whose
 * answer `check` accepts. Returns the times in ms.
 */
export async function coldReads(persistDir, { runs, path, check, startOptions }) {
  const times = [];
  for (let r = 0; r < runs; r += 1) {
    const fresh = await startWorker({ persistDir, env: RUNTIME_ENV, readyFromLog: true, ...startOptions });
    try {
      const started = performance.now();
      const res = await fetch(`${fresh.url}${path}`);
      const body = await res.json();
      times.push(performance.now() - started);
      if (!res.ok || !check(body)) throw new Error(`cold read of ${path}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    } finally {
      await fresh.kill();
    }
  }
  return times;
}
