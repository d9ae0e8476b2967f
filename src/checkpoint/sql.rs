//! The SQL checkpointer: all the SQL, over a one-trait port.
//!
//! Production runs it on Durable Object SQLite (`ctx.storage.sql`); native tests run the
//! very same statements on real SQLite (`rusqlite`). The port, [`SqlExec`], is designed
//! for the weaker of the two: Durable Object SQL rejects `BEGIN`, so atomicity is asked
//! for explicitly with [`SqlExec::execute_batch`] (`storage.transactionSync` there, a
//! transaction in SQLite).
//!
//! # Layout (append-only history, plus the head's live list)
//! - `em_threads`: one row per thread (metadata, status, timestamps, and `live_ckey`: the
//!   checkpoint whose state `em_live` holds).
//! - `em_checkpoints`: one row per checkpoint: id, parent (as a row key), time, metadata.
//! - `em_messages`: one row per message operation, tagged with its checkpoint's row key,
//!   in write order (`seq`). Never updated.
//! - `em_live`: the head's state as a list: position → the `seq` of the message's current
//!   body, with a 52-bit hash of its id for look-ups (checked against the body's id, so a
//!   collision costs a comparison, never a wrong answer). A turn inserts one small row
//!   per new message; replacing or removing a message touches its one row.
//!
//! A turn inserts one checkpoint row and one `em_messages` + `em_live` row per new
//! message; it never rewrites earlier history, so the bytes written per turn do not grow
//! with the thread. A turn reads only the tail of `em_live` (its context window) and the
//! ids it needs to check, so its cost does not grow either. The state at an older
//! checkpoint is rebuilt by replaying the message rows of its parent chain (one recursive
//! query); continuing from an older checkpoint (a fork) rebuilds `em_live` once.
//!
//! # Schema evolution
//! [`MIGRATIONS`] is append-only; its index is the schema version, stored in
//! `em_schema`. Setup is lazy and idempotent: the first call on a store applies what is
//! missing, each migration atomically with its version bump.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::directory;
use super::{
    CheckpointId, CheckpointRecord, Checkpointer, ListQuery, NewCheckpoint, Snapshot, ThreadIndex,
    ThreadSearch, Window,
};
use crate::error::{Error, Result};
use crate::limits::DO_ROW_MAX_BYTES;
use crate::message::{Message, MessageOp};
use crate::thread::{ThreadId, ThreadRecord, ThreadStatus};

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

/// The schema, one migration per entry; append only. Entry `i` moves version `i` to
/// `i + 1`.
pub const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE em_threads (
        tkey INTEGER PRIMARY KEY,
        thread_id TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        status TEXT NOT NULL,
        live_ckey INTEGER
    )",
        "CREATE TABLE em_checkpoints (
        ckey INTEGER PRIMARY KEY,
        tkey INTEGER NOT NULL,
        checkpoint_id TEXT NOT NULL,
        parent INTEGER,
        created_at INTEGER NOT NULL,
        metadata TEXT NOT NULL
    )",
        "CREATE UNIQUE INDEX em_checkpoints_by_id ON em_checkpoints (tkey, checkpoint_id)",
        "CREATE TABLE em_messages (
        seq INTEGER PRIMARY KEY,
        ckey INTEGER NOT NULL,
        op INTEGER NOT NULL,
        body TEXT NOT NULL
    )",
        "CREATE INDEX em_messages_by_checkpoint ON em_messages (ckey, seq)",
        "CREATE TABLE em_live (
        tkey INTEGER NOT NULL,
        pos INTEGER NOT NULL,
        id_hash INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (tkey, pos)
    ) WITHOUT ROWID",
        "CREATE INDEX em_live_by_hash ON em_live (tkey, id_hash)",
    ],
    &[
        // LangGraph checkpointer storage (EdgeMemorySaver): see `checkpoint::saver`.
        "CREATE TABLE em_saver_checkpoints (
        tkey INTEGER NOT NULL,
        ns TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        parent_id TEXT,
        checkpoint_type TEXT NOT NULL,
        checkpoint BLOB NOT NULL,
        channel_versions TEXT NOT NULL,
        metadata TEXT NOT NULL,
        metadata_type TEXT NOT NULL,
        metadata_typed BLOB NOT NULL,
        PRIMARY KEY (tkey, ns, checkpoint_id)
    ) WITHOUT ROWID",
        "CREATE TABLE em_saver_blobs (
        tkey INTEGER NOT NULL,
        ns TEXT NOT NULL,
        channel TEXT NOT NULL,
        version TEXT NOT NULL,
        type TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (tkey, ns, channel, version)
    ) WITHOUT ROWID",
        "CREATE TABLE em_saver_writes (
        tkey INTEGER NOT NULL,
        ns TEXT NOT NULL,
        checkpoint_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        channel TEXT NOT NULL,
        type TEXT NOT NULL,
        data BLOB NOT NULL,
        task_path TEXT NOT NULL,
        PRIMARY KEY (tkey, ns, checkpoint_id, task_id, idx)
    ) WITHOUT ROWID",
    ],
    &[
        // Message lists of checkpointer channels, stored flat: see `checkpoint::saver`.
        "CREATE TABLE em_saver_messages (
        tkey INTEGER NOT NULL,
        ns TEXT NOT NULL,
        channel TEXT NOT NULL,
        msg_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        type TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (tkey, ns, channel, msg_id, digest)
    ) WITHOUT ROWID",
        "CREATE TABLE em_saver_list_versions (
        tkey INTEGER NOT NULL,
        ns TEXT NOT NULL,
        channel TEXT NOT NULL,
        version TEXT NOT NULL,
        branch INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (tkey, ns, channel, version)
    ) WITHOUT ROWID",
        "CREATE INDEX em_saver_list_heads ON em_saver_list_versions (tkey, ns, channel, branch, seq)",
        "CREATE TABLE em_saver_list_rows (
        tkey INTEGER NOT NULL,
        ns TEXT NOT NULL,
        channel TEXT NOT NULL,
        branch INTEGER NOT NULL,
        pos INTEGER NOT NULL,
        from_seq INTEGER NOT NULL,
        to_seq INTEGER NOT NULL,
        msg_id TEXT NOT NULL,
        digest TEXT NOT NULL,
        PRIMARY KEY (tkey, ns, channel, branch, pos, from_seq)
    ) WITHOUT ROWID",
        "CREATE INDEX em_saver_list_by_id ON em_saver_list_rows (tkey, ns, channel, branch, msg_id, to_seq)",
    ],
    &[
        // Messages larger than a row may hold: `em_messages.body` keeps a stub with the
        // id, the text is here in parts (see `MESSAGE_PART_BYTES`).
        "CREATE TABLE em_message_parts (
        seq INTEGER NOT NULL,
        part INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (seq, part)
    ) WITHOUT ROWID",
    ],
];

