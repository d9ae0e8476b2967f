// `EdgeMemorySaver`: a LangGraph.js checkpointer whose checkpoints live in edge-memory,
// the JavaScript twin of the Python `EdgeMemorySaver`, on the same wire format: a thread
// one of them wrote, the other resumes (see the README, "One wire format").
import { isBaseMessage } from '@langchain/core/messages';
import { BaseCheckpointSaver, TASKS, WRITES_IDX_MAP, maxChannelVersion } from '@langchain/langgraph-checkpoint';

import { fromBase64, toBase64 } from './bytes.js';
import { EdgeMemoryError, Transport, threadPath } from './http.js';
import { MESSAGE_LIST_TYPE, MessageLists } from './message_list.js';
import { decode as decodeMsgpack } from './msgpack.js';

// The worker takes at most this many run ids per `delete_for_runs` request.
const DELETE_FOR_RUNS_MAX = 1000;
// Threads read per page when `list` is called without a `thread_id`.
const THREAD_PAGE = 100;
// Threads this saver has made sure exist (see `ensureThread`), bounded like the lists.
const KNOWN_THREADS_MAX = 1024;

function threadIdOf(config, what) {
  const threadId = config?.configurable?.thread_id;
  if (threadId === undefined || threadId === null || threadId === '') {
    throw new Error(
      `EdgeMemorySaver.${what} needs config.configurable.thread_id: without a stable thread id every call `
      + 'starts a new conversation. Pass { configurable: { thread_id: "<user or session id>" } }.',
    );
  }
  return String(threadId);
}

/** What JSON holds of `value` (metadata for the worker's filters; the exact value travels typed). */
function jsonSafe(value) {
  return JSON.parse(JSON.stringify(value ?? {}, (_key, v) => (typeof v === 'bigint' ? String(v) : v)));
}

/** The worker lacks the message-list version a delta was based on: resend whole. */
function baseListMissing(error) {
  return error instanceof EdgeMemoryError && error.status === 409 && error.code === 'base_version_missing';
}

/**
 * A LangGraph.js checkpointer backed by an edge-memory worker.
 *
 * `new EdgeMemorySaver({ url, apiKey?, token?, fetch?, timeoutMs?, retries?, serde? })`:
 * `apiKey` is sent as `x-api-key`, `token` (a user's JWT) as `Authorization: Bearer`;
 * `fetch` replaces the global one (inside a Worker: a service binding's). Idempotent calls
 * (all but `copyThread`) are retried `retries` times on network errors and 502/503/504.
 * A 4xx throws an `EdgeMemoryError` naming the problem; a missing `thread_id` throws
 * before any request.
 */
export class EdgeMemorySaver extends BaseCheckpointSaver {
  constructor({ url, apiKey, token, fetch, timeoutMs, retries, serde } = {}) {
    super(serde);
    this.http = new Transport({ url, apiKey, token, fetch, timeoutMs, retries });
    this.lists = new MessageLists(this.serde);
    this.knownThreads = new Set();
  }

  // -- typed values ------------------------------------------------------------------

  async typed(value) {
    const [kind, data] = await this.serde.dumpsTyped(value);
    return { type: kind, data: toBase64(data) };
  }

  /** A value as either language's serializer typed it. */
  async untyped({ type, data }) {
    const bytes = fromBase64(data);
    if (type === 'msgpack') return decodeMsgpack(bytes);
    if (type === 'null') return null;
    if (type === 'bytearray') return bytes;
    return this.serde.loadsTyped(type, bytes);
  }

  // -- request bodies and answers ------------------------------------------------------

  async putBody(config, checkpoint, metadata, newVersions, fullLists) {
    const threadId = threadIdOf(config, 'put');
    const ns = config.configurable.checkpoint_ns ?? '';
    const { channel_values: values = {}, ...stripped } = checkpoint;
    const blobs = [];
    const lists = new Map();
    for (const [channel, version] of Object.entries(newVersions)) {
      const value = values[channel];
      let typed;
      if (!(channel in values)) {
        typed = { type: 'empty', data: '' };
      } else if (isMessageList(value)) {
        const key = MessageLists.key(threadId, ns, channel);
        const { blob, state } = await this.lists.blob(key, version, value, fullLists);
        typed = blob;
        lists.set(key, state);
      } else {
        typed = await this.typed(value);
      }
      blobs.push({ channel, version, ...typed });
    }
    const body = {
      checkpoint_ns: ns,
      checkpoint_id: checkpoint.id,
      parent_checkpoint_id: config.configurable.checkpoint_id ?? null,
      checkpoint: await this.typed(stripped),
      channel_versions: { ...checkpoint.channel_versions },
      metadata: jsonSafe(metadata),
      metadata_typed: await this.typed(metadata ?? {}),
      blobs,
    };
    return { threadId, ns, body, lists };
  }

