//! [`Checkpointer`] on SQL: thread records, puts (a checkpoint row, its message rows,
//! and the live list's edit, in one batch), reads, exports and the context window.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::live::LiveEdit;
use super::log::{encode_ops, insert_parts, PARENT_IS_PREVIOUS, RESOLVED_PARENT};
use super::port::{SqlExec, SqlValue, Statement};
use super::rows::CheckpointRow;
use super::schema::{delete_thread_rows, Group};
use super::{Columns, SqlCheckpointer};
use crate::checkpoint::{
    CheckpointId, CheckpointRecord, Checkpointer, ListQuery, NewCheckpoint, Snapshot, Window,
};
use crate::error::{ConflictKind, Error, Result};
use crate::message::MessageOp;
use crate::thread::{ThreadId, ThreadRecord};

const INSERT_THREAD: &str = "INSERT INTO em_threads (thread_id, created_at, updated_at, metadata, status) VALUES (?, ?, ?, ?, ?)";
const UPDATE_THREAD: &str =
    "UPDATE em_threads SET updated_at = ?, metadata = ?, status = ? WHERE tkey = ?";
const INSERT_LOG: &str =
    "INSERT INTO em_log (tkey, checkpoint_id, parent_id, created_at, metadata, next_pos, ops)
             VALUES (?, ?, ?, ?, ?, ?, ?)";
/// Checkpoints after `?` (the oldest to remove) whose parent is one of those to remove.
fn count_followers() -> String {
    format!(
        "SELECT count(*) FROM em_log l WHERE l.tkey = ? AND l.checkpoint_id > ?
           AND ({RESOLVED_PARENT}) IN (SELECT value FROM json_each(?))
           AND l.checkpoint_id NOT IN (SELECT value FROM json_each(?))"
    )
}
const DELETE_LOG_ROWS: &str =
    "DELETE FROM em_log WHERE tkey = ? AND checkpoint_id IN (SELECT value FROM json_each(?))";
const DELETE_PART_ROWS: &str =
    "DELETE FROM em_body_parts WHERE tkey = ? AND checkpoint_id IN (SELECT value FROM json_each(?))";

/// Metadata as the JSON text its column holds.
fn json_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

