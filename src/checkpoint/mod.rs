//! Checkpoints and the storage contract every backend implements.
//!
//! A thread's history is a tree of checkpoints: each one names its parent and carries the
//! message operations ([`MessageOp`]) it adds. The state at a checkpoint is the result of
//! applying, oldest first, the operations of every checkpoint on its parent chain. A turn
//! therefore writes only its new rows; it never rewrites earlier history.
//!
//! Backends: [`memory::MemoryCheckpointer`] (tests and demos only: it forgets on
//! restart) and [`sql::SqlCheckpointer`] (Durable Object SQLite in production, real
//! SQLite in native tests). [`conformance`] holds the one suite they all pass.

// The suite runs natively, and in the worker only where dev routes are built in.
pub mod assistants;
#[cfg(any(not(target_arch = "wasm32"), feature = "dev-routes"))]
pub mod conformance;
pub mod directory;
pub mod keys;
pub mod kv;
pub mod memory;
pub mod runs;
pub mod saver;
pub mod sql;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::message::{Message, MessageOp};
use crate::runtime::{uuid_v7, Entropy};
use crate::thread::{ThreadId, ThreadRecord};

/// A checkpoint id: a time-ordered UUID whose text sorts in creation order.
///
/// Within a thread, ids are unique and strictly increasing: [`CheckpointId::next`] never
/// returns an id at or below the one it is given, even if the clock goes back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CheckpointId(String);

impl CheckpointId {
    /// Validates `raw` (1 to 64 characters of `[A-Za-z0-9-]`).
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty()
            || raw.len() > 64
            || !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(Error::invalid(
                "checkpoint_id",
                format!("{raw:?} is not a checkpoint id (1 to 64 letters, digits or dashes)"),
            ));
        }
        Ok(CheckpointId(raw.to_string()))
    }

    /// A new id for a checkpoint made at `now_ms`, strictly greater than `after`.
    pub fn next(after: Option<&CheckpointId>, now_ms: i64, entropy: &dyn Entropy) -> Self {
        let candidate = CheckpointId(uuid_v7(now_ms, entropy));
        match after {
            Some(prev) if candidate <= *prev => {
                // Same millisecond or a clock that went back: move to the next millisecond
                // after the previous id, which sorts strictly after it.
                let prev_ms = prev.timestamp_ms().unwrap_or(now_ms);
                CheckpointId(uuid_v7(prev_ms.max(now_ms) + 1, entropy))
            }
            _ => candidate,
        }
    }

    /// The millisecond timestamp of a version 7 id.
    fn timestamp_ms(&self) -> Option<i64> {
        let hex: String = self.0.chars().filter(|c| *c != '-').take(12).collect();
        i64::from_str_radix(&hex, 16).ok()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for CheckpointId {
    type Error = Error;
    fn try_from(raw: String) -> Result<Self> {
        CheckpointId::parse(&raw)
    }
}

impl From<CheckpointId> for String {
    fn from(id: CheckpointId) -> String {
        id.0
    }
}

/// Why a checkpoint was made (LangGraph's `metadata.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckpointSource {
    /// The input of a run, before the model ran.
    Input,
    /// A completed step of a run.
    Loop,
    /// A direct state update (`POST /threads/{id}/state`).
    Update,
    /// A run that continued from a checkpoint older than the head.
    Fork,
}

impl CheckpointSource {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointSource::Input => "input",
            CheckpointSource::Loop => "loop",
            CheckpointSource::Update => "update",
            CheckpointSource::Fork => "fork",
        }
    }
}

/// A checkpoint without its messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The thread it belongs to.
    pub thread_id: ThreadId,
    /// Its id.
    pub checkpoint_id: CheckpointId,
    /// The checkpoint it continues from; `None` for a thread's first.
    pub parent_id: Option<CheckpointId>,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: i64,
    /// `source`, `step`, `writes` and whatever the run stamped (run id, graph id, ...).
    pub metadata: Map<String, Value>,
}

impl CheckpointRecord {
    /// `metadata.step`, or 0 when absent.
    pub fn step(&self) -> i64 {
        self.metadata
            .get("step")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    }

