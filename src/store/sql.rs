//! One store shard on SQLite ([`SqlExec`]): items, their vectors, TTL expiry.
//!
//! Items are ordered by namespace path (labels joined by `.`), then key: the primary
//! key's order, so a page of a plain search is read off the index, and shards' pages
//! merge without a sort. An item past its `expires_at` is never returned, even before a
//! sweep ([`SqlStore::sweep`]) deletes it.

use std::cell::Cell;

use serde_json::{Map, Value};

use super::embed::{cosine, from_blob, to_blob};
use super::{Item, Namespace, NamespaceQuery, PutItem, SearchQuery};
use crate::checkpoint::sql::{Columns, SqlExec, SqlValue, Statement};
use crate::error::{Error, Result};

/// The tables, created on first use.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS em_store_items (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        ttl_minutes REAL,
        PRIMARY KEY (namespace, key)
    )",
    "CREATE INDEX IF NOT EXISTS em_store_items_by_expiry ON em_store_items (expires_at)
        WHERE expires_at IS NOT NULL",
    // One row per indexed text of an item: `path` names the text (`$`, `text`, `tags.0`).
    "CREATE TABLE IF NOT EXISTS em_store_vectors (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        path TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (namespace, key, path)
    ) WITHOUT ROWID",
];

/// A put over an existing key keeps its `created_at`, unless the old item had expired.
const UPSERT: &str = "INSERT INTO em_store_items
        (namespace, key, value, created_at, updated_at, expires_at, ttl_minutes)
     VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (namespace, key) DO UPDATE SET
       value = excluded.value,
       created_at = CASE WHEN em_store_items.expires_at <= excluded.updated_at
                    THEN excluded.created_at ELSE em_store_items.created_at END,
       updated_at = excluded.updated_at,
       expires_at = excluded.expires_at,
       ttl_minutes = excluded.ttl_minutes";

const LIVE: &str = "(em_store_items.expires_at IS NULL OR em_store_items.expires_at > ?)";

const ITEM_COLUMNS: &str = "namespace, key, value, created_at, updated_at";

/// Restarts an item's TTL (`refresh_ttl`).
const REFRESH: &str =
    "UPDATE em_store_items SET expires_at = ? + CAST(ttl_minutes * 60000 AS INTEGER)
     WHERE namespace = ? AND key = ? AND ttl_minutes IS NOT NULL";

/// A store shard over SQLite.
#[derive(Debug)]
pub struct SqlStore<E> {
    exec: E,
    ready: Cell<bool>,
}

impl<E: SqlExec> SqlStore<E> {
    /// A store over `exec`; its tables are created on first use.
    pub fn new(exec: E) -> Self {
        SqlStore {
            exec,
            ready: Cell::new(false),
        }
    }

    /// The SQL port (tests read its counters).
    pub fn exec(&self) -> &E {
        &self.exec
    }

    fn ensure_schema(&self) -> Result<()> {
        if !self.ready.get() {
            let statements: Vec<Statement> = SCHEMA
                .iter()
                .map(|sql| Statement::new(*sql, vec![]))
                .collect();
            self.exec.execute_batch(&statements)?;
            self.ready.set(true);
        }
        Ok(())
    }

    /// Writes `puts` in order, all or nothing (a `value: None` deletes). Returns the
    /// earliest `expires_at` written, for the caller's expiry alarm.
    pub fn put(&self, puts: &[PutItem], now_ms: i64) -> Result<Option<i64>> {
        self.ensure_schema()?;
        let mut statements = Vec::new();
        let mut earliest: Option<i64> = None;
        for put in puts {
            let ns: SqlValue = put.namespace.path().into();
            let key: SqlValue = put.key.as_str().into();
            statements.push(Statement::new(
                "DELETE FROM em_store_vectors WHERE namespace = ? AND key = ?",
                vec![ns.clone(), key.clone()],
            ));
            let Some(value) = &put.value else {
                statements.push(Statement::new(
                    "DELETE FROM em_store_items WHERE namespace = ? AND key = ?",
                    vec![ns, key],
                ));
                continue;
            };
            let expires_at = put.ttl_minutes.map(|m| now_ms + (m * 60_000.0) as i64);
            if let Some(at) = expires_at {
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
            statements.push(Statement::new(
                UPSERT,
                vec![
                    ns.clone(),
                    key.clone(),
                    Value::Object(value.clone()).to_string().into(),
                    now_ms.into(),
                    now_ms.into(),
                    expires_at.into(),
                    put.ttl_minutes.map_or(SqlValue::Null, SqlValue::Real),
                ],
            ));
            for (path, vector) in &put.vectors {
                statements.push(Statement::new(
                    "INSERT OR REPLACE INTO em_store_vectors (namespace, key, path, vector)
                     VALUES (?, ?, ?, ?)",
                    vec![
                        ns.clone(),
                        key.clone(),
                        path.as_str().into(),
                        SqlValue::Blob(to_blob(vector)),
                    ],
                ));
            }
        }
        self.exec.execute_batch(&statements)?;
        Ok(earliest)
    }

    /// The item at `namespace`/`key`, unless missing or expired; `refresh_ttl` restarts
    /// its TTL.
    pub fn get(
        &self,
        namespace: &Namespace,
        key: &str,
        refresh_ttl: bool,
        now_ms: i64,
    ) -> Result<Option<Item>> {
        self.ensure_schema()?;
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM em_store_items WHERE namespace = ? AND key = ? AND {LIVE}"
        );
        let rows = self
            .exec
            .query(&sql, &[namespace.path().into(), key.into(), now_ms.into()])?;
        let item = rows.into_iter().next().map(item_row).transpose()?;
        if let (Some(item), true) = (&item, refresh_ttl) {
            self.refresh(std::slice::from_ref(item), now_ms)?;
        }
        Ok(item)
    }

