//! The SQL checkpointer: all the SQL, over a one-trait port.
//!
//! Production runs it on Durable Object SQLite (`ctx.storage.sql`); native tests run the
//! very same statements on real SQLite (`rusqlite`). The port, [`SqlExec`], is designed
//! for the weaker of the two: Durable Object SQL rejects `BEGIN`, so atomicity is asked
//! for explicitly with [`SqlExec::execute_batch`] (`storage.transactionSync` there, a
//! transaction in SQLite).
//!
//! # Layout (append-only)
//! - `em_threads`: one row per thread (metadata, status, timestamps).
//! - `em_checkpoints`: one row per checkpoint: id, parent id, time, metadata.
//! - `em_messages`: one row per message operation, tagged with the checkpoint that made
//!   it, in write order (`seq`).
//!
//! A turn inserts one checkpoint row and one row per new message, and updates the
//! thread's `updated_at`; it never rewrites earlier rows, so the bytes written per turn
//! do not grow with the thread's length. The state at a checkpoint is rebuilt by
//! replaying the message rows of its parent chain (one recursive query).
//!
//! # Schema evolution
//! [`MIGRATIONS`] is append-only; its index is the schema version, stored in
//! `em_schema`. Setup is lazy and idempotent: the first call on a store applies what is
//! missing, each migration atomically with its version bump.

use std::cell::Cell;

use serde_json::{Map, Value};

use super::{
    CheckpointId, CheckpointRecord, Checkpointer, ListQuery, NewCheckpoint, Snapshot, ThreadIndex,
    ThreadSearch, ThreadSortKey,
};
use crate::error::{Error, Result};
use crate::limits::DO_ROW_MAX_BYTES;
use crate::message::{Message, MessageOp};
use crate::thread::{ThreadId, ThreadRecord, ThreadStatus};

/// A value bound to, or read from, a SQL statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// `NULL`.
    Null,
    /// An integer. Durable Object SQL passes numbers through JavaScript, so values
    /// beyond ±2^53 lose precision there; the checkpointer stores none.
    Integer(i64),
    /// A float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}

impl From<i64> for SqlValue {
    fn from(i: i64) -> Self {
        SqlValue::Integer(i)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One statement with its bound parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL, one statement, `?` placeholders.
    pub sql: String,
    /// Values for the placeholders, in order.
    pub params: Vec<SqlValue>,
}

impl Statement {
    /// A statement.
    pub fn new(sql: impl Into<String>, params: Vec<SqlValue>) -> Self {
        Statement {
            sql: sql.into(),
            params,
        }
    }
}

/// The port to a SQLite database: the only thing a SQL backend must provide.
///
/// Synchronous on purpose: Durable Object SQL is synchronous, and a checkpointer that
/// never awaits between its reads and writes cannot interleave with another request on
/// the same object.
pub trait SqlExec {
    /// Runs one statement and returns its rows (each a list of column values).
    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>>;

    /// Runs the statements in order, all or nothing.
    fn execute_batch(&self, statements: &[Statement]) -> Result<()>;
}

/// The schema, one migration per entry; append only. Entry `i` moves version `i` to
/// `i + 1`.
pub const MIGRATIONS: &[&[&str]] = &[&[
    "CREATE TABLE em_threads (
        thread_id TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        status TEXT NOT NULL
    )",
    "CREATE TABLE em_checkpoints (
        thread_id TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        parent_id TEXT,
        created_at INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_id)
    ) WITHOUT ROWID",
    "CREATE TABLE em_messages (
        seq INTEGER PRIMARY KEY,
        thread_id TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        op TEXT NOT NULL,
        message_id TEXT,
        body TEXT
    )",
    "CREATE INDEX em_messages_by_checkpoint ON em_messages (thread_id, checkpoint_id, seq)",
]];

const SCHEMA_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS em_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)";

/// Row overhead allowance when checking a message row against [`DO_ROW_MAX_BYTES`].
const ROW_OVERHEAD_BYTES: usize = 1024;

/// A [`Checkpointer`] over any [`SqlExec`].
#[derive(Debug)]
pub struct SqlCheckpointer<E> {
    exec: E,
    schema_ready: Cell<bool>,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// A checkpointer over `exec`. The schema is set up on first use.
    pub fn new(exec: E) -> Self {
        SqlCheckpointer {
            exec,
            schema_ready: Cell::new(false),
        }
    }

    /// The port this checkpointer runs on.
    pub fn exec(&self) -> &E {
        &self.exec
    }

