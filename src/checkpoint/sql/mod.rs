//! The SQL checkpointer: all the SQL, over a one-trait port.
//!
//! Production runs it on Durable Object SQLite (`ctx.storage.sql`); native tests run the
//! very same statements on real SQLite (`rusqlite`). The port, [`SqlExec`], is designed
//! for the weaker of the two: Durable Object SQL rejects `BEGIN`, so atomicity is asked
//! for explicitly with [`SqlExec::execute_batch`] (`storage.transactionSync` there, a
//! transaction in SQLite).
//!
//! # Layout (an append-only log, plus the head's ids)
//! - `em_threads`: one row per thread (metadata, status, timestamps).
//! - `em_log`: one row per checkpoint: id, parent id, time, metadata, and its message
//!   operations inline (`[[op, position, body], ...]`), each with the position its
//!   message has in the list, and the next free position after it. Never updated.
//!   Bodies too large for the row are in `em_body_parts`.
//! - `em_live_ids`: the head's state as ids: which ids the newest checkpoint's list
//!   holds, at which position, and which checkpoint holds each one's current body.
//!
//! A turn writes four rows: its input's checkpoint and its reply's, each with one
//! `em_live_ids` row per new message (replacing or removing a message touches its one
//! row). The tables are `WITHOUT ROWID`, keyed by what is looked up, so no index adds a
//! write. A turn reads the log's tail back from the head until no older row can hold
//! one of the last messages (its context window), and one `em_live_ids` row per id it
//! checks; so its cost does not grow with the thread. The state at any checkpoint is
//! its chain's operations replayed; continuing from an older checkpoint (a fork)
//! rebuilds `em_live_ids` once.
//!
//! # Schema evolution
//! [`MIGRATIONS`] is append-only; its index is the schema version, stored in
//! `em_schema`. Setup is lazy and idempotent: the first call on a store applies what is
//! missing, each migration atomically with its version bump.
//!
//! # Files
//! `port` (the [`SqlExec`] port), `schema` (migrations and the table registry),
//! `upgrade` (the move from the layout before the log), `checkpointer` (the
//! [`Checkpointer`](crate::checkpoint::Checkpointer) impl), `rows` (reading rows and
//! states), `log` (log rows, their ops, walking a chain, parts of large bodies), `live`
//! (the head's ids and the context window), `stats` (table statistics), `index` (the
//! store as its own thread directory).

mod checkpointer;
mod index;
mod live;
mod log;
mod port;
mod recent;
mod rows;
mod schema;
mod stats;
mod upgrade;

use std::cell::{Cell, RefCell};

use serde_json::{Map, Value};

pub use log::MESSAGE_PART_BYTES;
pub use port::{SqlExec, SqlValue, Statement};
pub use schema::MIGRATIONS;
pub(crate) use schema::{delete_thread_rows, tables_of, Group};

use crate::error::{Error, Result};
use crate::thread::ThreadId;

const INSERT_IMPLICIT_THREAD: &str = "INSERT INTO em_threads (thread_id, created_at, updated_at, metadata, status) VALUES (?, ?, ?, '{}', 'idle')";

/// A [`Checkpointer`](crate::checkpoint::Checkpointer) over any [`SqlExec`].
#[derive(Debug)]
pub struct SqlCheckpointer<E> {
    exec: E,
    schema_ready: Cell<bool>,
    /// The thread served last: its key, head and newest messages (see `recent`).
    recent: RefCell<Option<recent::Recent>>,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// A checkpointer over `exec`. The schema is set up on first use.
    pub fn new(exec: E) -> Self {
        SqlCheckpointer {
            exec,
            schema_ready: Cell::new(false),
            recent: RefCell::new(None),
        }
    }

    /// The port this checkpointer runs on.
    pub fn exec(&self) -> &E {
        &self.exec
    }

    /// Runs one query, after setting up the schema.
    pub(crate) fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>> {
        self.ensure_schema()?;
        self.exec.query(sql, params)
    }

    /// Runs statements atomically, after setting up the schema. What they change is not
    /// known here, so the remembered thread is forgotten.
    pub(crate) fn execute(&self, statements: &[Statement]) -> Result<()> {
        self.ensure_schema()?;
        self.forget_recent();
        self.exec.execute_batch(statements)
    }

