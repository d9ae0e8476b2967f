//! The schema: its migrations, and the one registry of its tables that deleting,
//! pruning, exporting and measuring a thread read instead of listing tables themselves.

use super::port::{SqlExec, SqlValue, Statement};
use super::SqlCheckpointer;
use crate::error::{Error, Result};

/// The schema, one migration per entry; append only. Entry `i` moves version `i` to
/// `i + 1`.
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
    &[
        // One row per checkpoint with its ops inline, and the head's ids: a turn writes
        // four rows (see `checkpoint::sql`). The rows of the layout before are converted
        // between the creations and the drops (`upgrade`), in the same transaction.
        "CREATE TABLE em_log (
        tkey INTEGER NOT NULL,
        checkpoint_id TEXT NOT NULL,
        parent_id TEXT,
        created_at INTEGER NOT NULL,
        metadata TEXT NOT NULL,
        next_pos INTEGER NOT NULL,
        ops TEXT NOT NULL,
        PRIMARY KEY (tkey, checkpoint_id)
    ) WITHOUT ROWID",
        "CREATE TABLE em_live_ids (
        tkey INTEGER NOT NULL,
        msg_id TEXT NOT NULL,
        pos INTEGER NOT NULL,
        checkpoint_id TEXT NOT NULL,
        PRIMARY KEY (tkey, msg_id)
    ) WITHOUT ROWID",
        "CREATE TABLE em_body_parts (
        tkey INTEGER NOT NULL,
        checkpoint_id TEXT NOT NULL,
        op INTEGER NOT NULL,
        part INTEGER NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (tkey, checkpoint_id, op, part)
    ) WITHOUT ROWID",
        "DROP TABLE em_live",
        "DROP TABLE em_message_parts",
        "DROP TABLE em_messages",
        "DROP TABLE em_checkpoints",
        "UPDATE em_threads SET live_ckey = NULL",
    ],
];

/// The migration that moves rows from the layout before it: [`super::upgrade`] adds
/// their conversion ahead of its first `DROP`.
const LOG_MIGRATION: usize = 4;

const SCHEMA_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS em_schema (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)";
const SELECT_VERSION: &str = "SELECT version FROM em_schema WHERE id = 1";
const SET_VERSION: &str = "INSERT INTO em_schema (id, version) VALUES (1, ?)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version";

/// How a table's rows belong to a thread, which says how to delete them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// By its `tkey` column.
    Thread,
}

/// Which store a table serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// The thread records, which both stores key their rows by.
    Thread,
    /// The [`Checkpointer`](crate::checkpoint::Checkpointer)'s history and live list.
    Checkpointer,
    /// The saver store's checkpoints, blobs and writes.
    Saver,
    /// The saver store's message lists (exported as their rows).
    SaverList,
}

impl Group {
    /// Every table: a thread's whole storage.
    pub(crate) const ALL: [Group; 4] = [
        Group::Thread,
        Group::Checkpointer,
        Group::Saver,
        Group::SaverList,
    ];
    /// The saver store's tables.
    pub(crate) const SAVER: [Group; 2] = [Group::Saver, Group::SaverList];
}

/// A column's storage class, for size estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An `INTEGER`: 0 to 8 bytes by its size.
    Int,
    /// `TEXT` or `BLOB`: its length.
    Bytes,
}

/// One table of the schema.
#[derive(Debug)]
pub(crate) struct Table {
    /// The table's name.
    pub(crate) name: &'static str,
    /// How its rows belong to a thread.
    pub(crate) owner: Owner,
    /// Which store it serves.
    pub(crate) group: Group,
    /// Every column, in schema order.
    pub(crate) columns: &'static [(&'static str, Kind)],
}

use Kind::{Bytes, Int};

