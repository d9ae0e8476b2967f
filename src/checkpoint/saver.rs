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

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sql::{Columns, SqlCheckpointer, SqlExec, SqlValue, Statement};
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

/// Rows open at the newest version of a branch have this `to_seq` (2^53 - 1: it survives
/// JavaScript numbers in Durable Object SQL).
const OPEN: i64 = 9_007_199_254_740_991;

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

/// The message-list tables and their columns after `tkey`, for export and import.
const LIST_TABLES: &[(&str, &[&str])] = &[
    (
        "em_saver_messages",
        &["ns", "channel", "msg_id", "digest", "type", "data"],
    ),
    (
        "em_saver_list_versions",
        &["ns", "channel", "version", "branch", "seq"],
    ),
    (
        "em_saver_list_rows",
        &[
            "ns", "channel", "branch", "pos", "from_seq", "to_seq", "msg_id", "digest",
        ],
    ),
];

/// A version as stored: strings as they are, other JSON values as their JSON text.
fn version_key(version: &Value) -> String {
    match version {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn blob_bytes(value: SqlValue) -> Vec<u8> {
    match value {
        SqlValue::Blob(b) => b,
        SqlValue::Text(t) => t.into_bytes(),
        _ => Vec::new(),
    }
}

/// Blobs (bytes) travel as base64 in exports; other values as themselves.
fn sql_to_json(value: SqlValue) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::from(i),
        SqlValue::Real(f) => Value::from(f),
        SqlValue::Text(t) => Value::String(t),
        SqlValue::Blob(b) => serde_json::json!({"b64": BASE64.encode(b)}),
    }
}

fn json_to_sql(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Number(n) => n.as_i64().map_or_else(
            || SqlValue::Real(n.as_f64().unwrap_or(0.0)),
            SqlValue::Integer,
        ),
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Object(o) => match o.get("b64").and_then(Value::as_str) {
            Some(b64) => SqlValue::Blob(BASE64.decode(b64).unwrap_or_default()),
            None => SqlValue::Text(value.to_string()),
        },
        other => SqlValue::Text(other.to_string()),
    }
}

const TUPLE_COLUMNS: &str = "ns, checkpoint_id, parent_id, checkpoint_type, checkpoint, channel_versions, metadata, metadata_type, metadata_typed";

