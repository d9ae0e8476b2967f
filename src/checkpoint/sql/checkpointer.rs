//! [`Checkpointer`] on SQL: thread records, puts (a checkpoint row, its message rows,
//! and the live list's edit, in one batch), reads, exports and the context window.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::parts::{decode_op, encode_op, insert_op};
use super::port::{SqlExec, SqlValue, Statement};
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
const SELECT_NEWEST_ID: &str = "SELECT max(checkpoint_id) FROM em_checkpoints WHERE tkey = ?";
const INSERT_CHECKPOINT: &str = "INSERT INTO em_checkpoints (tkey, checkpoint_id, parent, created_at, metadata) VALUES (?, ?, ?, ?, ?)";
/// The thread's head moves to the checkpoint just inserted, whose state em_live now holds.
const SET_LIVE_HEAD: &str = "UPDATE em_threads SET updated_at = ?,
               live_ckey = (SELECT ckey FROM em_checkpoints WHERE tkey = ? AND checkpoint_id = ?)
             WHERE tkey = ?";
const SELECT_THREAD_OPS: &str =
    "SELECT m.ckey, m.seq, m.op, m.body FROM em_messages m JOIN em_checkpoints c ON c.ckey = m.ckey
             WHERE c.tkey = ? ORDER BY m.seq";

/// Metadata as the JSON text its column holds.
fn json_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

/// The statement that inserts `record`'s checkpoint row.
fn insert_checkpoint(tkey: i64, record: &CheckpointRecord, parent: Option<i64>) -> Statement {
    Statement::new(
        INSERT_CHECKPOINT,
        vec![
            tkey.into(),
            record.checkpoint_id.as_str().into(),
            parent.into(),
            record.created_at_ms.into(),
            json_text(&record.metadata).into(),
        ],
    )
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// A put's id must be newer than every checkpoint of the thread: ids sort in time,
    /// and the newest is the head.
    fn check_newer_than_newest(&self, tkey: i64, record: &CheckpointRecord) -> Result<()> {
        let newest = self.query(SELECT_NEWEST_ID, &[tkey.into()])?;
        if let Some(SqlValue::Text(newest)) = newest.first().and_then(|r| r.first()) {
            if record.checkpoint_id.as_str() <= newest.as_str() {
                return Err(Error::Conflict {
                    kind: ConflictKind::StaleCheckpoint,
                    reason: format!(
                        "Checkpoint id {} is not newer than the thread's newest checkpoint {newest}",
                        record.checkpoint_id
                    ),
                });
            }
        }
        Ok(())
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
        let keys = self.thread_keys(&thread.thread_id)?;
        self.exec.execute_batch(&[Statement::new(
            UPDATE_THREAD,
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
        self.check_newer_than_newest(keys.tkey, record)?;
        let parent = match &record.parent_id {
            Some(parent) => Some(
                self.checkpoint_by_id(&record.thread_id, keys.tkey, parent)?
                    .ckey,
            ),
            None => None,
        };
        let encoded = checkpoint
            .ops
            .iter()
            .map(encode_op)
            .collect::<Result<Vec<_>>>()?;
        // em_live follows the new checkpoint, in the same batch.
        let (mut batch, mut live) = self.start_live_edit(keys, parent)?;
        batch.push(insert_checkpoint(keys.tkey, record, parent));
        for (op, encoded) in checkpoint.ops.iter().zip(encoded) {
            insert_op(
                &mut batch,
                keys.tkey,
                record.checkpoint_id.as_str(),
                encoded,
            );
            live.apply(self, op, &mut batch)?;
        }
        batch.push(Statement::new(
            SET_LIVE_HEAD,
            vec![
                record.created_at_ms.into(),
                keys.tkey.into(),
                record.checkpoint_id.as_str().into(),
                keys.tkey.into(),
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

    async fn states(&self, thread_id: &ThreadId, ids: &[CheckpointId]) -> Result<Vec<Snapshot>> {
        let keys = self.thread_keys(thread_id)?;
        let rows = ids
            .iter()
            .map(|id| self.checkpoint_by_id(thread_id, keys.tkey, id))
            .collect::<Result<Vec<_>>>()?;
        let states = self.states_at(keys, &rows)?;
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
        // Every table: the thread's LangGraph checkpointer storage goes with it.
        self.exec
            .execute_batch(&delete_thread_rows(tkey, &Group::ALL))
    }

    async fn remove_newest(&self, thread_id: &ThreadId, ids: &[CheckpointId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let tkey = self.thread_keys(thread_id)?.tkey;
        let marks = vec!["?"; ids.len()].join(", ");
        let chosen = format!(
            "SELECT ckey FROM em_checkpoints WHERE tkey = ? AND checkpoint_id IN ({marks})"
        );
        let mut params: Vec<SqlValue> = vec![tkey.into()];
        params.extend(ids.iter().map(|id| SqlValue::from(id.as_str())));
        let followers = format!(
            "SELECT count(*) FROM em_checkpoints WHERE parent IN ({chosen}) AND ckey NOT IN ({chosen})"
        );
        let doubled: Vec<SqlValue> = params.iter().chain(params.iter()).cloned().collect();
        let count = self.query(&followers, &doubled)?;
        let followed = count
            .into_iter()
            .next()
            .map(|row| Columns::new(row, "em_checkpoints").integer())
            .transpose()?
            .unwrap_or(0);
        if followed > 0 {
            return Err(Error::Conflict {
                kind: ConflictKind::StaleCheckpoint,
                reason: format!("thread '{thread_id}' has checkpoints after the ones to remove"),
            });
        }
        let messages = format!("SELECT seq FROM em_messages WHERE ckey IN ({chosen})");
        // The live list may hold a removed message: it is rebuilt from the new head on the
        // next put, and states are replayed until then.
        self.exec.execute_batch(&[
            Statement::new(
                format!("DELETE FROM em_message_parts WHERE seq IN ({messages})"),
                params.clone(),
            ),
            Statement::new(
                format!("DELETE FROM em_messages WHERE ckey IN ({chosen})"),
                params.clone(),
            ),
            Statement::new(
                format!("DELETE FROM em_checkpoints WHERE ckey IN ({chosen})"),
                params,
            ),
            Statement::new("DELETE FROM em_live WHERE tkey = ?", vec![tkey.into()]),
            Statement::new(
                "UPDATE em_threads SET live_ckey = NULL WHERE tkey = ?",
                vec![tkey.into()],
            ),
        ])
    }

    async fn export_thread(&self, thread_id: &ThreadId) -> Result<Vec<NewCheckpoint>> {
        let keys = self.thread_keys(thread_id)?;
        let mut rows = self.checkpoint_rows(thread_id, keys.tkey, "", vec![], None)?;
        rows.reverse();
        let ops = self.query(SELECT_THREAD_OPS, &[keys.tkey.into()])?;
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
        let (named, newest) = crate::checkpoint::continue_from(head_id.as_ref(), from);
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
