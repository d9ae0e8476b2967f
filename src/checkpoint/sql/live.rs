//! The live list (`em_live`): the head's state as positions → message rows, read for
//! the head and its context window, edited op by op as each put continues it.

use std::collections::HashMap;

use super::port::{SqlExec, Statement};
use super::rows::ThreadKeys;
use super::{Columns, SqlCheckpointer};
use crate::error::Result;
use crate::message::{Message, MessageOp};

const SELECT_LIVE: &str = "SELECT m.seq, m.body FROM em_live l JOIN em_messages m ON m.seq = l.seq
                 WHERE l.tkey = ? ORDER BY l.pos";
const SELECT_LIVE_TAIL: &str =
    "SELECT m.seq, m.body FROM em_live l JOIN em_messages m ON m.seq = l.seq
                     WHERE l.tkey = ? ORDER BY l.pos DESC LIMIT ?";
/// The planner, without statistics, would walk the list by position instead.
const SELECT_POSITION: &str =
    "SELECT l.pos FROM em_live l INDEXED BY em_live_by_hash JOIN em_messages m ON m.seq = l.seq
             WHERE l.tkey = ? AND l.id_hash = ? AND json_extract(m.body, '$.id') = ?";
const SELECT_NEXT_POSITION: &str = "SELECT coalesce(max(pos), 0) + 1 FROM em_live WHERE tkey = ?";
const CLEAR: &str = "DELETE FROM em_live WHERE tkey = ?";
const DELETE_AT: &str = "DELETE FROM em_live WHERE tkey = ? AND pos = ?";
const INSERT_AT: &str = "INSERT INTO em_live (tkey, pos, id_hash, seq) VALUES (?, ?, ?, ?)";
/// last_insert_rowid(): the seq of the em_messages row just inserted.
const INSERT_NEWEST_AT: &str =
    "INSERT INTO em_live (tkey, pos, id_hash, seq) VALUES (?, ?, ?, last_insert_rowid())";
const SET_NEWEST_AT: &str =
    "UPDATE em_live SET seq = last_insert_rowid() WHERE tkey = ? AND pos = ?";

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

/// How one put edits `em_live`: where each id of its ops sits, simulated op by op,
/// since the statements run only at the end, in one batch.
pub(super) struct LiveEdit<'a> {
    tkey: i64,
    positions: HashMap<&'a str, Option<i64>>,
    /// After a clear nothing older is live.
    cleared: bool,
    /// The positions of a rebuilt list (not written yet), when the put does not
    /// continue from the live head.
    rebuilt: Option<HashMap<String, i64>>,
    next_pos: i64,
}

impl<'a> LiveEdit<'a> {
    /// Where `id` sits when the ops so far have run.
    fn position_of<E: SqlExec>(&self, store: &SqlCheckpointer<E>, id: &str) -> Result<Option<i64>> {
        if let Some(known) = self.positions.get(id) {
            return Ok(*known);
        }
        if self.cleared {
            return Ok(None);
        }
        match &self.rebuilt {
            Some(rebuilt) => Ok(rebuilt.get(id).copied()),
            None => store.live_position(self.tkey, id),
        }
    }

    /// Adds the statements that make `em_live` follow `op`, whose `em_messages` row was
    /// just inserted.
    pub(super) fn apply<E: SqlExec>(
        &mut self,
        store: &SqlCheckpointer<E>,
        op: &'a MessageOp,
        batch: &mut Vec<Statement>,
    ) -> Result<()> {
        let tkey = self.tkey;
        match op {
            MessageOp::Upsert { message } => {
                let id = message.id.as_str();
                match self.position_of(store, id)? {
                    Some(pos) => {
                        batch.push(Statement::new(SET_NEWEST_AT, vec![tkey.into(), pos.into()]))
                    }
                    None => {
                        let pos = self.next_pos;
                        batch.push(Statement::new(
                            INSERT_NEWEST_AT,
                            vec![tkey.into(), pos.into(), id_hash(id).into()],
                        ));
                        self.positions.insert(id, Some(pos));
                        self.next_pos += 1;
                    }
                }
            }
            MessageOp::Remove { id } => {
                if let Some(pos) = self.position_of(store, id)? {
                    batch.push(Statement::new(DELETE_AT, vec![tkey.into(), pos.into()]));
                }
                self.positions.insert(id, None);
            }
            MessageOp::RemoveAll => {
                batch.push(Statement::new(CLEAR, vec![tkey.into()]));
                self.positions.clear();
                self.cleared = true;
            }
        }
        Ok(())
    }
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// Starts the edit of `em_live` for a put on `parent`: incremental when it continues
    /// from the live head (every ordinary turn), after a rebuild to the parent's state
    /// otherwise. Returns the rebuild's statements (none for the live head).
    pub(super) fn start_live_edit<'a>(
        &self,
        keys: ThreadKeys,
        parent: Option<i64>,
    ) -> Result<(Vec<Statement>, LiveEdit<'a>)> {
        let tkey = keys.tkey;
        if parent == keys.live_ckey {
            let edit = LiveEdit {
                tkey,
                positions: HashMap::new(),
                cleared: false,
                rebuilt: None,
                next_pos: self.next_live_position(tkey)?,
            };
            return Ok((Vec::new(), edit));
        }
        let (batch, rebuilt) = self.rebuild_live(tkey, parent)?;
        let edit = LiveEdit {
            tkey,
            positions: HashMap::new(),
            cleared: false,
            next_pos: rebuilt.values().max().map_or(1, |p| p + 1),
            rebuilt: Some(rebuilt),
        };
        Ok((batch, edit))
    }

    /// The live list, in order; only the last `tail` messages when given.
    pub(super) fn live_messages(&self, tkey: i64, tail: Option<usize>) -> Result<Vec<Message>> {
        let rows = match tail {
            None => self.query(SELECT_LIVE, &[tkey.into()])?,
            Some(n) => {
                let mut rows = self.query(
                    SELECT_LIVE_TAIL,
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

    /// The position of live message `id`, if the head's state holds it.
    pub(super) fn live_position(&self, tkey: i64, id: &str) -> Result<Option<i64>> {
        let rows = self.query(
            SELECT_POSITION,
            &[tkey.into(), id_hash(id).into(), id.into()],
        )?;
        match rows.into_iter().next() {
            Some(row) => Ok(Some(Columns::new(row, "em_live").integer()?)),
            None => Ok(None),
        }
    }

    /// The next free position in the live list.
    fn next_live_position(&self, tkey: i64) -> Result<i64> {
        let rows = self.query(SELECT_NEXT_POSITION, &[tkey.into()])?;
        Columns::new(rows.into_iter().next().unwrap_or_default(), "em_live").integer()
    }

    /// Statements that make `em_live` hold the state at `ckey` (a full rebuild), and the
    /// position each live id gets.
    fn rebuild_live(
        &self,
        tkey: i64,
        ckey: Option<i64>,
    ) -> Result<(Vec<Statement>, HashMap<String, i64>)> {
        let mut batch = vec![Statement::new(CLEAR, vec![tkey.into()])];
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
                    INSERT_AT,
                    vec![tkey.into(), pos.into(), id_hash(&id).into(), seq.into()],
                ));
                positions.insert(id, pos);
            }
        }
        Ok((batch, positions))
    }
}
