//! One shard of the thread directory on SQLite ([`SqlExec`]): the table a directory
//! object keeps, with search and count done in SQL so that their work is bounded by
//! the page asked for, not by the number of threads in the shard.
//!
//! Thread objects never write this table: its indexes (by `updated_at`, by
//! `created_at`) would otherwise cost every turn extra rows.

use std::cell::Cell;

use serde_json::{Map, Value};

use super::sql::{Columns, SqlExec, SqlValue, Statement};
use super::{ThreadIndex, ThreadSearch, ThreadSortKey};
use crate::error::Result;
use crate::thread::{ThreadId, ThreadRecord, ThreadStatus};

/// The directory table and its indexes, created on first use.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS em_directory (
        thread_id TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        status TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS em_directory_by_updated ON em_directory (updated_at, thread_id)",
    "CREATE INDEX IF NOT EXISTS em_directory_by_created ON em_directory (created_at, thread_id)",
    // Which threads each run wrote checkpointer storage on (`delete_for_runs`).
    "CREATE TABLE IF NOT EXISTS em_directory_runs (
        run_id TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        PRIMARY KEY (run_id, thread_id)
    ) WITHOUT ROWID",
];

/// Inserts or replaces a copy, unless the stored one is newer: copies may arrive late
/// and out of order, and `updated_at` only grows on a thread. `created_at` is left out
/// of the update: an indexed column assigned costs its index a row written even when
/// its value is the same (every copy of a thread after its first).
const UPSERT: &str =
    "INSERT INTO em_directory (thread_id, created_at, updated_at, metadata, status)
     VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (thread_id) DO UPDATE SET
       updated_at = excluded.updated_at, metadata = excluded.metadata, status = excluded.status
     WHERE excluded.updated_at >= em_directory.updated_at";

/// After [`UPSERT`]: a thread deleted and created again under its id, whose removal
/// never arrived, takes its new `created_at` (only when the copy was taken and differs).
const RECREATED: &str = "UPDATE em_directory SET created_at = ?
     WHERE thread_id = ? AND updated_at = ? AND created_at != ?";

const REMOVE: &str = "DELETE FROM em_directory WHERE thread_id = ?";

const TABLE: &str = "em_directory";

const COLUMNS: &str = "thread_id, created_at, updated_at, metadata, status";

/// A directory shard over SQLite.
#[derive(Debug)]
pub struct SqlDirectory<E> {
    exec: E,
    ready: Cell<bool>,
}

impl<E: SqlExec> SqlDirectory<E> {
    /// A directory over `exec`; its table is created on first use.
    pub fn new(exec: E) -> Self {
        SqlDirectory {
            exec,
            ready: Cell::new(false),
        }
    }

    /// The SQL port (tests and dev statistics read its counters).
    pub fn exec(&self) -> &E {
        &self.exec
    }

    fn ensure_schema(&self) -> Result<()> {
        super::sql::create_once(&self.exec, &self.ready, SCHEMA)
    }
}

/// Rows of a table of thread records (`em_directory`, or a store's own `em_threads`).
fn records<E: SqlExec>(
    exec: &E,
    table: &'static str,
    sql: &str,
    params: &[SqlValue],
) -> Result<Vec<ThreadRecord>> {
    exec.query(sql, params)?
        .into_iter()
        .map(|row| {
            let mut cols = Columns::new(row, table);
            Ok(ThreadRecord {
                thread_id: ThreadId::parse(&cols.text()?)?,
                created_at_ms: cols.integer()?,
                updated_at_ms: cols.integer()?,
                metadata: cols.json_object()?,
                status: ThreadStatus::parse(&cols.text()?)?,
            })
        })
        .collect()
}

/// A record's columns, in [`COLUMNS`] order, as statement parameters.
pub(crate) fn record_params(record: &ThreadRecord) -> Vec<SqlValue> {
    vec![
        record.thread_id.as_str().into(),
        record.created_at_ms.into(),
        record.updated_at_ms.into(),
        json_text(&record.metadata).into(),
        record.status.as_str().into(),
    ]
}

