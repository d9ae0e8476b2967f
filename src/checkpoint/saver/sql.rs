//! [`SaverStore`] on [`SqlCheckpointer`]: the `em_saver_*` tables of the thread's
//! database (Durable Object SQLite; real SQLite in native tests).
//!
//! Checkpoints, blobs and writes are here; message lists are in `message_list`, export
//! and import (`copy_thread`) in `export`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{
    version_key, BlobOut, SaverExport, SaverList, SaverPut, SaverPutWrites, SaverStore, SaverTuple,
    Typed, WriteOut, MESSAGE_LIST_TYPE,
};
use crate::checkpoint::directory::{in_list, metadata_conditions};
use crate::checkpoint::sql::{
    delete_thread_rows, Columns, Group, SqlCheckpointer, SqlExec, SqlValue, Statement,
};
use crate::error::Result;
use crate::thread::ThreadId;

const INSERT_CHECKPOINT: &str = "INSERT OR REPLACE INTO em_saver_checkpoints
             (tkey, ns, checkpoint_id, parent_id, checkpoint_type, checkpoint, channel_versions, metadata, metadata_type, metadata_typed)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const INSERT_BLOB: &str = "INSERT OR REPLACE INTO em_saver_blobs (tkey, ns, channel, version, type, data) VALUES (?, ?, ?, ?, ?, ?)";
const TOUCH_THREAD: &str = "UPDATE em_threads SET updated_at = ? WHERE tkey = ?";
/// A regular write: a retry keeps what the first attempt stored.
const INSERT_WRITE: &str = "INSERT OR IGNORE INTO em_saver_writes (tkey, ns, checkpoint_id, task_id, idx, channel, type, data, task_path)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
/// A special write (negative `idx`: error, interrupt): the newest one wins.
const REPLACE_WRITE: &str = "INSERT OR REPLACE INTO em_saver_writes (tkey, ns, checkpoint_id, task_id, idx, channel, type, data, task_path)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
const TUPLE_COLUMNS: &str = "ns, checkpoint_id, parent_id, checkpoint_type, checkpoint, channel_versions, metadata, metadata_type, metadata_typed";
const SELECT_BLOB: &str =
    "SELECT type, data FROM em_saver_blobs WHERE tkey = ? AND ns = ? AND channel = ? AND version = ?";
const SELECT_PENDING_WRITES: &str = "SELECT task_id, channel, type, data FROM em_saver_writes
                 WHERE tkey = ? AND ns = ? AND checkpoint_id = ? ORDER BY task_path, task_id, idx";
const DELETE_CHECKPOINT: &str =
    "DELETE FROM em_saver_checkpoints WHERE tkey = ? AND ns = ? AND checkpoint_id = ?";
const DELETE_CHECKPOINT_WRITES: &str =
    "DELETE FROM em_saver_writes WHERE tkey = ? AND ns = ? AND checkpoint_id = ?";
const SELECT_BLOB_KEYS: &str = "SELECT ns, channel, version FROM em_saver_blobs WHERE tkey = ?";
const DELETE_BLOB: &str =
    "DELETE FROM em_saver_blobs WHERE tkey = ? AND ns = ? AND channel = ? AND version = ?";

/// Bytes of a BLOB column (TEXT, should a runtime hand bytes back as text).
fn blob_bytes(value: SqlValue) -> Vec<u8> {
    match value {
        SqlValue::Blob(b) => b,
        SqlValue::Text(t) => t.into_bytes(),
        _ => Vec::new(),
    }
}

/// A `type` column and the `data` after it: bytes as the serializer typed them.
pub(super) fn typed_columns(cols: &mut Columns) -> Result<Typed> {
    let kind = cols.text()?;
    let bytes = blob_bytes(cols.next()?);
    Ok(Typed::from_row(kind, &bytes))
}

/// Statements that remove every row of the thread's checkpointer storage.
pub(crate) fn delete_all(tkey: i64) -> Vec<Statement> {
    delete_thread_rows(tkey, &Group::SAVER)
}