    /// Applies missing migrations; cheap after the first call.
    pub fn ensure_schema(&self) -> Result<()> {
        if self.schema_ready.get() {
            return Ok(());
        }
        self.exec
            .execute_batch(&[Statement::new(SCHEMA_TABLE, vec![])])?;
        let rows = self
            .exec
            .query("SELECT version FROM em_schema WHERE id = 1", &[])?;
        let mut version = match rows.first().and_then(|r| r.first()) {
            Some(SqlValue::Integer(v)) => usize::try_from(*v).unwrap_or(usize::MAX),
            _ => 0,
        };
        if version > MIGRATIONS.len() {
            return Err(Error::backend(format_args!(
                "database schema version {version} is newer than this build ({})",
                MIGRATIONS.len()
            )));
        }
        while version < MIGRATIONS.len() {
            let mut batch: Vec<Statement> = MIGRATIONS[version]
                .iter()
                .map(|sql| Statement::new(*sql, vec![]))
                .collect();
            batch.push(Statement::new(
                "INSERT INTO em_schema (id, version) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                vec![SqlValue::Integer(version as i64 + 1)],
            ));
            self.exec.execute_batch(&batch)?;
            version += 1;
        }
        self.schema_ready.set(true);
        Ok(())
    }

    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>> {
        self.ensure_schema()?;
        self.exec.query(sql, params)
    }

    fn thread_row(&self, thread_id: &ThreadId) -> Result<Option<ThreadRecord>> {
        let rows = self.query(
            "SELECT created_at, updated_at, metadata, status FROM em_threads WHERE thread_id = ?",
            &[thread_id.as_str().into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut cols = Columns::new(row, "em_threads");
        Ok(Some(ThreadRecord {
            thread_id: thread_id.clone(),
            created_at_ms: cols.integer()?,
            updated_at_ms: cols.integer()?,
            metadata: cols.json_object()?,
            status: ThreadStatus::parse(&cols.text()?)?,
        }))
    }

    fn require_thread(&self, thread_id: &ThreadId) -> Result<()> {
        let rows = self.query(
            "SELECT 1 FROM em_threads WHERE thread_id = ?",
            &[thread_id.as_str().into()],
        )?;
        if rows.is_empty() {
            return Err(Error::thread_not_found(thread_id.as_str()));
        }
        Ok(())
    }

    fn checkpoint_rows(
        &self,
        sql: &str,
        params: &[SqlValue],
        thread_id: &ThreadId,
    ) -> Result<Vec<CheckpointRecord>> {
        self.query(sql, params)?
            .into_iter()
            .map(|row| {
                let mut cols = Columns::new(row, "em_checkpoints");
                Ok(CheckpointRecord {
                    thread_id: thread_id.clone(),
                    checkpoint_id: CheckpointId::parse(&cols.text()?)?,
                    parent_id: cols
                        .optional_text()?
                        .map(|p| CheckpointId::parse(&p))
                        .transpose()?,
                    created_at_ms: cols.integer()?,
                    metadata: cols.json_object()?,
                })
            })
            .collect()
    }

    fn snapshot(&self, record: CheckpointRecord) -> Result<Snapshot> {
        // The parent chain, then every message row it owns, in write order.
        let rows = self.query(
            "WITH RECURSIVE chain(id) AS (
                SELECT ?
                UNION ALL
                SELECT c.parent_id FROM em_checkpoints c JOIN chain
                  ON c.thread_id = ? AND c.checkpoint_id = chain.id
                WHERE c.parent_id IS NOT NULL
            )
            SELECT op, message_id, body FROM em_messages
            WHERE thread_id = ? AND checkpoint_id IN (SELECT id FROM chain)
            ORDER BY seq",
            &[
                record.checkpoint_id.as_str().into(),
                record.thread_id.as_str().into(),
                record.thread_id.as_str().into(),
            ],
        )?;
        let ops = rows
            .into_iter()
            .map(|row| decode_op_row(Columns::new(row, "em_messages")))
            .collect::<Result<Vec<_>>>()?;
        let messages = super::replay(&ops)?;
        Ok(Snapshot {
            checkpoint: record,
            messages,
        })
    }
}

/// Decodes the columns `op, message_id, body` of an `em_messages` row.
fn decode_op_row(mut cols: Columns) -> Result<MessageOp> {
    let op = cols.text()?;
    let message_id = cols.optional_text()?;
    let body = cols.optional_text()?;
    match (op.as_str(), message_id, body) {
        ("upsert", _, Some(body)) => Ok(MessageOp::Upsert {
            message: serde_json::from_str::<Message>(&body)?,
        }),
        ("remove", Some(id), _) => Ok(MessageOp::Remove { id }),
        ("remove_all", _, _) => Ok(MessageOp::RemoveAll),
        (other, _, _) => Err(Error::backend(format_args!(
            "unknown stored message op {other:?}"
        ))),
    }
}

fn encode_op(op: &MessageOp) -> Result<(&'static str, Option<String>, Option<String>)> {
    Ok(match op {
        MessageOp::Upsert { message } => {
            let body = serde_json::to_string(message)
                .map_err(|e| Error::backend(format_args!("message does not serialize: {e}")))?;
            if body.len() + ROW_OVERHEAD_BYTES > DO_ROW_MAX_BYTES {
                return Err(Error::TooLarge {
                    what: format!("message '{}' (bytes)", message.id),
                    size: body.len(),
                    limit: DO_ROW_MAX_BYTES - ROW_OVERHEAD_BYTES,
                });
            }
            ("upsert", Some(message.id.clone()), Some(body))
        }
        MessageOp::Remove { id } => ("remove", Some(id.clone()), None),
        MessageOp::RemoveAll => ("remove_all", None, None),
    })
}

fn json_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

/// Reads the columns of one row in order, with errors that name the table.
struct Columns {
    values: std::vec::IntoIter<SqlValue>,
    table: &'static str,
}

impl Columns {
    fn new(row: Vec<SqlValue>, table: &'static str) -> Self {
        Columns {
            values: row.into_iter(),
            table,
        }
    }

