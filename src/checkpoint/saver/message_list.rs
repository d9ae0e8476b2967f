//! Message-list channels, stored flat (see the [module docs](super)).
//!
//! Tables: `em_saver_messages` holds each message's bytes once per `(id, digest)`;
//! `em_saver_list_versions` maps a channel version to `(branch, seq)`; `em_saver_list_rows`
//! holds `(branch, pos, from_seq, to_seq, msg_id, digest)`: the row is in the list of
//! every version of its branch with `from_seq <= seq < to_seq`.

use std::collections::HashMap;

use super::sql::typed_columns;
use super::{version_key, ListItem, ListOp, MessageListIn, Typed};
use crate::checkpoint::sql::{Columns, SqlCheckpointer, SqlExec, SqlValue, Statement};
use crate::error::{ConflictKind, Error, Result};

/// Rows open at the newest version of a branch have this `to_seq` (2^53 - 1: it survives
/// JavaScript numbers in Durable Object SQL).
const OPEN: i64 = 9_007_199_254_740_991;

const SELECT_VERSION: &str = "SELECT branch, seq FROM em_saver_list_versions WHERE tkey = ? AND ns = ? AND channel = ? AND version = ?";
const SELECT_BRANCH_HEAD: &str = "SELECT coalesce(max(seq), 0) FROM em_saver_list_versions WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ?";
const SELECT_NEXT_POS: &str = "SELECT coalesce(max(pos), 0) + 1 FROM em_saver_list_rows WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ?";
const SELECT_NEXT_BRANCH: &str = "SELECT coalesce(max(branch), 0) + 1 FROM em_saver_list_versions WHERE tkey = ? AND ns = ? AND channel = ?";
const SELECT_ROWS_AT: &str = "SELECT pos, msg_id, digest FROM em_saver_list_rows
             WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ? AND from_seq <= ? AND to_seq > ?
             ORDER BY pos";
const SELECT_ITEMS_AT: &str = "SELECT r.msg_id, r.digest, m.type, m.data FROM em_saver_list_rows r
             JOIN em_saver_messages m ON m.tkey = r.tkey AND m.ns = r.ns AND m.channel = r.channel
               AND m.msg_id = r.msg_id AND m.digest = r.digest
             WHERE r.tkey = ? AND r.ns = ? AND r.channel = ? AND r.branch = ? AND r.from_seq <= ? AND r.to_seq > ?
             ORDER BY r.pos";
/// The open row of a message id; the index keeps this one lookup per op, whatever the
/// list's length.
const SELECT_OPEN_ROW: &str = "SELECT pos, from_seq FROM em_saver_list_rows INDEXED BY em_saver_list_by_id
                 WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ? AND msg_id = ? AND to_seq = ?";
/// A fork's copy of a base row: open since before the branch's first version.
const COPY_ROW: &str = "INSERT INTO em_saver_list_rows (tkey, ns, channel, branch, pos, from_seq, to_seq, msg_id, digest) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)";
const INSERT_ROW: &str = "INSERT INTO em_saver_list_rows (tkey, ns, channel, branch, pos, from_seq, to_seq, msg_id, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
const DELETE_ROW: &str = "DELETE FROM em_saver_list_rows WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ? AND pos = ? AND from_seq = ?";
const CLOSE_ROW: &str = "UPDATE em_saver_list_rows SET to_seq = ? WHERE tkey = ? AND ns = ? AND channel = ? AND branch = ? AND pos = ? AND from_seq = ?";
/// Messages are content-addressed by `(id, digest)`: a resent one is stored once.
const INSERT_MESSAGE: &str = "INSERT OR IGNORE INTO em_saver_messages (tkey, ns, channel, msg_id, digest, type, data) VALUES (?, ?, ?, ?, ?, ?, ?)";
const INSERT_VERSION: &str = "INSERT INTO em_saver_list_versions (tkey, ns, channel, version, branch, seq) VALUES (?, ?, ?, ?, ?, ?)";

