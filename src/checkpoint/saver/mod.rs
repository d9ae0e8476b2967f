//! Storage for LangGraph checkpointers (`EdgeMemorySaver` in `clients/python`).
//!
//! Python apps that run their own graphs keep their checkpoints here, in the same
//! per-thread Durable Object as chat threads. The contract is LangGraph's
//! `BaseCheckpointSaver`:
//! - a checkpoint is stored per `(thread, checkpoint_ns, checkpoint_id)` with its parent
//!   id, its metadata (as JSON, so `list` can filter by it, and as the serializer's typed
//!   bytes, so it reads back exactly), and its channel versions;
//! - channel values are blobs keyed by `(channel, version)`, as the saver's `serde`
//!   produced them (opaque `(type, bytes)`, empty blobs kept). A put sends only the
//!   channels in `new_versions`; a channel that did not change is neither resent nor
//!   rewritten, and reading a checkpoint joins each channel's blob at its version;
//! - pending writes are keyed by `(checkpoint, task_id, idx)`: a retried `put_writes` is
//!   a no-op, except for the special channels (errors, interrupts; negative `idx`),
//!   which are replaced, as LangGraph's savers do.
//!
//! # Message lists, stored flat
//! LangGraph's own savers store a `MessagesState` channel as one blob of the whole list at
//! every step, so storage grows with the square of the conversation. Here a channel whose
//! value is a list of messages arrives as a *message list* (type [`MESSAGE_LIST_TYPE`]):
//! the version it continues from and what changed (appended, replaced, removed message
//! ids), each message's serialized bytes sent and stored once, keyed by id and digest.
//! The list of every version is a set of rows `(branch, position, from_seq, to_seq)`:
//! continuing the newest version of a branch writes only the changed rows; continuing an
//! older version (a fork) starts a new branch with a copy of that version's rows. Reading
//! any version is one indexed query over its branch's rows, never a replay.
//!
//! # Layout
//! This module holds the wire types and the [`SaverStore`] contract; `sql` implements
//! it on [`SqlCheckpointer`](super::sql::SqlCheckpointer), with message lists in
//! `message_list` and `copy_thread` (export and import) in `export`. The other backends
//! keep the trait's defaults, which refuse every call. [`conformance`] is the suite the
//! SQL implementation passes on real SQLite (`tests/saver_conformance.rs`).

mod export;
mod message_list;
pub(crate) mod sql;

// The suite runs natively, and in the worker only where dev routes are built in.
#[cfg(any(not(target_arch = "wasm32"), feature = "dev-routes"))]
pub mod conformance;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::thread::ThreadId;

/// Largest blob or serialized checkpoint accepted, in bytes: it must fit a Durable Object
/// row (2 MB) with room for the row's keys.
pub const SAVER_BLOB_MAX_BYTES: usize = crate::limits::DO_ROW_MAX_BYTES - 64 * 1024;

/// Bytes as the serializer typed them: `(type, data)`, the data base64 on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typed {
    /// The serializer's type tag (`msgpack`, `json`, `empty`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Base64 of the bytes.
    pub data: String,
}

impl Typed {
    fn decode(&self, field: &str) -> Result<Vec<u8>> {
        let bytes = BASE64
            .decode(&self.data)
            .map_err(|e| Error::invalid(field, format!("is not valid base64 ({e})")))?;
        if bytes.len() > SAVER_BLOB_MAX_BYTES {
            return Err(Error::TooLarge {
                what: format!("{field} (bytes)"),
                size: bytes.len(),
                limit: SAVER_BLOB_MAX_BYTES,
            });
        }
        Ok(bytes)
    }

    fn from_row(kind: String, bytes: &[u8]) -> Self {
        Typed {
            kind,
            data: BASE64.encode(bytes),
        }
    }
}

/// The blob type of a message list stored flat (the blob itself is empty).
pub const MESSAGE_LIST_TYPE: &str = "em:message_list";

/// A channel value to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobIn {
    /// The channel.
    pub channel: String,
    /// Its new version (as in `new_versions`).
    pub version: Value,
    /// The value, typed; for a message list, type [`MESSAGE_LIST_TYPE`] and no data.
    #[serde(flatten)]
    pub value: Typed,
    /// For a message list: how it differs from a stored version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<MessageListIn>,
}

/// A message list as a change to a stored version, or whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageListIn {
    /// The version of the same channel it changes; `None`: `ops` append the whole list.
    #[serde(default)]
    pub base_version: Option<Value>,
    /// The changes, in order.
    pub ops: Vec<ListOp>,
}