    /// The items under `query.prefix` that match its filter: ranked by similarity to
    /// `query.vector` when it has one, else in namespace-path and key order; paged.
    pub fn search(&self, query: &SearchQuery, now_ms: i64) -> Result<Vec<Item>> {
        self.ensure_schema()?;
        let items = match &query.vector {
            Some(vector) => self.ranked(query, vector, now_ms)?,
            None => self.listed(query, now_ms)?,
        };
        if query.refresh_ttl {
            self.refresh(&items, now_ms)?;
        }
        Ok(items)
    }

    /// A plain search: SQL pages it when there is no filter to re-check.
    fn listed(&self, query: &SearchQuery, now_ms: i64) -> Result<Vec<Item>> {
        let (clause, mut params) = where_clause(&query.prefix, query, now_ms);
        let mut sql = format!(
            "SELECT {ITEM_COLUMNS} FROM em_store_items WHERE {clause} ORDER BY namespace, key"
        );
        let Some(filter) = &query.filter else {
            sql.push_str(" LIMIT ? OFFSET ?");
            params.push(count(query.limit));
            params.push(count(query.offset));
            return self
                .exec
                .query(&sql, &params)?
                .into_iter()
                .map(item_row)
                .collect();
        };
        let mut matching = Vec::new();
        for row in self.exec.query(&sql, &params)? {
            let item = item_row(row)?;
            if filter.matches(&item.value) {
                matching.push(item);
            }
        }
        Ok(page(matching, query.offset, query.limit))
    }

    /// A semantic search: every live item under the prefix is scored (the best cosine of
    /// its vectors), then the page's values are read. Items without vectors follow the
    /// scored ones, in key order.
    fn ranked(&self, query: &SearchQuery, vector: &[f32], now_ms: i64) -> Result<Vec<Item>> {
        let (clause, params) = where_clause(&query.prefix, query, now_ms);
        let with_value = if query.filter.is_some() {
            ", em_store_items.value"
        } else {
            ""
        };
        let sql = format!(
            "SELECT em_store_items.namespace, em_store_items.key, v.vector{with_value}
             FROM em_store_items LEFT JOIN em_store_vectors v
               ON v.namespace = em_store_items.namespace AND v.key = em_store_items.key
             WHERE {clause} ORDER BY em_store_items.namespace, em_store_items.key"
        );
        let mut scored: Vec<(String, String, Option<f64>)> = Vec::new();
        for row in self.exec.query(&sql, &params)? {
            let mut cols = Columns::new(row, "em_store_items");
            let (ns, key) = (cols.text()?, cols.text()?);
            let score = match cols.next()? {
                SqlValue::Blob(blob) => Some(cosine(vector, &from_blob(&blob))),
                _ => None,
            };
            if let Some(filter) = &query.filter {
                if !filter.matches(&value_object(&cols.text()?)?) {
                    continue;
                }
            }
            match scored.last_mut() {
                Some((n, k, best)) if *n == ns && *k == key => {
                    *best = match (*best, score) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
                _ => scored.push((ns, key, score)),
            }
        }
        // Stable: equal scores stay in key order.
        crate::sort::sort_by(&mut scored, |a, b| match (a.2, b.2) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        let mut items = Vec::new();
        for (ns, key, score) in page(scored, query.offset, query.limit) {
            let sql = format!(
                "SELECT {ITEM_COLUMNS} FROM em_store_items WHERE namespace = ? AND key = ?"
            );
            if let Some(row) = self.exec.query(&sql, &[ns.into(), key.into()])?.pop() {
                items.push(Item {
                    score,
                    ..item_row(row)?
                });
            }
        }
        Ok(items)
    }

    fn refresh(&self, items: &[Item], now_ms: i64) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let statements: Vec<Statement> = items
            .iter()
            .map(|item| {
                Statement::new(
                    REFRESH,
                    vec![
                        now_ms.into(),
                        item.namespace.path().into(),
                        item.key.as_str().into(),
                    ],
                )
            })
            .collect();
        self.exec.execute_batch(&statements)
    }

    /// The namespaces holding live items that match `query`, sorted label by label.
    pub fn list_namespaces(&self, query: &NamespaceQuery, now_ms: i64) -> Result<Vec<Namespace>> {
        self.ensure_schema()?;
        let (prefix_clause, mut params) = prefix_clause(&query.literal_prefix());
        params.push(now_ms.into());
        let sql = format!(
            "SELECT DISTINCT namespace FROM em_store_items WHERE {prefix_clause} AND {LIVE}"
        );
        let mut all = Vec::new();
        for row in self.exec.query(&sql, &params)? {
            all.push(Namespace::from_path(
                &Columns::new(row, "em_store_items").text()?,
            ));
        }
        Ok(query.select(all))
    }

    /// Deletes the items expired at `now_ms` and their vectors; returns the next
    /// `expires_at` still ahead, for the shard's alarm.
    pub fn sweep(&self, now_ms: i64) -> Result<Option<i64>> {
        self.ensure_schema()?;
        self.exec.execute_batch(&[
            Statement::new(
                "DELETE FROM em_store_vectors WHERE (namespace, key) IN
                   (SELECT namespace, key FROM em_store_items WHERE expires_at <= ?)",
                vec![now_ms.into()],
            ),
            Statement::new(
                "DELETE FROM em_store_items WHERE expires_at <= ?",
                vec![now_ms.into()],
            ),
        ])?;
        self.next_expiry()
    }

    /// The rows stored, expired or not: `(items, vectors)` (dev statistics: what a sweep
    /// removed is gone from these counts, not only from answers).
    pub fn row_counts(&self) -> Result<(i64, i64)> {
        self.ensure_schema()?;
        let rows = self.exec.query(
            "SELECT (SELECT COUNT(*) FROM em_store_items), (SELECT COUNT(*) FROM em_store_vectors)",
            &[],
        )?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| crate::error::Error::backend("COUNT(*) returned no row"))?;
        let mut columns = Columns::new(row, "em_store_items");
        Ok((columns.integer()?, columns.integer()?))
    }

