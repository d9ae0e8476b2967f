//! Test support: the `SqlExec` port on real SQLite (rusqlite).

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code, unreachable_pub)]

use edge_memory::checkpoint::sql::{SqlCheckpointer, SqlExec, SqlValue, Statement};
use edge_memory::{Error, Result};
use rusqlite::types::{Value as Sv, ValueRef};
use rusqlite::Connection;

/// `SqlExec` on a rusqlite connection: the same SQL Durable Objects run.
pub struct RusqliteExec {
    conn: Connection,
    /// Rows returned by queries so far: what a turn read.
    pub rows_returned: std::cell::Cell<u64>,
    /// SQLite virtual-machine steps so far, reads and writes: what a turn cost the
    /// database, independent of the machine's speed. A scan shows here even when it
    /// returns one row.
    pub vm_steps: std::cell::Cell<u64>,
}

impl RusqliteExec {
    /// An in-memory database.
    pub fn in_memory() -> Self {
        RusqliteExec {
            conn: Connection::open_in_memory().expect("open sqlite"),
            rows_returned: Default::default(),
            vm_steps: Default::default(),
        }
    }

    /// A database file (for restart tests).
    pub fn open(path: &std::path::Path) -> Self {
        RusqliteExec {
            conn: Connection::open(path).expect("open sqlite file"),
            rows_returned: Default::default(),
            vm_steps: Default::default(),
        }
    }

    /// The connection, for tests that inspect rows.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

fn to_sql(v: &SqlValue) -> Sv {
    match v {
        SqlValue::Null => Sv::Null,
        SqlValue::Integer(i) => Sv::Integer(*i),
        SqlValue::Real(f) => Sv::Real(*f),
        SqlValue::Text(s) => Sv::Text(s.clone()),
        SqlValue::Blob(b) => Sv::Blob(b.clone()),
    }
}

fn backend(e: rusqlite::Error) -> Error {
    Error::backend(e)
}

impl SqlExec for RusqliteExec {
    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>> {
        let mut stmt = self.conn.prepare(sql).map_err(backend)?;
        let columns = stmt.column_count();
        let params: Vec<Sv> = params.iter().map(to_sql).collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(backend)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(backend)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i).map_err(backend)? {
                    ValueRef::Null => SqlValue::Null,
                    ValueRef::Integer(i) => SqlValue::Integer(i),
                    ValueRef::Real(f) => SqlValue::Real(f),
                    ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
                });
            }
            out.push(values);
        }
        self.rows_returned
            .set(self.rows_returned.get() + out.len() as u64);
        drop(rows);
        let steps = stmt.get_status(rusqlite::StatementStatus::VmStep);
        self.vm_steps.set(self.vm_steps.get() + steps as u64);
        if std::env::var_os("EM_TRACE_SQL").is_some() {
            eprintln!(
                "{steps:>8} vm steps: {}",
                sql.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        Ok(out)
    }

    fn execute_batch(&self, statements: &[Statement]) -> Result<()> {
        let tx = self.conn.unchecked_transaction().map_err(backend)?;
        for s in statements {
            let params: Vec<Sv> = s.params.iter().map(to_sql).collect();
            tx.execute(&s.sql, rusqlite::params_from_iter(params))
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }
}

/// A SQL checkpointer on a fresh in-memory SQLite database.
pub fn sqlite_store() -> SqlCheckpointer<RusqliteExec> {
    SqlCheckpointer::new(RusqliteExec::in_memory())
}
