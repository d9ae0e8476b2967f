// edge-memory benchmark: turn cost and storage vs thread length, wake cost, throughput,
// bundle size, and the same workload on LangGraph's SqliteSaver, in one run; then the
// runtime's process CPU per turn beside the floor (bench/floor/), the cold first read,
// cost per million turns, and the hot-spot share of a many-thread simulation.
//
//   node bench/run.mjs [--turns 1000] [--clients 32] [--client-turns 20] [--smoke]
//                      [--peer] [--scale] [--scale-threads N] [--scale-turns N]
//                      [--scale-clients N] [--scale-users N] [--rounds N]
//
// --peer: also run ../shared/peers/cf-agents/ (AIChatAgent) and print it beside ours.
// --scale: the full-size scale simulation (2,000 threads × 5 turns from 64 clients, and
// 64 JWT users) instead of the reduced one.
//
// Prints a table and PASS/FAIL budget lines; writes bench/results/<name>.json and a plot.
// Never fails on a budget (that is for a person to read); fails only if the bench breaks.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startWorker, tempPersistDir, removeDir, ROOT } from '../tests/e2e/harness.mjs';
import { printCostTable } from './cost.mjs';
import { runPeer } from './peer.mjs';
import { FLOOR_CONFIG, RUNTIME_ENV, coldReads, cpuPerTurn, createThread, startFloor, turn } from './runtime.mjs';
import { scaleSim } from './scale.mjs';

const args = Object.fromEntries(process.argv.slice(2).map((a, i, all) => {
  if (!a.startsWith('--')) return [];
  const next = all[i + 1];
  return [a.slice(2), next && !next.startsWith('--') ? next : 'true'];
}).filter((kv) => kv.length));
const smoke = args.smoke === 'true';
const TURNS = Number(args.turns ?? (smoke ? 40 : 1000));
const CLIENTS = Number(args.clients ?? (smoke ? 4 : 32));
const CLIENT_TURNS = Number(args['client-turns'] ?? (smoke ? 3 : 20));
const MESSAGE_BYTES = 200;
// Turns compared at the start and the end: storage per turn is exact, so a few turns do;
// the worker's clock ticks in whole milliseconds, so its times are averaged over more.
const BAND = Math.min(10, Math.floor(TURNS / 4));
const TIME_BAND = Math.min(100, Math.floor(TURNS / 4));
// Runtime CPU: early = turns (1, 11] of a new thread (the peer's window), steady = turns
// (STEADY_FROM, STEADY_TO]; ROUNDS interleaved rounds of ours and the floor, medians.
const ROUNDS = Number(args.rounds ?? (smoke ? 1 : 3));
const STEADY_TO = smoke ? 30 : 300;
const STEADY_FROM = smoke ? 20 : 200;
const COLD_RUNS = smoke ? 1 : 3;
const FLOOR_COLD_RUNS = smoke ? 0 : 3;
const PEER = args.peer === 'true';
const PEER_TURNS = 300;
const fullScale = args.scale === 'true';
const SCALE = {
  threads: Number(args['scale-threads'] ?? (smoke ? 16 : fullScale ? 2000 : 200)),
  turns: Number(args['scale-turns'] ?? (smoke ? 2 : 5)),
  clients: Number(args['scale-clients'] ?? (smoke ? 4 : fullScale ? 64 : 32)),
  users: Number(args['scale-users'] ?? (smoke ? 4 : 64)),
  // One thread list (a search and a count, by that thread's caller) per this many threads.
  searchEvery: smoke ? 4 : 50,
  // A thread's count is read this long after its last turn: after its coalesced
  // directory update (≤ 1 s), before local workerd evicts it (~10 s idle).
  statsDelayMs: smoke ? 1200 : 3000,
};
const SCALE_API_KEY = 'bench-service-key';
const SCALE_JWT_SECRET = 'bench-scale-secret-0123456789abcdef';
// What the model-reply case of the cost table assumes: the reply streams for 5 s.
const MODEL_STREAM_MS = 5000;
const OUT_DIR = join(ROOT, 'bench/results');
const NAME = smoke ? 'smoke' : 'latest';

