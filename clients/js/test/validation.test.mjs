// LangGraph's own checkpointer validation suite (@langchain/langgraph-checkpoint-validation,
// pinned) on EdgeMemorySaver against the built worker in real workerd: every test it runs
// by default passes, counted per spec.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { startVitest } from 'vitest/node';

import { removeDir, startWorker, tempPersistDir } from '../../../tests/e2e/harness.mjs';

const CLIENT_DIR = fileURLToPath(new URL('..', import.meta.url));
// What the suite (1.1.1) runs by default, per spec: 718 tests.
const EXPECTED = {
  '#put': 22,
  '#putWrites': 6,
  '#getTuple': 40,
  '#list': 649,
  '#deleteThread': 1,
};

let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('js-validation');
  worker = await startWorker({ persistDir });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

/** Every test of a vitest task tree, with the spec (`...#put`) it belongs to. */
function* testsOf(task, spec = undefined) {
  const name = task.name?.match(/#\w+$/)?.[0] ?? spec;
  if (task.type === 'test') yield { spec: name, state: task.result?.state, name: task.name, errors: task.result?.errors };
  for (const child of task.tasks ?? []) yield* testsOf(child, name);
}

test('LangGraph.js checkpoint validation suite passes on EdgeMemorySaver in workerd', { timeout: 600_000 }, async () => {
  process.env.EDGE_MEMORY_URL = worker.url;
  const vitest = await startVitest('test', ['test/validation.spec.mjs'], {
    root: CLIENT_DIR, globals: true, watch: false, reporters: ['dot'],
  });
  const tests = vitest.state.getFiles().flatMap((file) => [...testsOf(file)]);
  await vitest.close();
  const counts = {};
  for (const { spec, state } of tests) {
    counts[spec] ??= { pass: 0, fail: 0, skip: 0 };
    counts[spec][state === 'pass' ? 'pass' : state === 'fail' ? 'fail' : 'skip'] += 1;
  }
  console.log(`validation suite per spec: ${JSON.stringify(counts)}`);
  const failed = tests.filter((t) => t.state !== 'pass');
  assert.deepEqual(failed.map((t) => `${t.spec} ${t.name}: ${t.errors?.[0]?.message}`), []);
  assert.deepEqual(
    Object.fromEntries(Object.entries(counts).map(([spec, c]) => [spec, c.pass])),
    EXPECTED,
  );
});