/// One change to a message list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ListOp {
    /// A new message at the end.
    Append {
        /// The message id.
        id: String,
        /// A digest of its serialized bytes.
        digest: String,
        /// The serialized message.
        #[serde(flatten)]
        value: Typed,
    },
    /// A new body for a message, in place.
    Replace {
        /// The message id.
        id: String,
        /// A digest of its serialized bytes.
        digest: String,
        /// The serialized message.
        #[serde(flatten)]
        value: Typed,
    },
    /// The message leaves the list.
    Remove {
        /// The message id.
        id: String,
    },
}

/// One message of a list, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListItem {
    /// The message id.
    pub id: String,
    /// Its digest.
    pub digest: String,
    /// The serialized message.
    #[serde(flatten)]
    pub value: Typed,
}

/// `put`: one checkpoint and the channel values that changed with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaverPut {
    /// The checkpoint namespace (`""` for the root graph).
    #[serde(default)]
    pub checkpoint_ns: String,
    /// The checkpoint's id.
    pub checkpoint_id: String,
    /// The checkpoint it follows, if any.
    #[serde(default)]
    pub parent_checkpoint_id: Option<String>,
    /// The checkpoint without `channel_values`, typed by the serializer.
    pub checkpoint: Typed,
    /// `checkpoint["channel_versions"]`: which blob each channel reads.
    pub channel_versions: Map<String, Value>,
    /// Metadata as JSON, for `list` filters.
    pub metadata: Map<String, Value>,
    /// Metadata as the serializer typed it, returned as is.
    pub metadata_typed: Typed,
    /// The values of the channels in `new_versions`.
    #[serde(default)]
    pub blobs: Vec<BlobIn>,
}

/// One pending write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteIn {
    /// Position within the task's writes; negative for special channels.
    pub idx: i64,
    /// The channel written.
    pub channel: String,
    /// The value, typed.
    #[serde(flatten)]
    pub value: Typed,
}

/// `put_writes`: a task's writes against a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaverPutWrites {
    /// The checkpoint namespace.
    #[serde(default)]
    pub checkpoint_ns: String,
    /// The checkpoint the writes belong to.
    pub checkpoint_id: String,
    /// The task.
    pub task_id: String,
    /// The task's path.
    #[serde(default)]
    pub task_path: String,
    /// The writes.
    pub writes: Vec<WriteIn>,
}

/// `list`: which checkpoints.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SaverList {
    /// Only this namespace; every namespace when `None`.
    #[serde(default)]
    pub checkpoint_ns: Option<String>,
    /// Only this checkpoint.
    #[serde(default)]
    pub checkpoint_id: Option<String>,
    /// Only checkpoints whose metadata has these key/values.
    #[serde(default)]
    pub filter: Map<String, Value>,
    /// Only checkpoints with an id below this one.
    #[serde(default)]
    pub before: Option<String>,
    /// At most this many.
    #[serde(default)]
    pub limit: Option<usize>,
}

/// A pending write, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOut {
    /// The task that wrote it.
    pub task_id: String,
    /// The channel.
    pub channel: String,
    /// The value, typed.
    #[serde(flatten)]
    pub value: Typed,
}

/// A channel value, read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobOut {
    /// The channel.
    pub channel: String,
    /// The value, typed.
    #[serde(flatten)]
    pub value: Typed,
    /// For a message list: its messages, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ListItem>>,
}

/// A checkpoint tuple, read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaverTuple {
    /// The namespace.
    pub checkpoint_ns: String,
    /// The id.
    pub checkpoint_id: String,
    /// The parent's id.
    pub parent_checkpoint_id: Option<String>,
    /// The checkpoint without channel values, typed.
    pub checkpoint: Typed,
    /// The metadata, typed.
    pub metadata_typed: Typed,
    /// The channel values at this checkpoint.
    pub blobs: Vec<BlobOut>,
    /// Writes made against this checkpoint, in LangGraph's order (task path, task, idx).
    pub pending_writes: Vec<WriteOut>,
}

/// Everything a thread's checkpointer storage holds, for `copy_thread`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SaverExport {
    /// Every checkpoint, with the blobs it introduced.
    pub puts: Vec<SaverPut>,
    /// Every task's writes.
    pub writes: Vec<SaverPutWrites>,
    /// Message-list tables, row by row (columns after `tkey`, in table order).
    #[serde(default)]
    pub list_tables: Vec<(String, Vec<Vec<Value>>)>,
}