/// A checkpoint row before its blobs and writes are joined.
struct Row {
    ns: String,
    checkpoint_id: String,
    parent_id: Option<String>,
    checkpoint: Typed,
    channel_versions: Map<String, Value>,
    metadata: Map<String, Value>,
    metadata_typed: Typed,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// `put`: stores the checkpoint (replacing one with the same id: puts are idempotent
    /// for retries) and the blobs of the channels that changed, atomically.
    pub fn saver_put(&self, thread_id: &ThreadId, put: &SaverPut, now_ms: i64) -> Result<()> {
        let checkpoint = put.checkpoint.decode("checkpoint.data")?;
        let metadata_typed = put.metadata_typed.decode("metadata_typed.data")?;
        let blobs = put
            .blobs
            .iter()
            .map(|b| Ok((b, b.value.decode(&format!("blobs[{}].data", b.channel))?)))
            .collect::<Result<Vec<_>>>()?;
        let tkey = self.ensure_thread_key(thread_id, now_ms)?;
        let ns = put.checkpoint_ns.as_str();
        let mut batch = vec![Statement::new(
            "INSERT OR REPLACE INTO em_saver_checkpoints
             (tkey, ns, checkpoint_id, parent_id, checkpoint_type, checkpoint, channel_versions, metadata, metadata_type, metadata_typed)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                tkey.into(),
                ns.into(),
                put.checkpoint_id.as_str().into(),
                put.parent_checkpoint_id.clone().into(),
                put.checkpoint.kind.as_str().into(),
                SqlValue::Blob(checkpoint),
                Value::Object(put.channel_versions.clone()).to_string().into(),
                Value::Object(put.metadata.clone()).to_string().into(),
                put.metadata_typed.kind.as_str().into(),
                SqlValue::Blob(metadata_typed),
            ],
        )];
        for (blob, bytes) in blobs {
            if let Some(list) = &blob.list {
                let version = version_key(&blob.version);
                batch.extend(self.list_put(tkey, ns, &blob.channel, &version, list)?);
            }
            batch.push(Statement::new(
                "INSERT OR REPLACE INTO em_saver_blobs (tkey, ns, channel, version, type, data) VALUES (?, ?, ?, ?, ?, ?)",
                vec![
                    tkey.into(),
                    ns.into(),
                    blob.channel.as_str().into(),
                    version_key(&blob.version).into(),
                    blob.value.kind.as_str().into(),
                    SqlValue::Blob(bytes),
                ],
            ));
        }
        batch.push(Statement::new(
            "UPDATE em_threads SET updated_at = ? WHERE tkey = ?",
            vec![now_ms.into(), tkey.into()],
        ));
        self.execute(&batch)
    }

    /// `put_writes`: stores a task's writes; regular ones only if absent (retries are
    /// no-ops), special ones (negative `idx`) replacing what was there.
    pub fn saver_put_writes(
        &self,
        thread_id: &ThreadId,
        put: &SaverPutWrites,
        now_ms: i64,
    ) -> Result<()> {
        let decoded = put
            .writes
            .iter()
            .enumerate()
            .map(|(i, w)| Ok((w, w.value.decode(&format!("writes[{i}].data"))?)))
            .collect::<Result<Vec<_>>>()?;
        let tkey = self.ensure_thread_key(thread_id, now_ms)?;
        let batch: Vec<Statement> = decoded
            .into_iter()
            .map(|(write, bytes)| {
                let verb = if write.idx < 0 { "INSERT OR REPLACE" } else { "INSERT OR IGNORE" };
                Statement::new(
                    format!(
                        "{verb} INTO em_saver_writes (tkey, ns, checkpoint_id, task_id, idx, channel, type, data, task_path)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    vec![
                        tkey.into(),
                        put.checkpoint_ns.as_str().into(),
                        put.checkpoint_id.as_str().into(),
                        put.task_id.as_str().into(),
                        write.idx.into(),
                        write.channel.as_str().into(),
                        write.value.kind.as_str().into(),
                        SqlValue::Blob(bytes),
                        put.task_path.as_str().into(),
                    ],
                )
            })
            .collect();
        self.execute(&batch)
    }

    fn saver_rows(&self, tkey: i64, filter: &str, params: Vec<SqlValue>) -> Result<Vec<Row>> {
        let mut all = vec![SqlValue::Integer(tkey)];
        all.extend(params);
        self.query(
            &format!(
                "SELECT {TUPLE_COLUMNS} FROM em_saver_checkpoints WHERE tkey = ? {filter} ORDER BY checkpoint_id DESC"
            ),
            &all,
        )?
        .into_iter()
        .map(|row| {
            let mut cols = Columns::new(row, "em_saver_checkpoints");
            let ns = cols.text()?;
            let checkpoint_id = cols.text()?;
            let parent_id = cols.optional_text()?;
            let checkpoint_type = cols.text()?;
            let checkpoint = blob_bytes(cols.next()?);
            let channel_versions = cols.json_object()?;
            let metadata = cols.json_object()?;
            let metadata_type = cols.text()?;
            let metadata_typed = blob_bytes(cols.next()?);
            Ok(Row {
                ns,
                checkpoint_id,
                parent_id,
                checkpoint: Typed::from_row(checkpoint_type, &checkpoint),
                channel_versions,
                metadata,
                metadata_typed: Typed::from_row(metadata_type, &metadata_typed),
            })
        })
        .collect()
    }

    fn saver_tuple(&self, tkey: i64, row: Row) -> Result<SaverTuple> {
        let mut blobs = Vec::new();
        for (channel, version) in &row.channel_versions {
            let found = self.query(
                "SELECT type, data FROM em_saver_blobs WHERE tkey = ? AND ns = ? AND channel = ? AND version = ?",
                &[
                    tkey.into(),
                    row.ns.as_str().into(),
                    channel.as_str().into(),
                    version_key(version).into(),
                ],
            )?;
            if let Some(found) = found.into_iter().next() {
                let mut cols = Columns::new(found, "em_saver_blobs");
                let kind = cols.text()?;
                let bytes = blob_bytes(cols.next()?);
                let items = if kind == MESSAGE_LIST_TYPE {
                    Some(self.list_items(tkey, &row.ns, channel, &version_key(version))?)
                } else {
                    None
                };
                blobs.push(BlobOut {
                    channel: channel.clone(),
                    value: Typed::from_row(kind, &bytes),
                    items,
                });
            }
        }
        let pending_writes = self
            .query(
                "SELECT task_id, channel, type, data FROM em_saver_writes
                 WHERE tkey = ? AND ns = ? AND checkpoint_id = ? ORDER BY task_path, task_id, idx",
                &[
                    tkey.into(),
                    row.ns.as_str().into(),
                    row.checkpoint_id.as_str().into(),
                ],
            )?
            .into_iter()
            .map(|w| {
                let mut cols = Columns::new(w, "em_saver_writes");
                let task_id = cols.text()?;
                let channel = cols.text()?;
                let kind = cols.text()?;
                let bytes = blob_bytes(cols.next()?);
                Ok(WriteOut {
                    task_id,
                    channel,
                    value: Typed::from_row(kind, &bytes),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SaverTuple {
            checkpoint_ns: row.ns,
            checkpoint_id: row.checkpoint_id,
            parent_checkpoint_id: row.parent_id,
            checkpoint: row.checkpoint,
            metadata_typed: row.metadata_typed,
            blobs,
            pending_writes,
        })
    }

    /// `get_tuple`: the checkpoint with that id, or the newest of the namespace.
    pub fn saver_get(
        &self,
        thread_id: &ThreadId,
        checkpoint_ns: &str,
        checkpoint_id: Option<&str>,
    ) -> Result<Option<SaverTuple>> {
        let Some(tkey) = self.thread_key(thread_id)? else {
            return Ok(None);
        };
        let mut rows = match checkpoint_id {
            Some(id) => self.saver_rows(
                tkey,
                "AND ns = ? AND checkpoint_id = ?",
                vec![checkpoint_ns.into(), id.into()],
            )?,
            None => self.saver_rows(tkey, "AND ns = ?", vec![checkpoint_ns.into()])?,
        };
        if rows.is_empty() {
            return Ok(None);
        }
        let row = rows.swap_remove(0);
        self.saver_tuple(tkey, row).map(Some)
    }

    /// `list`: checkpoints newest first, filtered as asked.
    pub fn saver_list(&self, thread_id: &ThreadId, query: &SaverList) -> Result<Vec<SaverTuple>> {
        let Some(tkey) = self.thread_key(thread_id)? else {
            return Ok(Vec::new());
        };
        let mut filter = String::new();
        let mut params = Vec::new();
        if let Some(ns) = &query.checkpoint_ns {
            filter.push_str(" AND ns = ?");
            params.push(ns.as_str().into());
        }
        if let Some(id) = &query.checkpoint_id {
            filter.push_str(" AND checkpoint_id = ?");
            params.push(id.as_str().into());
        }
        if let Some(before) = &query.before {
            filter.push_str(" AND checkpoint_id < ?");
            params.push(before.as_str().into());
        }
        let limit = query.limit.unwrap_or(usize::MAX);
        self.saver_rows(tkey, &filter, params)?
            .into_iter()
            .filter(|row| {
                query
                    .filter
                    .iter()
                    .all(|(k, v)| row.metadata.get(k) == Some(v))
            })
            .take(limit)
            .map(|row| self.saver_tuple(tkey, row))
            .collect()
    }

    /// `prune`: `keep_latest` keeps the newest checkpoint of each namespace (with its
    /// writes and the blobs it reads); `delete` removes every checkpoint.
    pub fn saver_prune(&self, thread_id: &ThreadId, keep_latest: bool) -> Result<()> {
        let Some(tkey) = self.thread_key(thread_id)? else {
            return Ok(());
        };
        if !keep_latest {
            return self.execute(&[
                Statement::new(
                    "DELETE FROM em_saver_checkpoints WHERE tkey = ?",
                    vec![tkey.into()],
                ),
                Statement::new(
                    "DELETE FROM em_saver_blobs WHERE tkey = ?",
                    vec![tkey.into()],
                ),
                Statement::new(
                    "DELETE FROM em_saver_writes WHERE tkey = ?",
                    vec![tkey.into()],
                ),
                Statement::new(
                    "DELETE FROM em_saver_messages WHERE tkey = ?",
                    vec![tkey.into()],
                ),
                Statement::new(
                    "DELETE FROM em_saver_list_versions WHERE tkey = ?",
                    vec![tkey.into()],
                ),
                Statement::new(
                    "DELETE FROM em_saver_list_rows WHERE tkey = ?",
                    vec![tkey.into()],
                ),
            ]);
        }
        let rows = self.saver_rows(tkey, "", vec![])?;
        let mut kept: std::collections::HashMap<String, Row> = std::collections::HashMap::new();
        let mut batch = Vec::new();
        for row in rows {
            if kept.contains_key(&row.ns) {
                batch.push(Statement::new(
                    "DELETE FROM em_saver_checkpoints WHERE tkey = ? AND ns = ? AND checkpoint_id = ?",
                    vec![tkey.into(), row.ns.as_str().into(), row.checkpoint_id.as_str().into()],
                ));
                batch.push(Statement::new(
                    "DELETE FROM em_saver_writes WHERE tkey = ? AND ns = ? AND checkpoint_id = ?",
                    vec![
                        tkey.into(),
                        row.ns.as_str().into(),
                        row.checkpoint_id.as_str().into(),
                    ],
                ));
            } else {
                kept.insert(row.ns.clone(), row);
            }
        }
        // Blobs no kept checkpoint reads.
        let blobs = self.query(
            "SELECT ns, channel, version FROM em_saver_blobs WHERE tkey = ?",
            &[tkey.into()],
        )?;
        for blob in blobs {
            let mut cols = Columns::new(blob, "em_saver_blobs");
            let (ns, channel, version) = (cols.text()?, cols.text()?, cols.text()?);
            let used = kept.get(&ns).is_some_and(|row| {
                row.channel_versions
                    .get(&channel)
                    .is_some_and(|v| version_key(v) == version)
            });
            if !used {
                batch.push(Statement::new(
                    "DELETE FROM em_saver_blobs WHERE tkey = ? AND ns = ? AND channel = ? AND version = ?",
                    vec![tkey.into(), ns.into(), channel.into(), version.into()],
                ));
            }
        }
        self.execute(&batch)
    }

    /// Everything the thread's checkpointer storage holds, for `copy_thread`.
    pub fn saver_export(&self, thread_id: &ThreadId) -> Result<SaverExport> {
        let Some(tkey) = self.thread_key(thread_id)? else {
            return Ok(SaverExport::default());
        };
        let mut rows = self.saver_rows(tkey, "", vec![])?;
        rows.reverse();
        let mut puts = Vec::with_capacity(rows.len());
        let blobs = self.query(
            "SELECT ns, channel, version, type, data FROM em_saver_blobs WHERE tkey = ?",
            &[tkey.into()],
        )?;
        let mut blobs_by_ns: std::collections::HashMap<String, Vec<BlobIn>> =
            std::collections::HashMap::new();
        for blob in blobs {
            let mut cols = Columns::new(blob, "em_saver_blobs");
            let ns = cols.text()?;
            let channel = cols.text()?;
            let version = cols.text()?;
            let kind = cols.text()?;
            let bytes = blob_bytes(cols.next()?);
            // A message list's rows travel in `list_tables`; its blob is the marker.
            blobs_by_ns.entry(ns).or_default().push(BlobIn {
                channel,
                version: Value::String(version),
                value: Typed::from_row(kind, &bytes),
                list: None,
            });
        }
        for row in rows {
            // Blobs travel with the first checkpoint of their namespace; versions are
            // stored as text, which `version_key` maps to itself.
            let blobs = blobs_by_ns.remove(&row.ns).unwrap_or_default();
            puts.push(SaverPut {
                checkpoint_ns: row.ns,
                checkpoint_id: row.checkpoint_id,
                parent_checkpoint_id: row.parent_id,
                checkpoint: row.checkpoint,
                channel_versions: row.channel_versions,
                metadata: row.metadata,
                metadata_typed: row.metadata_typed,
                blobs,
            });
        }
        let writes = self.query(
            "SELECT ns, checkpoint_id, task_id, task_path, idx, channel, type, data FROM em_saver_writes WHERE tkey = ?
             ORDER BY ns, checkpoint_id, task_id, idx",
            &[tkey.into()],
        )?;
        let mut grouped: Vec<SaverPutWrites> = Vec::new();
        for write in writes {
            let mut cols = Columns::new(write, "em_saver_writes");
            let ns = cols.text()?;
            let checkpoint_id = cols.text()?;
            let task_id = cols.text()?;
            let task_path = cols.text()?;
            let idx = cols.integer()?;
            let channel = cols.text()?;
            let kind = cols.text()?;
            let bytes = blob_bytes(cols.next()?);
            let write = WriteIn {
                idx,
                channel,
                value: Typed::from_row(kind, &bytes),
            };
            match grouped.last_mut() {
                Some(g)
                    if g.checkpoint_ns == ns
                        && g.checkpoint_id == checkpoint_id
                        && g.task_id == task_id =>
                {
                    g.writes.push(write)
                }
                _ => grouped.push(SaverPutWrites {
                    checkpoint_ns: ns,
                    checkpoint_id,
                    task_id,
                    task_path,
                    writes: vec![write],
                }),
            }
        }
        let mut list_tables = Vec::new();
        for (table, columns) in LIST_TABLES {
            let rows = self.query(
                &format!("SELECT {} FROM {table} WHERE tkey = ?", columns.join(", ")),
                &[tkey.into()],
            )?;
            let rows = rows
                .into_iter()
                .map(|row| row.into_iter().map(sql_to_json).collect())
                .collect();
            list_tables.push(((*table).to_string(), rows));
        }
        Ok(SaverExport {
            puts,
            writes: grouped,
            list_tables,
        })
    }

    /// Writes an export into this thread (which `copy_thread` targets).
    pub fn saver_import(
        &self,
        thread_id: &ThreadId,
        export: &SaverExport,
        now_ms: i64,
    ) -> Result<()> {
        // Branch numbers and message rows of two threads would mix: copy into an empty
        // thread only, as a copy to a new id always is.
        if let Some(tkey) = self.thread_key(thread_id)? {
            let any = |table: &str| {
                self.query(
                    &format!("SELECT 1 FROM {table} WHERE tkey = ? LIMIT 1"),
                    &[tkey.into()],
                )
            };
            if !any("em_saver_checkpoints")?.is_empty() || !any("em_saver_messages")?.is_empty() {
                return Err(Error::Conflict {
                    kind: crate::error::ConflictKind::TargetNotEmpty,
                    reason: format!(
                        "Thread '{thread_id}' already has checkpoints: copy_thread writes only into a thread without any (delete it first, or copy to a new thread id)"
                    ),
                });
            }
        }
        let tkey = self.ensure_thread_key(thread_id, now_ms)?;
        let mut batch = Vec::new();
        for (table, rows) in &export.list_tables {
            let Some((table, columns)) = LIST_TABLES.iter().find(|(t, _)| t == table) else {
                return Err(Error::invalid(
                    "list_tables",
                    format!("unknown table {table:?}"),
                ));
            };
            let placeholders = vec!["?"; columns.len() + 1].join(", ");
            for row in rows {
                if row.len() != columns.len() {
                    return Err(Error::invalid(
                        "list_tables",
                        format!("{table}: a row has {} columns", row.len()),
                    ));
                }
                let mut params = vec![SqlValue::Integer(tkey)];
                params.extend(row.iter().map(json_to_sql));
                batch.push(Statement::new(
                    format!(
                        "INSERT OR REPLACE INTO {table} (tkey, {}) VALUES ({placeholders})",
                        columns.join(", ")
                    ),
                    params,
                ));
            }
        }
        self.execute(&batch)?;
        for put in &export.puts {
            self.saver_put(thread_id, put, now_ms)?;
        }
        for writes in &export.writes {
            self.saver_put_writes(thread_id, writes, now_ms)?;
        }
        Ok(())
    }
}

/// The checkpointer storage operations, per thread. The SQL backend implements them;
/// the in-memory backend (tests and demos of the chat API only) does not.
pub trait SaverStore {
    /// See [`SqlCheckpointer::saver_put`].
    fn saver_put(&self, thread_id: &ThreadId, put: &SaverPut, now_ms: i64) -> Result<()>;
    /// See [`SqlCheckpointer::saver_put_writes`].
    fn saver_put_writes(
        &self,
        thread_id: &ThreadId,
        put: &SaverPutWrites,
        now_ms: i64,
    ) -> Result<()>;
    /// See [`SqlCheckpointer::saver_get`].
    fn saver_get(
        &self,
        thread_id: &ThreadId,
        checkpoint_ns: &str,
        checkpoint_id: Option<&str>,
    ) -> Result<Option<SaverTuple>>;
    /// See [`SqlCheckpointer::saver_list`].
    fn saver_list(&self, thread_id: &ThreadId, query: &SaverList) -> Result<Vec<SaverTuple>>;
    /// See [`SqlCheckpointer::saver_prune`].
    fn saver_prune(&self, thread_id: &ThreadId, keep_latest: bool) -> Result<()>;
    /// See [`SqlCheckpointer::saver_export`].
    fn saver_export(&self, thread_id: &ThreadId) -> Result<SaverExport>;
    /// See [`SqlCheckpointer::saver_import`].
    fn saver_import(&self, thread_id: &ThreadId, export: &SaverExport, now_ms: i64) -> Result<()>;
}

impl<E: SqlExec> SaverStore for SqlCheckpointer<E> {
    fn saver_put(&self, thread_id: &ThreadId, put: &SaverPut, now_ms: i64) -> Result<()> {
        SqlCheckpointer::saver_put(self, thread_id, put, now_ms)
    }
    fn saver_put_writes(
        &self,
        thread_id: &ThreadId,
        put: &SaverPutWrites,
        now_ms: i64,
    ) -> Result<()> {
        SqlCheckpointer::saver_put_writes(self, thread_id, put, now_ms)
    }
    fn saver_get(
        &self,
        thread_id: &ThreadId,
        checkpoint_ns: &str,
        checkpoint_id: Option<&str>,
    ) -> Result<Option<SaverTuple>> {
        SqlCheckpointer::saver_get(self, thread_id, checkpoint_ns, checkpoint_id)
    }
    fn saver_list(&self, thread_id: &ThreadId, query: &SaverList) -> Result<Vec<SaverTuple>> {
        SqlCheckpointer::saver_list(self, thread_id, query)
    }
    fn saver_prune(&self, thread_id: &ThreadId, keep_latest: bool) -> Result<()> {
        SqlCheckpointer::saver_prune(self, thread_id, keep_latest)
    }
    fn saver_export(&self, thread_id: &ThreadId) -> Result<SaverExport> {
        SqlCheckpointer::saver_export(self, thread_id)
    }
    fn saver_import(&self, thread_id: &ThreadId, export: &SaverExport, now_ms: i64) -> Result<()> {
        SqlCheckpointer::saver_import(self, thread_id, export, now_ms)
    }
}

fn unsupported<T>() -> Result<T> {
    Err(Error::Unsupported {
        what: "LangGraph checkpointer storage on MEMORY_BACKEND=memory or kv (use durable_object)"
            .into(),
    })
}

/// `SaverStore` for a backend without checkpointer storage: every call is `Unsupported`.
macro_rules! no_saver_store {
    ($ty:ty $(where $g:ident: $bound:path)?) => {
        impl$(<$g: $bound>)? SaverStore for $ty {
            fn saver_put(&self, _: &ThreadId, _: &SaverPut, _: i64) -> Result<()> {
                unsupported()
            }
            fn saver_put_writes(&self, _: &ThreadId, _: &SaverPutWrites, _: i64) -> Result<()> {
                unsupported()
            }
            fn saver_get(&self, _: &ThreadId, _: &str, _: Option<&str>) -> Result<Option<SaverTuple>> {
                unsupported()
            }
            fn saver_list(&self, _: &ThreadId, _: &SaverList) -> Result<Vec<SaverTuple>> {
                unsupported()
            }
            fn saver_prune(&self, _: &ThreadId, _: bool) -> Result<()> {
                unsupported()
            }
            fn saver_export(&self, _: &ThreadId) -> Result<SaverExport> {
                unsupported()
            }
            fn saver_import(&self, _: &ThreadId, _: &SaverExport, _: i64) -> Result<()> {
                unsupported()
            }
        }
    };
}

no_saver_store!(super::memory::MemoryCheckpointer);
no_saver_store!(super::kv::KvCheckpointer<K> where K: super::kv::KvPort);

/// Where a message sits in the list being written: its row's position and first seq.
#[derive(Debug, Clone)]
struct OpenRow {
    pos: i64,
    from_seq: i64,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    fn list_version(
        &self,
        tkey: i64,
        ns: &str,
        channel: &str,
        version: &str,
    ) -> Result<Option<(i64, i64)>> {
        let rows = self.query(
            "SELECT branch, seq FROM em_saver_list_versions WHERE tkey = ? AND ns = ? AND channel = ? AND version = ?",
            &[tkey.into(), ns.into(), channel.into(), version.into()],
        )?;
        match rows.into_iter().next() {
            Some(row) => {
                let mut cols = Columns::new(row, "em_saver_list_versions");
                Ok(Some((cols.integer()?, cols.integer()?)))
            }
            None => Ok(None),
        }
    }

    fn list_scalar(&self, sql: &str, params: &[SqlValue]) -> Result<i64> {
        let rows = self.query(sql, params)?;
        Columns::new(
            rows.into_iter().next().unwrap_or_default(),
            "em_saver_list_rows",
        )
        .integer()
    }

    /// The rows of a list version: `(pos, msg_id, digest)` in order.
    fn list_rows_at(
        &self,
        tkey: i64,
        ns: &str,
        channel: &str,
        branch: i64,
        seq: i64,
    ) -> Result<Vec<(i64, String, String)>> {
        self.query(
            "SELECT pos, msg_id, digest FROM em_saver_list_rows
             WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ? AND from_seq <= ? AND to_seq > ?
             ORDER BY pos",
            &[tkey.into(), ns.into(), channel.into(), branch.into(), seq.into(), seq.into()],
        )?
        .into_iter()
        .map(|row| {
            let mut cols = Columns::new(row, "em_saver_list_rows");
            Ok((cols.integer()?, cols.text()?, cols.text()?))
        })
        .collect()
    }

    /// The messages of a stored list version, in order.
    fn list_items(
        &self,
        tkey: i64,
        ns: &str,
        channel: &str,
        version: &str,
    ) -> Result<Vec<ListItem>> {
        let (branch, seq) = self
            .list_version(tkey, ns, channel, version)?
            .ok_or_else(|| {
                Error::backend(format_args!("message list {channel}@{version} is missing"))
            })?;
        self.query(
            "SELECT r.msg_id, r.digest, m.type, m.data FROM em_saver_list_rows r
             JOIN em_saver_messages m ON m.tkey = r.tkey AND m.ns = r.ns AND m.channel = r.channel
               AND m.msg_id = r.msg_id AND m.digest = r.digest
             WHERE r.tkey = ? AND r.ns = ? AND r.channel = ? AND r.branch = ? AND r.from_seq <= ? AND r.to_seq > ?
             ORDER BY r.pos",
            &[tkey.into(), ns.into(), channel.into(), branch.into(), seq.into(), seq.into()],
        )?
        .into_iter()
        .map(|row| {
            let mut cols = Columns::new(row, "em_saver_list_rows");
            let id = cols.text()?;
            let digest = cols.text()?;
            let kind = cols.text()?;
            let bytes = blob_bytes(cols.next()?);
            Ok(ListItem {
                id,
                digest,
                value: Typed::from_row(kind, &bytes),
            })
        })
        .collect()
    }

    /// Statements that store `list` as `version` of `channel`: only the changed rows when
    /// it continues the newest version of a branch; a new branch otherwise.
    fn list_put(
        &self,
        tkey: i64,
        ns: &str,
        channel: &str,
        version: &str,
        list: &MessageListIn,
    ) -> Result<Vec<Statement>> {
        if self.list_version(tkey, ns, channel, version)?.is_some() {
            return Ok(Vec::new()); // a retried put: already stored
        }
        let key = |extra: Vec<SqlValue>| {
            let mut params: Vec<SqlValue> = vec![tkey.into(), ns.into(), channel.into()];
            params.extend(extra);
            params
        };
        let mut batch = Vec::new();
        let base = match &list.base_version {
            Some(v) => Some(self.list_version(tkey, ns, channel, &version_key(v))?.ok_or_else(|| Error::Conflict {
                kind: crate::error::ConflictKind::BaseVersionMissing,
                reason: format!(
                    "message list base version {} of channel {channel:?} is not stored here; send the full list",
                    version_key(v)
                ),
            })?),
            None => None,
        };
        let continues_head = match base {
            Some((branch, seq)) => {
                let head = self.list_scalar(
                    "SELECT coalesce(max(seq), 0) FROM em_saver_list_versions WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ?",
                    &key(vec![branch.into()]),
                )?;
                (head == seq).then_some((branch, seq))
            }
            None => None,
        };
        // The branch and seq of the new version; on a new branch, the rows it starts with.
        let mut copied: std::collections::HashMap<String, OpenRow> =
            std::collections::HashMap::new();
        let (branch, seq, mut next_pos) = match continues_head {
            Some((branch, seq)) => {
                let next_pos = self.list_scalar(
                    "SELECT coalesce(max(pos), 0) + 1 FROM em_saver_list_rows WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ?",
                    &key(vec![branch.into()]),
                )?;
                (branch, seq + 1, next_pos)
            }
            None => {
                // The whole list, or a fork that copies its base's rows.
                let branch = self.list_scalar(
                    "SELECT coalesce(max(branch), 0) + 1 FROM em_saver_list_versions WHERE tkey = ? AND ns = ? AND channel = ?",
                    &key(vec![]),
                )?;
                let mut next_pos = 1;
                if let Some((from_branch, from_seq)) = base {
                    for (pos, id, digest) in
                        self.list_rows_at(tkey, ns, channel, from_branch, from_seq)?
                    {
                        batch.push(Statement::new(
                            "INSERT INTO em_saver_list_rows (tkey, ns, channel, branch, pos, from_seq, to_seq, msg_id, digest) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
                            key(vec![branch.into(), pos.into(), OPEN.into(), id.as_str().into(), digest.into()]),
                        ));
                        next_pos = next_pos.max(pos + 1);
                        copied.insert(id, OpenRow { pos, from_seq: 0 });
                    }
                }
                (branch, 1, next_pos)
            }
        };
        let fresh_branch = continues_head.is_none();
        // Rows this put opened or closed, over what is stored.
        let mut local: std::collections::HashMap<String, Option<OpenRow>> =
            std::collections::HashMap::new();
        let open_row = |local: &std::collections::HashMap<String, Option<OpenRow>>,
                        id: &str|
         -> Result<Option<OpenRow>> {
            if let Some(known) = local.get(id) {
                return Ok(known.clone());
            }
            if fresh_branch {
                return Ok(copied.get(id).cloned());
            }
            let rows = self.query(
                "SELECT pos, from_seq FROM em_saver_list_rows INDEXED BY em_saver_list_by_id
                 WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ? AND msg_id = ? AND to_seq = ?",
                &key(vec![branch.into(), id.into(), OPEN.into()]),
            )?;
            match rows.into_iter().next() {
                Some(row) => {
                    let mut cols = Columns::new(row, "em_saver_list_rows");
                    Ok(Some(OpenRow {
                        pos: cols.integer()?,
                        from_seq: cols.integer()?,
                    }))
                }
                None => Ok(None),
            }
        };
        let close = |row: &OpenRow| {
            if row.from_seq == seq {
                // Opened by this very put: no stored version ever had it.
                Statement::new(
                    "DELETE FROM em_saver_list_rows WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ? AND pos = ? AND from_seq = ?",
                    key(vec![branch.into(), row.pos.into(), row.from_seq.into()]),
                )
            } else {
                let mut params: Vec<SqlValue> = vec![seq.into()];
                params.extend(key(vec![
                    branch.into(),
                    row.pos.into(),
                    row.from_seq.into(),
                ]));
                Statement::new(
                    "UPDATE em_saver_list_rows SET to_seq = ? WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ? AND pos = ? AND from_seq = ?",
                    params,
                )
            }
        };
        let not_in_list = |i: usize, id: &str, what: &str| Error::Conflict {
            kind: crate::error::ConflictKind::BaseVersionMissing,
            reason: format!("message list op {i}: message {id:?} {what}; send the full list"),
        };
        for (i, op) in list.ops.iter().enumerate() {
            match op {
                ListOp::Append { id, digest, value } | ListOp::Replace { id, digest, value } => {
                    let existing = open_row(&local, id)?;
                    let pos = match (matches!(op, ListOp::Append { .. }), &existing) {
                        (true, None) => {
                            next_pos += 1;
                            next_pos - 1
                        }
                        (false, Some(row)) => {
                            batch.push(close(row));
                            row.pos
                        }
                        (true, Some(_)) => {
                            return Err(not_in_list(i, id, "is already in the list"))
                        }
                        (false, None) => return Err(not_in_list(i, id, "is not in the list")),
                    };
                    let bytes = value.decode(&format!("list.ops[{i}].data"))?;
                    batch.push(Statement::new(
                        "INSERT OR IGNORE INTO em_saver_messages (tkey, ns, channel, msg_id, digest, type, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        key(vec![id.as_str().into(), digest.as_str().into(), value.kind.as_str().into(), SqlValue::Blob(bytes)]),
                    ));
                    batch.push(Statement::new(
                        "INSERT INTO em_saver_list_rows (tkey, ns, channel, branch, pos, from_seq, to_seq, msg_id, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        key(vec![branch.into(), pos.into(), seq.into(), OPEN.into(), id.as_str().into(), digest.as_str().into()]),
                    ));
                    local.insert(id.clone(), Some(OpenRow { pos, from_seq: seq }));
                }
                ListOp::Remove { id } => {
                    let Some(row) = open_row(&local, id)? else {
                        return Err(not_in_list(i, id, "is not in the list"));
                    };
                    batch.push(close(&row));
                    local.insert(id.clone(), None);
                }
            }
        }
        batch.push(Statement::new(
            "INSERT INTO em_saver_list_versions (tkey, ns, channel, version, branch, seq) VALUES (?, ?, ?, ?, ?, ?)",
            key(vec![version.into(), branch.into(), seq.into()]),
        ));
        Ok(batch)
    }
}