const SCHEMA_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS em_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)";

/// Largest message body kept in its `em_messages` row; larger ones are split into
/// `em_message_parts` rows of this size. Half of [`DO_ROW_MAX_BYTES`], so a part and its
/// row overhead always fit.
pub const MESSAGE_PART_BYTES: usize = DO_ROW_MAX_BYTES / 2;

/// How a split body starts (its stub: `{"__parts__": N, "id": ...}`; keys sort so).
const PARTS_STUB_PREFIX: &str = "{\"__parts__\":";

/// `em_messages.op`: the body is a message to append or replace.
const OP_UPSERT: i64 = 0;
/// `em_messages.op`: the body is the id of a message to remove.
const OP_REMOVE: i64 = 1;
/// `em_messages.op`: remove every message (empty body).
const OP_REMOVE_ALL: i64 = 2;

/// A thread's row keys.
#[derive(Debug, Clone, Copy)]
struct ThreadKeys {
    tkey: i64,
    live_ckey: Option<i64>,
}

/// A checkpoint row with its row keys.
struct CheckpointRow {
    ckey: i64,
    record: CheckpointRecord,
}

/// A [`Checkpointer`] over any [`SqlExec`].
#[derive(Debug)]
pub struct SqlCheckpointer<E> {
    exec: E,
    schema_ready: Cell<bool>,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// A checkpointer over `exec`. The schema is set up on first use.
    pub fn new(exec: E) -> Self {
        SqlCheckpointer {
            exec,
            schema_ready: Cell::new(false),
        }
    }

    /// The port this checkpointer runs on.
    pub fn exec(&self) -> &E {
        &self.exec
    }

    /// Applies missing migrations; cheap after the first call.
    pub fn ensure_schema(&self) -> Result<()> {
        if self.schema_ready.get() {
            return Ok(());
        }
        self.exec
            .execute_batch(&[Statement::new(SCHEMA_TABLE, vec![])])?;
        let rows = self
            .exec
            .query("SELECT version FROM em_schema WHERE id = 1", &[])?;
        let mut version = match rows.first().and_then(|r| r.first()) {
            Some(SqlValue::Integer(v)) => usize::try_from(*v).unwrap_or(usize::MAX),
            _ => 0,
        };
        if version > MIGRATIONS.len() {
            return Err(Error::backend(format_args!(
                "database schema version {version} is newer than this build ({})",
                MIGRATIONS.len()
            )));
        }
        while version < MIGRATIONS.len() {
            let mut batch: Vec<Statement> = MIGRATIONS[version]
                .iter()
                .map(|sql| Statement::new(*sql, vec![]))
                .collect();
            batch.push(Statement::new(
                "INSERT INTO em_schema (id, version) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                vec![SqlValue::Integer(version as i64 + 1)],
            ));
            self.exec.execute_batch(&batch)?;
            version += 1;
        }
        self.schema_ready.set(true);
        Ok(())
    }

    pub(crate) fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<Vec<SqlValue>>> {
        self.ensure_schema()?;
        self.exec.query(sql, params)
    }

    /// Runs statements atomically, after setting up the schema.
    pub(crate) fn execute(&self, statements: &[Statement]) -> Result<()> {
        self.ensure_schema()?;
        self.exec.execute_batch(statements)
    }