/// Where a message sits in the list being written: its row's position and first seq.
#[derive(Debug, Clone)]
struct OpenRow {
    pos: i64,
    from_seq: i64,
}

/// One channel of one thread's namespace: the key every list table starts with.
#[derive(Clone, Copy)]
struct ListKey<'a> {
    tkey: i64,
    ns: &'a str,
    channel: &'a str,
}

impl ListKey<'_> {
    /// The key's parameters followed by `extra`.
    fn params(&self, extra: Vec<SqlValue>) -> Vec<SqlValue> {
        let mut params: Vec<SqlValue> = vec![self.tkey.into(), self.ns.into(), self.channel.into()];
        params.extend(extra);
        params
    }
}

/// A version being written: its branch and seq, and the statements so far.
struct ListWrite<'a, E> {
    store: &'a SqlCheckpointer<E>,
    key: ListKey<'a>,
    branch: i64,
    seq: i64,
    next_pos: i64,
    /// On a new branch, the rows copied from the base: no stored row is open there yet.
    copied: Option<HashMap<String, OpenRow>>,
    /// Rows this put opened (`Some`) or closed (`None`), over what is stored.
    local: HashMap<String, Option<OpenRow>>,
    batch: Vec<Statement>,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// The `(branch, seq)` of a stored list version.
    fn list_version(&self, key: ListKey<'_>, version: &str) -> Result<Option<(i64, i64)>> {
        let rows = self.query(SELECT_VERSION, &key.params(vec![version.into()]))?;
        match rows.into_iter().next() {
            Some(row) => {
                let mut cols = Columns::new(row, "em_saver_list_versions");
                Ok(Some((cols.integer()?, cols.integer()?)))
            }
            None => Ok(None),
        }
    }

    /// The one integer an aggregate query returns.
    fn list_scalar(&self, sql: &str, params: &[SqlValue]) -> Result<i64> {
        let rows = self.query(sql, params)?;
        Columns::new(
            rows.into_iter().next().unwrap_or_default(),
            "em_saver_list_rows",
        )
        .integer()
    }

    /// The rows of a list version: `(pos, msg_id, digest)` in order.
    fn list_rows_at(
        &self,
        key: ListKey<'_>,
        branch: i64,
        seq: i64,
    ) -> Result<Vec<(i64, String, String)>> {
        self.query(
            SELECT_ROWS_AT,
            &key.params(vec![branch.into(), seq.into(), seq.into()]),
        )?
        .into_iter()
        .map(|row| {
            let mut cols = Columns::new(row, "em_saver_list_rows");
            Ok((cols.integer()?, cols.text()?, cols.text()?))
        })
        .collect()
    }

    /// The messages of a stored list version, in order.
    pub(super) fn list_items(
        &self,
        tkey: i64,
        ns: &str,
        channel: &str,
        version: &str,
    ) -> Result<Vec<ListItem>> {
        let key = ListKey { tkey, ns, channel };
        let (branch, seq) = self.list_version(key, version)?.ok_or_else(|| {
            Error::backend(format_args!("message list {channel}@{version} is missing"))
        })?;
        self.query(
            SELECT_ITEMS_AT,
            &key.params(vec![branch.into(), seq.into(), seq.into()]),
        )?
        .into_iter()
        .map(|row| {
            let mut cols = Columns::new(row, "em_saver_list_rows");
            Ok(ListItem {
                id: cols.text()?,
                digest: cols.text()?,
                value: typed_columns(&mut cols)?,
            })
        })
        .collect()
    }

    /// Statements that store `list` as `version` of `channel`: only the changed rows when
    /// it continues the newest version of a branch; a new branch otherwise.
    pub(super) fn list_put(
        &self,
        tkey: i64,
        ns: &str,
        channel: &str,
        version: &str,
        list: &MessageListIn,
    ) -> Result<Vec<Statement>> {
        let key = ListKey { tkey, ns, channel };
        if self.list_version(key, version)?.is_some() {
            return Ok(Vec::new()); // a retried put: already stored
        }
        let base = self.list_base(key, list)?;
        let mut write = match self.branch_head(key, base)? {
            Some((branch, seq)) => self.continue_branch(key, branch, seq)?,
            None => self.start_branch(key, base)?,
        };
        for (i, op) in list.ops.iter().enumerate() {
            write.apply(i, op)?;
        }
        Ok(write.finish(version))
    }

    /// The `(branch, seq)` the list changes; `None` for a whole list. A base that is not
    /// stored is a conflict the client answers by sending the whole list.
    fn list_base(&self, key: ListKey<'_>, list: &MessageListIn) -> Result<Option<(i64, i64)>> {
        let Some(base) = &list.base_version else {
            return Ok(None);
        };
        let base = version_key(base);
        match self.list_version(key, &base)? {
            Some(found) => Ok(Some(found)),
            None => Err(Error::Conflict {
                kind: ConflictKind::BaseVersionMissing,
                reason: format!(
                    "message list base version {base} of channel {:?} is not stored here; send the full list",
                    key.channel
                ),
            }),
        }
    }

    /// `base` when it is the newest version of its branch (the new version continues
    /// the branch in place); `None` when the list needs a branch of its own.
    fn branch_head(
        &self,
        key: ListKey<'_>,
        base: Option<(i64, i64)>,
    ) -> Result<Option<(i64, i64)>> {
        let Some((branch, seq)) = base else {
            return Ok(None);
        };
        let head = self.list_scalar(SELECT_BRANCH_HEAD, &key.params(vec![branch.into()]))?;
        Ok((head == seq).then_some((branch, seq)))
    }

    /// A write of the version after `seq` on `branch`, appending after its last row.
    fn continue_branch<'a>(
        &'a self,
        key: ListKey<'a>,
        branch: i64,
        seq: i64,
    ) -> Result<ListWrite<'a, E>> {
        let next_pos = self.list_scalar(SELECT_NEXT_POS, &key.params(vec![branch.into()]))?;
        Ok(ListWrite {
            store: self,
            key,
            branch,
            seq: seq + 1,
            next_pos,
            copied: None,
            local: HashMap::new(),
            batch: Vec::new(),
        })
    }

    /// A write of the first version of a new branch: the whole list, or a fork that
    /// starts with a copy of its base's rows (so the base's own branch is never touched).
    fn start_branch<'a>(
        &'a self,
        key: ListKey<'a>,
        base: Option<(i64, i64)>,
    ) -> Result<ListWrite<'a, E>> {
        let branch = self.list_scalar(SELECT_NEXT_BRANCH, &key.params(vec![]))?;
        let mut next_pos = 1;
        let mut copied = HashMap::new();
        let mut batch = Vec::new();
        if let Some((from_branch, from_seq)) = base {
            for (pos, id, digest) in self.list_rows_at(key, from_branch, from_seq)? {
                batch.push(Statement::new(
                    COPY_ROW,
                    key.params(vec![
                        branch.into(),
                        pos.into(),
                        OPEN.into(),
                        id.as_str().into(),
                        digest.into(),
                    ]),
                ));
                next_pos = next_pos.max(pos + 1);
                copied.insert(id, OpenRow { pos, from_seq: 0 });
            }
        }
        Ok(ListWrite {
            store: self,
            key,
            branch,
            seq: 1,
            next_pos,
            copied: Some(copied),
            local: HashMap::new(),
            batch,
        })
    }
}