/// A checkpoint row before its blobs and writes are joined.
pub(super) struct Row {
    pub(super) ns: String,
    pub(super) checkpoint_id: String,
    pub(super) parent_id: Option<String>,
    pub(super) checkpoint: Typed,
    pub(super) channel_versions: Map<String, Value>,
    pub(super) metadata: Map<String, Value>,
    pub(super) metadata_typed: Typed,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// Checkpoint rows of the thread matching `filter` (SQL after `WHERE tkey = ?`),
    /// newest first, at most `limit` of them: the primary key orders a namespace's
    /// checkpoints, so SQLite reads only the rows it returns.
    pub(super) fn saver_rows(
        &self,
        tkey: i64,
        filter: &str,
        params: Vec<SqlValue>,
        limit: Option<usize>,
    ) -> Result<Vec<Row>> {
        let mut all = vec![SqlValue::Integer(tkey)];
        all.extend(params);
        let mut sql = format!(
            "SELECT {TUPLE_COLUMNS} FROM em_saver_checkpoints WHERE tkey = ? {filter} ORDER BY checkpoint_id DESC"
        );
        if let Some(limit) = limit {
            sql.push_str(" LIMIT ?");
            all.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        self.query(&sql, &all)?
            .into_iter()
            .map(|row| {
                let mut cols = Columns::new(row, "em_saver_checkpoints");
                Ok(Row {
                    ns: cols.text()?,
                    checkpoint_id: cols.text()?,
                    parent_id: cols.optional_text()?,
                    checkpoint: typed_columns(&mut cols)?,
                    channel_versions: cols.json_object()?,
                    metadata: cols.json_object()?,
                    metadata_typed: typed_columns(&mut cols)?,
                })
            })
            .collect()
    }

    /// The value of `channel` at `version`, if stored (with its messages for a list).
    fn blob_at(
        &self,
        tkey: i64,
        ns: &str,
        channel: &str,
        version: &Value,
    ) -> Result<Option<BlobOut>> {
        let version = version_key(version);
        let found = self.query(
            SELECT_BLOB,
            &[
                tkey.into(),
                ns.into(),
                channel.into(),
                version.as_str().into(),
            ],
        )?;
        let Some(found) = found.into_iter().next() else {
            return Ok(None);
        };
        let value = typed_columns(&mut Columns::new(found, "em_saver_blobs"))?;
        let items = if value.kind == MESSAGE_LIST_TYPE {
            Some(self.list_items(tkey, ns, channel, &version)?)
        } else {
            None
        };
        Ok(Some(BlobOut {
            channel: channel.to_string(),
            value,
            items,
        }))
    }

    /// The writes made against a checkpoint, in LangGraph's order.
    fn pending_writes(&self, tkey: i64, ns: &str, checkpoint_id: &str) -> Result<Vec<WriteOut>> {
        self.query(
            SELECT_PENDING_WRITES,
            &[tkey.into(), ns.into(), checkpoint_id.into()],
        )?
        .into_iter()
        .map(|w| {
            let mut cols = Columns::new(w, "em_saver_writes");
            Ok(WriteOut {
                task_id: cols.text()?,
                channel: cols.text()?,
                value: typed_columns(&mut cols)?,
            })
        })
        .collect()
    }

    /// A row joined with the blobs it reads and its pending writes.
    fn saver_tuple(&self, tkey: i64, row: Row) -> Result<SaverTuple> {
        let mut blobs = Vec::new();
        for (channel, version) in &row.channel_versions {
            // A channel without a stored blob (never written) is left out, not an error.
            blobs.extend(self.blob_at(tkey, &row.ns, channel, version)?);
        }
        let pending_writes = self.pending_writes(tkey, &row.ns, &row.checkpoint_id)?;
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

    /// `keep_latest` pruning: deletes every checkpoint but the newest of each namespace
    /// (with their writes), then the blobs no kept checkpoint reads.
    fn prune_keeping_latest(&self, tkey: i64) -> Result<()> {
        let mut kept: HashMap<String, Row> = HashMap::new();
        let mut batch = Vec::new();
        // Rows come newest first: the first of each namespace is the one kept.
        for row in self.saver_rows(tkey, "", vec![], None)? {
            if kept.contains_key(&row.ns) {
                let key = || -> Vec<SqlValue> {
                    vec![
                        tkey.into(),
                        row.ns.as_str().into(),
                        row.checkpoint_id.as_str().into(),
                    ]
                };
                batch.push(Statement::new(DELETE_CHECKPOINT, key()));
                batch.push(Statement::new(DELETE_CHECKPOINT_WRITES, key()));
            } else {
                kept.insert(row.ns.clone(), row);
            }
        }
        for blob in self.query(SELECT_BLOB_KEYS, &[tkey.into()])? {
            let mut cols = Columns::new(blob, "em_saver_blobs");
            let (ns, channel, version) = (cols.text()?, cols.text()?, cols.text()?);
            let used = kept.get(&ns).is_some_and(|row| {
                row.channel_versions
                    .get(&channel)
                    .is_some_and(|v| version_key(v) == version)
            });
            if !used {
                batch.push(Statement::new(
                    DELETE_BLOB,
                    vec![tkey.into(), ns.into(), channel.into(), version.into()],
                ));
            }
        }
        self.execute(&batch)
    }
}

/// The filter of a `list` query: SQL after `WHERE tkey = ?`, its parameters, and
/// whether SQL alone decides (a metadata filter on floats, objects or arrays is applied
/// again to the rows, as JSON equality).
fn list_filter(query: &SaverList) -> (String, Vec<SqlValue>, bool) {
    let (mut filter, mut params, exact) = metadata_conditions(&query.filter);
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
    (filter, params, exact)
}

impl<E: SqlExec> SaverStore for SqlCheckpointer<E> {
    fn saver_put(&self, thread_id: &ThreadId, put: &SaverPut, now_ms: i64) -> Result<()> {
        // Decode everything before touching the database: bad input stores nothing.
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
            INSERT_CHECKPOINT,
            vec![
                tkey.into(),
                ns.into(),
                put.checkpoint_id.as_str().into(),
                put.parent_checkpoint_id.clone().into(),
                put.checkpoint.kind.as_str().into(),
                SqlValue::Blob(checkpoint),
                Value::Object(put.channel_versions.clone())
                    .to_string()
                    .into(),
                Value::Object(put.metadata.clone()).to_string().into(),
                put.metadata_typed.kind.as_str().into(),
                SqlValue::Blob(metadata_typed),
            ],
        )];
        for (blob, bytes) in blobs {
            let version = version_key(&blob.version);
            if let Some(list) = &blob.list {
                batch.extend(self.list_put(tkey, ns, &blob.channel, &version, list)?);
            }
            batch.push(Statement::new(
                INSERT_BLOB,
                vec![
                    tkey.into(),
                    ns.into(),
                    blob.channel.as_str().into(),
                    version.into(),
                    blob.value.kind.as_str().into(),
                    SqlValue::Blob(bytes),
                ],
            ));
        }
        batch.push(Statement::new(
            TOUCH_THREAD,
            vec![now_ms.into(), tkey.into()],
        ));
        self.execute(&batch)
    }