    /// The thread's row key, creating the thread record if it does not exist (a
    /// LangGraph checkpointer creates threads implicitly on first write).
    pub(crate) fn ensure_thread_key(&self, thread_id: &ThreadId, now_ms: i64) -> Result<i64> {
        match self.thread_keys(thread_id) {
            Ok(keys) => Ok(keys.tkey),
            Err(Error::NotFound { .. }) => {
                self.execute(&[Statement::new(
                    "INSERT INTO em_threads (thread_id, created_at, updated_at, metadata, status) VALUES (?, ?, ?, '{}', 'idle')",
                    vec![thread_id.as_str().into(), now_ms.into(), now_ms.into()],
                )])?;
                Ok(self.thread_keys(thread_id)?.tkey)
            }
            Err(err) => Err(err),
        }
    }

    /// The thread's row key, if the thread exists.
    pub(crate) fn thread_key(&self, thread_id: &ThreadId) -> Result<Option<i64>> {
        match self.thread_keys(thread_id) {
            Ok(keys) => Ok(Some(keys.tkey)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Rows and bytes per table, plus the raw bytes of the stored messages, for storage
    /// benchmarks. Bytes follow SQLite's record format: a header byte per column plus the
    /// values (texts at their length, integers at 0–8 bytes by size), plus 4 bytes of
    /// cell overhead per row. Indexes and free space only show in the database size.
    pub fn table_stats(&self) -> Result<Value> {
        fn int(col: &str) -> String {
            format!(
                "(CASE WHEN {col} IS NULL OR {col} IN (0, 1) THEN 0 WHEN abs({col}) < 128 THEN 1 \
                 WHEN abs({col}) < 32768 THEN 2 WHEN abs({col}) < 8388608 THEN 3 \
                 WHEN abs({col}) < 2147483648 THEN 4 WHEN abs({col}) < 140737488355328 THEN 6 ELSE 8 END)"
            )
        }
        let tables: [(&str, Vec<&str>, Vec<&str>); 11] = [
            (
                "em_threads",
                vec!["tkey", "created_at", "updated_at", "live_ckey"],
                vec!["thread_id", "metadata", "status"],
            ),
            (
                "em_checkpoints",
                vec!["ckey", "tkey", "parent", "created_at"],
                vec!["checkpoint_id", "metadata"],
            ),
            ("em_messages", vec!["seq", "ckey", "op"], vec!["body"]),
            ("em_message_parts", vec!["seq", "part"], vec!["data"]),
            ("em_live", vec!["tkey", "pos", "id_hash", "seq"], vec![]),
            (
                "em_saver_checkpoints",
                vec!["tkey"],
                vec![
                    "ns",
                    "checkpoint_id",
                    "parent_id",
                    "checkpoint_type",
                    "checkpoint",
                    "channel_versions",
                    "metadata",
                    "metadata_type",
                    "metadata_typed",
                ],
            ),
            (
                "em_saver_blobs",
                vec!["tkey"],
                vec!["ns", "channel", "version", "type", "data"],
            ),
            (
                "em_saver_writes",
                vec!["tkey", "idx"],
                vec![
                    "ns",
                    "checkpoint_id",
                    "task_id",
                    "channel",
                    "type",
                    "data",
                    "task_path",
                ],
            ),
            (
                "em_saver_messages",
                vec!["tkey"],
                vec!["ns", "channel", "msg_id", "digest", "type", "data"],
            ),
            (
                "em_saver_list_versions",
                vec!["tkey", "branch", "seq"],
                vec!["ns", "channel", "version"],
            ),
            (
                "em_saver_list_rows",
                vec!["tkey", "branch", "pos", "from_seq", "to_seq"],
                vec!["ns", "channel", "msg_id", "digest"],
            ),
        ];
        let mut out = Map::new();
        for (table, ints, texts) in tables {
            let columns = ints.len() + texts.len();
            let mut terms: Vec<String> = ints.iter().map(|c| int(c)).collect();
            terms.extend(
                texts
                    .iter()
                    .map(|c| format!("coalesce(length(CAST({c} AS BLOB)), 0)")),
            );
            let bytes = format!("{} + {}", columns + 1 + 4, terms.join(" + "));
            let rows = self.query(
                &format!("SELECT count(*), coalesce(sum({bytes}), 0) FROM {table}"),
                &[],
            )?;
            let mut cols = Columns::new(rows.into_iter().next().unwrap_or_default(), "stats");
            out.insert(
                table.to_string(),
                serde_json::json!({"rows": cols.integer()?, "bytes": cols.integer()?}),
            );
        }
        let raw = self.query(
            "SELECT coalesce(sum(length(json_extract(body, '$.content'))), 0), coalesce(sum(length(body)), 0)
             FROM em_messages WHERE op = ?",
            &[OP_UPSERT.into()],
        )?;
        let mut cols = Columns::new(raw.into_iter().next().unwrap_or_default(), "stats");
        out.insert(
            "raw_messages".into(),
            serde_json::json!({"content_bytes": cols.integer()?, "json_bytes": cols.integer()?}),
        );
        Ok(Value::Object(out))
    }

    fn thread_row(&self, thread_id: &ThreadId) -> Result<Option<ThreadRecord>> {
        let rows = self.query(
            "SELECT created_at, updated_at, metadata, status FROM em_threads WHERE thread_id = ?",
            &[thread_id.as_str().into()],
        )?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut cols = Columns::new(row, "em_threads");
        Ok(Some(ThreadRecord {
            thread_id: thread_id.clone(),
            created_at_ms: cols.integer()?,
            updated_at_ms: cols.integer()?,
            metadata: cols.json_object()?,
            status: ThreadStatus::parse(&cols.text()?)?,
        }))
    }

    fn thread_keys(&self, thread_id: &ThreadId) -> Result<ThreadKeys> {
        let rows = self.query(
            "SELECT tkey, live_ckey FROM em_threads WHERE thread_id = ?",
            &[thread_id.as_str().into()],
        )?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| Error::thread_not_found(thread_id.as_str()))?;
        let mut cols = Columns::new(row, "em_threads");
        Ok(ThreadKeys {
            tkey: cols.integer()?,
            live_ckey: cols.optional_integer()?,
        })
    }

    /// Checkpoint rows selected by `filter` (SQL after `WHERE c.tkey = ?`), newest first.
    fn checkpoint_rows(
        &self,
        thread_id: &ThreadId,
        tkey: i64,
        filter: &str,
        params: Vec<SqlValue>,
        limit: Option<usize>,
    ) -> Result<Vec<CheckpointRow>> {
        let sql = format!(
            "SELECT c.ckey, c.checkpoint_id, p.checkpoint_id, c.created_at, c.metadata
             FROM em_checkpoints c LEFT JOIN em_checkpoints p ON p.ckey = c.parent
             WHERE c.tkey = ? {filter} ORDER BY c.checkpoint_id DESC LIMIT ?"
        );
        let mut all = vec![SqlValue::Integer(tkey)];
        all.extend(params);
        // LIMIT -1: no limit.
        all.push(SqlValue::Integer(
            limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
        ));
        self.query(&sql, &all)?
            .into_iter()
            .map(|row| {
                let mut cols = Columns::new(row, "em_checkpoints");
                Ok(CheckpointRow {
                    ckey: cols.integer()?,
                    record: CheckpointRecord {
                        thread_id: thread_id.clone(),
                        checkpoint_id: CheckpointId::parse(&cols.text()?)?,
                        parent_id: cols
                            .optional_text()?
                            .map(|p| CheckpointId::parse(&p))
                            .transpose()?,
                        created_at_ms: cols.integer()?,
                        metadata: cols.json_object()?,
                    },
                })
            })
            .collect()
    }

    fn head(&self, thread_id: &ThreadId, tkey: i64) -> Result<Option<CheckpointRow>> {
        Ok(self
            .checkpoint_rows(thread_id, tkey, "", vec![], Some(1))?
            .into_iter()
            .next())
    }

    fn checkpoint_by_id(
        &self,
        thread_id: &ThreadId,
        tkey: i64,
        id: &CheckpointId,
    ) -> Result<CheckpointRow> {
        self.checkpoint_rows(
            thread_id,
            tkey,
            "AND c.checkpoint_id = ?",
            vec![id.as_str().into()],
            Some(1),
        )?
        .into_iter()
        .next()
        .ok_or_else(|| Error::NotFound {
            what: "checkpoint",
            id: id.to_string(),
        })
    }

    /// The operations of a checkpoint's parent chain, oldest first, with their `seq`.
    fn chain_ops(&self, ckey: i64) -> Result<Vec<(i64, MessageOp)>> {
        let rows = self.query(
            "WITH RECURSIVE chain(ckey) AS (
                SELECT ?
                UNION ALL
                SELECT c.parent FROM em_checkpoints c JOIN chain ON c.ckey = chain.ckey
                WHERE c.parent IS NOT NULL
            )
            SELECT seq, op, body FROM em_messages
            WHERE ckey IN (SELECT ckey FROM chain)
            ORDER BY seq",
            &[ckey.into()],
        )?;
        rows.into_iter()
            .map(|row| {
                let mut cols = Columns::new(row, "em_messages");
                let seq = cols.integer()?;
                let op = cols.integer()?;
                Ok((seq, decode_op(op, self.whole_body(seq, cols.text()?)?)?))
            })
            .collect()
    }

    /// The state at a checkpoint: from `em_live` for the live head, else by replay.
    fn state_at(&self, keys: ThreadKeys, row: &CheckpointRow) -> Result<Vec<Message>> {
        if keys.live_ckey == Some(row.ckey) {
            return self.live_messages(keys.tkey, None);
        }
        let ops = self.chain_ops(row.ckey)?;
        super::replay(ops.iter().map(|(_, op)| op))
    }

    /// The live list, in order; only the last `tail` messages when given.
    fn live_messages(&self, tkey: i64, tail: Option<usize>) -> Result<Vec<Message>> {
        let rows = match tail {
            None => self.query(
                "SELECT m.seq, m.body FROM em_live l JOIN em_messages m ON m.seq = l.seq
                 WHERE l.tkey = ? ORDER BY l.pos",
                &[tkey.into()],
            )?,
            Some(n) => {
                let mut rows = self.query(
                    "SELECT m.seq, m.body FROM em_live l JOIN em_messages m ON m.seq = l.seq
                     WHERE l.tkey = ? ORDER BY l.pos DESC LIMIT ?",
                    &[tkey.into(), i64::try_from(n).unwrap_or(i64::MAX).into()],
                )?;
                rows.reverse();
                rows
            }
        };
        rows.into_iter()
            .map(|row| {
                let mut cols = Columns::new(row, "em_messages");
                let seq = cols.integer()?;
                let body = self.whole_body(seq, cols.text()?)?;
                Ok(serde_json::from_str::<Message>(&body)?)
            })
            .collect()
    }

    /// A message body as stored: itself, or, for a stub, its parts joined.
    fn whole_body(&self, seq: i64, body: String) -> Result<String> {
        let Some(rest) = body.strip_prefix(PARTS_STUB_PREFIX) else {
            return Ok(body);
        };
        let expected: usize = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::backend(format_args!("message {seq}: malformed parts stub")))?;
        let rows = self.query(
            "SELECT data FROM em_message_parts WHERE seq = ? ORDER BY part",
            &[seq.into()],
        )?;
        if rows.len() != expected {
            return Err(Error::backend(format_args!(
                "message {seq}: {} of {expected} parts stored",
                rows.len()
            )));
        }
        let mut whole = String::new();
        for row in rows {
            whole.push_str(&Columns::new(row, "em_message_parts").text()?);
        }
        Ok(whole)
    }