impl<E: SqlExec> ListWrite<'_, E> {
    /// The row where message `id` sits in the list being written, if it is in it.
    fn open_row(&self, id: &str) -> Result<Option<OpenRow>> {
        if let Some(known) = self.local.get(id) {
            return Ok(known.clone());
        }
        if let Some(copied) = &self.copied {
            return Ok(copied.get(id).cloned());
        }
        let rows = self.store.query(
            SELECT_OPEN_ROW,
            &self
                .key
                .params(vec![self.branch.into(), id.into(), OPEN.into()]),
        )?;
        match rows.into_iter().next() {
            Some(row) => {
                let mut cols = Columns::new(row, "em_saver_list_rows");
                Ok(Some(OpenRow {
                    pos: cols.integer()?,
                    from_seq: cols.integer()?,
                }))
            }
            None => Ok(None),
        }
    }

    /// Takes `row` out of the new version (older versions keep it).
    fn close(&mut self, row: &OpenRow) {
        let row_key = self.key.params(vec![
            self.branch.into(),
            row.pos.into(),
            row.from_seq.into(),
        ]);
        let statement = if row.from_seq == self.seq {
            // Opened by this very put: no stored version ever had it.
            Statement::new(DELETE_ROW, row_key)
        } else {
            let mut params: Vec<SqlValue> = vec![self.seq.into()];
            params.extend(row_key);
            Statement::new(CLOSE_ROW, params)
        };
        self.batch.push(statement);
    }

    /// Applies op `i` of the list.
    fn apply(&mut self, i: usize, op: &ListOp) -> Result<()> {
        match op {
            ListOp::Append { id, digest, value } | ListOp::Replace { id, digest, value } => {
                let append = matches!(op, ListOp::Append { .. });
                let pos = match (append, self.open_row(id)?) {
                    (true, None) => {
                        self.next_pos += 1;
                        self.next_pos - 1
                    }
                    (false, Some(row)) => {
                        self.close(&row);
                        row.pos
                    }
                    (true, Some(_)) => return Err(not_in_list(i, id, "is already in the list")),
                    (false, None) => return Err(not_in_list(i, id, "is not in the list")),
                };
                self.put_message(i, pos, id, digest, value)
            }
            ListOp::Remove { id } => {
                let Some(row) = self.open_row(id)? else {
                    return Err(not_in_list(i, id, "is not in the list"));
                };
                self.close(&row);
                self.local.insert(id.clone(), None);
                Ok(())
            }
        }
    }

    /// Stores a message's bytes (once per digest) and opens its row at `pos`.
    fn put_message(
        &mut self,
        i: usize,
        pos: i64,
        id: &str,
        digest: &str,
        value: &Typed,
    ) -> Result<()> {
        let bytes = value.decode(&format!("list.ops[{i}].data"))?;
        self.batch.push(Statement::new(
            INSERT_MESSAGE,
            self.key.params(vec![
                id.into(),
                digest.into(),
                value.kind.as_str().into(),
                SqlValue::Blob(bytes),
            ]),
        ));
        self.batch.push(Statement::new(
            INSERT_ROW,
            self.key.params(vec![
                self.branch.into(),
                pos.into(),
                self.seq.into(),
                OPEN.into(),
                id.into(),
                digest.into(),
            ]),
        ));
        self.local.insert(
            id.to_string(),
            Some(OpenRow {
                pos,
                from_seq: self.seq,
            }),
        );
        Ok(())
    }

    /// The statements, ending with the one that records the version.
    fn finish(mut self, version: &str) -> Vec<Statement> {
        self.batch.push(Statement::new(
            INSERT_VERSION,
            self.key
                .params(vec![version.into(), self.branch.into(), self.seq.into()]),
        ));
        self.batch
    }
}

/// An op that does not fit the base version: the client's idea of the list is off, so
/// it is answered like a missing base (send the whole list).
fn not_in_list(i: usize, id: &str, what: &str) -> Error {
    Error::Conflict {
        kind: ConflictKind::BaseVersionMissing,
        reason: format!("message list op {i}: message {id:?} {what}; send the full list"),
    }
}