const message = (turn) => {
  const head = `Turn ${turn}: `;
  return head + 'x'.repeat(Math.max(0, MESSAGE_BYTES - head.length));
};
const median = (xs) => percentile(xs, 50);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
function percentile(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const fmt = (x, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

async function post(url, path, body) {
  const started = performance.now();
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const ms = performance.now() - started;
  if (!res.ok) throw new Error(`${path} → ${res.status}: ${text.slice(0, 300)}`);
  const timing = /do;dur=([\d.]+)/.exec(res.headers.get('server-timing') ?? '');
  return { ms, workerMs: timing ? Number(timing[1]) : NaN, text };
}

async function storage(url, thread) {
  const res = await fetch(`${url}/__dev/storage/${thread}`);
  if (!res.ok) throw new Error(`storage stats → ${res.status}`);
  const s = await res.json();
  const logical = Object.entries(s.tables)
    .filter(([name]) => name.startsWith('em_'))
    .reduce((sum, [, t]) => sum + t.bytes, 0);
  return { ...s, logical };
}

async function streamTurn(url, thread, turn, { timing = true } = {}) {
  const r = await post(url, `/threads/${thread}/runs/stream`, {
    assistant_id: 'agent',
    input: { messages: [{ role: 'user', content: message(turn) }] },
    stream_mode: ['messages-tuple'],
  });
  if (!timing) return r;
  // A stream's headers leave at its first token, before the run ends: the object
  // reports the whole run's time afterwards.
  const res = await fetch(`${url}/__dev/last-run/${thread}`);
  if (!res.ok) throw new Error(`last-run → ${res.status}`);
  return { ...r, workerMs: (await res.json()).ms };
}

async function turnCost(url) {
  const thread = JSON.parse((await post(url, '/threads', {})).text).thread_id;
  const sampleTurns = new Set();
  for (let i = 0; i <= BAND + 1; i += 1) sampleTurns.add(i);
  for (let i = TURNS - BAND - 1; i <= TURNS; i += 1) sampleTurns.add(i);
  for (let i = 50; i < TURNS; i += 50) sampleTurns.add(i);
  const samples = {};
  const client = [];
  const worker = [];
  if (sampleTurns.has(0)) samples[0] = await storage(url, thread);
  for (let turn = 1; turn <= TURNS; turn += 1) {
    const r = await streamTurn(url, thread, turn);
    client.push(r.ms);
    worker.push(r.workerMs);
    if (sampleTurns.has(turn)) samples[turn] = await storage(url, thread);
  }
  // runs/wait returns the whole state, so its cost grows with the thread by design of
  // the API; measured apart, on the same thread.
  const waitMs = [];
  const waitWorkerMs = [];
  for (let i = 0; i < BAND; i += 1) {
    const r = await post(url, `/threads/${thread}/runs/wait`, {
      assistant_id: 'agent',
      input: { messages: [{ role: 'user', content: message(TURNS + 1 + i) }] },
    });
    waitMs.push(r.ms);
    waitWorkerMs.push(r.workerMs);
  }
  const delta = (turn, key) => samples[turn][key] - samples[turn - 1][key];
  // Rows read by turn t: from after the stats call that preceded it (its own scans).
  const rowsRead = (t) => samples[t].rows_read - samples[t - 1].rows_read_after;
  const early = [...Array(BAND).keys()].map((i) => i + 2); // skip turn 1 (schema set-up)
  const late = [...Array(BAND).keys()].map((i) => TURNS - BAND + 1 + i);
  const timeEarly = [...Array(TIME_BAND).keys()].map((i) => i + 2);
  const timeLate = [...Array(TIME_BAND).keys()].map((i) => TURNS - TIME_BAND + 1 + i);
  const last = samples[TURNS];
  return {
    thread,
    client,
    worker,
    waitMs,
    waitWorkerMs,
    early,
    late,
    timeEarly,
    timeLate,
    bytesPerTurnEarly: median(early.map((t) => delta(t, 'logical'))),
    bytesPerTurnLate: median(late.map((t) => delta(t, 'logical'))),
    rowsPerTurnEarly: median(early.map((t) => delta(t, 'rows_written'))),
    rowsPerTurnLate: median(late.map((t) => delta(t, 'rows_written'))),
    rowsReadPerTurnEarly: median(early.map(rowsRead)),
    rowsReadPerTurnLate: median(late.map(rowsRead)),
    databaseBytesPerTurn: (last.database_size - samples[0].database_size) / TURNS,
    storageCurve: Object.entries(samples).map(([t, s]) => [Number(t), s.logical, s.database_size]),
    totalLogical: last.logical,
    databaseSize: last.database_size,
    rawContent: last.tables.raw_messages.content_bytes,
    rawJson: last.tables.raw_messages.json_bytes,
    tables: last.tables,
  };
}

async function wakeCost(persistDir, port, thread, worker) {
  await worker.kill();
  const fresh = await startWorker({ persistDir, port, vars: { DEV_MODE: 'true' }, env: RUNTIME_ENV });
  const started = performance.now();
  const res = await fetch(`${fresh.url}/threads/${thread}/state`);
  const state = await res.json();
  const stateMs = performance.now() - started;
  const afterState = await storage(fresh.url, thread);
  const turn = await streamTurn(fresh.url, thread, TURNS + 100);
  const afterTurn = await storage(fresh.url, thread);
  return {
    worker: fresh,
    result: {
      messages: state.values.messages.length,
      firstStateMs: stateMs,
      firstStateRowsRead: afterState.rows_read,
      firstTurnMs: turn.ms,
      firstTurnWorkerMs: turn.workerMs,
      firstTurnRowsRead: afterTurn.rows_read - afterState.rows_read_after,
    },
  };
}

async function throughput(url) {
  const threads = [];
  for (let i = 0; i < CLIENTS; i += 1) {
    threads.push(JSON.parse((await post(url, '/threads', {})).text).thread_id);
  }
  const latencies = [];
  const started = performance.now();
  await Promise.all(threads.map(async (thread) => {
    for (let turn = 1; turn <= CLIENT_TURNS; turn += 1) {
      latencies.push((await streamTurn(url, thread, turn, { timing: false })).ms);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  return {
    clients: CLIENTS,
    turns: latencies.length,
    turnsPerSecond: latencies.length / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
}

function summarizeSaver(g) {
  const band = Math.min(10, Math.floor(g.turns / 4));
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  const early = (xs) => median(xs.slice(0, band));
  const late = (xs) => median(xs.slice(-band));
  return {
    turns: g.turns,
    band,
    storedEarly: early(g.ours.stored),
    storedLate: late(g.ours.stored),
    sentEarly: early(g.ours.sent),
    sentLate: late(g.ours.sent),
    requestsPerTurn: median(g.ours.requests),
    storedTotal: sum(g.ours.stored),
    sqliteStoredEarly: early(g.sqlite.stored),
    sqliteStoredLate: late(g.sqlite.stored),
    sqliteStoredTotal: sum(g.sqlite.stored),
  };
}

function bundle() {
  const wasm = readFileSync(join(ROOT, 'build/index_bg.wasm'));
  const js = readFileSync(join(ROOT, 'build/index.js'));
  return { wasmBytes: wasm.length, wasmGzipBytes: gzipSync(wasm, { level: 9 }).length, jsBytes: js.length };
}

function langgraph(sampleTurns) {
  const out = spawnSync(join(ROOT, '.venv/bin/python'), [
    join(ROOT, 'bench/langgraph_sqlite.py'), '--turns', String(TURNS),
    '--message-bytes', String(MESSAGE_BYTES), '--sample', sampleTurns.join(','),
  ], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (out.status !== 0) throw new Error(`LangGraph bench failed:\n${out.stderr}`);
  return JSON.parse(out.stdout);
}

async function main() {
  const persistDir = tempPersistDir('bench');
  // The JWT scale simulation's runtime starts now too (it idles until its turn).
  const scaleDir = tempPersistDir('bench-scale');
  const starting = [
    startWorker({ persistDir, vars: { DEV_MODE: 'true' }, env: RUNTIME_ENV }),
    startWorker({ persistDir: scaleDir, env: RUNTIME_ENV, vars: { DEV_MODE: 'true', JWT_SECRET: SCALE_JWT_SECRET, API_KEYS: SCALE_API_KEY } }),
  ];
  const started = await Promise.allSettled(starting);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.filter((s) => s.status === 'fulfilled').map((s) => s.value.kill()));
    throw failed.reason;
  }
  let worker = started[0].value;
  const scaleWorker = started[1].value;
  let results;
  try {
    console.log(`bench: ${TURNS} turns on one thread, ${CLIENTS} clients × ${CLIENT_TURNS} turns, in workerd at ${worker.url}`);
    const cost = await turnCost(worker.url);
    const wake = await wakeCost(persistDir, worker.port, cost.thread, worker);
    worker = wake.worker;
    const tput = await throughput(worker.url);
    const scaleOwnerless = await scaleSim(worker.url, { mode: 'ownerless', ...SCALE });
    const saverTurns = smoke ? 20 : 200;
    const saverRun = spawnSync(join(ROOT, '.venv/bin/python'), [
      join(ROOT, 'bench/saver_growth.py'), '--url', worker.url, '--turns', String(saverTurns),
    ], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (saverRun.status !== 0) throw new Error(`saver bench failed:\n${saverRun.stderr}`);
    const saverGrowth = JSON.parse(saverRun.stdout);
    // The same conversation from LangGraph.js (clients/js), beside its MemorySaver.
    const jsRun = spawnSync(process.execPath, [
      join(ROOT, 'clients/js/bench/saver_growth.mjs'), '--url', worker.url, '--turns', String(saverTurns),
    ], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (jsRun.status !== 0) throw new Error(`JS saver bench failed:\n${jsRun.stderr}`);
    const jsGrowth = JSON.parse(jsRun.stdout);
    const sampleTurns = [...new Set([...cost.storageCurve.map(([t]) => t).filter((t) => t > 0), ...cost.early.map((t) => t - 1)])];
    const theirs = langgraph(sampleTurns);
    const theirDelta = (t) => theirs.bytes_at[t] - theirs.bytes_at[t - 1];
    results = {
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) },
      params: { turns: TURNS, clients: CLIENTS, clientTurns: CLIENT_TURNS, messageBytes: MESSAGE_BYTES, band: BAND, smoke },
      ours: {
        workerMsEarly: mean(cost.timeEarly.map((t) => cost.worker[t - 1])),
        workerMsLate: mean(cost.timeLate.map((t) => cost.worker[t - 1])),
        clientMsEarly: median(cost.timeEarly.map((t) => cost.client[t - 1])),
        clientP99Early: percentile(cost.timeEarly.map((t) => cost.client[t - 1]), 99),
        clientMsLate: median(cost.timeLate.map((t) => cost.client[t - 1])),
        clientP99Late: percentile(cost.timeLate.map((t) => cost.client[t - 1]), 99),
        waitClientMsLate: median(cost.waitMs),
        waitWorkerMsLate: median(cost.waitWorkerMs),
        bytesPerTurnEarly: cost.bytesPerTurnEarly,
        bytesPerTurnLate: cost.bytesPerTurnLate,
        rowsPerTurnEarly: cost.rowsPerTurnEarly,
        rowsPerTurnLate: cost.rowsPerTurnLate,
        rowsReadPerTurnEarly: cost.rowsReadPerTurnEarly,
        rowsReadPerTurnLate: cost.rowsReadPerTurnLate,
        databaseBytesPerTurn: cost.databaseBytesPerTurn,
        totalLogicalBytes: cost.totalLogical,
        databaseSize: cost.databaseSize,
        rawContentBytes: cost.rawContent,
        rawJsonBytes: cost.rawJson,
        tables: cost.tables,
        workerMsPerTurn: cost.worker,
        storageCurve: cost.storageCurve,
      },
      wake: wake.result,
      saver: summarizeSaver(saverGrowth),
      jsSaver: summarizeSaver({ ...jsGrowth, sqlite: jsGrowth.memory }),
      throughput: tput,
      scale: [scaleOwnerless],
      bundle: bundle(),
      langgraph: {
        turnMsEarly: median(cost.timeEarly.map((t) => theirs.turn_ms[t - 1])),
        turnMsLate: median(cost.timeLate.map((t) => theirs.turn_ms[t - 1])),
        bytesPerTurnEarly: median(cost.early.map(theirDelta)),
        bytesPerTurnLate: median(cost.late.map(theirDelta)),
        totalBytes: theirs.total_bytes,
        fileBytes: theirs.file_bytes,
        turnMs: theirs.turn_ms,
        bytesAt: theirs.bytes_at,
      },
    };
    results.scale.push(await scaleSim(scaleWorker.url, { mode: 'jwt', ...SCALE, apiKey: SCALE_API_KEY, jwtSecret: SCALE_JWT_SECRET }));
  } finally {
    await Promise.all([worker.kill(), scaleWorker.kill()]);
    removeDir(persistDir);
    removeDir(scaleDir);
  }
  results.runtime = await runtimeCost();
  if (PEER) results.peer = runPeer({ turns: PEER_TURNS, coldRuns: COLD_RUNS });
  report(results);
  mkdirSync(OUT_DIR, { recursive: true });
  const jsonPath = join(OUT_DIR, `${NAME}.json`);
  writeFileSync(jsonPath, JSON.stringify(results, null, 2));
  const plot = spawnSync(join(ROOT, '.venv/bin/python'), [join(ROOT, 'bench/plot.py'), jsonPath, join(OUT_DIR, `${NAME}.png`)], { encoding: 'utf8' });
  if (plot.status !== 0) throw new Error(`plot failed:\n${plot.stderr}`);
  console.log(`\nwrote ${jsonPath} and ${join(OUT_DIR, `${NAME}.png`)}`);
}

/**
 * workerd's CPU per turn for the release worker (what deploys) and for the floor, in
 * interleaved rounds; then the cold first read of a 1-turn thread of each.
 */
async function runtimeCost() {
  const oursDir = tempPersistDir('bench-cpu');
  const floorDir = tempPersistDir('bench-floor');
  const [ours, floor] = await Promise.all([
    startWorker({ persistDir: oursDir, release: true, env: RUNTIME_ENV }),
    startFloor(floorDir),
  ]);
  const rounds = { ours: [], floor: [] };
  let thread;
  try {
    for (let r = 0; r < ROUNDS; r += 1) {
      rounds.ours.push(await cpuPerTurn(ours, { steadyFrom: STEADY_FROM, steadyTo: STEADY_TO }));
      rounds.floor.push(await cpuPerTurn(floor, { steadyFrom: STEADY_FROM, steadyTo: STEADY_TO }));
    }
    thread = await createThread(ours.url);
    await turn(ours.url, thread, 1);
  } finally {
    await Promise.all([ours.kill(), floor.kill()]);
  }
  try {
    const cold = await coldReads(oursDir, {
      runs: COLD_RUNS,
      path: `/threads/${thread}/state`,
      check: (state) => state.values?.messages?.length === 2,
      startOptions: { release: true },
    });
    const floorCold = await coldReads(floorDir, {
      runs: FLOOR_COLD_RUNS, path: '/threads/floor/state', check: (body) => body.ok, startOptions: { config: FLOOR_CONFIG },
    });
    const med = (xs) => median(xs);
    return {
      rounds,
      window: { early: [1, 11], steady: [STEADY_FROM, STEADY_TO] },
      earlyCpuMs: med(rounds.ours.map((x) => x.earlyMs)),
      steadyCpuMs: med(rounds.ours.map((x) => x.steadyMs)),
      floorEarlyCpuMs: med(rounds.floor.map((x) => x.earlyMs)),
      floorSteadyCpuMs: med(rounds.floor.map((x) => x.steadyMs)),
      coldMs: cold,
      coldMedianMs: med(cold),
      floorColdMs: floorCold,
      floorColdMedianMs: med(floorCold),
    };
  } finally {
    removeDir(oursDir);
    removeDir(floorDir);
  }
}

const pct = (x) => `${(100 * x).toFixed(2)}%`;

// The peer's reference figures (../shared/peers/cf-agents/README.md: turns 2–11, 1-turn
// chat), for the budget lines of a run without --peer.
const PEER_REFERENCE = { earlyCpuMs: 15.7, coldSmallMs: 75, source: ', the peer README\'s figure: run with --peer to measure it here' };

function reportRuntime(r) {
  const rt = r.runtime;
  const p = r.peer;
  const [from, to] = rt.window.steady;
  console.log(`\nruntime CPU per turn: workerd's process CPU (/proc/<pid>/task/*/schedstat, wrangler's process group), local observability and explorer off; runs/stream turns of 200 B; release build; median of ${ROUNDS} interleaved round(s)`);
  const ms = (x, d) => (Number.isFinite(x) ? `${x.toFixed(d)} ms` : 'n/a');
  const rows = [
    ['', 'early: turns 2–11', `steady: turns ${from + 1}–${to}`, 'cold first read, 1-turn thread'],
    ['edge-memory', ms(rt.earlyCpuMs, 2), ms(rt.steadyCpuMs, 2), `${ms(rt.coldMedianMs, 1)} (runs: ${rt.coldMs.map((x) => x.toFixed(0)).join(', ')})`],
    ['floor: Worker → DO answering a constant', ms(rt.floorEarlyCpuMs, 2), ms(rt.floorSteadyCpuMs, 2), ms(rt.floorColdMedianMs, 1)],
  ];
  if (p) {
    rows.push([`AIChatAgent (peer; steady: turns ${p.steadyWindow[0] + 1}–${p.steadyWindow[1]})`, ms(p.earlyCpuMs, 2), ms(p.steadyCpuMs, 2), ms(p.coldSmallMs, 1)]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c]).length)));
  for (const row of rows) console.log(`  ${row.map((cell, c) => String(cell).padEnd(widths[c])).join('  ')}`);
  console.log(`  above the floor: ${fmt(rt.earlyCpuMs - rt.floorEarlyCpuMs, 2)} ms early, ${fmt(rt.steadyCpuMs - rt.floorSteadyCpuMs, 2)} ms steady; cold read: time to the first answer after wrangler prints "Ready on", no request before it`);
  const o = r.ours;
  console.log(`rows per turn (the thread object's SQL cursors, turns ${TURNS - BAND + 1}–${TURNS}): ${fmt(o.rowsPerTurnLate, 0)} written, ${fmt(o.rowsReadPerTurnLate, 0)} read${p ? `; AIChatAgent: ${fmt(p.rowsWrittenPerTurn, 0)} written, ${fmt(p.rowsReadPerTurn, 0)} read` : ''}`);
  if (p) console.log(`peer: ${p.dir} (agents ${p.versions.agents}, wrangler ${p.versions.wrangler}, workerd ${p.versions.workerd})`);
  return p ? { ...p, source: ', measured in this run' } : PEER_REFERENCE;
}

function reportCost(r) {
  const o = r.ours;
  const rt = r.runtime;
  const ownerless = r.scale.find((sc) => sc.mode === 'ownerless');
  // Per turn: the thread's object, and its directory update (sent after the run when turns
  // are more than 10 s apart, as a person's often are; coalesced to fewer when faster).
  const objectRequests = 2;
  const base = {
    cpuMs: rt.steadyCpuMs,
    objectRequests,
    rowsRead: o.rowsReadPerTurnLate,
    // The thread object's rows, plus the directory's amortized over the scale run's turns.
    rowsWritten: o.rowsPerTurnLate + (ownerless?.directoryRowsWrittenPerTurn ?? 0),
    storedBytes: o.databaseBytesPerTurn,
  };
  console.log('\ncost per million turns at list prices (Workers Paid, before included amounts):');
  const tables = printCostTable({
    'built-in responder': { ...base, activeMs: o.workerMsLate },
    [`model streaming ${MODEL_STREAM_MS / 1000} s`]: { ...base, activeMs: MODEL_STREAM_MS + o.workerMsLate },
  });
  console.log(`  CPU: all of workerd's steady-state CPU per turn, billed as Workers CPU (Durable Objects bill duration, not CPU: an upper bound).`);
  console.log(`  Object requests: the thread's object + its directory shard update (≤ 1 per 10 s per thread for turns; the scale simulation's back-to-back turns measured ${fmt(ownerless.directoryRequestsPerTurn, 2)} directory and ${fmt(ownerless.objectRequestsPerTurn, 2)} object requests per turn in all, creation and alarms included).`);
  console.log(`  Duration: the object is billed while active; built-in responder: the run's wall time in the object (${fmt(o.workerMsLate, 2)} ms); with a model, the run awaits the model inside the thread's object, so its ${MODEL_STREAM_MS / 1000} s stream is billed as object duration (a design that called the model from the stateless Worker and only stored the input and the reply in the object would not pay it).`);
  console.log(`  Rows: the thread object's cursors plus its directory shard's writes amortized per turn (${fmt(ownerless?.directoryRowsWrittenPerTurn ?? 0, 2)}, from the ownerless scale run). Storage: database growth per turn (${fmt(o.databaseBytesPerTurn, 0)} B) kept for one month.`);
  return tables;
}

function reportScale(r) {
  console.log('\nscale simulation (hot spots): share of all Durable Object requests (threads + directory shards, search fan-out included) served by the busiest single object');
  for (const sc of r.scale) {
    const who = sc.mode === 'jwt' ? `${sc.users} JWT users (a directory shard each)` : `ownerless threads (${sc.shards} hashed shared shards)`;
    console.log(`  ${sc.mode}: ${sc.threads} threads × ${sc.turns} turns from ${sc.clients} clients, ${who}, ${sc.searches} searches/counts: ${fmt(sc.turnsPerSecond, 1)} turns/s; ${sc.totalRequests} object requests (${fmt(sc.objectRequestsPerTurn, 2)} per turn, directory ${fmt(sc.directoryRequestsPerTurn, 2)}; directory rows written ${fmt(sc.directoryRowsWrittenPerTurn, 2)} per turn); largest share ${pct(sc.maxShare)} (${sc.busiest}); busiest thread ${pct(sc.maxThreadShare)}, busiest shard ${pct(sc.maxShardShare)}${sc.threadsUndercounted ? `; ${sc.threadsUndercounted} thread(s) evicted before their count was read (share overstated)` : ''}${sc.shardRestarts ? `; ${sc.shardRestarts} shard restart(s) carried over` : ''}`);
  }
}

function report(r) {
  const o = r.ours;
  const l = r.langgraph;
  const early = `turns 2–${TIME_BAND + 1} (2–${BAND + 1} for bytes)`;
  const late = `turns ${TURNS - TIME_BAND + 1}–${TURNS} (${TURNS - BAND + 1}– for bytes)`;
  const rows = [
    ['metric', early, late, 'late / early'],
    ['worker ms per turn (mean, in the DO)', fmt(o.workerMsEarly), fmt(o.workerMsLate), fmt(o.workerMsLate / o.workerMsEarly, 2)],
    ['client ms per turn, runs/stream (median)', fmt(o.clientMsEarly), fmt(o.clientMsLate), fmt(o.clientMsLate / o.clientMsEarly, 2)],
    ['client ms per turn, runs/stream (p99)', fmt(o.clientP99Early), fmt(o.clientP99Late), fmt(o.clientP99Late / o.clientP99Early, 2)],
    ['bytes written per turn (logical)', fmt(o.bytesPerTurnEarly, 0), fmt(o.bytesPerTurnLate, 0), fmt(o.bytesPerTurnLate / o.bytesPerTurnEarly, 2)],
    ['rows written per turn', fmt(o.rowsPerTurnEarly, 0), fmt(o.rowsPerTurnLate, 0), fmt(o.rowsPerTurnLate / o.rowsPerTurnEarly, 2)],
    ['LangGraph SqliteSaver ms per turn (median)', fmt(l.turnMsEarly), fmt(l.turnMsLate), fmt(l.turnMsLate / l.turnMsEarly, 2)],
    ['LangGraph SqliteSaver bytes per turn', fmt(l.bytesPerTurnEarly, 0), fmt(l.bytesPerTurnLate, 0), fmt(l.bytesPerTurnLate / l.bytesPerTurnEarly, 2)],
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c]).length)));
  console.log('');
  for (const row of rows) console.log(row.map((cell, c) => String(cell).padEnd(widths[c])).join('  '));
  console.log(`\nruns/wait at the end (returns the whole ${TURNS * 2}-message state): client ${fmt(o.waitClientMsLate)} ms, worker ${fmt(o.waitWorkerMsLate)} ms`);
  console.log(`storage after ${TURNS} turns: ${o.totalLogicalBytes} logical bytes, database file ${o.databaseSize} bytes; raw message content ${o.rawContentBytes} bytes (as JSON ${o.rawJsonBytes})`);
  console.log(`  ratios: logical / content ${fmt(o.totalLogicalBytes / o.rawContentBytes, 2)}, database / content ${fmt(o.databaseSize / o.rawContentBytes, 2)}, logical / message JSON ${fmt(o.totalLogicalBytes / o.rawJsonBytes, 2)}`);
  console.log(`LangGraph SqliteSaver after ${TURNS} turns: ${l.totalBytes} bytes of checkpoints, file ${l.fileBytes} bytes`);
  console.log(`wake (fresh runtime, ${r.wake.messages}-message thread): first GET /state ${fmt(r.wake.firstStateMs)} ms reading ${r.wake.firstStateRowsRead} rows; first turn ${fmt(r.wake.firstTurnMs)} ms (worker ${fmt(r.wake.firstTurnWorkerMs)} ms) reading ${r.wake.firstTurnRowsRead} rows`);
  console.log(`throughput: ${r.throughput.clients} clients on ${r.throughput.clients} threads, ${r.throughput.turns} turns: ${fmt(r.throughput.turnsPerSecond, 1)} turns/s, p50 ${fmt(r.throughput.p50)} ms, p99 ${fmt(r.throughput.p99)} ms`);
  console.log(`bundle: wasm ${r.bundle.wasmBytes} bytes raw, ${r.bundle.wasmGzipBytes} gzip; JS glue ${r.bundle.jsBytes} bytes`);
  console.log(`ours / LangGraph: turn cost at the end ${fmt(o.workerMsLate / l.turnMsLate, 3)} (worker ms / invoke ms), bytes per turn at the end ${fmt(o.bytesPerTurnLate / l.bytesPerTurnLate, 4)}`);
  const sv = r.saver;
  console.log(`\nLangGraph MessagesState, ${sv.turns} turns (turns 1–${sv.band} vs ${sv.turns - sv.band + 1}–${sv.turns}, medians per turn):`);
  console.log(`  EdgeMemorySaver: stored ${fmt(sv.storedEarly, 0)} → ${fmt(sv.storedLate, 0)} bytes, sent ${fmt(sv.sentEarly, 0)} → ${fmt(sv.sentLate, 0)} bytes, ${sv.requestsPerTurn} HTTP requests per turn; total stored ${sv.storedTotal}`);
  console.log(`  SqliteSaver:     stored ${fmt(sv.sqliteStoredEarly, 0)} → ${fmt(sv.sqliteStoredLate, 0)} bytes; total stored ${sv.sqliteStoredTotal}`);
  const js = r.jsSaver;
  console.log(`LangGraph.js MessagesAnnotation, ${js.turns} turns (same bands):`);
  console.log(`  EdgeMemorySaver (JS): stored ${fmt(js.storedEarly, 0)} → ${fmt(js.storedLate, 0)} bytes, sent ${fmt(js.sentEarly, 0)} → ${fmt(js.sentLate, 0)} bytes, ${js.requestsPerTurn} HTTP requests per turn; total stored ${js.storedTotal}`);
  console.log(`  MemorySaver (serialized): ${fmt(js.sqliteStoredEarly, 0)} → ${fmt(js.sqliteStoredLate, 0)} bytes; total ${js.sqliteStoredTotal}`);
  console.log(`machine: ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB`);
  const peerRef = reportRuntime(r);
  r.cost = reportCost(r);
  reportScale(r);
  console.log('');
  const budget = (ok, text) => console.log(`${ok ? 'PASS' : 'FAIL'}: ${text}`);
  const rt = r.runtime;
  budget(rt.steadyCpuMs <= 3, `runtime CPU per turn at steady state ≤ 3 ms (${fmt(rt.steadyCpuMs, 2)} ms)`);
  budget(rt.earlyCpuMs <= peerRef.earlyCpuMs, `runtime CPU per turn over turns 2–11 ≤ the peer's (${fmt(rt.earlyCpuMs, 2)} ms vs ${fmt(peerRef.earlyCpuMs, 2)} ms${peerRef.source})`);
  budget(rt.coldMedianMs <= peerRef.coldSmallMs, `cold first read of a 1-turn thread ≤ the peer's (${fmt(rt.coldMedianMs, 1)} ms vs ${fmt(peerRef.coldSmallMs, 1)} ms${peerRef.source})`);
  for (const sc of r.scale) {
    budget(sc.maxShare < 0.01, `${sc.mode} scale simulation: no object served 1% of all object requests (largest share ${pct(sc.maxShare)}, ${sc.busiest})`);
  }
  const directoryRows = r.scale.find((sc) => sc.mode === 'ownerless')?.directoryRowsWrittenPerTurn ?? 0;
  const allRows = o.rowsPerTurnLate + directoryRows;
  budget(allRows <= 4, `rows written per turn ≤ 4 in all (${fmt(allRows, 2)}: the thread object's ${fmt(o.rowsPerTurnLate, 0)}, its run record included, and its directory shard's ${fmt(directoryRows, 2)} amortized over the ownerless scale run's ${SCALE.turns}-turn threads)`);
  budget(o.workerMsLate <= 1.3 * o.workerMsEarly, `worker time per turn at the end within 1.3× of the start (${fmt(o.workerMsLate / o.workerMsEarly, 2)}×)`);
  budget(o.bytesPerTurnLate <= 1.1 * o.bytesPerTurnEarly, `bytes written per turn at the end within 1.1× of the start (${fmt(o.bytesPerTurnLate / o.bytesPerTurnEarly, 2)}×)`);
  budget(o.totalLogicalBytes <= 2 * o.rawContentBytes, `storage after ${TURNS} turns at most 2× the raw message content (${fmt(o.totalLogicalBytes / o.rawContentBytes, 2)}×)`);
  budget(sv.storedLate <= 1.1 * sv.storedEarly, `EdgeMemorySaver bytes stored per turn, late within 1.1× of early (${fmt(sv.storedLate / sv.storedEarly, 2)}×)`);
  budget(sv.sentLate <= 1.1 * sv.sentEarly, `EdgeMemorySaver bytes sent per turn, late within 1.1× of early (${fmt(sv.sentLate / sv.sentEarly, 2)}×)`);
  budget(r.jsSaver.storedLate <= 1.1 * r.jsSaver.storedEarly, `EdgeMemorySaver (JS) bytes stored per turn, late within 1.1× of early (${fmt(r.jsSaver.storedLate / r.jsSaver.storedEarly, 2)}×)`);
  budget(r.jsSaver.sentLate <= 1.1 * r.jsSaver.sentEarly, `EdgeMemorySaver (JS) bytes sent per turn, late within 1.1× of early (${fmt(r.jsSaver.sentLate / r.jsSaver.sentEarly, 2)}×)`);
  budget(r.bundle.wasmGzipBytes < 400 * 1024, `release wasm gzip under 400 KB (${(r.bundle.wasmGzipBytes / 1024).toFixed(1)} KB)`);
  if (smoke) console.log('(smoke run: budgets are printed, not meant to hold at this size)');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
