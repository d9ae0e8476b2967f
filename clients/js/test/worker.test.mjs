// Inside a Worker: a LangGraph.js app Worker (test/worker/) bound to edge-memory by a
// service binding in the same local workerd (two configs, one `wrangler dev`): turns
// remember, across a SIGKILL of the runtime and a restart; another thread does not see
// them; the negative control, MemorySaver, forgets at the restart.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { removeDir, startWorker, tempPersistDir } from '../../../tests/e2e/harness.mjs';

const CONFIGS = ['wrangler.toml', 'edge-memory.toml'].map((name) => fileURLToPath(new URL(`worker/${name}`, import.meta.url)));
let app;
let persistDir;

const start = () => startWorker({ persistDir, config: CONFIGS });

before(async () => {
  persistDir = tempPersistDir('js-worker');
  app = await start();
});

after(async () => {
  await app?.kill();
  removeDir(persistDir);
});

async function turn(saver, thread, text) {
  const res = await fetch(app.url, { method: 'POST', body: JSON.stringify({ saver, thread, text }) });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

test('a LangGraph.js Worker keeps its checkpoints in edge-memory through a service binding', { timeout: 240_000 }, async () => {
  const thread = `worker-${Date.now()}`;
  assert.equal((await turn('edge', thread, 'remember the door code is 4711')).count, 2);
  assert.equal((await turn('edge', thread, 'remember the cat is Tom')).count, 4);
  assert.equal((await turn('memory', thread, 'remember the door code is 4711')).count, 2);
  assert.equal((await turn('memory', thread, 'recall')).reply, 'I remember: the door code is 4711');

  await app.kill(); // SIGKILL of wrangler and workerd
  app = await start();

  const third = await turn('edge', thread, 'recall');
  assert.equal(third.reply, 'I remember: the door code is 4711, the cat is Tom');
  assert.equal(third.count, 8);
  assert.equal((await turn('edge', `${thread}-other`, 'recall')).reply, 'I remember: nothing');
  // Negative control: MemorySaver lived in the killed isolate.
  const forgot = await turn('memory', thread, 'recall');
  assert.equal(forgot.reply, 'I remember: nothing');
  assert.equal(forgot.count, 4);
});
