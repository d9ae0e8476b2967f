// `npx @edge-memory/langgraph doctor URL [--api-key K | --token T] [--state FILE]`: the articles'
// integration test against a live deployment, as the Python package's
// `python -m edge_memory doctor` runs it: two invocations of a one-node LangGraph.js graph
// on one fresh thread with a stable id (the second must see the first), the checkpoint
// read back over a fresh saver, a second thread isolated, the amnesia guard, `/info`'s
// storage backend and `GET /diagnostics`. Prints the symptom map with ✓/✗ per row and the
// fix for each ✗; exit status 1 on any ✗, 2 when the worker cannot be asked.
// `--state FILE` keeps the probe thread between runs: the next run checks it is still
// there (memory that outlived a restart or a redeploy), then deletes it.
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import { EdgeMemoryError, HINTS, HINT_HEADER } from './http.js';
import { EdgeMemorySaver } from './saver.js';

const ISOLATION = 'Random behavior across requests';
/** The symptom map, in the articles' order: [symptom, likely cause, hint code]. */
const ROWS = [
  ['Works locally only', 'memory kept in the process, lost on restart', 'ephemeral_memory'],
  ["First message persists, second doesn't", 'missing or changing thread_id', 'thread_id_not_stable'],
  [ISOLATION, 'several workers, each with its own memory', null],
  ["Checkpoints exist but aren't used", 'wrong config path or thread identity', 'checkpoints_unread'],
  ['A new conversation on every request', 'a new thread made per message', 'new_thread_per_request'],
];
const ISOLATION_FIX = 'keep conversation state in one shared store: every worker must talk to the same edge-memory URL (never a per-process MemorySaver)';

/** The checks against one deployment, as one client; `run()` answers the exit status. */
export class Doctor {
  constructor({ url, apiKey, token, stateFile, out = process.stdout }) {
    this.stateFile = stateFile;
    this.url = String(url).replace(/\/+$/, '');
    this.credentials = { url: this.url, apiKey, token };
    this.headers = { 'content-type': 'application/json' };
    if (apiKey) this.headers['x-api-key'] = apiKey;
    if (token) this.headers.authorization = `Bearer ${token}`;
    this.out = out;
    this.rows = new Map(ROWS.map(([symptom, cause, code]) => [code ?? symptom, { symptom, cause, code, problems: [], notes: [] }]));
    this.hintsSeen = new Set();
  }

  check(key, ok, good, bad) {
    const row = this.rows.get(key);
    (ok ? row.notes : row.problems).push(ok ? good : bad);
  }

