//! The port: the one trait a SQL backend provides, and the values it carries.

use crate::error::Result;

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