/// Every table holding a thread's rows, parents before children (a schema test checks
/// it against [`MIGRATIONS`]).
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "em_threads",
        owner: Owner::Thread,
        group: Group::Thread,
        columns: &[
            ("tkey", Int),
            ("thread_id", Bytes),
            ("created_at", Int),
            ("updated_at", Int),
            ("metadata", Bytes),
            ("status", Bytes),
            ("live_ckey", Int),
        ],
    },
    Table {
        name: "em_log",
        owner: Owner::Thread,
        group: Group::Checkpointer,
        columns: &[
            ("tkey", Int),
            ("checkpoint_id", Bytes),
            ("parent_id", Bytes),
            ("created_at", Int),
            ("metadata", Bytes),
            ("next_pos", Int),
            ("ops", Bytes),
        ],
    },
    Table {
        name: "em_body_parts",
        owner: Owner::Thread,
        group: Group::Checkpointer,
        columns: &[
            ("tkey", Int),
            ("checkpoint_id", Bytes),
            ("op", Int),
            ("part", Int),
            ("data", Bytes),
        ],
    },
    Table {
        name: "em_live_ids",
        owner: Owner::Thread,
        group: Group::Checkpointer,
        columns: &[
            ("tkey", Int),
            ("msg_id", Bytes),
            ("pos", Int),
            ("checkpoint_id", Bytes),
        ],
    },
    Table {
        name: "em_saver_checkpoints",
        owner: Owner::Thread,
        group: Group::Saver,
        columns: &[
            ("tkey", Int),
            ("ns", Bytes),
            ("checkpoint_id", Bytes),
            ("parent_id", Bytes),
            ("checkpoint_type", Bytes),
            ("checkpoint", Bytes),
            ("channel_versions", Bytes),
            ("metadata", Bytes),
            ("metadata_type", Bytes),
            ("metadata_typed", Bytes),
        ],
    },
    Table {
        name: "em_saver_blobs",
        owner: Owner::Thread,
        group: Group::Saver,
        columns: &[
            ("tkey", Int),
            ("ns", Bytes),
            ("channel", Bytes),
            ("version", Bytes),
            ("type", Bytes),
            ("data", Bytes),
        ],
    },
    Table {
        name: "em_saver_writes",
        owner: Owner::Thread,
        group: Group::Saver,
        columns: &[
            ("tkey", Int),
            ("ns", Bytes),
            ("checkpoint_id", Bytes),
            ("task_id", Bytes),
            ("idx", Int),
            ("channel", Bytes),
            ("type", Bytes),
            ("data", Bytes),
            ("task_path", Bytes),
        ],
    },
    Table {
        name: "em_saver_messages",
        owner: Owner::Thread,
        group: Group::SaverList,
        columns: &[
            ("tkey", Int),
            ("ns", Bytes),
            ("channel", Bytes),
            ("msg_id", Bytes),
            ("digest", Bytes),
            ("type", Bytes),
            ("data", Bytes),
        ],
    },
    Table {
        name: "em_saver_list_versions",
        owner: Owner::Thread,
        group: Group::SaverList,
        columns: &[
            ("tkey", Int),
            ("ns", Bytes),
            ("channel", Bytes),
            ("version", Bytes),
            ("branch", Int),
            ("seq", Int),
        ],
    },
    Table {
        name: "em_saver_list_rows",
        owner: Owner::Thread,
        group: Group::SaverList,
        columns: &[
            ("tkey", Int),
            ("ns", Bytes),
            ("channel", Bytes),
            ("branch", Int),
            ("pos", Int),
            ("from_seq", Int),
            ("to_seq", Int),
            ("msg_id", Bytes),
            ("digest", Bytes),
        ],
    },
];

impl Table {
    /// The columns after `tkey` (a thread-owned table's first column).
    pub(crate) fn columns_after_tkey(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().skip(1).map(|(name, _)| *name)
    }

    /// The statement that deletes thread `tkey`'s rows of this table.
    fn delete_for(&self, tkey: i64) -> Statement {
        let name = self.name;
        let sql = match self.owner {
            Owner::Thread => format!("DELETE FROM {name} WHERE tkey = ?"),
        };
        Statement::new(sql, vec![tkey.into()])
    }
}

/// The tables of `groups`, in registry order.
pub(crate) fn tables_of(groups: &[Group]) -> impl Iterator<Item = &'static Table> + '_ {
    TABLES.iter().filter(|t| groups.contains(&t.group))
}

/// Statements that delete thread `tkey`'s rows of the tables of `groups`; children
/// first, since a child's statement finds its rows through its parents.
pub(crate) fn delete_thread_rows(tkey: i64, groups: &[Group]) -> Vec<Statement> {
    let tables: Vec<&Table> = tables_of(groups).collect();
    tables.iter().rev().map(|t| t.delete_for(tkey)).collect()
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// Applies missing migrations; cheap after the first call.
    pub fn ensure_schema(&self) -> Result<()> {
        if self.schema_ready.get() {
            return Ok(());
        }
        self.exec
            .execute_batch(&[Statement::new(SCHEMA_TABLE, vec![])])?;
        let rows = self.exec.query(SELECT_VERSION, &[])?;
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
            // Each migration and its version bump, atomically.
            let mut batch: Vec<Statement> = MIGRATIONS[version]
                .iter()
                .map(|sql| Statement::new(*sql, vec![]))
                .collect();
            if version == LOG_MIGRATION {
                let at = batch
                    .iter()
                    .position(|s| s.sql.starts_with("DROP"))
                    .unwrap_or(batch.len());
                let converted = super::upgrade::log_rows_from_v4(&self.exec)?;
                batch.splice(at..at, converted);
            }
            batch.push(Statement::new(
                SET_VERSION,
                vec![SqlValue::Integer(version as i64 + 1)],
            ));
            self.exec.execute_batch(&batch)?;
            version += 1;
        }
        self.schema_ready.set(true);
        Ok(())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    /// The registry names every table the migrations create, with its columns in order
    /// and their storage classes.
    #[test]
    fn the_registry_matches_the_migrations() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        for sql in MIGRATIONS.iter().flat_map(|m| m.iter()) {
            db.execute(sql, []).unwrap();
        }
        let mut names: Vec<String> = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut registered: Vec<String> = TABLES.iter().map(|t| t.name.to_string()).collect();
        names.sort();
        registered.sort();
        assert_eq!(names, registered);
        for table in TABLES {
            let columns: Vec<(String, Kind)> = db
                .prepare(&format!("PRAGMA table_info({})", table.name))
                .unwrap()
                .query_map([], |r| {
                    let kind: String = r.get(2)?;
                    Ok((r.get(1)?, if kind == "INTEGER" { Int } else { Bytes }))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let expected: Vec<(String, Kind)> = table
                .columns
                .iter()
                .map(|(name, kind)| (name.to_string(), *kind))
                .collect();
            assert_eq!(columns, expected, "{}", table.name);
            // Export and import read the saver tables' columns after `tkey`.
            if matches!(table.group, Group::Saver | Group::SaverList) {
                assert_eq!(table.columns[0].0, "tkey", "{}", table.name);
            }
        }
    }
}