    fn next(&mut self) -> Result<SqlValue> {
        self.values
            .next()
            .ok_or_else(|| Error::backend(format_args!("{}: row has too few columns", self.table)))
    }

    fn integer(&mut self) -> Result<i64> {
        match self.next()? {
            SqlValue::Integer(i) => Ok(i),
            // JavaScript hands numbers back as doubles.
            SqlValue::Real(f) if f.fract() == 0.0 => Ok(f as i64),
            other => Err(self.unexpected("an integer", &other)),
        }
    }

    fn text(&mut self) -> Result<String> {
        match self.next()? {
            SqlValue::Text(s) => Ok(s),
            other => Err(self.unexpected("text", &other)),
        }
    }

    fn optional_text(&mut self) -> Result<Option<String>> {
        match self.next()? {
            SqlValue::Null => Ok(None),
            SqlValue::Text(s) => Ok(Some(s)),
            other => Err(self.unexpected("text or NULL", &other)),
        }
    }

    fn json_object(&mut self) -> Result<Map<String, Value>> {
        let text = self.text()?;
        match serde_json::from_str(&text)? {
            Value::Object(map) => Ok(map),
            _ => Err(Error::backend(format_args!(
                "{}: metadata is not a JSON object",
                self.table
            ))),
        }
    }

    fn unexpected(&self, wanted: &str, got: &SqlValue) -> Error {
        Error::backend(format_args!(
            "{}: expected {wanted}, found {got:?}",
            self.table
        ))
    }
}

const CHECKPOINT_COLUMNS: &str = "checkpoint_id, parent_id, created_at, metadata";

impl<E: SqlExec> Checkpointer for SqlCheckpointer<E> {
    async fn create_thread(&self, thread: &ThreadRecord) -> Result<()> {
        if self.thread_row(&thread.thread_id)?.is_some() {
            return Err(Error::Conflict {
                reason: format!("Thread '{}' already exists", thread.thread_id),
            });
        }
        self.exec.execute_batch(&[Statement::new(
            "INSERT INTO em_threads (thread_id, created_at, updated_at, metadata, status) VALUES (?, ?, ?, ?, ?)",
            vec![
                thread.thread_id.as_str().into(),
                thread.created_at_ms.into(),
                thread.updated_at_ms.into(),
                json_text(&thread.metadata).into(),
                thread.status.as_str().into(),
            ],
        )])
    }

    async fn get_thread(&self, thread_id: &ThreadId) -> Result<ThreadRecord> {
        self.thread_row(thread_id)?
            .ok_or_else(|| Error::thread_not_found(thread_id.as_str()))
    }

