//! A checkpointer over a key-value store (Workers KV), within KV's limits.
//!
//! Workers KV is eventually consistent (a write can take 60 s or more to show at other
//! locations) and takes about one write per second per key
//! ([`KV_WRITES_PER_KEY_PER_SECOND`](crate::limits::KV_WRITES_PER_KEY_PER_SECOND)). So
//! this layout never rewrites a key in the course of a conversation:
//!
//! | key | value | written |
//! |---|---|---|
//! | `t/{thread}/thread` | the thread record (JSON) | on create and on metadata updates only |
//! | `t/{thread}/c/{checkpoint_id}` | the checkpoint: record, message ops, depth, and every [`SNAPSHOT_EVERY`] checkpoints the whole message list | once |
//! | `t/{thread}/p/{checkpoint_id}/{n}` | part `n` of a checkpoint above [`KV_VALUE_MAX_BYTES`] | once |
//! | `t/{thread}/h/{inverted id}` | empty: the head index | once |
//!
//! Checkpoint ids sort by time; the head index inverts them (each hex digit `d` becomes
//! `f - d`), so a one-key prefix listing returns the newest checkpoint first. The thread's
//! `updated_at` is the newer of its record's and its head's, so a turn never writes the
//! record. Reading a state walks parents back to the nearest snapshot: at most
//! [`SNAPSHOT_EVERY`] reads, never the whole thread.
//!
//! Consistency: a put writes its checkpoint before its head-index entry, so a listing
//! never shows a head that cannot be read; a failed second write leaves a checkpoint that
//! only its id reaches. A checkpoint id newer than the visible head that cannot be read
//! yet is answered with [`Error::Conflict`] ("not yet visible"), never with an older state.
//!
//! A listing can lag by a minute, also for the writer after a restart, which no longer
//! remembers its own writes. So the one writer (the thread's Durable Object) also keeps
//! the thread's record and its head's id in a [`KvRegister`], its own strongly consistent
//! storage: the head is never older than the last one written, and a head KV does not
//! show yet is a 409, never a turn continued from an older one (the KV-lag nemesis,
//! `tests/e2e/nemesis_kv_lag.test.mjs`).

use serde::{Deserialize, Serialize};

use super::{
    replay, CheckpointId, CheckpointRecord, Checkpointer, ListQuery, NewCheckpoint, Snapshot,
};
use crate::error::{Error, Result};
use crate::message::{Message, MessageOp};
use crate::thread::{ThreadId, ThreadRecord};

/// Largest value Workers KV stores (platform limit: 25 MiB); larger values are split.
pub const KV_VALUE_MAX_BYTES: usize = 25 * 1024 * 1024;

/// Every this many checkpoints along a chain, one carries the whole message list, so
/// reading any state takes at most this many reads.
pub const SNAPSHOT_EVERY: u64 = 32;

/// One page of a prefix listing: keys in ascending order, and where to continue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvPage {
    /// Keys, ascending.
    pub keys: Vec<String>,
    /// Pass to the next call to continue; `None` when the listing is complete.
    pub cursor: Option<String>,
}

/// The port to a key-value store: what a KV backend must provide.
///
/// Not `Send` (see [`Checkpointer`]).
#[allow(async_fn_in_trait)]
pub trait KvPort {
    /// The value at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` at `key`.
    async fn put(&self, key: &str, value: &str) -> Result<()>;
    /// Removes `key` (no error if absent).
    async fn delete(&self, key: &str) -> Result<()>;
    /// Up to `limit` keys starting with `prefix`, ascending, from `cursor`.
    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KvPage>;
}

