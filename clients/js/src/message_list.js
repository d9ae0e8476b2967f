// Message-list channels (MessagesAnnotation's `messages`) sent as changes: each message
// serialized on its own and, in the steady state, only what changed since the version
// this saver last stored or read (appended, replaced, removed ids). The worker stores
// each message once, so bytes per turn stay flat.
import { digest, toBase64 } from './bytes.js';

/** The blob type of a message list (its data is empty; the items travel in `list`). */
export const MESSAGE_LIST_TYPE = 'em:message_list';
/** Message lists whose last version the saver remembers (per thread, namespace and
 * channel): every thread a process works on at once, in bounded memory. */
export const LIST_CACHE_MAX = 1024;

/** What a saver last stored or read of each message list, least recently used first. */
export class MessageLists {
  constructor(serde) {
    this.serde = serde;
    this.known = new Map(); // key -> { version, entries: [[id, digest], ...] }
  }

  static key(threadId, ns, channel) {
    return JSON.stringify([threadId, ns, channel]);
  }

  /** The list as a change to what the worker has (or whole): `{ blob, state }`, `state`
   * to remember once the put is stored. */
  async blob(key, version, messages, full) {
    const items = await Promise.all(messages.map(async (message) => {
      const [kind, data] = await this.serde.dumpsTyped(message);
      return { id: message.id, digest: await digest(kind, data), value: { type: kind, data: toBase64(data) } };
    }));
    const entries = items.map(({ id, digest: d }) => [id, d]);
    const known = full ? undefined : this.known.get(key);
    let ops;
    let baseVersion = null;
    if (known) {
      const ids = new Set(entries.map(([id]) => id));
      const kept = known.entries.filter(([id]) => ids.has(id));
      // Only "remove some, change some in place, append at the end" is a delta.
      if (kept.every(([id], i) => id === entries[i][0])) {
        baseVersion = known.version;
        ops = known.entries.filter(([id]) => !ids.has(id)).map(([id]) => ({ op: 'remove', id }));
        kept.forEach(([id, old], i) => {
          if (old !== items[i].digest) ops.push({ op: 'replace', id, digest: items[i].digest, ...items[i].value });
        });
        for (const item of items.slice(kept.length)) ops.push(append(item));
      }
    }
    if (!ops) ops = items.map(append);
    const blob = { type: MESSAGE_LIST_TYPE, data: '', list: { base_version: baseVersion, ops } };
    return { blob, state: { version, entries } };
  }

  /** Remembers a list read back from the worker (its items carry ids and digests). */
  remember(key, version, items) {
    this.store(new Map([[key, { version, entries: items.map((item) => [item.id, item.digest]) }]]));
  }

  /** Remembers the lists a put stored. */
  store(states) {
    for (const [key, state] of states) {
      this.known.delete(key);
      this.known.set(key, state);
    }
    while (this.known.size > LIST_CACHE_MAX) this.known.delete(this.known.keys().next().value);
  }
}

function append({ id, digest: d, value }) {
  return { op: 'append', id, digest: d, ...value };
}