    /// The earliest `expires_at` of any item.
    pub fn next_expiry(&self) -> Result<Option<i64>> {
        self.ensure_schema()?;
        let rows = self.exec.query(
            "SELECT MIN(expires_at) FROM em_store_items WHERE expires_at IS NOT NULL",
            &[],
        )?;
        match rows.into_iter().next() {
            Some(row) => Columns::new(row, "em_store_items").optional_integer(),
            None => Ok(None),
        }
    }
}

/// `offset`/`limit` over an ordered list.
fn page<T>(items: Vec<T>, offset: usize, limit: usize) -> Vec<T> {
    items.into_iter().skip(offset).take(limit).collect()
}

fn count(n: usize) -> SqlValue {
    SqlValue::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Namespaces equal to `prefix` or under it. One range on the primary key, `[p, p/)`,
/// which SQLite walks in key order (an `OR` of two ranges would make it scan and sort);
/// it also holds paths like `p-x` (`-` sorts before `/`), which the second test drops.
fn prefix_clause(prefix: &Namespace) -> (String, Vec<SqlValue>) {
    if prefix.is_empty() {
        return ("1 = 1".into(), Vec::new());
    }
    let path = prefix.path();
    (
        "em_store_items.namespace >= ? AND em_store_items.namespace < ?
          AND (em_store_items.namespace = ? OR substr(em_store_items.namespace, 1, ?) = ?)"
            .into(),
        vec![
            path.as_str().into(),
            format!("{path}/").into(),
            path.as_str().into(),
            SqlValue::Integer(path.chars().count() as i64 + 1),
            format!("{path}.").into(),
        ],
    )
}

/// The prefix, liveness and SQL-checkable filter conditions of a search.
fn where_clause(prefix: &Namespace, query: &SearchQuery, now_ms: i64) -> (String, Vec<SqlValue>) {
    let (mut clause, mut params) = prefix_clause(prefix);
    clause.push_str(&format!(" AND {LIVE}"));
    params.push(now_ms.into());
    for (path, operand) in query
        .filter
        .as_ref()
        .map(|f| f.sql_equalities())
        .unwrap_or_default()
    {
        clause.push_str(" AND json_extract(em_store_items.value, ?) = ?");
        params.push(path.into());
        params.push(operand);
    }
    (clause, params)
}

fn value_object(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(text)? {
        Value::Object(map) => Ok(map),
        _ => Err(Error::backend("em_store_items: value is not a JSON object")),
    }
}

fn item_row(row: Vec<SqlValue>) -> Result<Item> {
    let mut cols = Columns::new(row, "em_store_items");
    Ok(Item {
        namespace: Namespace::from_path(&cols.text()?),
        key: cols.text()?,
        value: value_object(&cols.text()?)?,
        created_at_ms: cols.integer()?,
        updated_at_ms: cols.integer()?,
        score: None,
    })
}