/// A version as stored: strings as they are, other JSON values as their JSON text.
fn version_key(version: &Value) -> String {
    match version {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What a backend without checkpointer storage answers (the trait's defaults).
fn unsupported<T>() -> Result<T> {
    Err(Error::Unsupported {
        what: "LangGraph checkpointer storage on MEMORY_BACKEND=memory or kv (use durable_object)"
            .into(),
    })
}

/// The checkpointer storage operations, per thread: what `EdgeMemorySaver` calls over
/// `POST /threads/{id}/saver/*`.
///
/// The contract (checked by [`conformance`] on real SQLite):
/// - Checkpoints are keyed by `(thread, checkpoint_ns, checkpoint_id)`; namespaces and
///   threads never see each other's data. Ids sort in creation order (LangGraph's
///   checkpoint ids do), so "newest" means "greatest id".
/// - A put or `put_writes` is atomic: after an error nothing of it is stored.
/// - Retries are harmless: a repeated put or `put_writes` stores nothing new.
/// - A thread that was never written reads as empty (`None`, `[]`), not as an error; the
///   first write creates it.
///
/// Only the SQL backend stores anything. Every method has a default that fails with
/// [`Error::Unsupported`], which is what the memory and KV backends keep: they serve the
/// chat API only.
pub trait SaverStore {
    /// `put`: stores the checkpoint (replacing one with the same id: puts are idempotent
    /// for retries) and the blobs of the channels in `put.blobs`, atomically. A
    /// channel whose version did not change is not resent; reads join each channel at the
    /// version `channel_versions` names.
    ///
    /// A blob with a [`MessageListIn`] stores a message list. A delta whose
    /// `base_version` is not stored, or whose ops do not fit that version (appending an
    /// id it has, replacing or removing one it lacks), fails with [`Error::Conflict`]
    /// `base_version_missing`: the client then sends the whole list. A blob, checkpoint
    /// or message over [`SAVER_BLOB_MAX_BYTES`] fails with [`Error::TooLarge`].
    fn saver_put(&self, thread_id: &ThreadId, put: &SaverPut, now_ms: i64) -> Result<()> {
        let _ = (thread_id, put, now_ms);
        unsupported()
    }

    /// `put_writes`: stores a task's writes against a checkpoint. Regular writes are kept
    /// if already there (a retry is a no-op); special ones (negative `idx`: errors,
    /// interrupts) replace what was there, as LangGraph's savers do.
    fn saver_put_writes(
        &self,
        thread_id: &ThreadId,
        put: &SaverPutWrites,
        now_ms: i64,
    ) -> Result<()> {
        let _ = (thread_id, put, now_ms);
        unsupported()
    }

    /// `get_tuple`: the checkpoint `checkpoint_id` of the namespace, or its newest when
    /// `None`, with its channel values and pending writes (ordered by task path, task,
    /// idx). `None` when there is no such checkpoint, or no such thread.
    fn saver_get(
        &self,
        thread_id: &ThreadId,
        checkpoint_ns: &str,
        checkpoint_id: Option<&str>,
    ) -> Result<Option<SaverTuple>> {
        let _ = (thread_id, checkpoint_ns, checkpoint_id);
        unsupported()
    }

    /// `list`: checkpoints newest first (greatest id first, across namespaces when none is
    /// named), filtered by namespace, id, metadata key/values and `before`, at most
    /// `limit`. Empty for an unknown thread.
    fn saver_list(&self, thread_id: &ThreadId, query: &SaverList) -> Result<Vec<SaverTuple>> {
        let _ = (thread_id, query);
        unsupported()
    }

    /// `prune`: with `keep_latest`, keeps the newest checkpoint of each namespace, its
    /// writes and the blobs it reads, and removes the rest; otherwise removes every
    /// checkpoint, write, blob and message list of the thread.
    fn saver_prune(&self, thread_id: &ThreadId, keep_latest: bool) -> Result<()> {
        let _ = (thread_id, keep_latest);
        unsupported()
    }

    /// Everything the thread's checkpointer storage holds, for `copy_thread`: checkpoints
    /// oldest first, writes, and the message-list tables row by row. Empty for an
    /// unknown thread.
    fn saver_export(&self, thread_id: &ThreadId) -> Result<SaverExport> {
        let _ = thread_id;
        unsupported()
    }

    /// Writes an export into this thread (the target of `copy_thread`), which must hold
    /// no checkpoints and no message lists yet: otherwise [`Error::Conflict`]
    /// `target_not_empty` and nothing changes.
    fn saver_import(&self, thread_id: &ThreadId, export: &SaverExport, now_ms: i64) -> Result<()> {
        let _ = (thread_id, export, now_ms);
        unsupported()
    }

    /// Deletes the thread's checkpoints whose `metadata.run_id` is one of `run_ids`, and
    /// their pending writes, in one atomic batch (part of `delete_for_runs`). Nothing to
    /// delete is not an error.
    fn saver_delete_runs(&self, thread_id: &ThreadId, run_ids: &[String]) -> Result<()> {
        let _ = (thread_id, run_ids);
        unsupported()
    }
}