    fn saver_put_writes(
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
                let sql = if write.idx < 0 {
                    REPLACE_WRITE
                } else {
                    INSERT_WRITE
                };
                Statement::new(
                    sql,
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

    fn saver_get(
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
                Some(1),
            )?,
            None => self.saver_rows(tkey, "AND ns = ?", vec![checkpoint_ns.into()], Some(1))?,
        };
        if rows.is_empty() {
            return Ok(None);
        }
        let row = rows.swap_remove(0);
        self.saver_tuple(tkey, row).map(Some)
    }

    fn saver_list(&self, thread_id: &ThreadId, query: &SaverList) -> Result<Vec<SaverTuple>> {
        let Some(tkey) = self.thread_key(thread_id)? else {
            return Ok(Vec::new());
        };
        let (filter, params, exact) = list_filter(query);
        let limit = query.limit.unwrap_or(usize::MAX);
        let sql_limit = query.limit.filter(|_| exact);
        self.saver_rows(tkey, &filter, params, sql_limit)?
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

    fn saver_prune(&self, thread_id: &ThreadId, keep_latest: bool) -> Result<()> {
        let Some(tkey) = self.thread_key(thread_id)? else {
            return Ok(());
        };
        if keep_latest {
            self.prune_keeping_latest(tkey)
        } else {
            self.execute(&delete_all(tkey))
        }
    }

    fn saver_export(&self, thread_id: &ThreadId) -> Result<SaverExport> {
        SqlCheckpointer::export_saver(self, thread_id)
    }

    fn saver_import(&self, thread_id: &ThreadId, export: &SaverExport, now_ms: i64) -> Result<()> {
        SqlCheckpointer::import_saver(self, thread_id, export, now_ms)
    }

    fn saver_delete_runs(&self, thread_id: &ThreadId, run_ids: &[String]) -> Result<()> {
        let Some(tkey) = self.thread_key(thread_id)? else {
            return Ok(());
        };
        if run_ids.is_empty() {
            return Ok(());
        }
        let (marks, ids) = in_list(run_ids);
        let runs = format!("json_extract(metadata, '$.run_id') IN ({marks})");
        // Writes first: they are found through their checkpoints.
        let mut params = vec![SqlValue::Integer(tkey), SqlValue::Integer(tkey)];
        params.extend(ids.iter().cloned());
        let writes = Statement::new(
            format!(
                "DELETE FROM em_saver_writes WHERE tkey = ? AND (ns, checkpoint_id) IN
                 (SELECT ns, checkpoint_id FROM em_saver_checkpoints WHERE tkey = ? AND {runs})"
            ),
            params,
        );
        let mut params = vec![SqlValue::Integer(tkey)];
        params.extend(ids);
        let checkpoints = Statement::new(
            format!("DELETE FROM em_saver_checkpoints WHERE tkey = ? AND {runs}"),
            params,
        );
        self.execute(&[writes, checkpoints])
    }
}