    /// The position of live message `id`, if the head's state holds it.
    fn live_position(&self, tkey: i64, id: &str) -> Result<Option<i64>> {
        // The planner, without statistics, would walk the list by position instead.
        let rows = self.query(
            "SELECT l.pos FROM em_live l INDEXED BY em_live_by_hash JOIN em_messages m ON m.seq = l.seq
             WHERE l.tkey = ? AND l.id_hash = ? AND json_extract(m.body, '$.id') = ?",
            &[tkey.into(), id_hash(id).into(), id.into()],
        )?;
        match rows.into_iter().next() {
            Some(row) => Ok(Some(Columns::new(row, "em_live").integer()?)),
            None => Ok(None),
        }
    }

    /// The next free position in the live list.
    fn next_live_position(&self, tkey: i64) -> Result<i64> {
        let rows = self.query(
            "SELECT coalesce(max(pos), 0) + 1 FROM em_live WHERE tkey = ?",
            &[tkey.into()],
        )?;
        Columns::new(rows.into_iter().next().unwrap_or_default(), "em_live").integer()
    }

    /// Statements that make `em_live` hold the state at `ckey` (a full rebuild), and the
    /// position each live id gets.
    fn rebuild_live(
        &self,
        tkey: i64,
        ckey: Option<i64>,
    ) -> Result<(Vec<Statement>, HashMap<String, i64>)> {
        let mut batch = vec![Statement::new(
            "DELETE FROM em_live WHERE tkey = ?",
            vec![tkey.into()],
        )];
        let mut positions = HashMap::new();
        let Some(ckey) = ckey else {
            return Ok((batch, positions));
        };
        // Replay keeping, per live id, its first position and its newest body's seq.
        let mut order: Vec<String> = Vec::new();
        let mut live: HashMap<String, i64> = HashMap::new();
        for (seq, op) in self.chain_ops(ckey)? {
            match op {
                MessageOp::Upsert { message } => {
                    if live.insert(message.id.clone(), seq).is_none() {
                        order.push(message.id);
                    }
                }
                MessageOp::Remove { id } => {
                    live.remove(&id);
                }
                MessageOp::RemoveAll => {
                    live.clear();
                    order.clear();
                }
            }
        }
        let mut pos = 0i64;
        for id in order {
            if let Some(seq) = live.remove(&id) {
                pos += 1;
                batch.push(Statement::new(
                    "INSERT INTO em_live (tkey, pos, id_hash, seq) VALUES (?, ?, ?, ?)",
                    vec![tkey.into(), pos.into(), id_hash(&id).into(), seq.into()],
                ));
                positions.insert(id, pos);
            }
        }
        Ok((batch, positions))
    }
}