/// Searches a table of thread records: filters, order and paging in SQL where SQL alone
/// decides, else the filters are applied again exactly and paged in Rust.
pub(crate) fn search_table<E: SqlExec>(
    exec: &E,
    table: &'static str,
    query: &ThreadSearch,
) -> Result<Vec<ThreadRecord>> {
    let Filters {
        clause,
        mut params,
        exact,
    } = filters(query);
    let mut sql = format!("SELECT {COLUMNS} FROM {table}{clause}{}", order_by(query));
    if !exact {
        return Ok(query.page(records(exec, table, &sql, &params)?));
    }
    sql.push_str(" LIMIT ? OFFSET ?");
    params.push(count_param(query.limit));
    params.push(count_param(query.offset));
    records(exec, table, &sql, &params)
}

/// Counts a table's thread records that match `query`'s filters.
pub(crate) fn count_table<E: SqlExec>(
    exec: &E,
    table: &'static str,
    query: &ThreadSearch,
) -> Result<usize> {
    let Filters {
        clause,
        params,
        exact,
    } = filters(query);
    if !exact {
        let sql = format!("SELECT {COLUMNS} FROM {table}{clause}");
        let found = records(exec, table, &sql, &params)?;
        return Ok(found.iter().filter(|r| query.matches(r)).count());
    }
    let rows = exec.query(&format!("SELECT COUNT(*) FROM {table}{clause}"), &params)?;
    let count = rows
        .into_iter()
        .next()
        .map(|row| Columns::new(row, table).integer())
        .transpose()?
        .unwrap_or(0);
    Ok(usize::try_from(count).unwrap_or(0))
}

/// A search's filters as SQL: the `WHERE` clause, its parameters, and whether the SQL
/// alone decides (else every filter is applied again, exactly, in Rust).
struct Filters {
    clause: String,
    params: Vec<SqlValue>,
    exact: bool,
}

fn filters(query: &ThreadSearch) -> Filters {
    let mut f = Filters {
        clause: String::from(" WHERE 1 = 1"),
        params: Vec::new(),
        exact: true,
    };
    let (clause, params, exact) = metadata_conditions(&query.metadata);
    f.clause.push_str(&clause);
    f.params.extend(params);
    f.exact = exact;
    if let Some(status) = query.status {
        f.clause.push_str(" AND status = ?");
        f.params.push(status.as_str().into());
    }
    if let Some(ids) = &query.ids {
        let marks = vec!["?"; ids.len()].join(", ");
        f.clause.push_str(&format!(" AND thread_id IN ({marks})"));
        f.params
            .extend(ids.iter().map(|id| SqlValue::from(id.as_str())));
    }
    f
}

/// A metadata filter (every key equal to its value) as SQL on a JSON `metadata` column:
/// conditions to append to a `WHERE`, their parameters, and whether SQL alone decides.
pub(crate) fn metadata_conditions(filter: &Map<String, Value>) -> (String, Vec<SqlValue>, bool) {
    let mut f = Filters {
        clause: String::new(),
        params: Vec::new(),
        exact: true,
    };
    for (key, value) in filter {
        metadata_filter(&mut f, key, value);
    }
    (f.clause, f.params, f.exact)
}

/// One metadata filter: exact in SQL for strings, booleans, integers and null; for other
/// values (floats, objects, arrays: JSON equality) SQL only narrows to rows that have
/// the key.
fn metadata_filter(f: &mut Filters, key: &str, value: &Value) {
    let path = json_path(key);
    let (condition, bound): (&str, Option<SqlValue>) = match value {
        Value::String(text) => (
            " AND json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?",
            Some(text.as_str().into()),
        ),
        Value::Bool(true) => (" AND json_type(metadata, ?) = 'true'", None),
        Value::Bool(false) => (" AND json_type(metadata, ?) = 'false'", None),
        Value::Null => (" AND json_type(metadata, ?) = 'null'", None),
        Value::Number(n) if n.is_i64() => (
            " AND json_type(metadata, ?) = 'integer' AND json_extract(metadata, ?) = ?",
            n.as_i64().map(SqlValue::Integer),
        ),
        _ => {
            f.exact = false;
            (" AND json_type(metadata, ?) IS NOT NULL", None)
        }
    };
    f.clause.push_str(condition);
    f.params.push(path.as_str().into());
    if let Some(bound) = bound {
        f.params.push(path.into());
        f.params.push(bound);
    }
}