/// Whether a put on `parent` continues the head (every ordinary turn), rather than
/// forking from an older checkpoint.
fn continues_head(parent: Option<&CheckpointRow>, head: Option<&CheckpointRow>) -> bool {
    match (parent, head) {
        (Some(p), Some(h)) => p.id() == h.id(),
        (None, None) => true,
        _ => false,
    }
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// A put's id must be newer than every checkpoint of the thread: ids sort in time,
    /// and the newest is the head.
    fn check_newer_than(record: &CheckpointRecord, head: Option<&CheckpointRow>) -> Result<()> {
        if let Some(head) = head {
            if record.checkpoint_id.as_str() <= head.id() {
                return Err(Error::Conflict {
                    kind: ConflictKind::StaleCheckpoint,
                    reason: format!(
                        "Checkpoint id {} is not newer than the thread's newest checkpoint {}",
                        record.checkpoint_id,
                        head.id()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Starts a put's edit of the head's ids: incremental when it continues from the head
    /// (every ordinary turn), after a rebuild to its parent's list otherwise.
    fn start_edit(
        &self,
        tkey: i64,
        record: &CheckpointRecord,
        head: Option<&CheckpointRow>,
        parent: Option<&CheckpointRow>,
    ) -> Result<(Vec<Statement>, LiveEdit)> {
        let id = record.checkpoint_id.as_str();
        if continues_head(parent, head) {
            let next_pos = head.map_or(1, |h| h.next_pos);
            let edit = LiveEdit::new(tkey, id, next_pos, Default::default(), head.is_none());
            return Ok((Vec::new(), edit));
        }
        let list = self.rebuild_list(tkey, parent.map(CheckpointRow::id))?;
        let batch = self.write_list(tkey, &list);
        let known = list
            .live
            .into_iter()
            .map(|(id, (pos, _))| (id, Some(pos)))
            .collect();
        Ok((batch, LiveEdit::new(tkey, id, list.next_pos, known, true)))
    }

    /// After the newest checkpoints `removed` are gone, makes the head's ids follow the
    /// new head: deleting the ids they appended when they continued it, else rebuilt.
    fn follow_new_head(
        &self,
        thread_id: &ThreadId,
        tkey: i64,
        removed: &[CheckpointRow],
    ) -> Result<Vec<Statement>> {
        let remaining: Vec<String> = removed.iter().map(|r| r.id().to_string()).collect();
        let filter = "AND l.checkpoint_id NOT IN (SELECT value FROM json_each(?))";
        let head = self
            .checkpoint_rows(
                thread_id,
                tkey,
                filter,
                vec![serde_json::to_string(&remaining)?.into()],
                Some(1),
            )?
            .into_iter()
            .next();
        let oldest = removed.iter().min_by(|a, b| a.id().cmp(b.id()));
        let continued = match (oldest, &head) {
            (Some(o), Some(h)) => {
                o.record.parent_id.as_ref().map(CheckpointId::as_str) == Some(h.id())
            }
            (Some(o), None) => o.record.parent_id.is_none(),
            _ => true,
        };
        let next_pos = head.as_ref().map_or(1, |h| h.next_pos);
        let mut appended = Vec::new();
        let mut only_appends = continued;
        for row in removed {
            for op in self.row_ops(tkey, row.id())? {
                match op.id() {
                    Some(id) if op.pos >= next_pos => appended.push(id.to_string()),
                    _ => only_appends = false,
                }
            }
        }
        if only_appends {
            return Ok(appended
                .into_iter()
                .map(|id| {
                    Statement::new(
                        "DELETE FROM em_live_ids WHERE tkey = ? AND msg_id = ?",
                        vec![tkey.into(), id.into()],
                    )
                })
                .collect());
        }
        let list = self.rebuild_list(tkey, head.as_ref().map(CheckpointRow::id))?;
        Ok(self.write_list(tkey, &list))
    }
}

impl<E: SqlExec> Checkpointer for SqlCheckpointer<E> {
    async fn create_thread(&self, thread: &ThreadRecord) -> Result<()> {
        if self.thread_row(&thread.thread_id)?.is_some() {
            return Err(Error::Conflict {
                kind: ConflictKind::ThreadExists,
                reason: format!("Thread '{}' already exists", thread.thread_id),
            });
        }
        self.forget_recent();
        self.exec.execute_batch(&[Statement::new(
            INSERT_THREAD,
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
        let tkey = self.thread_tkey(&thread.thread_id)?;
        let written = self.exec.execute_batch(&[Statement::new(
            UPDATE_THREAD,
            vec![
                thread.updated_at_ms.into(),
                json_text(&thread.metadata).into(),
                thread.status.as_str().into(),
                tkey.into(),
            ],
        )]);
        if written.is_err() {
            self.forget_recent();
        }
        self.remembered(&thread.thread_id, |recent| recent.record_written(thread));
        written
    }

    async fn put(&self, checkpoint: &NewCheckpoint) -> Result<()> {
        let record = &checkpoint.record;
        let tkey = self.thread_tkey(&record.thread_id)?;
        let head = self.head(&record.thread_id, tkey)?;
        Self::check_newer_than(record, head.as_ref())?;
        let fetched;
        let parent = match &record.parent_id {
            Some(id) if head.as_ref().map(CheckpointRow::id) == Some(id.as_str()) => head.as_ref(),
            Some(id) => {
                fetched = self.checkpoint_by_id(&record.thread_id, tkey, id)?;
                Some(&fetched)
            }
            None => None,
        };
        let (mut batch, mut edit) = self.start_edit(tkey, record, head.as_ref(), parent)?;
        if let (true, Some(head)) = (continues_head(parent, head.as_ref()), &head) {
            // What memory knows of the ids the put names spares their look-ups.
            for id in checkpoint.ops.iter().filter_map(MessageOp::message_id) {
                let known = self.remembered(&record.thread_id, |r| r.position(head.id(), id));
                if let Some(pos) = known.flatten() {
                    edit.know(id, pos);
                }
            }
        }
        let placed = checkpoint
            .ops
            .iter()
            .map(|op| edit.apply(self, op, &mut batch))
            .collect::<Result<Vec<_>>>()?;
        let encoded = encode_ops(&placed)?;
        let id = record.checkpoint_id.as_str();
        // A put on the head names its parent by the marker: the head is the row before.
        let stored_parent = match (&record.parent_id, &head) {
            (Some(p), Some(h)) if p.as_str() == h.id() => Some(PARENT_IS_PREVIOUS),
            (p, _) => p.as_ref().map(CheckpointId::as_str),
        };
        batch.push(Statement::new(
            INSERT_LOG,
            vec![
                tkey.into(),
                id.into(),
                stored_parent.into(),
                record.created_at_ms.into(),
                json_text(&record.metadata).into(),
                edit.next_pos.into(),
                encoded.text.into(),
            ],
        ));
        insert_parts(&mut batch, tkey, id, encoded.parts);
        let written = self.exec.execute_batch(&batch);
        if written.is_err() {
            self.forget_recent();
        }
        let new_head = CheckpointRow {
            record: record.clone(),
            next_pos: edit.next_pos,
        };
        self.remembered(&record.thread_id, |recent| {
            if continues_head(parent, head.as_ref()) {
                recent.advance(new_head, &placed);
            } else {
                recent.forget_tail(new_head);
            }
        });
        written
    }

    async fn latest(&self, thread_id: &ThreadId) -> Result<Option<Snapshot>> {
        let tkey = self.thread_tkey(thread_id)?;
        let Some(head) = self.head(thread_id, tkey)? else {
            return Ok(None);
        };
        let messages = self.state_at(tkey, &head)?;
        Ok(Some(Snapshot {
            checkpoint: head.record,
            messages,
        }))
    }

    async fn get(&self, thread_id: &ThreadId, checkpoint_id: &CheckpointId) -> Result<Snapshot> {
        let tkey = self.thread_tkey(thread_id)?;
        let row = self.checkpoint_by_id(thread_id, tkey, checkpoint_id)?;
        let messages = self.state_at(tkey, &row)?;
        Ok(Snapshot {
            checkpoint: row.record,
            messages,
        })
    }

    async fn states(&self, thread_id: &ThreadId, ids: &[CheckpointId]) -> Result<Vec<Snapshot>> {
        let tkey = self.thread_tkey(thread_id)?;
        let rows = ids
            .iter()
            .map(|id| self.checkpoint_by_id(thread_id, tkey, id))
            .collect::<Result<Vec<_>>>()?;
        let states = self.states_at(tkey, &rows)?;
        Ok(rows
            .into_iter()
            .zip(states)
            .map(|(row, messages)| Snapshot {
                checkpoint: row.record,
                messages,
            })
            .collect())
    }

    async fn list(&self, thread_id: &ThreadId, query: &ListQuery) -> Result<Vec<CheckpointRecord>> {
        let tkey = self.thread_tkey(thread_id)?;
        let rows = match &query.before {
            Some(before) => self.checkpoint_rows(
                thread_id,
                tkey,
                "AND l.checkpoint_id < ?",
                vec![before.as_str().into()],
                Some(query.limit),
            )?,
            None => self.checkpoint_rows(thread_id, tkey, "", vec![], Some(query.limit))?,
        };
        Ok(rows.into_iter().map(|r| r.record).collect())
    }

    async fn delete_thread(&self, thread_id: &ThreadId) -> Result<()> {
        let tkey = self.thread_tkey(thread_id)?;
        // Every table: the thread's LangGraph checkpointer storage goes with it.
        self.forget_recent();
        self.exec
            .execute_batch(&delete_thread_rows(tkey, &Group::ALL))
    }

    async fn remove_newest(&self, thread_id: &ThreadId, ids: &[CheckpointId]) -> Result<()> {
        let tkey = self.thread_tkey(thread_id)?;
        let removed = ids
            .iter()
            .filter_map(|id| self.checkpoint_by_id(thread_id, tkey, id).ok())
            .collect::<Vec<_>>();
        let Some(oldest) = removed.iter().map(CheckpointRow::id).min() else {
            return Ok(());
        };
        let names: Vec<&str> = removed.iter().map(CheckpointRow::id).collect();
        let names = SqlValue::from(serde_json::to_string(&names)?);
        let count = self.query(
            &count_followers(),
            &[tkey.into(), oldest.into(), names.clone(), names.clone()],
        )?;
        let followed = count
            .into_iter()
            .next()
            .map(|row| Columns::new(row, "em_log").integer())
            .transpose()?
            .unwrap_or(0);
        if followed > 0 {
            return Err(Error::Conflict {
                kind: ConflictKind::StaleCheckpoint,
                reason: format!("thread '{thread_id}' has checkpoints after the ones to remove"),
            });
        }
        let mut batch = self.follow_new_head(thread_id, tkey, &removed)?;
        batch.push(Statement::new(
            DELETE_PART_ROWS,
            vec![tkey.into(), names.clone()],
        ));
        batch.push(Statement::new(DELETE_LOG_ROWS, vec![tkey.into(), names]));
        self.forget_recent();
        self.exec.execute_batch(&batch)
    }

    async fn export_thread(&self, thread_id: &ThreadId) -> Result<Vec<NewCheckpoint>> {
        let tkey = self.thread_tkey(thread_id)?;
        let mut rows = self.checkpoint_rows(thread_id, tkey, "", vec![], None)?;
        rows.reverse();
        rows.into_iter()
            .map(|row| {
                let ops = self
                    .row_ops(tkey, row.id())?
                    .into_iter()
                    .enumerate()
                    .map(|(index, op)| self.resolve_op(tkey, row.id(), index, op))
                    .collect::<Result<Vec<_>>>()?;
                Ok(NewCheckpoint {
                    ops,
                    record: row.record,
                })
            })
            .collect()
    }

    async fn window(
        &self,
        thread_id: &ThreadId,
        from: Option<&CheckpointId>,
        max_messages: usize,
        ids: &[&str],
    ) -> Result<Window> {
        let tkey = self.thread_tkey(thread_id)?;
        let head = self.head(thread_id, tkey)?;
        let head_id = head.as_ref().map(|h| h.record.checkpoint_id.clone());
        let (named, newest) = crate::checkpoint::continue_from(head_id.as_ref(), from);
        let Some(base) = (match named {
            Some(id) => Some(self.checkpoint_by_id(thread_id, tkey, id)?),
            None => head,
        }) else {
            return Ok(Window::from_state(
                None,
                newest,
                Vec::new(),
                max_messages,
                ids,
            ));
        };
        if named.is_some() {
            // An older checkpoint (a fork): its whole state, once.
            let messages = self.state_at(tkey, &base)?;
            return Ok(Window::from_state(
                Some(base.record),
                newest,
                messages,
                max_messages,
                ids,
            ));
        }
        // The head: the log's tail (remembered from the last turn, as a rule), and a
        // look-up per asked id that memory does not answer.
        let messages = self.head_tail(thread_id, tkey, base.id(), max_messages)?;
        let mut existing = HashSet::new();
        for id in ids {
            if self
                .head_position(thread_id, tkey, base.id(), id)?
                .is_some()
            {
                existing.insert((*id).to_string());
            }
        }
        Ok(Window {
            checkpoint: Some(base.record),
            newest,
            messages,
            existing,
        })
    }
}
