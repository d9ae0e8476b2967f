// The package as users get it: `npm pack` of clients/js installs in a fresh folder (with
// its peer dependencies, pinned) and runs there, against the worker in workerd; its
// declarations type-check against LangGraph.js (tsc).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { removeDir, startWorker, tempPersistDir } from '../../../tests/e2e/harness.mjs';

const run = promisify(execFile);
const CLIENT_DIR = fileURLToPath(new URL('..', import.meta.url));
const PEERS = ['@langchain/core@1.4.0', '@langchain/langgraph-checkpoint@1.2.2'];
let worker;
let persistDir;
let folder;

before(async () => {
  persistDir = tempPersistDir('js-package');
  folder = mkdtempSync(join(tmpdir(), 'edge-memory-js-pack-'));
  worker = await startWorker({ persistDir });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
  removeDir(folder);
});

test('declarations type-check against LangGraph.js', { timeout: 120_000 }, async () => {
  await run(process.execPath, [join(CLIENT_DIR, 'node_modules/typescript/bin/tsc'), '-p', join(CLIENT_DIR, 'test/types/tsconfig.json')]);
});

test('npm pack installs and runs in a fresh folder', { timeout: 300_000 }, async () => {
  const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', folder], { cwd: CLIENT_DIR });
  const tarball = join(folder, stdout.trim().split('\n').at(-1));
  writeFileSync(join(folder, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true, type: 'module' }));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, ...PEERS], { cwd: folder });
  writeFileSync(join(folder, 'app.mjs'), `
    import { EdgeMemorySaver, EdgeMemoryChatMessageHistory } from '@edge-memory/langgraph';
    import { emptyCheckpoint } from '@langchain/langgraph-checkpoint';
    import { HumanMessage } from '@langchain/core/messages';
    const url = process.argv[2];
    const saver = new EdgeMemorySaver({ url });
    const config = { configurable: { thread_id: 'packed-' + Date.now(), checkpoint_ns: '' } };
    const stored = await saver.put(config, { ...emptyCheckpoint(), channel_values: { n: 1 }, channel_versions: { n: 1 } }, { source: 'input', step: -1 }, { n: 1 });
    const tuple = await saver.getTuple(stored);
    const history = new EdgeMemoryChatMessageHistory({ url, sessionId: 'packed-history-' + Date.now() });
    await history.addMessages([new HumanMessage('hello')]);
    console.log(JSON.stringify({ n: tuple.checkpoint.channel_values.n, said: (await history.getMessages())[0].content }));
  `);
  const out = await run(process.execPath, [join(folder, 'app.mjs'), worker.url], { cwd: folder });
  assert.deepEqual(JSON.parse(out.stdout.trim()), { n: 1, said: 'hello' });
});