    /// Runs `f` on what is remembered of `thread_id`, if that is the thread remembered.
    fn remembered<R>(
        &self,
        thread_id: &ThreadId,
        f: impl FnOnce(&mut recent::Recent) -> R,
    ) -> Option<R> {
        let mut recent = self.recent.borrow_mut();
        recent.as_mut().filter(|r| r.is_of(thread_id)).map(f)
    }

    /// Forgets the thread served last (its key, head and newest messages), so that the
    /// next request reads them from storage: done before any write but a put on that
    /// thread's head; public for tests and benchmarks of a cold object.
    pub fn forget_recent(&self) {
        self.recent.replace(None);
    }

    /// The thread's row key, creating the thread record if it does not exist (a
    /// LangGraph checkpointer creates threads implicitly on first write).
    pub(crate) fn ensure_thread_key(&self, thread_id: &ThreadId, now_ms: i64) -> Result<i64> {
        match self.thread_tkey(thread_id) {
            Ok(tkey) => Ok(tkey),
            Err(Error::NotFound { .. }) => {
                self.execute(&[Statement::new(
                    INSERT_IMPLICIT_THREAD,
                    vec![thread_id.as_str().into(), now_ms.into(), now_ms.into()],
                )])?;
                self.thread_tkey(thread_id)
            }
            Err(err) => Err(err),
        }
    }

    /// The thread's row key, if the thread exists.
    pub(crate) fn thread_key(&self, thread_id: &ThreadId) -> Result<Option<i64>> {
        match self.thread_tkey(thread_id) {
            Ok(tkey) => Ok(Some(tkey)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// Runs `schema` (idempotent `CREATE ... IF NOT EXISTS` statements) once per store:
/// for tables kept beside the checkpointer's migrations (a directory shard's, run records).
pub(crate) fn create_once<E: SqlExec>(exec: &E, ready: &Cell<bool>, schema: &[&str]) -> Result<()> {
    if !ready.get() {
        let statements: Vec<Statement> = schema
            .iter()
            .map(|sql| Statement::new(*sql, vec![]))
            .collect();
        exec.execute_batch(&statements)?;
        ready.set(true);
    }
    Ok(())
}

/// Reads the columns of one row in order, with errors that name the table.
pub(crate) struct Columns {
    values: std::vec::IntoIter<SqlValue>,
    table: &'static str,
}

impl Columns {
    pub(crate) fn new(row: Vec<SqlValue>, table: &'static str) -> Self {
        Columns {
            values: row.into_iter(),
            table,
        }
    }

    pub(crate) fn next(&mut self) -> Result<SqlValue> {
        self.values
            .next()
            .ok_or_else(|| Error::backend(format_args!("{}: row has too few columns", self.table)))
    }

    pub(crate) fn integer(&mut self) -> Result<i64> {
        match self.next()? {
            SqlValue::Integer(i) => Ok(i),
            // JavaScript hands numbers back as doubles.
            SqlValue::Real(f) if f.fract() == 0.0 => Ok(f as i64),
            other => Err(self.unexpected("an integer", &other)),
        }
    }

    pub(crate) fn text(&mut self) -> Result<String> {
        match self.next()? {
            SqlValue::Text(s) => Ok(s),
            other => Err(self.unexpected("text", &other)),
        }
    }

    pub(crate) fn optional_integer(&mut self) -> Result<Option<i64>> {
        match self.next()? {
            SqlValue::Null => Ok(None),
            SqlValue::Integer(i) => Ok(Some(i)),
            SqlValue::Real(f) if f.fract() == 0.0 => Ok(Some(f as i64)),
            other => Err(self.unexpected("an integer or NULL", &other)),
        }
    }

    pub(crate) fn optional_text(&mut self) -> Result<Option<String>> {
        match self.next()? {
            SqlValue::Null => Ok(None),
            SqlValue::Text(s) => Ok(Some(s)),
            other => Err(self.unexpected("text or NULL", &other)),
        }
    }

    pub(crate) fn json_object(&mut self) -> Result<Map<String, Value>> {
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