    async fn update_thread(&self, thread: &ThreadRecord) -> Result<()> {
        self.require_thread(&thread.thread_id)?;
        self.exec.execute_batch(&[Statement::new(
            "UPDATE em_threads SET updated_at = ?, metadata = ?, status = ? WHERE thread_id = ?",
            vec![
                thread.updated_at_ms.into(),
                json_text(&thread.metadata).into(),
                thread.status.as_str().into(),
                thread.thread_id.as_str().into(),
            ],
        )])
    }

    async fn put(&self, checkpoint: &NewCheckpoint) -> Result<()> {
        let record = &checkpoint.record;
        let thread = record.thread_id.as_str();
        self.require_thread(&record.thread_id)?;
        let newest = self.query(
            "SELECT max(checkpoint_id) FROM em_checkpoints WHERE thread_id = ?",
            &[thread.into()],
        )?;
        if let Some(SqlValue::Text(newest)) = newest.first().and_then(|r| r.first()) {
            if record.checkpoint_id.as_str() <= newest.as_str() {
                return Err(Error::Conflict {
                    reason: format!(
                        "Checkpoint id {} is not newer than the thread's newest checkpoint {newest}",
                        record.checkpoint_id
                    ),
                });
            }
        }
        if let Some(parent) = &record.parent_id {
            let found = self.query(
                "SELECT 1 FROM em_checkpoints WHERE thread_id = ? AND checkpoint_id = ?",
                &[thread.into(), parent.as_str().into()],
            )?;
            if found.is_empty() {
                return Err(Error::NotFound {
                    what: "checkpoint",
                    id: parent.to_string(),
                });
            }
        }
        let mut batch = Vec::with_capacity(checkpoint.ops.len() + 2);
        batch.push(Statement::new(
            "INSERT INTO em_checkpoints (thread_id, checkpoint_id, parent_id, created_at, metadata) VALUES (?, ?, ?, ?, ?)",
            vec![
                thread.into(),
                record.checkpoint_id.as_str().into(),
                record.parent_id.as_ref().map(CheckpointId::as_str).into(),
                record.created_at_ms.into(),
                json_text(&record.metadata).into(),
            ],
        ));
        for op in &checkpoint.ops {
            let (kind, message_id, body) = encode_op(op)?;
            batch.push(Statement::new(
                "INSERT INTO em_messages (thread_id, checkpoint_id, op, message_id, body) VALUES (?, ?, ?, ?, ?)",
                vec![
                    thread.into(),
                    record.checkpoint_id.as_str().into(),
                    kind.into(),
                    message_id.into(),
                    body.into(),
                ],
            ));
        }
        batch.push(Statement::new(
            "UPDATE em_threads SET updated_at = ? WHERE thread_id = ?",
            vec![record.created_at_ms.into(), thread.into()],
        ));
        self.exec.execute_batch(&batch)
    }

    async fn latest(&self, thread_id: &ThreadId) -> Result<Option<Snapshot>> {
        self.require_thread(thread_id)?;
        let newest = self.checkpoint_rows(
            &format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM em_checkpoints WHERE thread_id = ? ORDER BY checkpoint_id DESC LIMIT 1"
            ),
            &[thread_id.as_str().into()],
            thread_id,
        )?;
        newest
            .into_iter()
            .next()
            .map(|r| self.snapshot(r))
            .transpose()
    }