/// A 52-bit FNV-1a hash of a message id. 52 bits so that it survives the trip through
/// JavaScript numbers in Durable Object SQL unchanged.
fn id_hash(id: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash & ((1 << 52) - 1)) as i64
}

/// An op encoded for `em_messages`: `(op, body, parts)`; `parts` holds the text of a
/// message too large for one row, whose body is then a stub.
type EncodedOp = (i64, String, Vec<String>);

/// Encodes an op for `em_messages` (and `em_message_parts`).
fn encode_op(op: &MessageOp) -> Result<EncodedOp> {
    Ok(match op {
        MessageOp::Upsert { message } => {
            let body = serde_json::to_string(message)
                .map_err(|e| Error::backend(format_args!("message does not serialize: {e}")))?;
            if body.len() <= MESSAGE_PART_BYTES {
                return Ok((OP_UPSERT, body, Vec::new()));
            }
            let parts: Vec<String> = super::split_at_chars(&body, MESSAGE_PART_BYTES)
                .into_iter()
                .map(str::to_string)
                .collect();
            let stub = serde_json::json!({"__parts__": parts.len(), "id": message.id});
            (OP_UPSERT, stub.to_string(), parts)
        }
        MessageOp::Remove { id } => (OP_REMOVE, id.clone(), Vec::new()),
        MessageOp::RemoveAll => (OP_REMOVE_ALL, String::new(), Vec::new()),
    })
}

