// Flat bytes per turn: a LangGraph.js MessagesAnnotation conversation on EdgeMemorySaver
// stores and sends as many bytes at its end as at its start (late/early ≤ 1.1×, medians
// of 10 turns), where MemorySaver's serialized checkpoints grow with the thread. Counts
// bytes, never time. `make bench` prints the 200-turn figures (bench/run.mjs).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { removeDir, startWorker, tempPersistDir } from '../../../tests/e2e/harness.mjs';

const TURNS = 60;
const BAND = 10;
let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('js-growth');
  worker = await startWorker({ persistDir, vars: { DEV_MODE: 'true' } });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ends = (xs) => [median(xs.slice(0, BAND)), median(xs.slice(-BAND))];

test(`${TURNS} LangGraph.js turns store and send flat bytes per turn`, { timeout: 300_000 }, async () => {
  const script = new URL('../bench/saver_growth.mjs', import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(process.execPath, [script, '--url', worker.url, '--turns', String(TURNS)],
    { maxBuffer: 16 * 1024 * 1024 });
  const growth = JSON.parse(stdout);
  const [storedEarly, storedLate] = ends(growth.ours.stored);
  const [sentEarly, sentLate] = ends(growth.ours.sent);
  const [memoryEarly, memoryLate] = ends(growth.memory.stored);
  console.log(`bytes per turn, early → late: stored ${storedEarly} → ${storedLate}, sent ${sentEarly} → ${sentLate}; MemorySaver ${memoryEarly} → ${memoryLate}`);
  assert.ok(storedLate <= 1.1 * storedEarly, `stored per turn ${storedEarly} → ${storedLate}`);
  assert.ok(sentLate <= 1.1 * sentEarly, `sent per turn ${sentEarly} → ${sentLate}`);
  // The first turn also creates the thread (POST /threads); then 6 requests a turn.
  assert.deepEqual(new Set(growth.ours.requests.slice(1)), new Set([6]), 'HTTP requests per turn after the first');
  // The contrast that makes the test able to fail: whole-list checkpoints grow.
  assert.ok(memoryLate > 5 * memoryEarly, `MemorySaver per turn ${memoryEarly} → ${memoryLate}`);
});