    /// Completed turns (runs that stored a reply) on this checkpoint's branch, from the
    /// root up to it (`metadata.turns`).
    pub fn turns(&self) -> u64 {
        self.metadata
            .get("turns")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }
}

/// A checkpoint to store: its record and the message operations it adds to its parent's
/// state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewCheckpoint {
    /// The record.
    pub record: CheckpointRecord,
    /// What it changes, applied in order with [`crate::message::add_messages`].
    pub ops: Vec<MessageOp>,
}

/// The state of a thread at one checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The checkpoint.
    pub checkpoint: CheckpointRecord,
    /// The messages at that checkpoint, in order.
    pub messages: Vec<Message>,
}

/// Which checkpoints [`Checkpointer::list`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only checkpoints whose id is strictly below this one.
    pub before: Option<CheckpointId>,
    /// At most this many.
    pub limit: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            before: None,
            limit: 10,
        }
    }
}

/// Per-thread checkpoint storage.
///
/// The contract every backend keeps (and [`conformance`] checks):
/// - Every method on a thread that was never created, or was deleted, fails with
///   [`Error::NotFound`] `{ what: "thread" }`; an unknown checkpoint id with
///   `{ what: "checkpoint" }`.
/// - Checkpoint ids are unique and strictly increasing within a thread.
/// - [`put`](Checkpointer::put) is atomic: after an error nothing of it is visible.
/// - Threads are isolated: nothing written to one is visible from another.
///
/// Futures are not `Send`: Workers run one isolate per thread of execution and
/// Durable Object storage handles are not `Send`, so no bound is asked for.
#[allow(async_fn_in_trait)]
pub trait Checkpointer {
    /// Creates a thread record. [`Error::Conflict`] if a thread with that id exists.
    async fn create_thread(&self, thread: &ThreadRecord) -> Result<()>;

    /// The thread's record.
    async fn get_thread(&self, thread_id: &ThreadId) -> Result<ThreadRecord>;

    /// Replaces the record's `metadata`, `status` and `updated_at_ms`
    /// (`created_at_ms` is kept).
    async fn update_thread(&self, thread: &ThreadRecord) -> Result<()>;

    /// Stores a checkpoint and its message operations, all or nothing, and sets the
    /// thread's `updated_at_ms` to the checkpoint's `created_at_ms`.
    ///
    /// Fails with [`Error::Conflict`] if the id is not greater than every checkpoint id
    /// of the thread, and with [`Error::NotFound`] if the parent is not a checkpoint of
    /// the thread. The operations must apply cleanly to the parent's state (the turn
    /// engine checks this with the reducer before calling `put`).
    async fn put(&self, checkpoint: &NewCheckpoint) -> Result<()>;

    /// The newest checkpoint and its state; `None` for a thread with no checkpoint yet.
    async fn latest(&self, thread_id: &ThreadId) -> Result<Option<Snapshot>>;

    /// A checkpoint and the state at it.
    async fn get(&self, thread_id: &ThreadId, checkpoint_id: &CheckpointId) -> Result<Snapshot>;