fn decode_op(op: i64, body: String) -> Result<MessageOp> {
    match op {
        OP_UPSERT => Ok(MessageOp::Upsert {
            message: serde_json::from_str::<Message>(&body)?,
        }),
        OP_REMOVE => Ok(MessageOp::Remove { id: body }),
        OP_REMOVE_ALL => Ok(MessageOp::RemoveAll),
        other => Err(Error::backend(format_args!(
            "unknown stored message op {other}"
        ))),
    }
}

fn json_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
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

    fn optional_integer(&mut self) -> Result<Option<i64>> {
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

impl<E: SqlExec> Checkpointer for SqlCheckpointer<E> {
    async fn create_thread(&self, thread: &ThreadRecord) -> Result<()> {
        if self.thread_row(&thread.thread_id)?.is_some() {
            return Err(Error::Conflict {
                kind: crate::error::ConflictKind::ThreadExists,
                reason: format!("Thread '{}' already exists", thread.thread_id),
            });
        }
        self.exec.execute_batch(&[Statement::new(
            "INSERT INTO em_threads (thread_id, created_at, updated_at, metadata, status) VALUES (?, ?, ?, ?, ?)",
            vec![
                thread.thread_id.as_str().into(),
                thread.created_at_ms.into(),
                thread.updated_at_ms.into(),
                json_text(&thread.metadata).into(),
                thread.status.as_str().into(),
            ],
        )])
    }

    async fn get_thread(&self, thread_id: &ThreadId) -> Result<ThreadRecord> {
        self.thread_row(thread_id)?
            .ok_or_else(|| Error::thread_not_found(thread_id.as_str()))
    }

    async fn update_thread(&self, thread: &ThreadRecord) -> Result<()> {
        let keys = self.thread_keys(&thread.thread_id)?;
        self.exec.execute_batch(&[Statement::new(
            "UPDATE em_threads SET updated_at = ?, metadata = ?, status = ? WHERE tkey = ?",
            vec![
                thread.updated_at_ms.into(),
                json_text(&thread.metadata).into(),
                thread.status.as_str().into(),
                keys.tkey.into(),
            ],
        )])
    }

    async fn put(&self, checkpoint: &NewCheckpoint) -> Result<()> {
        let record = &checkpoint.record;
        let keys = self.thread_keys(&record.thread_id)?;
        let tkey = keys.tkey;
        let newest = self.query(
            "SELECT max(checkpoint_id) FROM em_checkpoints WHERE tkey = ?",
            &[tkey.into()],
        )?;
        if let Some(SqlValue::Text(newest)) = newest.first().and_then(|r| r.first()) {
            if record.checkpoint_id.as_str() <= newest.as_str() {
                return Err(Error::Conflict {
                    kind: crate::error::ConflictKind::StaleCheckpoint,
                    reason: format!(
                        "Checkpoint id {} is not newer than the thread's newest checkpoint {newest}",
                        record.checkpoint_id
                    ),
                });
            }
        }
        let parent = match &record.parent_id {
            Some(parent) => Some(self.checkpoint_by_id(&record.thread_id, tkey, parent)?.ckey),
            None => None,
        };
        let encoded = checkpoint
            .ops
            .iter()
            .map(encode_op)
            .collect::<Result<Vec<_>>>()?;

        // em_live follows the new checkpoint: incrementally when it continues from the
        // live head (every ordinary turn), after a rebuild to the parent's state otherwise.
        let rebuilt = parent != keys.live_ckey;
        let (mut batch, rebuilt_positions) = if rebuilt {
            self.rebuild_live(tkey, parent)?
        } else {
            (Vec::new(), HashMap::new())
        };
        // Where each id of the ops sits in the live list, simulated op by op.
        let mut positions: HashMap<&str, Option<i64>> = HashMap::new();
        let mut cleared = false;
        let mut next_pos = if rebuilt {
            rebuilt_positions.values().max().map_or(1, |p| p + 1)
        } else {
            self.next_live_position(tkey)?
        };
        batch.push(Statement::new(
            "INSERT INTO em_checkpoints (tkey, checkpoint_id, parent, created_at, metadata) VALUES (?, ?, ?, ?, ?)",
            vec![
                tkey.into(),
                record.checkpoint_id.as_str().into(),
                parent.into(),
                record.created_at_ms.into(),
                json_text(&record.metadata).into(),
            ],
        ));
        for (op, (code, body, parts)) in checkpoint.ops.iter().zip(encoded) {
            batch.push(Statement::new(
                "INSERT INTO em_messages (ckey, op, body)
                 VALUES ((SELECT ckey FROM em_checkpoints WHERE tkey = ? AND checkpoint_id = ?), ?, ?)",
                vec![
                    tkey.into(),
                    record.checkpoint_id.as_str().into(),
                    code.into(),
                    body.into(),
                ],
            ));
            // Parts tables are WITHOUT ROWID: last_insert_rowid() stays the message's seq.
            for (n, part) in parts.into_iter().enumerate() {
                batch.push(Statement::new(
                    "INSERT INTO em_message_parts (seq, part, data) VALUES (last_insert_rowid(), ?, ?)",
                    vec![i64::try_from(n).unwrap_or(i64::MAX).into(), part.into()],
                ));
            }
            let position_of = |id: &'_ str| -> Result<Option<i64>> {
                if let Some(known) = positions.get(id) {
                    return Ok(*known);
                }
                if cleared {
                    // After a clear nothing older is live.
                    return Ok(None);
                }
                if rebuilt {
                    // The rebuilt list is not written yet: use the positions it will have.
                    return Ok(rebuilt_positions.get(id).copied());
                }
                self.live_position(tkey, id)
            };
            match op {
                MessageOp::Upsert { message } => {
                    let id = message.id.as_str();
                    match position_of(id)? {
                        // last_insert_rowid(): the seq of the em_messages row just inserted.
                        Some(pos) => batch.push(Statement::new(
                            "UPDATE em_live SET seq = last_insert_rowid() WHERE tkey = ? AND pos = ?",
                            vec![tkey.into(), pos.into()],
                        )),
                        None => {
                            batch.push(Statement::new(
                                "INSERT INTO em_live (tkey, pos, id_hash, seq) VALUES (?, ?, ?, last_insert_rowid())",
                                vec![tkey.into(), next_pos.into(), id_hash(id).into()],
                            ));
                            positions.insert(id, Some(next_pos));
                            next_pos += 1;
                        }
                    }
                }
                MessageOp::Remove { id } => {
                    if let Some(pos) = position_of(id)? {
                        batch.push(Statement::new(
                            "DELETE FROM em_live WHERE tkey = ? AND pos = ?",
                            vec![tkey.into(), pos.into()],
                        ));
                    }
                    positions.insert(id, None);
                }
                MessageOp::RemoveAll => {
                    batch.push(Statement::new(
                        "DELETE FROM em_live WHERE tkey = ?",
                        vec![tkey.into()],
                    ));
                    positions.clear();
                    cleared = true;
                }
            }
        }
        batch.push(Statement::new(
            "UPDATE em_threads SET updated_at = ?,
               live_ckey = (SELECT ckey FROM em_checkpoints WHERE tkey = ? AND checkpoint_id = ?)
             WHERE tkey = ?",
            vec![
                record.created_at_ms.into(),
                tkey.into(),
                record.checkpoint_id.as_str().into(),
                tkey.into(),
            ],
        ));
        self.exec.execute_batch(&batch)
    }

    async fn latest(&self, thread_id: &ThreadId) -> Result<Option<Snapshot>> {
        let keys = self.thread_keys(thread_id)?;
        let Some(head) = self.head(thread_id, keys.tkey)? else {
            return Ok(None);
        };
        let messages = self.state_at(keys, &head)?;
        Ok(Some(Snapshot {
            checkpoint: head.record,
            messages,
        }))
    }

    async fn get(&self, thread_id: &ThreadId, checkpoint_id: &CheckpointId) -> Result<Snapshot> {
        let keys = self.thread_keys(thread_id)?;
        let row = self.checkpoint_by_id(thread_id, keys.tkey, checkpoint_id)?;
        let messages = self.state_at(keys, &row)?;
        Ok(Snapshot {
            checkpoint: row.record,
            messages,
        })
    }

    async fn list(&self, thread_id: &ThreadId, query: &ListQuery) -> Result<Vec<CheckpointRecord>> {
        let keys = self.thread_keys(thread_id)?;
        let rows = match &query.before {
            Some(before) => self.checkpoint_rows(
                thread_id,
                keys.tkey,
                "AND c.checkpoint_id < ?",
                vec![before.as_str().into()],
                Some(query.limit),
            )?,
            None => self.checkpoint_rows(thread_id, keys.tkey, "", vec![], Some(query.limit))?,
        };
        Ok(rows.into_iter().map(|r| r.record).collect())
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> Result<()> {
        let tkey = self.thread_keys(thread_id)?.tkey;
        let mut batch = vec![
            Statement::new(
                "DELETE FROM em_message_parts WHERE seq IN (SELECT m.seq FROM em_messages m
                 JOIN em_checkpoints c ON c.ckey = m.ckey WHERE c.tkey = ?)",
                vec![tkey.into()],
            ),
            Statement::new(
                "DELETE FROM em_messages WHERE ckey IN (SELECT ckey FROM em_checkpoints WHERE tkey = ?)",
                vec![tkey.into()],
            ),
            Statement::new("DELETE FROM em_live WHERE tkey = ?", vec![tkey.into()]),
            Statement::new("DELETE FROM em_checkpoints WHERE tkey = ?", vec![tkey.into()]),
        ];
        // The thread's LangGraph checkpointer storage goes with it.
        batch.extend(super::saver::sql::delete_all(tkey));
        batch.push(Statement::new(
            "DELETE FROM em_threads WHERE tkey = ?",
            vec![tkey.into()],
        ));
        self.exec.execute_batch(&batch)
    }

    async fn export_thread(&self, thread_id: &ThreadId) -> Result<Vec<NewCheckpoint>> {
        let keys = self.thread_keys(thread_id)?;
        let mut rows = self.checkpoint_rows(thread_id, keys.tkey, "", vec![], None)?;
        rows.reverse();
        let ops = self.query(
            "SELECT m.ckey, m.seq, m.op, m.body FROM em_messages m JOIN em_checkpoints c ON c.ckey = m.ckey
             WHERE c.tkey = ? ORDER BY m.seq",
            &[keys.tkey.into()],
        )?;
        let mut ops_by_checkpoint: HashMap<i64, Vec<MessageOp>> = HashMap::new();
        for row in ops {
            let mut cols = Columns::new(row, "em_messages");
            let ckey = cols.integer()?;
            let seq = cols.integer()?;
            let code = cols.integer()?;
            let op = decode_op(code, self.whole_body(seq, cols.text()?)?)?;
            ops_by_checkpoint.entry(ckey).or_default().push(op);
        }
        Ok(rows
            .into_iter()
            .map(|row| NewCheckpoint {
                ops: ops_by_checkpoint.remove(&row.ckey).unwrap_or_default(),
                record: row.record,
            })
            .collect())
    }

    async fn window(
        &self,
        thread_id: &ThreadId,
        from: Option<&CheckpointId>,
        max_messages: usize,
        ids: &[&str],
    ) -> Result<Window> {
        let keys = self.thread_keys(thread_id)?;
        let head = self.head(thread_id, keys.tkey)?;
        let head_id = head.as_ref().map(|h| h.record.checkpoint_id.clone());
        let (named, newest) = super::continue_from(head_id.as_ref(), from);
        let base = match named {
            Some(id) => Some(self.checkpoint_by_id(thread_id, keys.tkey, id)?),
            None => head,
        };
        let is_live = match &base {
            Some(row) => keys.live_ckey == Some(row.ckey),
            None => keys.live_ckey.is_none(),
        };
        if !is_live {
            // An older checkpoint (a fork): its whole state, once.
            let messages = match &base {
                Some(row) => self.state_at(keys, row)?,
                None => Vec::new(),
            };
            return Ok(Window::from_state(
                base.map(|r| r.record),
                newest,
                messages,
                max_messages,
                ids,
            ));
        }
        // The live head: the tail of em_live, and an indexed look-up per asked id.
        let messages = self.live_messages(keys.tkey, Some(max_messages))?;
        let mut existing = HashSet::new();
        for id in ids {
            if self.live_position(keys.tkey, id)?.is_some() {
                existing.insert((*id).to_string());
            }
        }
        Ok(Window {
            checkpoint: base.map(|r| r.record),
            newest,
            messages,
            existing,
        })
    }
}

