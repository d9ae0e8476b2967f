// LangGraph.js and LangChain.js apps in separate Node processes on one thread, across a
// restart of the runtime (SIGKILL of wrangler and workerd, then a new one on the same
// storage): the second process remembers what the first one said.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';

import { api, removeDir, startWorker, tempPersistDir } from '../../../tests/e2e/harness.mjs';

const run = promisify(execFile);
let worker;
let persistDir;

before(async () => {
  persistDir = tempPersistDir('js-processes');
  worker = await startWorker({ persistDir });
});

after(async () => {
  await worker?.kill();
  removeDir(persistDir);
});

/** Runs `test/apps/<app>` in a new Node process; its one JSON line. */
async function inProcess(app, ...args) {
  const { stdout } = await run(process.execPath, [new URL(`apps/${app}`, import.meta.url).pathname, worker.url, ...args]);
  return JSON.parse(stdout.trim().split('\n').at(-1));
}

async function restart() {
  await worker.kill();
  worker = await startWorker({ persistDir });
}

test('a LangGraph.js graph in two Node processes remembers across a runtime restart', { timeout: 180_000 }, async () => {
  const thread = `js-graph-${Date.now()}`;
  const first = await inProcess('turn.mjs', thread, 'remember the door code is 4711');
  assert.equal(first.count, 2);
  await restart();
  const second = await inProcess('turn.mjs', thread, 'recall');
  assert.equal(second.reply, 'I remember: the door code is 4711');
  assert.equal(second.count, 6, 'human, ai, human, ai with a tool call, tool, ai');
  // Another thread does not see it.
  const other = await inProcess('turn.mjs', `${thread}-other`, 'recall');
  assert.equal(other.reply, 'I remember: nothing');
});

test('RunnableWithMessageHistory over EdgeMemoryChatMessageHistory in two processes', { timeout: 180_000 }, async () => {
  const session = `js-history-${Date.now()}`;
  const first = await inProcess('history_turn.mjs', session, 'my name is Ada');
  assert.equal(first.reply, 'You said "my name is Ada"; before that: nothing');
  await restart();
  const second = await inProcess('history_turn.mjs', session, 'what is my name?');
  assert.equal(second.reply, 'You said "what is my name?"; before that: my name is Ada');
  // Stored in the chat API's thread format: the same conversation at /state.
  const state = await api(worker.url, 'GET', `/threads/${session}/state`);
  assert.deepEqual(state.body.values.messages.map((m) => [m.type, m.content]), [
    ['human', 'my name is Ada'], ['ai', first.reply], ['human', 'what is my name?'], ['ai', second.reply],
  ]);
});
