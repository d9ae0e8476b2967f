//! `copy_thread`: a thread's checkpointer storage as a [`SaverExport`], and back.
//!
//! Checkpoints and writes travel as the puts that store them again; message lists travel
//! as their table rows, since their branches and row ranges are not puts.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use super::sql::typed_columns;
use super::{BlobIn, SaverExport, SaverPut, SaverPutWrites, SaverStore, WriteIn};
use crate::checkpoint::sql::{
    tables_of, Columns, Group, SqlCheckpointer, SqlExec, SqlValue, Statement,
};
use crate::error::{ConflictKind, Error, Result};
use crate::thread::ThreadId;

const SELECT_ALL_BLOBS: &str =
    "SELECT ns, channel, version, type, data FROM em_saver_blobs WHERE tkey = ?";
const SELECT_ALL_WRITES: &str = "SELECT ns, checkpoint_id, task_id, task_path, idx, channel, type, data FROM em_saver_writes WHERE tkey = ?
             ORDER BY ns, checkpoint_id, task_id, idx";

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

/// The inverse of [`sql_to_json`].
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

/// Adds `write` to the last group when it is the same task's, else starts a group
/// (the writes come ordered by namespace, checkpoint and task).
fn group_write(
    groups: &mut Vec<SaverPutWrites>,
    (ns, checkpoint_id, task_id, task_path): (String, String, String, String),
    write: WriteIn,
) {
    match groups.last_mut() {
        Some(g)
            if g.checkpoint_ns == ns
                && g.checkpoint_id == checkpoint_id
                && g.task_id == task_id =>
        {
            g.writes.push(write)
        }
        _ => groups.push(SaverPutWrites {
            checkpoint_ns: ns,
            checkpoint_id,
            task_id,
            task_path,
            writes: vec![write],
        }),
    }
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// [`SaverStore::saver_export`].
    pub(super) fn export_saver(&self, thread_id: &ThreadId) -> Result<SaverExport> {
        let Some(tkey) = self.thread_key(thread_id)? else {
            return Ok(SaverExport::default());
        };
        Ok(SaverExport {
            puts: self.export_puts(tkey)?,
            writes: self.export_writes(tkey)?,
            list_tables: self.export_list_tables(tkey)?,
        })
    }

    /// Every checkpoint as a put, oldest first.
    fn export_puts(&self, tkey: i64) -> Result<Vec<SaverPut>> {
        let mut blobs_by_ns = self.export_blobs(tkey)?;
        let mut rows = self.saver_rows(tkey, "", vec![], None)?;
        rows.reverse();
        Ok(rows
            .into_iter()
            .map(|row| {
                // Blobs travel with the first checkpoint of their namespace; versions are
                // stored as text, which `version_key` maps to itself.
                let blobs = blobs_by_ns.remove(&row.ns).unwrap_or_default();
                SaverPut {
                    checkpoint_ns: row.ns,
                    checkpoint_id: row.checkpoint_id,
                    parent_checkpoint_id: row.parent_id,
                    checkpoint: row.checkpoint,
                    channel_versions: row.channel_versions,
                    metadata: row.metadata,
                    metadata_typed: row.metadata_typed,
                    blobs,
                }
            })
            .collect())
    }

    /// Every blob of the thread, by namespace.
    fn export_blobs(&self, tkey: i64) -> Result<HashMap<String, Vec<BlobIn>>> {
        let mut blobs_by_ns: HashMap<String, Vec<BlobIn>> = HashMap::new();
        for blob in self.query(SELECT_ALL_BLOBS, &[tkey.into()])? {
            let mut cols = Columns::new(blob, "em_saver_blobs");
            let ns = cols.text()?;
            // A message list's rows travel in `list_tables`; its blob is the marker.
            blobs_by_ns.entry(ns).or_default().push(BlobIn {
                channel: cols.text()?,
                version: Value::String(cols.text()?),
                value: typed_columns(&mut cols)?,
                list: None,
            });
        }
        Ok(blobs_by_ns)
    }

    /// Every write, grouped by task.
    fn export_writes(&self, tkey: i64) -> Result<Vec<SaverPutWrites>> {
        let mut groups: Vec<SaverPutWrites> = Vec::new();
        for write in self.query(SELECT_ALL_WRITES, &[tkey.into()])? {
            let mut cols = Columns::new(write, "em_saver_writes");
            let task = (cols.text()?, cols.text()?, cols.text()?, cols.text()?);
            let write = WriteIn {
                idx: cols.integer()?,
                channel: cols.text()?,
                value: typed_columns(&mut cols)?,
            };
            group_write(&mut groups, task, write);
        }
        Ok(groups)
    }

    /// The message-list tables' rows, as JSON.
    fn export_list_tables(&self, tkey: i64) -> Result<Vec<(String, Vec<Vec<Value>>)>> {
        let mut list_tables = Vec::new();
        // The message-list tables travel as their rows, each without its `tkey`.
        for table in tables_of(&[Group::SaverList]) {
            let columns: Vec<&str> = table.columns_after_tkey().collect();
            let rows = self.query(
                &format!(
                    "SELECT {} FROM {} WHERE tkey = ?",
                    columns.join(", "),
                    table.name
                ),
                &[tkey.into()],
            )?;
            let rows = rows
                .into_iter()
                .map(|row| row.into_iter().map(sql_to_json).collect())
                .collect();
            list_tables.push((table.name.to_string(), rows));
        }
        Ok(list_tables)
    }

    /// [`SaverStore::saver_import`].
    pub(super) fn import_saver(
        &self,
        thread_id: &ThreadId,
        export: &SaverExport,
        now_ms: i64,
    ) -> Result<()> {
        self.ensure_copy_target_empty(thread_id)?;
        let tkey = self.ensure_thread_key(thread_id, now_ms)?;
        self.execute(&import_list_tables(tkey, export)?)?;
        for put in &export.puts {
            self.saver_put(thread_id, put, now_ms)?;
        }
        for writes in &export.writes {
            self.saver_put_writes(thread_id, writes, now_ms)?;
        }
        Ok(())
    }

    /// Branch numbers and message rows of two threads would mix: copy into an empty
    /// thread only, as a copy to a new id always is.
    fn ensure_copy_target_empty(&self, thread_id: &ThreadId) -> Result<()> {
        let Some(tkey) = self.thread_key(thread_id)? else {
            return Ok(());
        };
        let any = |table: &str| {
            self.query(
                &format!("SELECT 1 FROM {table} WHERE tkey = ? LIMIT 1"),
                &[tkey.into()],
            )
        };
        if !any("em_saver_checkpoints")?.is_empty() || !any("em_saver_messages")?.is_empty() {
            return Err(Error::Conflict {
                kind: ConflictKind::TargetNotEmpty,
                reason: format!(
                    "Thread '{thread_id}' already has checkpoints: copy_thread writes only into a thread without any (delete it first, or copy to a new thread id)"
                ),
            });
        }
        Ok(())
    }
}

/// Statements that insert an export's message-list rows into thread `tkey`; only the
/// known tables, each row with exactly its columns.
fn import_list_tables(tkey: i64, export: &SaverExport) -> Result<Vec<Statement>> {
    let mut batch = Vec::new();
    for (table, rows) in &export.list_tables {
        let Some(table) = tables_of(&[Group::SaverList]).find(|t| t.name == table) else {
            return Err(Error::invalid(
                "list_tables",
                format!("unknown table {table:?}"),
            ));
        };
        let columns: Vec<&str> = table.columns_after_tkey().collect();
        let table = table.name;
        let sql = format!(
            "INSERT OR REPLACE INTO {table} (tkey, {}) VALUES ({})",
            columns.join(", "),
            vec!["?"; columns.len() + 1].join(", ")
        );
        for row in rows {
            if row.len() != columns.len() {
                return Err(Error::invalid(
                    "list_tables",
                    format!("{table}: a row has {} columns", row.len()),
                ));
            }
            let mut params = vec![SqlValue::Integer(tkey)];
            params.extend(row.iter().map(json_to_sql));
            batch.push(Statement::new(sql.as_str(), params));
        }
    }
    Ok(batch)
}
