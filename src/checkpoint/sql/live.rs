//! The head's ids (`em_live_ids`): which message ids the newest checkpoint's state holds,
//! at which position, and which checkpoint holds each one's current body. A put edits
//! it op by op (one row per new, replaced or removed message); the context window is read
//! from the log's tail, with these rows as the fallback when removals make that walk long.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

use super::log::{OpsRow, PlacedOp, StoredBody, PAGE_MAX_ROWS};
use super::port::{SqlExec, Statement};
use super::{Columns, SqlCheckpointer};
use crate::error::Result;
use crate::message::{Message, MessageOp};
use crate::thread::ThreadId;

const SELECT_POSITION: &str = "SELECT pos FROM em_live_ids WHERE tkey = ? AND msg_id = ?";
const SELECT_ALL: &str = "SELECT pos, checkpoint_id FROM em_live_ids WHERE tkey = ?";
const CLEAR: &str = "DELETE FROM em_live_ids WHERE tkey = ?";
const DELETE_ID: &str = "DELETE FROM em_live_ids WHERE tkey = ? AND msg_id = ?";
const INSERT_ID: &str =
    "INSERT INTO em_live_ids (tkey, msg_id, pos, checkpoint_id) VALUES (?, ?, ?, ?)";
const MOVE_BODY: &str = "UPDATE em_live_ids SET checkpoint_id = ? WHERE tkey = ? AND msg_id = ?";

/// The log rows a window walk reads, per message it wants, before it reads the head's
/// ids instead (a thread whose old messages were mostly removed).
const WALK_ROWS_PER_MESSAGE: usize = 2;

/// How one put edits `em_live_ids`: where each id of its ops sits, simulated op by op,
/// since the statements run only at the end, in one batch.
pub(super) struct LiveEdit {
    tkey: i64,
    checkpoint_id: String,
    positions: HashMap<String, Option<i64>>,
    /// After a clear nothing older is live.
    cleared: bool,
    /// The next position an appended message takes.
    pub(super) next_pos: i64,
}

impl LiveEdit {
    /// An edit for the put of `checkpoint_id` continuing a list whose next free position
    /// is `next_pos`; `known` holds ids already placed (a rebuilt list), `cleared` says
    /// that no other id is live.
    pub(super) fn new(
        tkey: i64,
        checkpoint_id: &str,
        next_pos: i64,
        known: HashMap<String, Option<i64>>,
        cleared: bool,
    ) -> Self {
        LiveEdit {
            tkey,
            checkpoint_id: checkpoint_id.to_string(),
            positions: known,
            cleared,
            next_pos,
        }
    }

    /// Where `id` sits before the put's ops, known without a look-up.
    pub(super) fn know(&mut self, id: &str, pos: Option<i64>) {
        self.positions.entry(id.to_string()).or_insert(pos);
    }

    /// Where `id` sits when the ops so far have run.
    fn position_of<E: SqlExec>(&self, store: &SqlCheckpointer<E>, id: &str) -> Result<Option<i64>> {
        if let Some(known) = self.positions.get(id) {
            return Ok(*known);
        }
        if self.cleared {
            return Ok(None);
        }
        store.live_position(self.tkey, id)
    }

    /// Adds the statements that make `em_live_ids` follow `op`, and places it.
    pub(super) fn apply<'a, E: SqlExec>(
        &mut self,
        store: &SqlCheckpointer<E>,
        op: &'a MessageOp,
        batch: &mut Vec<Statement>,
    ) -> Result<PlacedOp<'a>> {
        let tkey = self.tkey;
        let pos = match op {
            MessageOp::Upsert { message } => {
                let id = message.id.as_str();
                match self.position_of(store, id)? {
                    Some(pos) => {
                        batch.push(Statement::new(
                            MOVE_BODY,
                            vec![self.checkpoint_id.as_str().into(), tkey.into(), id.into()],
                        ));
                        pos
                    }
                    None => {
                        let pos = self.next_pos;
                        batch.push(Statement::new(
                            INSERT_ID,
                            vec![
                                tkey.into(),
                                id.into(),
                                pos.into(),
                                self.checkpoint_id.as_str().into(),
                            ],
                        ));
                        self.positions.insert(id.to_string(), Some(pos));
                        self.next_pos += 1;
                        pos
                    }
                }
            }
            MessageOp::Remove { id } => {
                let pos = self.position_of(store, id)?;
                if pos.is_some() {
                    batch.push(Statement::new(
                        DELETE_ID,
                        vec![tkey.into(), id.as_str().into()],
                    ));
                }
                self.positions.insert(id.clone(), None);
                // A removal of an id the list does not hold changes nothing.
                pos.unwrap_or(0)
            }
            MessageOp::RemoveAll => {
                batch.push(Statement::new(CLEAR, vec![tkey.into()]));
                self.positions.clear();
                self.cleared = true;
                0
            }
        };
        Ok(PlacedOp { op, pos })
    }
}