/// `$."key"` for SQLite's JSON functions, with the key quoted.
fn json_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
}

fn order_by(query: &ThreadSearch) -> String {
    let column = match query.sort_by {
        ThreadSortKey::UpdatedAt => "updated_at, ",
        ThreadSortKey::CreatedAt => "created_at, ",
        ThreadSortKey::ThreadId => "",
    };
    let direction = if query.ascending { "ASC" } else { "DESC" };
    if column.is_empty() {
        format!(" ORDER BY thread_id {direction}")
    } else {
        format!(
            " ORDER BY {} {direction}, thread_id {direction}",
            column.trim_end_matches(", ")
        )
    }
}

pub(crate) fn json_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

impl<E: SqlExec> ThreadIndex for SqlDirectory<E> {
    async fn index_upsert(&self, record: &ThreadRecord) -> Result<()> {
        self.ensure_schema()?;
        let recreated = vec![
            record.created_at_ms.into(),
            record.thread_id.as_str().into(),
            record.updated_at_ms.into(),
            record.created_at_ms.into(),
        ];
        self.exec.execute_batch(&[
            Statement::new(UPSERT, record_params(record)),
            Statement::new(RECREATED, recreated),
        ])
    }

    async fn index_remove(&self, thread_id: &ThreadId) -> Result<()> {
        self.ensure_schema()?;
        self.exec
            .execute_batch(&[Statement::new(REMOVE, vec![thread_id.as_str().into()])])
    }

    async fn search_threads(&self, query: &ThreadSearch) -> Result<Vec<ThreadRecord>> {
        self.ensure_schema()?;
        search_table(&self.exec, TABLE, query)
    }

    async fn count_threads(&self, query: &ThreadSearch) -> Result<usize> {
        self.ensure_schema()?;
        count_table(&self.exec, TABLE, query)
    }

    async fn index_run(&self, run_id: &str, thread_id: &ThreadId) -> Result<()> {
        self.ensure_schema()?;
        self.exec.execute_batch(&[Statement::new(
            "INSERT OR IGNORE INTO em_directory_runs (run_id, thread_id) VALUES (?, ?)",
            vec![run_id.into(), thread_id.as_str().into()],
        )])
    }

    async fn threads_of_runs(&self, run_ids: &[String]) -> Result<Vec<ThreadId>> {
        self.ensure_schema()?;
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (marks, params) = in_list(run_ids);
        let sql =
            format!("SELECT DISTINCT thread_id FROM em_directory_runs WHERE run_id IN ({marks})");
        thread_ids(&self.exec, &sql, &params)
    }
}

/// `?, ?, …` for an `IN (…)` of `items`, and the items as parameters.
pub(crate) fn in_list(items: &[String]) -> (String, Vec<SqlValue>) {
    let marks = vec!["?"; items.len()].join(", ");
    (marks, items.iter().map(|id| id.as_str().into()).collect())
}

/// The thread ids a one-column query returns.
pub(crate) fn thread_ids<E: SqlExec>(
    exec: &E,
    sql: &str,
    params: &[SqlValue],
) -> Result<Vec<ThreadId>> {
    exec.query(sql, params)?
        .into_iter()
        .map(|row| ThreadId::parse(&Columns::new(row, "thread ids").text()?))
        .collect()
}

/// A limit or offset as a SQL integer (`usize::MAX` means no limit).
pub(crate) fn count_param(n: usize) -> SqlValue {
    SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}
