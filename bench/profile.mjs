// Where a streamed turn's runtime time goes: a V8 CPU profile of the release worker
// (with its wasm function names) in workerd, taken through workerd's own inspector.
//
//   node bench/profile.mjs [--warm 60] [--turns 300] [--out target/profile/turns.cpuprofile]
//
// Builds the release worker into target/profile/build with worker-build (the function-name
// section kept: scripts/build-worker.sh strips it), serves it with `workerd serve` on a
// generated wrangler.json (no wrangler in between: wrangler holds the inspector session),
// runs `--warm` turns on one thread, then profiles `--turns` more (`Profiler.start`/`stop`,
// 100 µs sampling). Prints the functions with the most time per turn, by themselves and
// with what they call, and writes the profile (open it in Chrome DevTools' Performance
// panel). Times are wall time inside the isolate, not the process CPU `bench/run.mjs`
// measures; compare profiles taken on the same machine.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT, freePort, sleep } from '../tests/e2e/harness.mjs';
import { createThread, turn } from './runtime.mjs';

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => (
  a.startsWith('--') ? [a.slice(2), all[i + 1]] : [])).filter((kv) => kv.length));
const WARM = Number(args.warm ?? 60);
const TURNS = Number(args.turns ?? 300);
const OUT = args.out ?? join(ROOT, 'target/profile/turns.cpuprofile');
const DIR = join(ROOT, 'target/profile');
const SAMPLING_US = 100;
const TOP = 25;

function buildNamed() {
  const out = join(DIR, 'build');
  const built = spawnSync('worker-build', ['--release', '--out-dir', out, '.'], { cwd: ROOT, stdio: 'inherit' });
  if (built.status !== 0) throw new Error('worker-build failed');
  return join(out, 'index.js');
}

/** The deployment's configuration as workerd reads it, for the named build. */
function workerdConfig(main) {
  const config = {
    name: 'edge-memory',
    main,
    no_bundle: true,
    compatibility_date: '2025-09-01',
    durable_objects: { bindings: [{ name: 'THREADS', class_name: 'ThreadObject' }] },
    migrations: [{ tag: 'v1', new_sqlite_classes: ['ThreadObject'] }],
    vars: { MEMORY_BACKEND: 'durable_object', MODEL_PROVIDER: 'memory-demo', AUTH_MODE: 'none' },
  };
  const path = join(DIR, 'wrangler.json');
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

async function serve(configPath) {
  const [port, inspector] = [await freePort(), await freePort()];
  const workerd = join(ROOT, 'node_modules/.bin/workerd');
  const child = spawn(workerd, ['serve', configPath, '--experimental',
    '--socket-addr', `http=127.0.0.1:${port}`, '--inspector-addr', `127.0.0.1:${inspector}`],
  { cwd: DIR, detached: true, stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i += 1) {
    try {
      if ((await fetch(`${url}/ok`)).ok) return { url, inspector, child };
    } catch { /* not up yet */ }
    await sleep(100);
  }
  process.kill(-child.pid, 'SIGKILL');
  throw new Error('workerd did not start');
}

async function inspect(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/edge-memory`);
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve);
    ws.addEventListener('error', reject);
  });
  let id = 0;
  const pending = new Map();
  // workerd's inspector echoes each command back before (or instead of) its result: a
  // command is sent once its echo or result is back; a result is awaited where needed.
  ws.addEventListener('message', (e) => {
    const message = JSON.parse(e.data);
    const waiting = pending.get(message.id);
    if (waiting && (message.result || message.error || !waiting.needsResult)) {
      pending.delete(message.id);
      waiting.resolve(message.result ?? {});
    }
  });
  const send = (method, params = {}, needsResult = false) => new Promise((resolve) => {
    id += 1;
    pending.set(id, { resolve, needsResult });
    ws.send(JSON.stringify({ id, method, params }));
  });
  return { send, close: () => ws.close() };
}

/** Self and total (self plus callees) time per function name, in ms per turn. */
function summarize(profile, turns) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const sampled = new Map();
  profile.samples.forEach((node, i) => sampled.set(node, (sampled.get(node) ?? 0) + profile.timeDeltas[i]));
  const name = (n) => (n.callFrame.functionName || '(anonymous)').replace(/::h[0-9a-f]{16}/g, '');
  const self = new Map();
  const total = new Map();
  for (const [id, us] of sampled) {
    self.set(name(nodes.get(id)), (self.get(name(nodes.get(id))) ?? 0) + us);
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const n = name(nodes.get(at));
      if (!seen.has(n)) total.set(n, (total.get(n) ?? 0) + us);
      seen.add(n);
    }
  }
  const perTurn = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP).map(([n, us]) => [(us / 1000 / turns).toFixed(3), n.slice(0, 150)]);
  const all = [...sampled.values()].reduce((a, b) => a + b, 0);
  return { msPerTurn: all / 1000 / turns, self: perTurn(self), total: perTurn(total) };
}

mkdirSync(DIR, { recursive: true });
const server = await serve(workerdConfig(buildNamed()));
try {
  const thread = await createThread(server.url);
  for (let n = 1; n <= WARM; n += 1) await turn(server.url, thread, n);
  const inspector = await inspect(server.inspector);
  await inspector.send('Profiler.enable');
  await inspector.send('Profiler.setSamplingInterval', { interval: SAMPLING_US });
  await inspector.send('Profiler.start');
  for (let n = WARM + 1; n <= WARM + TURNS; n += 1) await turn(server.url, thread, n);
  const { profile } = await inspector.send('Profiler.stop', {}, true);
  inspector.close();
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(profile));
  const summary = summarize(profile, TURNS);
  console.log(`${TURNS} turns after ${WARM}: ${summary.msPerTurn.toFixed(2)} ms of isolate time per turn (idle included); profile in ${OUT}`);
  console.log('\nms/turn  by itself');
  for (const [ms, n] of summary.self) console.log(`${ms.padStart(7)}  ${n}`);
  console.log('\nms/turn  with what it calls');
  for (const [ms, n] of summary.total) console.log(`${ms.padStart(7)}  ${n}`);
} finally {
  process.kill(-server.child.pid, 'SIGKILL');
}
