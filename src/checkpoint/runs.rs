//! Run records on SQLite ([`SqlExec`]): each run on a thread (waited, streamed or in the
//! background) as LangGraph's server lists it, and the kept events of resumable runs.
//!
//! The thread's own object keeps them, beside its checkpoints: a run is never looked up
//! anywhere else. The tables are created on first use and are not part of the
//! checkpointer's schema: in KV mode the object's SQLite holds runs but no thread rows.

use std::cell::Cell;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::sql::{Columns, SqlExec, SqlValue, Statement};
use crate::error::{Error, Result};
use crate::thread::ThreadId;

/// Finished run records kept per thread; older ones are dropped as new runs finish.
/// LangGraph keeps every run; a bound keeps a thread object's storage and `runs.list`
/// bounded for a thread that has run for years.
pub const RUNS_KEPT_PER_THREAD: i64 = 1_000;

/// One finished run in this many prunes the thread's old records: a thread keeps at most
/// about [`RUNS_KEPT_PER_THREAD`] + this many.
pub const PRUNE_EVERY: u32 = 64;

const SCHEMA: &[&str] = &[
    // No secondary index: a run costs one row write. Lists sort at most
    // RUNS_KEPT_PER_THREAD rows of their thread.
    "CREATE TABLE IF NOT EXISTS em_runs (
        thread_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        run_at INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (thread_id, run_id)
    ) WITHOUT ROWID",
    // A finished resumable run's events, one row per run, dropped after `expires_at`.
    "CREATE TABLE IF NOT EXISTS em_run_events (
        run_id TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL,
        events TEXT NOT NULL
    )",
];

const UPSERT: &str = "INSERT INTO em_runs (run_id, thread_id, status, created_at, run_at, record)
     VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (thread_id, run_id) DO UPDATE SET status = excluded.status, run_at = excluded.run_at,
       record = excluded.record";
/// Drops the oldest finished records beyond [`RUNS_KEPT_PER_THREAD`]. Run by one finished
/// run in [`PRUNE_EVERY`] (chosen by its id), so a turn does not sort the thread's runs.
const PRUNE: &str =
    "DELETE FROM em_runs WHERE thread_id = ?1 AND status NOT IN ('pending', 'running')
     AND created_at < (SELECT created_at FROM em_runs WHERE thread_id = ?1
                       ORDER BY created_at DESC LIMIT 1 OFFSET ?2)";
const SELECT_ONE: &str = "SELECT record FROM em_runs WHERE thread_id = ? AND run_id = ?";
const SELECT_PAGE: &str = "SELECT record FROM em_runs WHERE thread_id = ?
     ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?";
const SELECT_PAGE_WITH_STATUS: &str =
    "SELECT record FROM em_runs WHERE thread_id = ? AND status = ?
     ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?";
const SELECT_UNFINISHED: &str = "SELECT record FROM em_runs WHERE status IN ('pending', 'running')
     ORDER BY created_at, run_id";
const DELETE_ONE: &str = "DELETE FROM em_runs WHERE thread_id = ? AND run_id = ?";
const DELETE_EVENTS: &str = "DELETE FROM em_run_events WHERE run_id = ?";
const DELETE_THREAD: &str = "DELETE FROM em_runs WHERE thread_id = ?";
const DELETE_THREAD_EVENTS: &str =
    "DELETE FROM em_run_events WHERE run_id NOT IN (SELECT run_id FROM em_runs)";
const PUT_EVENTS: &str =
    "INSERT OR REPLACE INTO em_run_events (run_id, expires_at, events) VALUES (?, ?, ?)";
const SELECT_EVENTS: &str = "SELECT events FROM em_run_events WHERE run_id = ? AND expires_at > ?";
const EXPIRE_EVENTS: &str = "DELETE FROM em_run_events WHERE expires_at <= ?";
const NEXT_EVENTS_EXPIRY: &str = "SELECT min(expires_at) FROM em_run_events";

/// A run's status, as LangGraph's server names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted, not started (in the background, or waiting for the thread).
    Pending,
    /// Started.
    Running,
    /// Finished with a reply.
    Success,
    /// Failed (a model error, or cut off by a restart of the runtime).
    Error,
    /// Stopped by its deadline.
    Timeout,
    /// Stopped by a cancel or by a newer run (`multitask_strategy: interrupt`).
    Interrupted,
}

impl RunStatus {
    /// The status as LangGraph writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Error => "error",
            RunStatus::Timeout => "timeout",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The status named `name`; `None` for a name LangGraph does not use.
    pub fn parse(name: &str) -> Option<RunStatus> {
        [
            RunStatus::Pending,
            RunStatus::Running,
            RunStatus::Success,
            RunStatus::Error,
            RunStatus::Timeout,
            RunStatus::Interrupted,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Whether the run is over.
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Pending | RunStatus::Running)
    }
}

/// One run of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id (a UUIDv7, as LangGraph's).
    pub run_id: String,
    /// Its thread.
    pub thread_id: ThreadId,
    /// The assistant it ran.
    pub assistant_id: String,
    /// Where it is.
    pub status: RunStatus,
    /// The run's metadata.
    pub metadata: Map<String, Value>,
    /// `multitask_strategy`, as asked.
    pub multitask_strategy: String,
    /// When it was accepted (ms).
    pub created_at_ms: i64,
    /// When its status last changed (ms).
    pub updated_at_ms: i64,
    /// Not before this time (ms): `after_seconds`.
    pub run_at_ms: i64,
    /// What it was asked, as LangGraph answers it (`kwargs`).
    pub kwargs: Value,
    /// Whether its events are kept for a reconnecting client (`stream_resumable`).
    pub resumable: bool,
    /// The request to run, kept while the run is pending so that it survives a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
}