    /// The states at several checkpoints of the thread (a history page), in the order
    /// given. This default rebuilds each one; backends override it to build them in one
    /// pass, so a page of 10 costs about one state, not 10.
    async fn states(&self, thread_id: &ThreadId, ids: &[CheckpointId]) -> Result<Vec<Snapshot>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get(thread_id, id).await?);
        }
        Ok(out)
    }

    /// Checkpoint records, newest first, filtered by `query`.
    async fn list(&self, thread_id: &ThreadId, query: &ListQuery) -> Result<Vec<CheckpointRecord>>;

    /// Removes the thread, its checkpoints and its messages. The id may be created again
    /// afterwards and then starts empty.
    async fn delete_thread(&self, thread_id: &ThreadId) -> Result<()>;

    /// Removes the newest checkpoints of the thread, `ids`, with their messages: what a
    /// run that is rolled back wrote. Refused (a conflict) when a checkpoint outside
    /// `ids` follows one of them. Backends that cannot answer `Unsupported`.
    async fn remove_newest(&self, thread_id: &ThreadId, ids: &[CheckpointId]) -> Result<()> {
        let _ = (thread_id, ids);
        Err(Error::Unsupported {
            what: "removing checkpoints (a run's rollback) on this storage backend".into(),
        })
    }

    /// Whether reads see every completed write at once. An eventually consistent store
    /// (KV) answers an unknown checkpoint id newer than its visible head with
    /// [`Error::Conflict`] ("not visible yet") instead of [`Error::NotFound`]: it cannot
    /// tell the two apart. The conformance suite reads this capability flag.
    fn strongly_consistent(&self) -> bool {
        true
    }

    /// Every checkpoint of the thread with the operations it stored, oldest first: what
    /// [`put`](Checkpointer::put), replayed in order on another thread, copies exactly.
    async fn export_thread(&self, thread_id: &ThreadId) -> Result<Vec<NewCheckpoint>>;

    /// What a turn needs, and no more: the checkpoint to continue from (`from`, or the
    /// newest), the last `max_messages` messages of its state, and which of `ids` its
    /// state holds.
    ///
    /// The result must equal what [`get`](Checkpointer::get)/[`latest`](Checkpointer::latest)
    /// imply. This default reads the whole state; backends override it to read only the
    /// tail, so a turn costs the same at turn 1,000 as at turn 10.
    async fn window(
        &self,
        thread_id: &ThreadId,
        from: Option<&CheckpointId>,
        max_messages: usize,
        ids: &[&str],
    ) -> Result<Window> {
        let head = self.latest(thread_id).await?;
        let head_id = head.as_ref().map(|h| h.checkpoint.checkpoint_id.clone());
        let (named, newest) = continue_from(head_id.as_ref(), from);
        let base = match named {
            Some(id) => Some(self.get(thread_id, id).await?),
            None => head,
        };
        Ok(match base {
            Some(snapshot) => Window::from_state(
                Some(snapshot.checkpoint),
                newest,
                snapshot.messages,
                max_messages,
                ids,
            ),
            None => Window::from_state(None, newest, Vec::new(), max_messages, ids),
        })
    }
}

/// Where a write continues from, given the thread's listed head and the checkpoint the
/// caller named: the named one when it is not the head (else the head itself), and the
/// newest id new checkpoints must exceed. A named checkpoint newer than the listed head
/// (a store that shows new writes late, like KV) is the head, not a fork from it.
pub(crate) fn continue_from<'a>(
    head: Option<&CheckpointId>,
    from: Option<&'a CheckpointId>,
) -> (Option<&'a CheckpointId>, Option<CheckpointId>) {
    let named = from.filter(|f| head != Some(*f));
    let newest = match (head, named) {
        (Some(h), Some(n)) => Some(h.max(n).clone()),
        (h, n) => h.or(n).cloned(),
    };
    (named, newest)
}

/// The tail of a thread's state at one checkpoint; see [`Checkpointer::window`].
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The checkpoint the window is of; `None` for a thread without checkpoints.
    pub checkpoint: Option<CheckpointRecord>,
    /// The thread's newest checkpoint id (new ids must exceed it).
    pub newest: Option<CheckpointId>,
    /// The last messages of the state, in order.
    pub messages: Vec<Message>,
    /// Which of the asked ids the whole state holds.
    pub existing: std::collections::HashSet<String>,
}

impl Window {
    /// A window cut from a whole state.
    pub fn from_state(
        checkpoint: Option<CheckpointRecord>,
        newest: Option<CheckpointId>,
        mut messages: Vec<Message>,
        max_messages: usize,
        ids: &[&str],
    ) -> Self {
        let existing = messages
            .iter()
            .filter(|m| ids.contains(&m.id.as_str()))
            .map(|m| m.id.clone())
            .collect();
        let tail = messages.split_off(messages.len().saturating_sub(max_messages));
        Window {
            checkpoint,
            newest,
            messages: tail,
            existing,
        }
    }
}

/// Which threads [`ThreadIndex::search_threads`] returns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThreadSearch {
    /// Threads whose metadata has every one of these keys with an equal value.
    pub metadata: Map<String, Value>,
    /// Only these ids, if given.
    pub ids: Option<Vec<ThreadId>>,
    /// Only threads with this status, if given.
    pub status: Option<crate::thread::ThreadStatus>,
    /// Sort key.
    pub sort_by: ThreadSortKey,
    /// Ascending instead of the default descending order.
    pub ascending: bool,
    /// At most this many.
    pub limit: usize,
    /// Skip this many first.
    pub offset: usize,
}

