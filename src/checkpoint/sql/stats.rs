//! Table statistics for storage benchmarks (the dev route `/__dev/storage/{thread}`).

use serde_json::{json, Map, Value};

use super::log::OP_UPSERT;
use super::port::{SqlExec, SqlValue};
use super::schema::{Kind, Table, TABLES};
use super::{Columns, SqlCheckpointer};
use crate::error::Result;

/// The stored messages' content and JSON bytes (inline bodies; parts count whole).
const SELECT_RAW_MESSAGE_BYTES: &str = "SELECT
               coalesce(sum(length(CAST(json_extract(o.value, '$[2].content') AS BLOB))), 0),
               coalesce(sum(length(CAST(json(json_extract(o.value, '$[2]')) AS BLOB))), 0)
             FROM em_log l, json_each(l.ops) o WHERE json_extract(o.value, '$[0]') = ?";
const SELECT_PARTS_BYTES: &str =
    "SELECT coalesce(sum(length(CAST(data AS BLOB))), 0) FROM em_body_parts";

/// SQL for the bytes SQLite's record format gives integer column `col`: 0 to 8 by size.
fn integer_bytes(col: &str) -> String {
    format!(
        "(CASE WHEN {col} IS NULL OR {col} IN (0, 1) THEN 0 WHEN abs({col}) < 128 THEN 1 \
         WHEN abs({col}) < 32768 THEN 2 WHEN abs({col}) < 8388608 THEN 3 \
         WHEN abs({col}) < 2147483648 THEN 4 WHEN abs({col}) < 140737488355328 THEN 6 ELSE 8 END)"
    )
}

/// SQL for a row's bytes in `table`: a header byte per column, 4 bytes of cell
/// overhead, one more, and the values.
fn row_bytes(table: &Table) -> String {
    let terms: Vec<String> = table
        .columns
        .iter()
        .map(|(col, kind)| match kind {
            Kind::Int => integer_bytes(col),
            Kind::Bytes => format!("coalesce(length(CAST({col} AS BLOB)), 0)"),
        })
        .collect();
    format!("{} + {}", table.columns.len() + 1 + 4, terms.join(" + "))
}

/// The first row of a one-row answer (an aggregate).
fn one_row(rows: Vec<Vec<SqlValue>>) -> Columns {
    Columns::new(rows.into_iter().next().unwrap_or_default(), "stats")
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// Rows and bytes per table, plus the raw bytes of the stored messages, for storage
    /// benchmarks. Bytes follow SQLite's record format: a header byte per column plus the
    /// values (texts at their length, integers at 0–8 bytes by size), plus 4 bytes of
    /// cell overhead per row. Indexes and free space only show in the database size.
    pub fn table_stats(&self) -> Result<Value> {
        let mut out = Map::new();
        for table in TABLES {
            out.insert(table.name.to_string(), self.table_size(table)?);
        }
        out.insert("raw_messages".into(), self.raw_message_bytes()?);
        Ok(Value::Object(out))
    }

    /// `{"rows", "bytes"}` of one table.
    fn table_size(&self, table: &Table) -> Result<Value> {
        let sql = format!(
            "SELECT count(*), coalesce(sum({}), 0) FROM {}",
            row_bytes(table),
            table.name
        );
        let mut cols = one_row(self.query(&sql, &[])?);
        Ok(json!({"rows": cols.integer()?, "bytes": cols.integer()?}))
    }

    /// `{"content_bytes", "json_bytes"}` of the stored messages (not their removals).
    fn raw_message_bytes(&self) -> Result<Value> {
        let mut cols = one_row(self.query(SELECT_RAW_MESSAGE_BYTES, &[OP_UPSERT.into()])?);
        let (content, json) = (cols.integer()?, cols.integer()?);
        // Parts hold whole bodies: counted as JSON and, an upper bound, as content.
        let parts = one_row(self.query(SELECT_PARTS_BYTES, &[])?).integer()?;
        Ok(json!({"content_bytes": content + parts, "json_bytes": json + parts}))
    }
}
