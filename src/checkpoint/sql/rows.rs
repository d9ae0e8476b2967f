//! Reading rows: a thread's key and record, its checkpoint rows, and the state at a
//! checkpoint (by replaying its parent chain).

use std::collections::{HashMap, HashSet};

use super::log::RESOLVED_PARENT;
use super::port::{SqlExec, SqlValue};
use super::recent::Recent;
use super::{Columns, SqlCheckpointer};
use crate::checkpoint::{CheckpointId, CheckpointRecord};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::thread::{ThreadId, ThreadRecord, ThreadStatus};

/// A thread's record; its `updated_at` is the later of the record's and its newest
/// checkpoint's (a put does not rewrite the thread row).
const SELECT_THREAD: &str = "SELECT t.created_at,
               max(t.updated_at, coalesce((SELECT l.created_at FROM em_log l WHERE l.tkey = t.tkey
                 ORDER BY l.checkpoint_id DESC LIMIT 1), 0)),
               t.metadata, t.status
             FROM em_threads t WHERE t.thread_id = ?";
const SELECT_THREAD_KEY: &str = "SELECT tkey FROM em_threads WHERE thread_id = ?";

/// A checkpoint row: its record and the next free list position after it.
#[derive(Debug, Clone)]
pub(super) struct CheckpointRow {
    pub(super) record: CheckpointRecord,
    pub(super) next_pos: i64,
}

impl CheckpointRow {
    pub(super) fn id(&self) -> &str {
        self.record.checkpoint_id.as_str()
    }
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// The thread's record, if it exists.
    pub(super) fn thread_row(&self, thread_id: &ThreadId) -> Result<Option<ThreadRecord>> {
        if let Some(record) = self
            .remembered(thread_id, |recent| recent.record())
            .flatten()
        {
            return Ok(Some(record));
        }
        let rows = self.query(SELECT_THREAD, &[thread_id.as_str().into()])?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut cols = Columns::new(row, "em_threads");
        let record = ThreadRecord {
            thread_id: thread_id.clone(),
            created_at_ms: cols.integer()?,
            updated_at_ms: cols.integer()?,
            metadata: cols.json_object()?,
            status: ThreadStatus::parse(&cols.text()?)?,
        };
        self.remembered(thread_id, |recent| recent.set_record(record.clone()));
        Ok(Some(record))
    }

    /// The thread's row key; not found when it does not exist.
    pub(super) fn thread_tkey(&self, thread_id: &ThreadId) -> Result<i64> {
        if let Some(tkey) = self.remembered(thread_id, |recent| recent.tkey()) {
            return Ok(tkey);
        }
        let rows = self.query(SELECT_THREAD_KEY, &[thread_id.as_str().into()])?;
        let row = rows
            .into_iter()
            .next()
            .ok_or_else(|| Error::thread_not_found(thread_id.as_str()))?;
        let tkey = Columns::new(row, "em_threads").integer()?;
        self.recent.replace(Some(Recent::new(thread_id, tkey)));
        Ok(tkey)
    }

    /// Checkpoint rows selected by `filter` (SQL after `WHERE l.tkey = ?`, over `em_log
    /// l`), newest first.
    pub(super) fn checkpoint_rows(
        &self,
        thread_id: &ThreadId,
        tkey: i64,
        filter: &str,
        params: Vec<SqlValue>,
        limit: Option<usize>,
    ) -> Result<Vec<CheckpointRow>> {
        let sql = format!(
            "SELECT l.checkpoint_id, {RESOLVED_PARENT}, l.created_at, l.metadata, l.next_pos
             FROM em_log l WHERE l.tkey = ? {filter} ORDER BY l.checkpoint_id DESC LIMIT ?"
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
                let mut cols = Columns::new(row, "em_log");
                Ok(CheckpointRow {
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
                    next_pos: cols.integer()?,
                })
            })
            .collect()
    }

    /// The newest checkpoint row: the head, whose state `em_live_ids` holds.
    pub(super) fn head(&self, thread_id: &ThreadId, tkey: i64) -> Result<Option<CheckpointRow>> {
        if let Some(head) = self.remembered(thread_id, |recent| recent.head()).flatten() {
            return Ok(head);
        }
        let head = self
            .checkpoint_rows(thread_id, tkey, "", vec![], Some(1))?
            .into_iter()
            .next();
        self.remembered(thread_id, |recent| recent.set_head(head.clone()));
        Ok(head)
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
            "AND l.checkpoint_id = ?",
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

    /// The states at `rows` (checkpoints of one thread) in one replay of the newest
    /// one's chain: a checkpoint's state is the chain's operations up to its own (a
    /// parent's id always sorts below its children's). Checkpoints off that chain (other
    /// branches) are rebuilt on their own.
    pub(super) fn states_at(&self, tkey: i64, rows: &[CheckpointRow]) -> Result<Vec<Vec<Message>>> {
        let Some(newest) = rows.iter().max_by(|a, b| a.id().cmp(b.id())) else {
            return Ok(Vec::new());
        };
        let ops = self.chain_ops(tkey, newest.id())?;
        let on_chain: HashSet<&str> = ops.iter().map(|(c, _)| c.as_str()).collect();
        let mut wanted: Vec<&str> = rows
            .iter()
            .map(CheckpointRow::id)
            .filter(|c| on_chain.contains(c) || *c == newest.id())
            .collect();
        crate::sort::sort(&mut wanted);
        wanted.dedup();
        let mut built: HashMap<&str, Vec<Message>> = HashMap::new();
        let mut state = Vec::new();
        let mut next = 0;
        for target in wanted {
            let upto = ops[next..]
                .iter()
                .take_while(|(c, _)| c.as_str() <= target)
                .count();
            state = crate::message::add_messages(
                state,
                ops[next..next + upto].iter().map(|(_, op)| op),
            )
            .map_err(|e| Error::backend(format_args!("stored history does not replay: {e}")))?;
            next += upto;
            built.insert(target, state.clone());
        }
        rows.iter()
            .map(|row| match built.get(row.id()) {
                Some(messages) => Ok(messages.clone()),
                None => self.state_at(tkey, row),
            })
            .collect()
    }

    /// The state at a checkpoint, by replaying its chain.
    pub(super) fn state_at(&self, tkey: i64, row: &CheckpointRow) -> Result<Vec<Message>> {
        let ops = self.chain_ops(tkey, row.id())?;
        crate::checkpoint::replay(ops.iter().map(|(_, op)| op))
    }
}