/// A list rebuilt from a chain's ops: each live id's position and the checkpoint of its
/// current body, and the next free position.
pub(super) struct RebuiltList {
    pub(super) live: HashMap<String, (i64, String)>,
    pub(super) next_pos: i64,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// The position of live message `id`, if the head's state holds it.
    pub(super) fn live_position(&self, tkey: i64, id: &str) -> Result<Option<i64>> {
        let rows = self.query(SELECT_POSITION, &[tkey.into(), id.into()])?;
        match rows.into_iter().next() {
            Some(row) => Ok(Some(Columns::new(row, "em_live_ids").integer()?)),
            None => Ok(None),
        }
    }

    /// The position of `id` in the state at the head `head_id` (`None`: not in it): from
    /// what the checkpointer remembers of that head, else looked up (and remembered).
    pub(super) fn head_position(
        &self,
        thread_id: &ThreadId,
        tkey: i64,
        head_id: &str,
        id: &str,
    ) -> Result<Option<i64>> {
        let known = self.remembered(thread_id, |r| r.position(head_id, id));
        if let Some(pos) = known.flatten() {
            return Ok(pos);
        }
        let pos = self.live_position(tkey, id)?;
        self.remembered(thread_id, |r| r.looked_up(head_id, id, pos));
        Ok(pos)
    }

    /// The list at checkpoint `from` (or empty), from its chain's placed ops.
    pub(super) fn rebuild_list(&self, tkey: i64, from: Option<&str>) -> Result<RebuiltList> {
        let mut list = RebuiltList {
            live: HashMap::new(),
            next_pos: 1,
        };
        let Some(from) = from else {
            return Ok(list);
        };
        let mut rows = Vec::new();
        self.walk_chain(tkey, from, PAGE_MAX_ROWS, |row| {
            rows.push(row);
            Ok(ControlFlow::Continue(()))
        })?;
        list.next_pos = rows.first().map_or(1, |r| r.next_pos);
        for row in rows.into_iter().rev() {
            for op in &row.ops {
                match (&op.body, op.id()) {
                    (StoredBody::RemoveAll, _) => list.live.clear(),
                    (StoredBody::Remove(id), _) => {
                        list.live.remove(id);
                    }
                    (_, Some(id)) => {
                        list.live
                            .insert(id.to_string(), (op.pos, row.checkpoint_id.clone()));
                    }
                    (_, None) => {}
                }
            }
        }
        Ok(list)
    }

    /// Statements that make `em_live_ids` hold `list`.
    pub(super) fn write_list(&self, tkey: i64, list: &RebuiltList) -> Vec<Statement> {
        let mut batch = vec![Statement::new(CLEAR, vec![tkey.into()])];
        for (id, (pos, checkpoint_id)) in &list.live {
            batch.push(Statement::new(
                INSERT_ID,
                vec![
                    tkey.into(),
                    id.as_str().into(),
                    (*pos).into(),
                    checkpoint_id.as_str().into(),
                ],
            ));
        }
        batch
    }

