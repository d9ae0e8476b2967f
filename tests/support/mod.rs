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
    /// Rows inserted, updated or deleted by batches so far (SQLite's change counts;
    /// the thread tables have no secondary index that would add more).
    pub rows_changed: std::cell::Cell<u64>,
}

impl RusqliteExec {
    /// An in-memory database.
    pub fn in_memory() -> Self {
        RusqliteExec {
            conn: Connection::open_in_memory().expect("open sqlite"),
            rows_returned: Default::default(),
            vm_steps: Default::default(),
            rows_changed: Default::default(),
        }
    }

    /// A database file (for restart tests).
    pub fn open(path: &std::path::Path) -> Self {
        RusqliteExec {
            conn: Connection::open(path).expect("open sqlite file"),
            rows_returned: Default::default(),
            vm_steps: Default::default(),
            rows_changed: Default::default(),
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
    Error::backend_from("SQLite failed", e)
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
            let changed = tx
                .execute(&s.sql, rusqlite::params_from_iter(params))
                .map_err(backend)?;
            self.rows_changed
                .set(self.rows_changed.get() + changed as u64);
        }
        tx.commit().map_err(backend)
    }
}

/// A SQL checkpointer on a fresh in-memory SQLite database.
/// The checkpointer the native tests run on: real SQLite.
pub type Store = SqlCheckpointer<RusqliteExec>;

pub fn sqlite_store() -> SqlCheckpointer<RusqliteExec> {
    SqlCheckpointer::new(RusqliteExec::in_memory())
}

/// Serves `req` on `store` with the built-in demo responder, as the worker would.
pub fn serve_demo<C>(
    store: &C,
    info: &edge_memory::api::ServerInfo,
    gate: &edge_memory::api::RunGate,
    req: &edge_memory::api::HttpRequest,
) -> edge_memory::api::HttpResponse
where
    C: edge_memory::checkpoint::Checkpointer
        + edge_memory::checkpoint::ThreadIndex
        + edge_memory::checkpoint::saver::SaverStore,
{
    use edge_memory::runtime::{SystemClock, SystemEntropy};
    let model = edge_memory::chat::demo::MemoryDemoResponder;
    let engine = edge_memory::chat::Engine::new(store, &model, &SystemClock, &SystemEntropy);
    pollster::block_on(edge_memory::api::handle(req, info, &engine, gate))
}

/// A server whose users sign in with HS256 tokens signed with `secret`.
pub fn jwt_server(secret: &[u8]) -> edge_memory::api::ServerInfo {
    use edge_memory::auth::{AuthSettings, JwtSettings};
    edge_memory::api::ServerInfo {
        auth: AuthSettings {
            jwt: Some(JwtSettings {
                secret: secret.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// `Bearer <token>` for user `sub`, signed with `secret`, valid far into the future.
pub fn bearer(sub: &str, secret: &[u8]) -> String {
    let claims = serde_json::json!({"sub": sub, "exp": 4_000_000_000u64});
    let token = edge_memory::auth::sign_hs256(&claims, secret).expect("sign");
    format!("Bearer {token}")
}