/// What thread searches sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadSortKey {
    /// Last change (the default, newest first).
    #[default]
    UpdatedAt,
    /// Creation time.
    CreatedAt,
    /// The id.
    ThreadId,
}

impl ThreadSearch {
    /// Whether `record` passes the filters (not the paging).
    pub fn matches(&self, record: &ThreadRecord) -> bool {
        self.metadata
            .iter()
            .all(|(k, v)| record.metadata.get(k) == Some(v))
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&record.thread_id))
            && self.status.is_none_or(|s| s == record.status)
    }

    /// The query's order: its sort key (newest first unless `ascending`), ties by id.
    pub fn compare(&self, a: &ThreadRecord, b: &ThreadRecord) -> std::cmp::Ordering {
        let order = match self.sort_by {
            ThreadSortKey::UpdatedAt => a.updated_at_ms.cmp(&b.updated_at_ms),
            ThreadSortKey::CreatedAt => a.created_at_ms.cmp(&b.created_at_ms),
            ThreadSortKey::ThreadId => std::cmp::Ordering::Equal,
        }
        .then_with(|| a.thread_id.cmp(&b.thread_id));
        if self.ascending {
            order
        } else {
            order.reverse()
        }
    }

    /// Sorts, skips and truncates matching records as the query asks.
    pub fn page(&self, mut records: Vec<ThreadRecord>) -> Vec<ThreadRecord> {
        records.retain(|r| self.matches(r));
        crate::sort::sort_by(&mut records, |a, b| self.compare(a, b));
        records
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect()
    }
}

/// A directory of thread records, for searching threads across Durable Objects.
///
/// Each thread's own object is the source of truth; the index holds a copy of each
/// record, updated after every change, so that search does not need to visit every
/// thread. In a single store (memory, native SQLite) the index is the store itself.
#[allow(async_fn_in_trait)]
pub trait ThreadIndex {
    /// Inserts or replaces the copy of `record`.
    async fn index_upsert(&self, record: &ThreadRecord) -> Result<()>;

    /// Forgets the thread's record (no error if it is not indexed).
    async fn index_remove(&self, thread_id: &ThreadId) -> Result<()>;

    /// Records matching `query`, sorted and paged as it asks.
    async fn search_threads(&self, query: &ThreadSearch) -> Result<Vec<ThreadRecord>>;

    /// How many records match `query`'s filters (its paging ignored).
    async fn count_threads(&self, query: &ThreadSearch) -> Result<usize>;

    /// Remembers that run `run_id` wrote checkpointer storage on `thread_id`.
    async fn index_run(&self, run_id: &str, thread_id: &ThreadId) -> Result<()>;

    /// The threads runs `run_ids` wrote checkpointer storage on.
    async fn threads_of_runs(&self, run_ids: &[String]) -> Result<Vec<ThreadId>>;
}

/// Rebuilds the message list from operations given oldest first.
pub(crate) fn replay<'a>(ops: impl IntoIterator<Item = &'a MessageOp>) -> Result<Vec<Message>> {
    crate::message::add_messages(Vec::new(), ops)
        .map_err(|e| Error::backend(format_args!("stored history does not replay: {e}")))
}

/// `text` in pieces of at most `max` bytes, cut at character boundaries (values larger
/// than a storage row or a KV value are stored in parts).
pub(crate) fn split_at_chars(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + max).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(&text[start..end]);
        start = end;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::SeededEntropy;

    #[test]
    fn next_ids_increase_even_when_the_clock_goes_back() {
        let e = SeededEntropy::new(3);
        let mut prev = CheckpointId::next(None, 10_000, &e);
        for now in [10_000, 10_000, 9_000, 10_001, 5] {
            let next = CheckpointId::next(Some(&prev), now, &e);
            assert!(next > prev, "{next} > {prev}");
            prev = next;
        }
    }

    #[test]
    fn parse_rejects_junk() {
        assert!(CheckpointId::parse("1f1e79b3-a327-6a95-8004-90a8690c6f99").is_ok());
        assert!(CheckpointId::parse("").is_err());
        assert!(CheckpointId::parse("../x").is_err());
    }
}