/// The run records and kept events of one object's SQLite.
#[derive(Debug)]
pub struct SqlRuns<E> {
    exec: E,
    ready: Cell<bool>,
}

impl<E: SqlExec> SqlRuns<E> {
    /// Runs over `exec`; the tables are created on first use.
    pub fn new(exec: E) -> Self {
        SqlRuns {
            exec,
            ready: Cell::new(false),
        }
    }

    fn ensure_schema(&self) -> Result<()> {
        super::sql::create_once(&self.exec, &self.ready, SCHEMA)
    }

    fn records(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<RunRecord>> {
        self.ensure_schema()?;
        self.exec
            .query(sql, params)?
            .into_iter()
            .map(|row| {
                let text = Columns::new(row, "em_runs").text()?;
                crate::json::from_text(&text)
                    .map_err(|e| Error::backend(format_args!("em_runs: undecodable record: {e}")))
            })
            .collect()
    }

    /// Stores `record` (new, or its new status); a finished one may push the thread's
    /// oldest finished records out.
    pub fn put(&self, record: &RunRecord) -> Result<()> {
        self.ensure_schema()?;
        let text = crate::json::to_text(record).map_err(Error::backend)?;
        let mut batch = vec![Statement::new(
            UPSERT,
            vec![
                record.run_id.as_str().into(),
                record.thread_id.as_str().into(),
                record.status.as_str().into(),
                record.created_at_ms.into(),
                record.run_at_ms.into(),
                text.into(),
            ],
        )];
        let chosen = record
            .run_id
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        if record.status.is_finished() && chosen % PRUNE_EVERY == 0 {
            batch.push(Statement::new(
                PRUNE,
                vec![
                    record.thread_id.as_str().into(),
                    (RUNS_KEPT_PER_THREAD - 1).into(),
                ],
            ));
        }
        self.exec.execute_batch(&batch)
    }

    /// The run `run_id` of `thread_id`.
    pub fn get(&self, thread_id: &ThreadId, run_id: &str) -> Result<Option<RunRecord>> {
        let params = [thread_id.as_str().into(), run_id.into()];
        Ok(self.records(SELECT_ONE, &params)?.into_iter().next())
    }

    /// A page of the thread's runs, newest first, optionally of one status.
    pub fn list(
        &self,
        thread_id: &ThreadId,
        status: Option<RunStatus>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RunRecord>> {
        let (limit, offset) = (limit as i64, offset as i64);
        match status {
            Some(status) => self.records(
                SELECT_PAGE_WITH_STATUS,
                &[
                    thread_id.as_str().into(),
                    status.as_str().into(),
                    limit.into(),
                    offset.into(),
                ],
            ),
            None => self.records(
                SELECT_PAGE,
                &[thread_id.as_str().into(), limit.into(), offset.into()],
            ),
        }
    }

    /// Every pending or running run of this store, oldest first.
    pub fn unfinished(&self) -> Result<Vec<RunRecord>> {
        self.records(SELECT_UNFINISHED, &[])
    }

    /// Deletes a run and its kept events; whether it existed.
    pub fn delete(&self, thread_id: &ThreadId, run_id: &str) -> Result<bool> {
        let existed = self.get(thread_id, run_id)?.is_some();
        self.exec.execute_batch(&[
            Statement::new(DELETE_ONE, vec![thread_id.as_str().into(), run_id.into()]),
            Statement::new(DELETE_EVENTS, vec![run_id.into()]),
        ])?;
        Ok(existed)
    }

    /// Deletes every run of a deleted thread, and their kept events.
    pub fn delete_thread(&self, thread_id: &ThreadId) -> Result<()> {
        self.ensure_schema()?;
        self.exec.execute_batch(&[
            Statement::new(DELETE_THREAD, vec![thread_id.as_str().into()]),
            Statement::new(DELETE_THREAD_EVENTS, vec![]),
        ])
    }

    /// Keeps a finished resumable run's events (a JSON array) until `expires_at_ms`.
    pub fn put_events(&self, run_id: &str, expires_at_ms: i64, events: &Value) -> Result<()> {
        self.ensure_schema()?;
        let text = events.to_string();
        self.exec.execute_batch(&[Statement::new(
            PUT_EVENTS,
            vec![run_id.into(), expires_at_ms.into(), text.into()],
        )])
    }

    /// A finished run's kept events, unless they expired.
    pub fn events(&self, run_id: &str, now_ms: i64) -> Result<Option<Value>> {
        self.ensure_schema()?;
        let rows = self
            .exec
            .query(SELECT_EVENTS, &[run_id.into(), now_ms.into()])?;
        match rows.into_iter().next() {
            Some(row) => {
                let text = Columns::new(row, "em_run_events").text()?;
                Ok(Some(serde_json::from_str(&text)?))
            }
            None => Ok(None),
        }
    }

    /// Drops expired events; when the next ones expire, if any are left.
    pub fn expire_events(&self, now_ms: i64) -> Result<Option<i64>> {
        self.ensure_schema()?;
        self.exec
            .execute_batch(&[Statement::new(EXPIRE_EVENTS, vec![now_ms.into()])])?;
        let rows = self.exec.query(NEXT_EVENTS_EXPIRY, &[])?;
        match rows.into_iter().next() {
            Some(row) => Columns::new(row, "em_run_events").optional_integer(),
            None => Ok(None),
        }
    }
}
