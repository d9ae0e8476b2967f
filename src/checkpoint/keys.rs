//! Idempotency keys on SQLite ([`SqlExec`]): which reply a run's `Idempotency-Key` named,
//! kept for [`IDEMPOTENCY_TTL_MS`] whatever number of turns follow.
//!
//! One row per *answered keyed* run (a run without a key writes nothing here), written
//! with its reply in the same synchronous stretch of the thread object, so the two
//! commit together. Rows older than the lifetime are ignored by reads and deleted by one
//! keyed run in [`KEYS_PRUNE_EVERY`]: the table holds about a day of a thread's keys.
//! The table is created on first use beside the checkpointer's (in KV mode too: it is
//! the thread object's own SQLite).

use std::cell::Cell;

use super::sql::{Columns, SqlExec, SqlValue, Statement};
use super::CheckpointId;
use crate::error::Result;
use crate::limits::IDEMPOTENCY_TTL_MS;
use crate::thread::ThreadId;

/// One keyed run in this many prunes its thread's expired keys (chosen by its key).
pub const KEYS_PRUNE_EVERY: u32 = 32;

const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS em_idempotency_keys (
        thread_id TEXT NOT NULL,
        key TEXT NOT NULL,
        body TEXT,
        reply_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (thread_id, key)
    ) WITHOUT ROWID"];

const SELECT: &str = "SELECT body, reply_id, created_at FROM em_idempotency_keys
     WHERE thread_id = ? AND key = ? AND created_at > ?";
const UPSERT: &str = "INSERT OR REPLACE INTO em_idempotency_keys
     (thread_id, key, body, reply_id, created_at) VALUES (?, ?, ?, ?, ?)";
const PRUNE: &str = "DELETE FROM em_idempotency_keys WHERE thread_id = ? AND created_at <= ?";
const DELETE_THREAD: &str = "DELETE FROM em_idempotency_keys WHERE thread_id = ?";

/// What an answered run's key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedReply {
    /// The digest of the request body the key came with, if any.
    pub body: Option<String>,
    /// The run's reply checkpoint.
    pub reply_id: CheckpointId,
    /// When the key was recorded (ms).
    pub created_at_ms: i64,
}

/// Where answered runs' idempotency keys are kept (the thread object's SQLite).
pub trait IdempotencyKeys {
    /// The reply `key` named on `thread_id`, if recorded less than
    /// [`IDEMPOTENCY_TTL_MS`] before `now_ms`.
    fn find(&self, thread_id: &ThreadId, key: &str, now_ms: i64) -> Result<Option<KeyedReply>>;
    /// Records that `key` named `reply` (replacing an expired use of the key).
    fn remember(&self, thread_id: &ThreadId, key: &str, reply: &KeyedReply) -> Result<()>;
    /// Forgets every key of a deleted thread.
    fn delete_thread(&self, thread_id: &ThreadId) -> Result<()>;
}

/// [`IdempotencyKeys`] in a SQLite table.
#[derive(Debug)]
pub struct SqlKeys<E> {
    exec: E,
    ready: Cell<bool>,
}

impl<E: SqlExec> SqlKeys<E> {
    /// Keys over `exec`; the table is created on first use.
    pub fn new(exec: E) -> Self {
        SqlKeys {
            exec,
            ready: Cell::new(false),
        }
    }

    fn ensure_schema(&self) -> Result<()> {
        super::sql::create_once(&self.exec, &self.ready, SCHEMA)
    }
}

impl<E: SqlExec> IdempotencyKeys for SqlKeys<E> {
    fn find(&self, thread_id: &ThreadId, key: &str, now_ms: i64) -> Result<Option<KeyedReply>> {
        self.ensure_schema()?;
        let params = [
            thread_id.as_str().into(),
            key.into(),
            (now_ms - IDEMPOTENCY_TTL_MS).into(),
        ];
        let Some(row) = self.exec.query(SELECT, &params)?.into_iter().next() else {
            return Ok(None);
        };
        let mut columns = Columns::new(row, "em_idempotency_keys");
        Ok(Some(KeyedReply {
            body: columns.optional_text()?,
            reply_id: CheckpointId::parse(&columns.text()?)?,
            created_at_ms: columns.integer()?,
        }))
    }

    fn remember(&self, thread_id: &ThreadId, key: &str, reply: &KeyedReply) -> Result<()> {
        self.ensure_schema()?;
        let body = reply.body.clone().map_or(SqlValue::Null, SqlValue::from);
        let mut batch = vec![Statement::new(
            UPSERT,
            vec![
                thread_id.as_str().into(),
                key.into(),
                body,
                reply.reply_id.as_str().into(),
                reply.created_at_ms.into(),
            ],
        )];
        let chosen = key
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        if chosen % KEYS_PRUNE_EVERY == 0 {
            batch.push(Statement::new(
                PRUNE,
                vec![
                    thread_id.as_str().into(),
                    (reply.created_at_ms - IDEMPOTENCY_TTL_MS).into(),
                ],
            ));
        }
        self.exec.execute_batch(&batch)
    }

    fn delete_thread(&self, thread_id: &ThreadId) -> Result<()> {
        self.ensure_schema()?;
        self.exec.execute_batch(&[Statement::new(
            DELETE_THREAD,
            vec![thread_id.as_str().into()],
        )])
    }
}