/// Strongly consistent storage beside the KV namespace, for what eventual consistency
/// must not lose: the thread's record and its head's id (one small write per checkpoint).
/// The thread object's own storage in the worker.
///
/// Not `Send` (see [`Checkpointer`]).
#[allow(async_fn_in_trait)]
pub trait KvRegister {
    /// The value at `key`, if any.
    async fn read(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` at `key`.
    async fn write(&self, key: &str, value: &str) -> Result<()>;
    /// Removes `key` (no error if absent).
    async fn remove(&self, key: &str) -> Result<()>;
}

/// No register: KV alone, whose listing is the head (tests of KV itself).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRegister;

impl KvRegister for NoRegister {
    async fn read(&self, _key: &str) -> Result<Option<String>> {
        Ok(None)
    }
    async fn write(&self, _key: &str, _value: &str) -> Result<()> {
        Ok(())
    }
    async fn remove(&self, _key: &str) -> Result<()> {
        Ok(())
    }
}

/// What a checkpoint key holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredCheckpoint {
    record: CheckpointRecord,
    ops: Vec<MessageOp>,
    /// Checkpoints from the root, this one included.
    depth: u64,
    /// The whole message list, on every [`SNAPSHOT_EVERY`]-th checkpoint of a chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<Vec<Message>>,
}

/// A value too large for one key: it continues in `parts` part keys.
#[derive(Debug, Serialize, Deserialize)]
struct SplitValue {
    parts: usize,
}

/// How many of its own latest checkpoint writes a [`KvCheckpointer`] remembers.
///
/// Workers KV may not show a write to a reader for up to 60 s. A turn writes its input,
/// then its reply on top of it: the writer (the thread's Durable Object, the only one)
/// must read its own writes even when KV does not show them yet.
pub const KV_OWN_WRITES_KEPT: usize = 4;

/// A [`Checkpointer`] over any [`KvPort`], with a [`KvRegister`] for its head.
#[derive(Debug)]
pub struct KvCheckpointer<K, R = NoRegister> {
    kv: K,
    register: R,
    /// The latest checkpoints this instance wrote, newest last.
    own_writes: std::cell::RefCell<std::collections::VecDeque<StoredCheckpoint>>,
}

fn thread_key(t: &ThreadId) -> String {
    format!("t/{t}/thread")
}

fn checkpoint_key(t: &ThreadId, id: &str) -> String {
    format!("t/{t}/c/{id}")
}

fn part_key(t: &ThreadId, id: &str, n: usize) -> String {
    format!("t/{t}/p/{id}/{n}")
}

fn head_prefix(t: &ThreadId) -> String {
    format!("t/{t}/h/")
}

/// The register's key for the thread's head id.
fn head_key(t: &ThreadId) -> String {
    format!("t/{t}/head")
}

/// Reverses the sort order of a hex id: each hex digit `d` becomes `f - d`.
fn invert(id: &str) -> String {
    id.chars()
        .map(|c| match c.to_digit(16) {
            Some(d) => char::from_digit(15 - d, 16).unwrap_or(c),
            None => c,
        })
        .collect()
}

impl<K: KvPort> KvCheckpointer<K> {
    /// A checkpointer over `kv` alone: its listing is the head.
    pub fn new(kv: K) -> Self {
        Self::with_register(kv, NoRegister)
    }
}

impl<K: KvPort, R: KvRegister> KvCheckpointer<K, R> {
    /// A checkpointer over `kv` that keeps the thread's record and head in `register`.
    pub fn with_register(kv: K, register: R) -> Self {
        KvCheckpointer {
            kv,
            register,
            own_writes: Default::default(),
        }
    }

    fn own_write(&self, t: &ThreadId, id: &CheckpointId) -> Option<StoredCheckpoint> {
        self.own_writes
            .borrow()
            .iter()
            .find(|c| c.record.thread_id == *t && c.record.checkpoint_id == *id)
            .cloned()
    }

    fn newest_own_write(&self, t: &ThreadId) -> Option<CheckpointId> {
        self.own_writes
            .borrow()
            .iter()
            .filter(|c| c.record.thread_id == *t)
            .map(|c| c.record.checkpoint_id.clone())
            .max()
    }

    /// The port.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// The thread's record: the register's, else KV's (a thread written before the
    /// register, or a checkpointer without one).
    async fn record(&self, t: &ThreadId) -> Result<ThreadRecord> {
        let raw = match self.register.read(&thread_key(t)).await? {
            Some(raw) => raw,
            None => self
                .kv
                .get(&thread_key(t))
                .await?
                .ok_or_else(|| Error::thread_not_found(t.as_str()))?,
        };
        Ok(serde_json::from_str(&raw)?)
    }

    /// Newest checkpoint ids first, up to `limit` (all with `None`).
    async fn ids_newest_first(
        &self,
        t: &ThreadId,
        limit: Option<usize>,
    ) -> Result<Vec<CheckpointId>> {
        let prefix = head_prefix(t);
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let want = limit.map_or(1000, |l| l.saturating_sub(ids.len()).clamp(1, 1000));
            let page = self.kv.list(&prefix, cursor.as_deref(), want).await?;
            for key in page.keys {
                let inverted = key.strip_prefix(&prefix).unwrap_or(&key);
                ids.push(CheckpointId::parse(&invert(inverted))?);
                if limit.is_some_and(|l| ids.len() >= l) {
                    return Ok(ids);
                }
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(ids),
            }
        }
    }

    /// The head as written: the newest of this instance's own writes and the register's
    /// head, which the listing may not show yet.
    async fn written_head(&self, t: &ThreadId) -> Result<Option<CheckpointId>> {
        let registered = match self.register.read(&head_key(t)).await? {
            Some(id) => Some(CheckpointId::parse(&id)?),
            None => None,
        };
        Ok(registered.max(self.newest_own_write(t)))
    }

    async fn head(&self, t: &ThreadId) -> Result<Option<CheckpointId>> {
        let listed = self.ids_newest_first(t, Some(1)).await?.into_iter().next();
        Ok(listed.max(self.written_head(t).await?))
    }

    async fn load(&self, t: &ThreadId, id: &CheckpointId) -> Result<Option<StoredCheckpoint>> {
        if let Some(own) = self.own_write(t, id) {
            return Ok(Some(own));
        }
        let Some(raw) = self.kv.get(&checkpoint_key(t, id.as_str())).await? else {
            return Ok(None);
        };
        let text = match serde_json::from_str::<SplitValue>(&raw) {
            Ok(split) => {
                let mut joined = String::new();
                for n in 0..split.parts {
                    let part = self
                        .kv
                        .get(&part_key(t, id.as_str(), n))
                        .await?
                        .ok_or_else(|| {
                            Error::backend(format_args!("part {n} of checkpoint {id} is missing"))
                        })?;
                    joined.push_str(&part);
                }
                joined
            }
            Err(_) => raw,
        };
        Ok(Some(serde_json::from_str(&text)?))
    }

    /// Loads a checkpoint the caller names; an id newer than the visible head that cannot
    /// be read yet is a conflict (not visible yet), not an unknown checkpoint.
    async fn load_named(&self, t: &ThreadId, id: &CheckpointId) -> Result<StoredCheckpoint> {
        if let Some(found) = self.load(t, id).await? {
            return Ok(found);
        }
        let listed = self.ids_newest_first(t, Some(1)).await?.into_iter().next();
        let written = self.written_head(t).await?;
        if listed.as_ref().is_none_or(|h| id > h) || written.as_ref() == Some(id) {
            return Err(Error::Conflict {
                kind: crate::error::ConflictKind::NotVisibleYet,
                reason: format!(
                    "checkpoint {id} is not visible yet (Workers KV is eventually consistent); retry shortly"
                ),
            });
        }
        Err(Error::NotFound {
            what: "checkpoint",
            id: id.to_string(),
        })
    }

    /// The message list at `stored`: back to the nearest snapshot, then forward.
    async fn state(&self, t: &ThreadId, stored: &StoredCheckpoint) -> Result<Vec<Message>> {
        let mut chain: Vec<Vec<MessageOp>> = Vec::new();
        let mut base: Vec<Message> = Vec::new();
        let mut current = stored.clone();
        loop {
            if let Some(snapshot) = current.snapshot.take() {
                base = snapshot;
                break;
            }
            chain.push(current.ops.clone());
            match current.record.parent_id.clone() {
                None => break,
                // Checkpoints are never removed but with their thread: a parent KV
                // does not show is one that has not reached this location yet.
                Some(parent) => {
                    current = self.load(t, &parent).await?.ok_or_else(|| Error::Conflict {
                        kind: crate::error::ConflictKind::NotVisibleYet,
                        reason: format!(
                            "checkpoint {parent} is not visible yet (Workers KV is eventually consistent); retry shortly"
                        ),
                    })?;
                }
            }
        }
        let ops: Vec<&MessageOp> = chain.iter().rev().flatten().collect();
        crate::message::add_messages(base, ops)
            .map_err(|e| Error::backend(format_args!("stored history does not replay: {e}")))
    }

    async fn snapshot_of(&self, t: &ThreadId, stored: StoredCheckpoint) -> Result<Snapshot> {
        let messages = self.state(t, &stored).await?;
        Ok(Snapshot {
            checkpoint: stored.record,
            messages,
        })
    }

    async fn write_value(&self, t: &ThreadId, id: &str, text: &str) -> Result<()> {
        if text.len() <= KV_VALUE_MAX_BYTES {
            return self.kv.put(&checkpoint_key(t, id), text).await;
        }
        // Parts under the limit first, then the header naming them.
        let parts = super::split_at_chars(text, KV_VALUE_MAX_BYTES);
        for (n, part) in parts.iter().enumerate() {
            self.kv.put(&part_key(t, id, n), part).await?;
        }
        let header = serde_json::to_string(&SplitValue { parts: parts.len() })?;
        self.kv.put(&checkpoint_key(t, id), &header).await
    }
}

/// No LangGraph checkpointer storage on KV: every call keeps the trait's `Unsupported`.
impl<K: KvPort, R: KvRegister> super::saver::SaverStore for KvCheckpointer<K, R> {}

fn json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::backend(format_args!("does not serialize: {e}")))
}

impl<K: KvPort, R: KvRegister> Checkpointer for KvCheckpointer<K, R> {
    fn strongly_consistent(&self) -> bool {
        false
    }

    async fn create_thread(&self, thread: &ThreadRecord) -> Result<()> {
        let key = thread_key(&thread.thread_id);
        if self.register.read(&key).await?.is_some() || self.kv.get(&key).await?.is_some() {
            return Err(Error::Conflict {
                kind: crate::error::ConflictKind::ThreadExists,
                reason: format!("Thread '{}' already exists", thread.thread_id),
            });
        }
        let value = json(thread)?;
        self.kv.put(&key, &value).await?;
        self.register.write(&key, &value).await
    }

    async fn get_thread(&self, thread_id: &ThreadId) -> Result<ThreadRecord> {
        let mut record = self.record(thread_id).await?;
        if let Some(head) = self.head(thread_id).await? {
            if let Some(stored) = self.load(thread_id, &head).await? {
                record.updated_at_ms = record.updated_at_ms.max(stored.record.created_at_ms);
            }
        }
        Ok(record)
    }

    async fn update_thread(&self, thread: &ThreadRecord) -> Result<()> {
        let mut record = self.record(&thread.thread_id).await?;
        record.metadata = thread.metadata.clone();
        record.status = thread.status;
        record.updated_at_ms = thread.updated_at_ms;
        let (key, value) = (thread_key(&thread.thread_id), json(&record)?);
        self.kv.put(&key, &value).await?;
        self.register.write(&key, &value).await
    }

    async fn put(&self, checkpoint: &NewCheckpoint) -> Result<()> {
        let record = &checkpoint.record;
        let t = &record.thread_id;
        self.record(t).await?;
        if let Some(newest) = self.head(t).await? {
            if record.checkpoint_id <= newest {
                return Err(Error::Conflict {
                    kind: crate::error::ConflictKind::StaleCheckpoint,
                    reason: format!(
                        "Checkpoint id {} is not newer than the thread's newest checkpoint {newest}",
                        record.checkpoint_id
                    ),
                });
            }
        }
        let parent = match &record.parent_id {
            Some(parent) => Some(self.load(t, parent).await?.ok_or_else(|| Error::NotFound {
                what: "checkpoint",
                id: parent.to_string(),
            })?),
            None => None,
        };
        let depth = parent.as_ref().map_or(0, |p| p.depth) + 1;
        let snapshot = if depth % SNAPSHOT_EVERY == 0 {
            let base = match &parent {
                Some(p) => self.state(t, p).await?,
                None => Vec::new(),
            };
            Some(replay_onto(base, &checkpoint.ops)?)
        } else {
            None
        };
        let stored = StoredCheckpoint {
            record: record.clone(),
            ops: checkpoint.ops.clone(),
            depth,
            snapshot,
        };
        // The checkpoint before its head-index entry: a listed head is always readable.
        self.write_value(t, record.checkpoint_id.as_str(), &json(&stored)?)
            .await?;
        self.kv
            .put(
                &format!(
                    "{}{}",
                    head_prefix(t),
                    invert(record.checkpoint_id.as_str())
                ),
                "",
            )
            .await?;
        self.register
            .write(&head_key(t), record.checkpoint_id.as_str())
            .await?;
        let mut own = self.own_writes.borrow_mut();
        if own.len() == KV_OWN_WRITES_KEPT {
            own.pop_front();
        }
        // Without the snapshot: a state read walks back to the parent's instead, and
        // memory holds only this turn's messages.
        own.push_back(StoredCheckpoint {
            snapshot: None,
            ..stored
        });
        Ok(())
    }

    async fn latest(&self, thread_id: &ThreadId) -> Result<Option<Snapshot>> {
        self.record(thread_id).await?;
        let Some(head) = self.head(thread_id).await? else {
            return Ok(None);
        };
        let stored = self.load_named(thread_id, &head).await?;
        self.snapshot_of(thread_id, stored).await.map(Some)
    }

    async fn get(&self, thread_id: &ThreadId, checkpoint_id: &CheckpointId) -> Result<Snapshot> {
        self.record(thread_id).await?;
        let stored = self.load_named(thread_id, checkpoint_id).await?;
        self.snapshot_of(thread_id, stored).await
    }

    async fn list(&self, thread_id: &ThreadId, query: &ListQuery) -> Result<Vec<CheckpointRecord>> {
        self.record(thread_id).await?;
        let mut ids = match &query.before {
            // KV lists from the start of a prefix only: `before` walks the index.
            Some(_) => self.ids_newest_first(thread_id, None).await?,
            None => self.ids_newest_first(thread_id, Some(query.limit)).await?,
        };
        // The head as written, which the listing may not show yet.
        if let Some(written) = self.written_head(thread_id).await? {
            if ids.first().is_none_or(|listed| written > *listed) {
                ids.insert(0, written);
            }
        }
        let mut records = Vec::new();
        for id in ids
            .into_iter()
            .filter(|id| query.before.as_ref().is_none_or(|b| id < b))
            .take(query.limit)
        {
            if let Some(stored) = self.load(thread_id, &id).await? {
                records.push(stored.record);
            }
        }
        Ok(records)
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> Result<()> {
        self.record(thread_id).await?;
        self.own_writes
            .borrow_mut()
            .retain(|c| c.record.thread_id != *thread_id);
        // Everything under the thread's prefix, the record last so a failure midway
        // leaves a thread that can be deleted again.
        let prefix = format!("t/{thread_id}/");
        let record_key = thread_key(thread_id);
        loop {
            let page = self.kv.list(&prefix, None, 1000).await?;
            let keys: Vec<String> = page.keys.into_iter().filter(|k| *k != record_key).collect();
            if keys.is_empty() {
                break;
            }
            for key in keys {
                self.kv.delete(&key).await?;
            }
        }
        self.kv.delete(&record_key).await?;
        self.register.remove(&head_key(thread_id)).await?;
        self.register.remove(&record_key).await
    }

    async fn export_thread(&self, thread_id: &ThreadId) -> Result<Vec<NewCheckpoint>> {
        self.record(thread_id).await?;
        let mut ids = self.ids_newest_first(thread_id, None).await?;
        ids.reverse();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(stored) = self.load(thread_id, &id).await? {
                out.push(NewCheckpoint {
                    record: stored.record,
                    ops: stored.ops,
                });
            }
        }
        Ok(out)
    }
}

fn replay_onto(base: Vec<Message>, ops: &[MessageOp]) -> Result<Vec<Message>> {
    if base.is_empty() {
        return replay(ops);
    }
    crate::message::add_messages(base, ops)
        .map_err(|e| Error::backend(format_args!("ops do not apply to their parent: {e}")))
}

/// An in-process [`KvPort`], for tests and native runs (a `BTreeMap`).
#[derive(Debug, Default)]
pub struct MemoryKv {
    entries: std::cell::RefCell<std::collections::BTreeMap<String, String>>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }
}

/// A consistent map is a register too (tests: the thread object's storage).
impl KvRegister for MemoryKv {
    async fn read(&self, key: &str) -> Result<Option<String>> {
        KvPort::get(self, key).await
    }
    async fn write(&self, key: &str, value: &str) -> Result<()> {
        KvPort::put(self, key, value).await
    }
    async fn remove(&self, key: &str) -> Result<()> {
        KvPort::delete(self, key).await
    }
}

impl KvPort for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    async fn put(&self, key: &str, value: &str) -> Result<()> {
        self.entries
            .borrow_mut()
            .insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KvPage> {
        let entries = self.entries.borrow();
        let after = cursor.unwrap_or("");
        let mut keys: Vec<String> = entries
            .range(prefix.to_string()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(prefix))
            .filter(|k| cursor.is_none() || k.as_str() > after)
            .take(limit + 1)
            .cloned()
            .collect();
        let more = keys.len() > limit;
        keys.truncate(limit);
        let cursor = more.then(|| keys.last().cloned()).flatten();
        Ok(KvPage { keys, cursor })
    }
}