    async fn get(&self, thread_id: &ThreadId, checkpoint_id: &CheckpointId) -> Result<Snapshot> {
        self.require_thread(thread_id)?;
        let found = self.checkpoint_rows(
            &format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM em_checkpoints WHERE thread_id = ? AND checkpoint_id = ?"
            ),
            &[thread_id.as_str().into(), checkpoint_id.as_str().into()],
            thread_id,
        )?;
        let record = found.into_iter().next().ok_or_else(|| Error::NotFound {
            what: "checkpoint",
            id: checkpoint_id.to_string(),
        })?;
        self.snapshot(record)
    }

    async fn list(&self, thread_id: &ThreadId, query: &ListQuery) -> Result<Vec<CheckpointRecord>> {
        self.require_thread(thread_id)?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        match &query.before {
            Some(before) => self.checkpoint_rows(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM em_checkpoints WHERE thread_id = ? AND checkpoint_id < ? ORDER BY checkpoint_id DESC LIMIT ?"
                ),
                &[thread_id.as_str().into(), before.as_str().into(), limit.into()],
                thread_id,
            ),
            None => self.checkpoint_rows(
                &format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM em_checkpoints WHERE thread_id = ? ORDER BY checkpoint_id DESC LIMIT ?"
                ),
                &[thread_id.as_str().into(), limit.into()],
                thread_id,
            ),
        }
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> Result<()> {
        self.require_thread(thread_id)?;
        let id = thread_id.as_str();
        self.exec.execute_batch(&[
            Statement::new(
                "DELETE FROM em_messages WHERE thread_id = ?",
                vec![id.into()],
            ),
            Statement::new(
                "DELETE FROM em_checkpoints WHERE thread_id = ?",
                vec![id.into()],
            ),
            Statement::new(
                "DELETE FROM em_threads WHERE thread_id = ?",
                vec![id.into()],
            ),
        ])
    }

    async fn export_thread(&self, thread_id: &ThreadId) -> Result<Vec<NewCheckpoint>> {
        self.require_thread(thread_id)?;
        let records = self.checkpoint_rows(
            &format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM em_checkpoints WHERE thread_id = ? ORDER BY checkpoint_id"
            ),
            &[thread_id.as_str().into()],
            thread_id,
        )?;
        let rows = self.query(
            "SELECT checkpoint_id, op, message_id, body FROM em_messages WHERE thread_id = ? ORDER BY seq",
            &[thread_id.as_str().into()],
        )?;
        let mut ops_by_checkpoint: std::collections::HashMap<String, Vec<MessageOp>> =
            std::collections::HashMap::new();
        for row in rows {
            let mut cols = Columns::new(row, "em_messages");
            let checkpoint = cols.text()?;
            ops_by_checkpoint
                .entry(checkpoint)
                .or_default()
                .push(decode_op_row(cols)?);
        }
        Ok(records
            .into_iter()
            .map(|record| NewCheckpoint {
                ops: ops_by_checkpoint
                    .remove(record.checkpoint_id.as_str())
                    .unwrap_or_default(),
                record,
            })
            .collect())
    }
}

/// `$."key"` for SQLite's JSON functions, with the key quoted.
fn json_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
}

impl<E: SqlExec> ThreadIndex for SqlCheckpointer<E> {
    async fn index_upsert(&self, record: &ThreadRecord) -> Result<()> {
        self.ensure_schema()?;
        self.exec.execute_batch(&[Statement::new(
            "INSERT INTO em_threads (thread_id, created_at, updated_at, metadata, status) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (thread_id) DO UPDATE SET created_at = excluded.created_at,
               updated_at = excluded.updated_at, metadata = excluded.metadata, status = excluded.status",
            vec![
                record.thread_id.as_str().into(),
                record.created_at_ms.into(),
                record.updated_at_ms.into(),
                json_text(&record.metadata).into(),
                record.status.as_str().into(),
            ],
        )])
    }

    async fn index_remove(&self, thread_id: &ThreadId) -> Result<()> {
        self.ensure_schema()?;
        self.exec.execute_batch(&[Statement::new(
            "DELETE FROM em_threads WHERE thread_id = ?",
            vec![thread_id.as_str().into()],
        )])
    }

    async fn search_threads(&self, query: &ThreadSearch) -> Result<Vec<ThreadRecord>> {
        // String-valued metadata filters narrow in SQL; `ThreadSearch::page` then applies
        // every filter exactly (JSON equality), sorts and pages.
        let mut sql = String::from(
            "SELECT thread_id, created_at, updated_at, metadata, status FROM em_threads WHERE 1 = 1",
        );
        let mut params = Vec::new();
        for (key, value) in &query.metadata {
            if let Value::String(text) = value {
                sql.push_str(" AND json_extract(metadata, ?) = ?");
                params.push(json_path(key).into());
                params.push(text.as_str().into());
            }
        }
        if let Some(status) = query.status {
            sql.push_str(" AND status = ?");
            params.push(status.as_str().into());
        }
        sql.push_str(match query.sort_by {
            ThreadSortKey::UpdatedAt => " ORDER BY updated_at DESC",
            ThreadSortKey::CreatedAt => " ORDER BY created_at DESC",
            ThreadSortKey::ThreadId => " ORDER BY thread_id DESC",
        });
        let records = self
            .query(&sql, &params)?
            .into_iter()
            .map(|row| {
                let mut cols = Columns::new(row, "em_threads");
                Ok(ThreadRecord {
                    thread_id: ThreadId::parse(&cols.text()?)?,
                    created_at_ms: cols.integer()?,
                    updated_at_ms: cols.integer()?,
                    metadata: cols.json_object()?,
                    status: ThreadStatus::parse(&cols.text()?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(query.page(records))
    }
}