impl<E: SqlExec> ThreadIndex for SqlCheckpointer<E> {
    async fn index_upsert(&self, record: &ThreadRecord) -> Result<()> {
        self.ensure_schema()?;
        self.exec.execute_batch(&[Statement::new(
            "INSERT INTO em_threads (thread_id, created_at, updated_at, metadata, status) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (thread_id) DO UPDATE SET created_at = excluded.created_at,
               updated_at = excluded.updated_at, metadata = excluded.metadata, status = excluded.status",
            directory::record_params(record),
        )])
    }

    async fn index_remove(&self, thread_id: &ThreadId) -> Result<()> {
        self.ensure_schema()?;
        self.exec.execute_batch(&[Statement::new(
            "DELETE FROM em_threads WHERE thread_id = ?",
            vec![thread_id.as_str().into()],
        )])
    }

    // A store that is its own directory searches its own thread table, the same way.
    async fn search_threads(&self, query: &ThreadSearch) -> Result<Vec<ThreadRecord>> {
        self.ensure_schema()?;
        directory::search_table(&self.exec, "em_threads", query)
    }

    async fn count_threads(&self, query: &ThreadSearch) -> Result<usize> {
        self.ensure_schema()?;
        directory::count_table(&self.exec, "em_threads", query)
    }

    // The store holds the checkpoints themselves: their metadata names the runs.
    async fn index_run(&self, _run_id: &str, _thread_id: &ThreadId) -> Result<()> {
        Ok(())
    }

    async fn threads_of_runs(&self, run_ids: &[String]) -> Result<Vec<ThreadId>> {
        self.ensure_schema()?;
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (marks, params) = directory::in_list(run_ids);
        let sql = format!(
            "SELECT DISTINCT t.thread_id FROM em_saver_checkpoints c JOIN em_threads t ON t.tkey = c.tkey
             WHERE json_extract(c.metadata, '$.run_id') IN ({marks})"
        );
        directory::thread_ids(&self.exec, &sql, &params)
    }
}
