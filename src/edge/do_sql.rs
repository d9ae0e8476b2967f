//! [`SqlExec`] on Durable Object SQLite storage (`ctx.storage.sql`).

use js_sys::{Function, Reflect};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

use worker::{SqlCursor, SqlStorage, SqlStorageValue, Storage};

use crate::checkpoint::sql::{SqlExec, SqlValue, Statement};
use crate::error::{Error, Result};

/// The SQL port of one Durable Object.
pub(crate) struct DoSql {
    storage: Storage,
    sql: SqlStorage,
    /// Rows read and written since the object started, from the cursors (for `/__dev`
    /// storage stats and the benchmark).
    counters: Rc<SqlCounters>,
}

/// Row counts reported by Durable Object SQL cursors.
#[derive(Debug, Default)]
pub(crate) struct SqlCounters {
    pub(crate) rows_read: Cell<u64>,
    pub(crate) rows_written: Cell<u64>,
}

impl SqlCounters {
    /// Counts a write through the key-value or alarm API: a row of the object's hidden
    /// `__cf_kv` table (alarms keep their time in the object's storage too), billed as
    /// a row written like any other.
    pub(crate) fn count_storage_write(&self) {
        self.rows_written.set(self.rows_written.get() + 1);
    }

    fn add(&self, cursor: &SqlCursor) {
        self.rows_read
            .set(self.rows_read.get() + cursor.rows_read() as u64);
        self.rows_written
            .set(self.rows_written.get() + cursor.rows_written() as u64);
    }
}

impl std::fmt::Debug for DoSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DoSql")
    }
}

impl DoSql {
    /// The port over `storage`.
    pub(crate) fn new(storage: Storage) -> Self {
        Self::counted_by(storage, Rc::default())
    }

    /// The port over `storage`, adding to `counters` (shared by the ports of one object,
    /// so its figures are the object's).
    pub(crate) fn counted_by(storage: Storage, counters: Rc<SqlCounters>) -> Self {
        let sql = storage.sql();
        DoSql {
            storage,
            sql,
            counters,
        }
    }

    /// Rows read and written so far.
    pub(crate) fn counters(&self) -> &Rc<SqlCounters> {
        &self.counters
    }

    /// Bytes the database takes (pages, including free ones).
    #[cfg(feature = "dev-routes")]
    pub(crate) fn database_size(&self) -> usize {
        self.sql.database_size()
    }
}

fn to_do(value: &SqlValue) -> SqlStorageValue {
    match value {
        SqlValue::Null => SqlStorageValue::Null,
        SqlValue::Integer(i) => SqlStorageValue::Integer(*i),
        SqlValue::Real(f) => SqlStorageValue::Float(*f),
        SqlValue::Text(s) => SqlStorageValue::String(s.clone()),
        SqlValue::Blob(b) => SqlStorageValue::Blob(b.clone()),
    }
}

fn from_do(value: SqlStorageValue) -> SqlValue {
    match value {
        SqlStorageValue::Null => SqlValue::Null,
        SqlStorageValue::Boolean(b) => SqlValue::Integer(i64::from(b)),
        SqlStorageValue::Integer(i) => SqlValue::Integer(i),
        SqlStorageValue::Float(f) => SqlValue::Real(f),
        SqlStorageValue::String(s) => SqlValue::Text(s),
        SqlStorageValue::Blob(b) => SqlValue::Blob(b),
    }
}

fn js_text(value: &JsValue) -> String {
    value
        .as_string()
        .or_else(|| {
            value
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{value:?}"))
}

impl SqlExec for DoSql {
    fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>> {
        let bindings: Vec<SqlStorageValue> = params.iter().map(to_do).collect();
        let cursor = self.sql.exec(sql, bindings).map_err(Error::backend)?;
        let rows = cursor
            .raw()
            .map(|row| {
                row.map(|values| values.into_iter().map(from_do).collect())
                    .map_err(Error::backend)
            })
            .collect();
        // Counted after the rows were consumed: the cursor reports what it has read.
        self.counters.add(&cursor);
        rows
    }

    fn execute_batch(&self, statements: &[Statement]) -> Result<()> {
        // `storage.transactionSync(fn)`: the statements commit together or, if one
        // throws, roll back together. Durable Object SQL rejects BEGIN/COMMIT.
        let sql = self.sql.clone();
        let counters = Rc::clone(&self.counters);
        let owned: Vec<(String, Vec<SqlStorageValue>)> = statements
            .iter()
            .map(|s| (s.sql.clone(), s.params.iter().map(to_do).collect()))
            .collect();
        let body = move || -> std::result::Result<JsValue, JsValue> {
            for (query, bindings) in owned {
                let cursor = sql
                    .exec(&query, bindings)
                    .map_err(|e| JsValue::from(js_sys::Error::new(&e.to_string())))?;
                counters.add(&cursor);
            }
            Ok(JsValue::UNDEFINED)
        };
        let callback = Closure::once_into_js(body);
        let storage: &JsValue = self.storage.as_raw();
        let transaction_sync: Function =
            Reflect::get(storage, &JsValue::from_str("transactionSync"))
                .and_then(|f| f.dyn_into::<Function>())
                .map_err(|e| {
                    Error::backend(format_args!(
                        "storage.transactionSync unavailable: {}",
                        js_text(&e)
                    ))
                })?;
        transaction_sync
            .call1(storage, &callback)
            .map(|_| ())
            .map_err(|e| Error::backend(format_args!("SQL batch rolled back: {}", js_text(&e))))
    }
}