  /** A checkpoint tuple from the worker's answer. `remember`: the newest of a thread,
   * whose message lists the next put will most likely extend. */
  async tuple(threadId, raw, remember = false) {
    const checkpoint = await this.untyped(raw.checkpoint);
    const ns = raw.checkpoint_ns;
    const values = {};
    for (const blob of raw.blobs) {
      if (blob.type === MESSAGE_LIST_TYPE) {
        const items = blob.items ?? [];
        values[blob.channel] = await Promise.all(items.map((item) => this.untyped(item)));
        if (remember) {
          const version = checkpoint.channel_versions?.[blob.channel];
          this.lists.remember(MessageLists.key(threadId, ns, blob.channel), version, items);
        }
      } else if (blob.type !== 'empty') {
        values[blob.channel] = await this.untyped(blob);
      }
    }
    checkpoint.channel_values = values;
    const parent = raw.parent_checkpoint_id;
    const tuple = {
      config: { configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: raw.checkpoint_id } },
      checkpoint,
      metadata: await this.untyped(raw.metadata_typed),
      pendingWrites: await Promise.all(
        raw.pending_writes.map(async (w) => [w.task_id, w.channel, await this.untyped(w)]),
      ),
    };
    if (parent) tuple.parentConfig = { configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: parent } };
    if (checkpoint.v < 4 && parent) await this.migratePendingSends(tuple, threadId, ns, parent);
    return tuple;
  }

  /** Checkpoints before format 4 kept pending sends as their parent's TASKS writes. */
  async migratePendingSends(tuple, threadId, ns, parentId) {
    const raw = await this.http.request(
      'POST', threadPath(threadId, '/saver/get'), { checkpoint_ns: ns, checkpoint_id: parentId },
      { allow404: true, idempotent: true },
    );
    const sends = raw ? raw.pending_writes.filter((w) => w.channel === TASKS) : [];
    const { checkpoint } = tuple;
    checkpoint.channel_values[TASKS] = await Promise.all(sends.map((w) => this.untyped(w)));
    const versions = Object.values(checkpoint.channel_versions ?? {});
    checkpoint.channel_versions = {
      ...checkpoint.channel_versions,
      [TASKS]: versions.length > 0 ? maxChannelVersion(...versions) : this.getNextVersion(undefined),
    };
  }

  // -- BaseCheckpointSaver -------------------------------------------------------------

  /** The checkpoint named by `config` (its `checkpoint_id`, else the newest in its
   * `checkpoint_ns`) with its pending writes; `undefined` for an unknown thread. */
  async getTuple(config) {
    // LangGraph's contract: no thread, no checkpoint (a put without one throws).
    if (config?.configurable?.thread_id === undefined) return undefined;
    const threadId = threadIdOf(config, 'getTuple');
    const checkpointId = config.configurable.checkpoint_id;
    const raw = await this.http.request(
      'POST', threadPath(threadId, '/saver/get'),
      { checkpoint_ns: config.configurable.checkpoint_ns ?? '', checkpoint_id: checkpointId ?? null },
      { allow404: true, idempotent: true },
    );
    return raw ? this.tuple(threadId, raw, !checkpointId) : undefined;
  }

  /** The thread's checkpoints, newest first: every namespace unless `config` names one;
   * `filter` matches metadata keys, `before` and `limit` page (one request). Without a
   * `thread_id`: every thread the caller may see, newest first across them. */
  async *list(config, options = {}) {
    const { filter, before, limit } = options;
    const configurable = config?.configurable ?? {};
    const body = {
      checkpoint_ns: configurable.checkpoint_ns ?? null,
      checkpoint_id: configurable.checkpoint_id ?? null,
      filter: jsonSafe(filter),
      before: before?.configurable?.checkpoint_id ?? null,
      limit: limit ?? null,
    };
    const threadId = configurable.thread_id;
    if (threadId !== undefined && threadId !== null && threadId !== '') {
      const rows = await this.listThread(String(threadId), body);
      for (const raw of rows) yield await this.tuple(String(threadId), raw);
      return;
    }
    const merged = [];
    for await (const id of this.threadIds()) {
      for (const raw of await this.listThread(id, body)) merged.push([id, raw]);
    }
    // Checkpoint ids sort in creation order: newest first across threads, then the limit.
    merged.sort(([, a], [, b]) => (a.checkpoint_id < b.checkpoint_id ? 1 : a.checkpoint_id > b.checkpoint_id ? -1 : 0));
    for (const [id, raw] of limit === undefined ? merged : merged.slice(0, limit)) yield await this.tuple(id, raw);
  }

  async listThread(threadId, body) {
    const rows = await this.http.request(
      'POST', threadPath(threadId, '/saver/list'), body, { allow404: true, idempotent: true },
    );
    return rows ?? [];
  }

  /** Every thread id the caller may see, from the worker's thread directory. */
  async *threadIds() {
    for (let offset = 0; ; offset += THREAD_PAGE) {
      const page = await this.http.request(
        'POST', '/threads/search', { limit: THREAD_PAGE, offset, select: ['thread_id'] }, { idempotent: true },
      );
      for (const thread of page ?? []) yield thread.thread_id;
      if (!page || page.length < THREAD_PAGE) return;
    }
  }

  /** Stores a checkpoint with the channel values in `newVersions` (message lists as
   * their changes since the last version this saver saw); returns its config. */
  async put(config, checkpoint, metadata, newVersions) {
    let { threadId, ns, body, lists } = await this.putBody(config, checkpoint, metadata, newVersions, false);
    if (body.parent_checkpoint_id === null) await this.ensureThread(threadId);
    const path = threadPath(threadId, '/saver/put');
    try {
      await this.http.request('POST', path, body, { idempotent: true });
    } catch (error) {
      if (!baseListMissing(error)) throw error;
      ({ threadId, ns, body, lists } = await this.putBody(config, checkpoint, metadata, newVersions, true));
      await this.http.request('POST', path, body, { idempotent: true });
    }
    this.lists.store(lists);
    return { configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: checkpoint.id } };
  }

  /**
   * A thread's first checkpoint: the thread is created as a thread (`POST /threads`,
   * kept if it exists), so it is listed by thread search (and by `list` without a
   * thread id) and, for a JWT user, owned by that user. Once per thread and process.
   */
  async ensureThread(threadId) {
    if (this.knownThreads.has(threadId)) return;
    await this.http.request('POST', '/threads', { thread_id: threadId, if_exists: 'do_nothing' }, { idempotent: true });
    this.knownThreads.add(threadId);
    if (this.knownThreads.size > KNOWN_THREADS_MAX) this.knownThreads.delete(this.knownThreads.values().next().value);
  }

  /** Stores a task's pending writes for the checkpoint in `config` (a retried call
   * stores them once). */
  async putWrites(config, writes, taskId, taskPath = '') {
    const threadId = threadIdOf(config, 'putWrites');
    const checkpointId = config.configurable.checkpoint_id;
    if (!checkpointId) throw new Error('EdgeMemorySaver.putWrites needs config.configurable.checkpoint_id');
    const body = {
      checkpoint_ns: config.configurable.checkpoint_ns ?? '',
      checkpoint_id: checkpointId,
      task_id: taskId,
      task_path: taskPath ?? '',
      writes: await Promise.all(writes.map(async ([channel, value], idx) => ({
        idx: WRITES_IDX_MAP[channel] ?? idx,
        channel,
        ...(await this.typed(value)),
      }))),
    };
    await this.http.request('POST', threadPath(threadId, '/saver/put_writes'), body, { idempotent: true });
  }

  /** Deletes the thread with its checkpoints and writes; a no-op for an unknown thread. */
  async deleteThread(threadId) {
    this.knownThreads.delete(String(threadId));
    await this.http.request('DELETE', threadPath(threadId), undefined, { allow404: true, idempotent: true });
  }

  /** Copies every checkpoint and write of a thread into a thread without checkpoints (a
   * 409 `EdgeMemoryError` otherwise). One atomic request; not retried. */
  async copyThread(sourceThreadId, targetThreadId) {
    await this.http.request(
      'POST', threadPath(sourceThreadId, '/saver/copy'), { target_thread_id: targetThreadId }, { allow404: true },
    );
  }

  /** Prunes each thread: `keep_latest` keeps each namespace's newest checkpoint,
   * `delete` deletes them all. One request per thread. */
  async prune(threadIds, strategy = 'keep_latest') {
    for (const threadId of threadIds) {
      await this.http.request('POST', threadPath(threadId, '/saver/prune'), { strategy }, { idempotent: true });
    }
  }

  /** Deletes the checkpoints (and their writes) made by these runs, on every thread
   * they wrote to; the worker finds the threads in its run directory. */
  async deleteForRuns(runIds) {
    const ids = [...runIds].map(String);
    for (let i = 0; i < ids.length; i += DELETE_FOR_RUNS_MAX) {
      const chunk = ids.slice(i, i + DELETE_FOR_RUNS_MAX);
      await this.http.request('POST', '/saver/delete_for_runs', { run_ids: chunk }, { idempotent: true });
    }
  }

  /** Monotonic, sortable string versions, as the Python saver makes them (so either
   * language continues the other's channels). */
  getNextVersion(current) {
    let n;
    if (current === undefined || current === null) n = 0;
    else if (typeof current === 'number') n = Math.trunc(current);
    else n = Number.parseInt(String(current).split('.')[0], 10);
    return `${String(n + 1).padStart(32, '0')}.${String(Math.random()).padEnd(18, '0')}`;
  }
}

/** A non-empty list of messages that all have ids: sent as a message list. */
function isMessageList(value) {
  return Array.isArray(value) && value.length > 0 && value.every((m) => isBaseMessage(m) && m.id);
}
