// One wire format: a thread written by the JavaScript saver is continued by the Python
// saver (clients/python) and the reverse, with the same graph in each language
// (test/apps/graph.mjs, test/apps/py_turn.py); both read the same state.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { ROOT, removeDir, startWorker, tempPersistDir } from '../../../tests/e2e/harness.mjs';

const run = promisify(execFile);
const PYTHON = join(ROOT, '.venv/bin/python');
let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('js-cross-language');
  worker = await startWorker({ persistDir });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

async function turnIn(language, thread, said) {
  const [command, script] = language === 'js'
    ? [process.execPath, new URL('apps/turn.mjs', import.meta.url).pathname]
    : [PYTHON, new URL('apps/py_turn.py', import.meta.url).pathname];
  const { stdout } = await run(command, [script, worker.url, thread, said]);
  return JSON.parse(stdout.trim().split('\n').at(-1));
}

for (const [first, second] of [['js', 'python'], ['python', 'js']]) {
  test(`a thread written by the ${first} saver is continued by the ${second} saver`, { timeout: 120_000 }, async () => {
    const thread = `cross-${first}-${Date.now()}`;
    await turnIn(first, thread, 'remember the door code is 4711');
    const continued = await turnIn(second, thread, 'remember the cat is Tom');
    assert.equal(continued.reply, 'Noted (3 messages so far): remember the cat is Tom');
    const back = await turnIn(first, thread, 'recall');
    assert.equal(back.reply, 'I remember: the door code is 4711, the cat is Tom');
    // Both languages read the same state: message types, texts and ids, in order.
    const again = await turnIn(second, thread, 'recall');
    assert.equal(again.count, back.count + 4);
    assert.deepEqual(again.messages.slice(0, back.count), back.messages);
  });
}
