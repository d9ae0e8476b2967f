//! Reading rows: a thread's keys and record, its checkpoint rows, and the state at a
//! checkpoint (from the live list, or by replaying its parent chain).

use super::parts::decode_op;
use super::port::{SqlExec, SqlValue};
use super::{Columns, SqlCheckpointer};
use crate::checkpoint::{CheckpointId, CheckpointRecord};
use crate::error::{Error, Result};
use crate::message::{Message, MessageOp};
use crate::thread::{ThreadId, ThreadRecord, ThreadStatus};

const SELECT_THREAD: &str =
    "SELECT created_at, updated_at, metadata, status FROM em_threads WHERE thread_id = ?";
const SELECT_THREAD_KEYS: &str = "SELECT tkey, live_ckey FROM em_threads WHERE thread_id = ?";
/// The message rows of a checkpoint's parent chain, oldest first.
const SELECT_CHAIN_OPS: &str = "WITH RECURSIVE chain(ckey) AS (
                SELECT ?
                UNION ALL
                SELECT c.parent FROM em_checkpoints c JOIN chain ON c.ckey = chain.ckey
                WHERE c.parent IS NOT NULL
            )
            SELECT seq, op, body, ckey FROM em_messages
            WHERE ckey IN (SELECT ckey FROM chain)
            ORDER BY seq";

/// A thread's row keys.
#[derive(Debug, Clone, Copy)]
pub(super) struct ThreadKeys {
    pub(super) tkey: i64,
    /// The checkpoint whose state `em_live` holds.
    pub(super) live_ckey: Option<i64>,
}

/// A checkpoint row with its row keys.
pub(super) struct CheckpointRow {
    pub(super) ckey: i64,
    pub(super) record: CheckpointRecord,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// The thread's record, if it exists.
    pub(super) fn thread_row(&self, thread_id: &ThreadId) -> Result<Option<ThreadRecord>> {
        let rows = self.query(SELECT_THREAD, &[thread_id.as_str().into()])?;
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

    /// The thread's row keys; not found when it does not exist.
    pub(super) fn thread_keys(&self, thread_id: &ThreadId) -> Result<ThreadKeys> {
        let rows = self.query(SELECT_THREAD_KEYS, &[thread_id.as_str().into()])?;
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
    pub(super) fn checkpoint_rows(
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

    /// The newest checkpoint row.
    pub(super) fn head(&self, thread_id: &ThreadId, tkey: i64) -> Result<Option<CheckpointRow>> {
        Ok(self
            .checkpoint_rows(thread_id, tkey, "", vec![], Some(1))?
            .into_iter()
            .next())
    }

    /// The checkpoint row `id`; not found when the thread has none by that id.
    pub(super) fn checkpoint_by_id(
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
    pub(super) fn chain_ops(&self, ckey: i64) -> Result<Vec<(i64, MessageOp)>> {
        Ok(self
            .chain_ops_by_checkpoint(ckey)?
            .into_iter()
            .map(|(seq, op, _)| (seq, op))
            .collect())
    }

    /// The operations of a checkpoint's chain, oldest first, each with its sequence
    /// number and the checkpoint (`ckey`) that stored it.
    pub(super) fn chain_ops_by_checkpoint(&self, ckey: i64) -> Result<Vec<(i64, MessageOp, i64)>> {
        let rows = self.query(SELECT_CHAIN_OPS, &[ckey.into()])?;
        rows.into_iter()
            .map(|row| {
                let mut cols = Columns::new(row, "em_messages");
                let seq = cols.integer()?;
                let op = cols.integer()?;
                let op = decode_op(op, self.whole_body(seq, cols.text()?)?)?;
                Ok((seq, op, cols.integer()?))
            })
            .collect()
    }

    /// The states at `rows` (checkpoints of one thread) in one replay of the newest
    /// one's chain: a checkpoint's state is the chain's operations up to its own (a
    /// parent's `ckey` is always below its children's). Checkpoints off that chain (other
    /// branches) are rebuilt on their own.
    pub(super) fn states_at(
        &self,
        keys: ThreadKeys,
        rows: &[CheckpointRow],
    ) -> Result<Vec<Vec<Message>>> {
        let Some(newest) = rows.iter().max_by_key(|r| r.ckey) else {
            return Ok(Vec::new());
        };
        let ops = self.chain_ops_by_checkpoint(newest.ckey)?;
        let on_chain: std::collections::HashSet<i64> = ops.iter().map(|(_, _, c)| *c).collect();
        let mut wanted: Vec<i64> = rows
            .iter()
            .map(|r| r.ckey)
            .filter(|c| on_chain.contains(c) || *c == newest.ckey)
            .collect();
        wanted.sort_unstable();
        let mut built: std::collections::HashMap<i64, Vec<Message>> =
            std::collections::HashMap::new();
        let mut state = Vec::new();
        let mut next = 0;
        for target in wanted {
            let upto = ops[next..]
                .iter()
                .take_while(|(_, _, c)| *c <= target)
                .count();
            state = crate::message::add_messages(
                state,
                ops[next..next + upto].iter().map(|(_, op, _)| op),
            )
            .map_err(|e| Error::backend(format_args!("stored history does not replay: {e}")))?;
            next += upto;
            built.insert(target, state.clone());
        }
        rows.iter()
            .map(|row| match built.remove(&row.ckey) {
                Some(messages) => Ok(messages),
                None => self.state_at(keys, row),
            })
            .collect()
    }

    /// The state at a checkpoint: from `em_live` for the live head, else by replay.
    pub(super) fn state_at(&self, keys: ThreadKeys, row: &CheckpointRow) -> Result<Vec<Message>> {
        if keys.live_ckey == Some(row.ckey) {
            return self.live_messages(keys.tkey, None);
        }
        let ops = self.chain_ops(row.ckey)?;
        crate::checkpoint::replay(ops.iter().map(|(_, op)| op))
    }
}