    /// The last `max` messages of the state at the head `head_id`: the log's tail walked
    /// back until no older row can hold one of them; when removals make that walk long,
    /// the head's ids name the rows to read instead.
    /// Each message comes with its list position.
    pub(super) fn live_tail(
        &self,
        tkey: i64,
        head_id: &str,
        max: usize,
    ) -> Result<Vec<(i64, Message)>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let budget = max.saturating_mul(WALK_ROWS_PER_MESSAGE) + 8;
        let mut decided: BTreeMap<i64, Option<(String, usize)>> = BTreeMap::new();
        let mut bodies: HashMap<(String, usize), StoredBody> = HashMap::new();
        let mut walked = 0usize;
        let mut complete = false;
        // A row holds at least one message as a rule: one more row decides the stop.
        let first_page = i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1);
        self.walk_chain(tkey, head_id, first_page, |row: OpsRow| {
            if decided
                .range(row.next_pos..)
                .filter(|(_, v)| v.is_some())
                .count()
                >= max
            {
                complete = true;
                return Ok(ControlFlow::Break(()));
            }
            walked += 1;
            if walked > budget {
                return Ok(ControlFlow::Break(()));
            }
            for (index, op) in row.ops.into_iter().enumerate().rev() {
                match op.body {
                    StoredBody::RemoveAll => {
                        complete = true;
                        return Ok(ControlFlow::Break(()));
                    }
                    StoredBody::Remove(_) => {
                        decided.entry(op.pos).or_insert(None);
                    }
                    body => {
                        if decided.contains_key(&op.pos) {
                            continue;
                        }
                        let key = (row.checkpoint_id.clone(), index);
                        decided.insert(op.pos, Some(key.clone()));
                        bodies.insert(key, body);
                    }
                }
            }
            if row.is_root {
                complete = true;
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if !complete {
            return self.tail_from_ids(tkey, max);
        }
        let keys: Vec<(i64, (String, usize))> = decided
            .into_iter()
            .filter_map(|(pos, key)| Some((pos, key?)))
            .collect();
        let start = keys.len().saturating_sub(max);
        keys.into_iter()
            .skip(start)
            .map(|(pos, key)| match bodies.remove(&key) {
                Some(body) => Ok((pos, self.resolve_message(tkey, &key.0, key.1, body)?)),
                None => Err(crate::error::Error::backend(format_args!(
                    "em_log: no body for position in checkpoint {}",
                    key.0
                ))),
            })
            .collect()
    }

    /// The last `max` messages of the state at the head `head_id`: remembered from the
    /// last turn when that head is the one remembered, else read (and remembered).
    pub(super) fn head_tail(
        &self,
        thread_id: &ThreadId,
        tkey: i64,
        head_id: &str,
        max: usize,
    ) -> Result<Vec<Message>> {
        if let Some(messages) = self
            .remembered(thread_id, |recent| recent.tail(head_id, max))
            .flatten()
        {
            return Ok(messages);
        }
        let placed = self.live_tail(tkey, head_id, max)?;
        let messages = placed.iter().map(|(_, m)| m.clone()).collect();
        self.remembered(thread_id, |recent| recent.set_tail(head_id, placed, max));
        Ok(messages)
    }

    /// The last `max` messages of the head's state, found through its ids: their rows
    /// read whole (a thread whose old messages were mostly removed).
    fn tail_from_ids(&self, tkey: i64, max: usize) -> Result<Vec<(i64, Message)>> {
        let mut placed: Vec<(i64, String)> = self
            .query(SELECT_ALL, &[tkey.into()])?
            .into_iter()
            .map(|row| {
                let mut cols = Columns::new(row, "em_live_ids");
                Ok((cols.integer()?, cols.text()?))
            })
            .collect::<Result<_>>()?;
        crate::sort::sort(&mut placed);
        let start = placed.len().saturating_sub(max);
        let mut rows: HashMap<String, Vec<Option<StoredBody>>> = HashMap::new();
        let mut positions: HashMap<String, Vec<i64>> = HashMap::new();
        let mut out = Vec::new();
        for (pos, checkpoint_id) in placed.into_iter().skip(start) {
            if !rows.contains_key(&checkpoint_id) {
                let ops = self.row_ops(tkey, &checkpoint_id)?;
                positions.insert(checkpoint_id.clone(), ops.iter().map(|op| op.pos).collect());
                rows.insert(
                    checkpoint_id.clone(),
                    ops.into_iter().map(|op| Some(op.body)).collect(),
                );
            }
            let bodies = rows
                .get_mut(&checkpoint_id)
                .map(std::mem::take)
                .unwrap_or_default();
            let at = &positions[&checkpoint_id];
            let index = (0..bodies.len()).rev().find(|&i| {
                at[i] == pos
                    && matches!(
                        bodies[i],
                        Some(StoredBody::Upsert(_) | StoredBody::Parts { .. })
                    )
            });
            let mut bodies = bodies;
            let body = index.and_then(|i| bodies[i].take());
            rows.insert(checkpoint_id.clone(), bodies);
            let (Some(index), Some(body)) = (index, body) else {
                return Err(crate::error::Error::backend(format_args!(
                    "em_live_ids: checkpoint {checkpoint_id} holds no body at position {pos}"
                )));
            };
            out.push((
                pos,
                self.resolve_message(tkey, &checkpoint_id, index, body)?,
            ));
        }
        Ok(out)
    }
}