  async call(method, path, body, { noteHints = true } = {}) {
    const res = await fetch(`${this.url}${path}`, { method, headers: this.headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (noteHints) this.note(res.headers.get(HINT_HEADER));
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    return { status: res.status, body: json, text, headers: res.headers };
  }

  note(header) {
    for (const code of (header ?? '').split(',').map((c) => c.trim()).filter(Boolean)) this.hintsSeen.add(code);
  }

  async run() {
    let info;
    try {
      info = await this.call('GET', '/info');
    } catch (error) {
      this.out.write(`edge-memory doctor: cannot check ${this.url}: ${error.message}\n`);
      return 2;
    }
    if (info.status !== 200) {
      this.out.write(`edge-memory doctor: cannot check ${this.url}: GET /info answered ${info.status} ${info.text.slice(0, 200)}\n`);
      return 2;
    }
    const backend = info.body.storage_backend;
    const ephemeral = backend === 'memory' && !info.body.dev_mode;
    this.check('ephemeral_memory', !ephemeral, `storage_backend is ${backend}`, `storage_backend is ${backend}: every thread is lost when the worker restarts`);
    if (this.stateFile) await this.previousProbe();
    const probe = await this.conversation();
    await this.guard();
    await this.diagnostics();
    if (this.stateFile && probe) writeFileSync(this.stateFile, JSON.stringify({ ...probe, written_at: new Date().toISOString() }));
    for (const code of this.hintsSeen) {
      if (this.rows.has(code)) this.check(code, false, '', `the server returned hint ${code} (${HINT_HEADER})`);
    }
    return this.report(info.body) ? 1 : 0;
  }

  /** The probe thread of the doctor's last run (`--state`), if any, must still be there. */
  async previousProbe() {
    if (!existsSync(this.stateFile)) return;
    const previous = JSON.parse(readFileSync(this.stateFile, 'utf8'));
    const found = previous.api === 'runs' ? await this.probeRunsThere(previous) : await this.probeSaverThere(previous);

    this.check('ephemeral_memory', found,
      `the probe thread of the last run (${previous.written_at}) is still there`,
      `the probe thread ${previous.thread_id} written by the last run (${previous.written_at}) is gone: memory did not survive`);
  }

  /** Whether a probe thread written through the saver is still there; deletes it. */
  async probeSaverThere({ thread_id: thread, checkpoint_id: head }) {
    const saver = new EdgeMemorySaver(this.credentials);
    let found = false;
    try {
      found = (await saver.getTuple({ configurable: { thread_id: thread, checkpoint_ns: '', checkpoint_id: head } })) !== undefined;
      if (found) await saver.deleteThread(thread);
    } catch (error) {
      if (!(error instanceof EdgeMemoryError)) throw error;
    }
    for (const code of saver.http.hints.seen) this.hintsSeen.add(code);
    return found;
  }

  /** Whether a probe thread written through runs is still there; deletes it. */
  async probeRunsThere({ thread_id: thread, checkpoint_id: head }) {
    const found = (await this.call('GET', `/threads/${thread}/state/${head}`)).status === 200;
    if (found) await this.call('DELETE', `/threads/${thread}`);
    return found;
  }

  /** Two invocations on one stable thread id, read back over a fresh saver; a second
   * thread isolated. The probe thread's id and head, for `--state`. */
  async conversation() {
    const { END, MessagesAnnotation, START, StateGraph } = await import('@langchain/langgraph');
    const { AIMessage, HumanMessage } = await import('@langchain/core/messages');
    const isHuman = (m) => (m.type ?? m._getType?.()) === 'human';
    const reply = (state) => ({ messages: [new AIMessage(`I have seen ${state.messages.filter(isHuman).length} of your messages`)] });
    const saver = new EdgeMemorySaver(this.credentials);
    const graph = new StateGraph(MessagesAnnotation).addNode('reply', reply).addEdge(START, 'reply').addEdge('reply', END).compile({ checkpointer: saver });
    const thread = `doctor-${randomUUID()}`;
    const other = `doctor-${randomUUID()}`;
    const humans = (state) => state.messages.filter(isHuman).map((m) => m.content);
    try {
      const config = { configurable: { thread_id: thread } };
      await graph.invoke({ messages: [new HumanMessage('My name is Sam')] }, config);
      const second = await graph.invoke({ messages: [new HumanMessage("What's my name?")] }, config);
      const head = (await graph.getState(config)).config.configurable.checkpoint_id;
      const lone = await graph.invoke({ messages: [new HumanMessage('Hello')] }, { configurable: { thread_id: other } });
      await saver.deleteThread(other);
      const fresh = new EdgeMemorySaver(this.credentials);
      const read = await fresh.getTuple({ configurable: { thread_id: thread, checkpoint_ns: '' } });
      for (const s of [saver, fresh]) for (const code of s.http.hints.seen) this.hintsSeen.add(code);
      this.judge(humans(second), head, read?.config.configurable.checkpoint_id, humans(lone));
      return { api: 'saver', thread_id: thread, checkpoint_id: head };
    } catch (error) {
      if (!(error instanceof EdgeMemoryError)) throw error;
      // No checkpointer storage on this backend: the same test through runs.
      if (error.code === 'unsupported') return this.conversationViaRuns();
      for (const key of ['thread_id_not_stable', ISOLATION, 'checkpoints_unread']) this.check(key, false, '', `the saver failed: ${error.message}`);
      return null;
    }
  }

  /** The conversation checks through the runs API, on the deployment's own model. */
  async conversationViaRuns() {
    const thread = `doctor-${randomUUID()}`;
    const other = `doctor-${randomUUID()}`;
    const run = (id, content) => this.call('POST', `/threads/${id}/runs/wait`, {
      assistant_id: 'agent', if_not_exists: 'create', input: { messages: [{ role: 'user', content }] },
    });
    const humans = (values) => (values?.messages ?? []).filter((m) => m.type === 'human').map((m) => m.content);
    const answers = [await run(thread, 'My name is Sam'), await run(thread, "What's my name?"), await run(other, 'Hello')];
    const failed = answers.find((a) => a.status !== 200);
    if (failed) {
      for (const key of ['thread_id_not_stable', ISOLATION, 'checkpoints_unread']) this.check(key, false, '', `a run answered ${failed.status}: ${failed.text.slice(0, 200)}`);
      return null;
    }
    const head = answers[1].headers.get('x-thread-head');
    const state = await this.call('GET', `/threads/${thread}/state`);
    const readId = state.status === 200 ? state.body?.checkpoint?.checkpoint_id : undefined;
    await this.call('DELETE', `/threads/${other}`);
    this.judge(humans(answers[1].body), head, readId, humans(answers[2].body));
    return { api: 'runs', thread_id: thread, checkpoint_id: head ?? '' };
  }

  /** The conversation's rows: what the second invocation saw, whether a fresh
   * connection read back the conversation's head, what a second thread saw. */
  judge(seen, head, readId, lone) {
    const both = seen.length === 2 && seen[0] === 'My name is Sam';
    this.check('thread_id_not_stable', both, 'two invocations on one thread id: the second saw the first', `the second invocation on one thread id saw ${JSON.stringify(seen)}, not both messages`);
    const readBack = readId !== undefined && readId === head;
    this.check('checkpoints_unread', readBack, 'the checkpoint read back directly is the conversation\'s head', `reading the thread back directly gave ${readId}, not the conversation's head ${head}`);
    this.check(ISOLATION, readBack && lone.length === 1, 'a fresh connection reads the same head; a second thread sees nothing of the first', `a fresh connection read ${readId} (head ${head}); a second thread saw ${JSON.stringify(lone)}`);
  }

  /** A run expecting a head the server never had is refused, never answered from an empty thread. */
  async guard() {
    const created = await this.call('POST', '/threads', { metadata: { edge_memory_doctor: true } });
    if (created.status !== 200) {
      this.check('ephemeral_memory', false, '', `POST /threads answered ${created.status}`);
      return;
    }
    const id = created.body.thread_id;
    // Its refusal carries the hint it exists for: no finding about this deployment.
    const answer = await this.call('POST', `/threads/${id}/runs/wait`, {
      assistant_id: 'agent',
      input: { messages: [{ role: 'user', content: 'Do you remember me?' }] },
      expected_head: 'doctor-a-head-this-server-never-had',
    }, { noteHints: false });
    await this.call('DELETE', `/threads/${id}`);
    this.check('ephemeral_memory', answer.status === 409 && answer.body?.code === 'memory_mismatch',
      'the amnesia guard refuses a head the server never had',
      `a run expecting a head the server never had answered ${answer.status} ${answer.body?.code}, not 409 memory_mismatch`);
  }

  /** The server's own diagnosis of this client. */
  async diagnostics() {
    const answer = await this.call('GET', '/diagnostics');
    if (answer.status !== 200) {
      this.check('ephemeral_memory', false, '', `GET /diagnostics answered ${answer.status}`);
      return;
    }
    for (const hint of answer.body.hints ?? []) {
      const seen = `GET /diagnostics: ${hint.code} given ${hint.count} times, last ${hint.last_seen}`;
      // Amnesia guard refusals count under ephemeral_memory, the doctor's own among them.
      if (hint.code === 'ephemeral_memory') this.rows.get(hint.code).notes.push(`${seen} (amnesia guard refusals included)`);
      else if (this.rows.has(hint.code)) this.check(hint.code, false, '', seen);
    }
  }

  /** Prints the table; the number of rows with a ✗. */
  report(info) {
    const w = (line) => this.out.write(`${line}\n`);
    w(`edge-memory doctor: ${this.url} (storage: ${info.storage_backend}, auth: ${info.auth?.mode})\n`);
    let failed = 0;
    for (const row of this.rows.values()) {
      const ok = row.problems.length === 0;
      if (!ok) failed += 1;
      w(`  ${ok ? '✓' : '✗'}  ${row.symptom.padEnd(42)} ${(row.code ?? '-').padEnd(24)} ${row.cause}`);
      for (const line of ok ? row.notes : row.problems) w(`       ${line}`);
      if (!ok) w(`       fix: ${row.code ? HINTS[row.code][1] : ISOLATION_FIX}`);
    }
    w(failed ? `\n${failed} of ${this.rows.size} rows failed.` : `\nall ${this.rows.size} rows passed.`);
    return failed;
  }
}

/** The command line: `doctor URL [--api-key K | --token T] [--state FILE]`; the exit status. */
export async function main(argv, out = process.stdout) {
  const [command, url, ...rest] = argv;
  const option = (name) => {
    const i = rest.indexOf(name);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  if (command !== 'doctor' || !url) {
    out.write('usage: npx @edge-memory/langgraph doctor URL [--api-key K | --token T] [--state FILE]\n');
    return 2;
  }
  return new Doctor({ url, apiKey: option('--api-key'), token: option('--token'), stateFile: option('--state'), out }).run();
}
