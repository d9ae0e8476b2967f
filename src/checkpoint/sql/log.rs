//! The checkpoint log (`em_log`): one row per checkpoint holding its message operations
//! inline, each with the position its message takes in the list; bodies too large for
//! the row live in `em_body_parts`. Reading walks a checkpoint's parent chain newest
//! first, a page of rows at a time.

use std::fmt;
use std::ops::ControlFlow;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use super::port::{SqlExec, Statement};
use super::{Columns, SqlCheckpointer};
use crate::error::{Error, Result};
use crate::limits::DO_ROW_MAX_BYTES;
use crate::message::{Message, MessageOp};

/// Largest message body kept inline; larger ones are split into `em_body_parts` rows
/// of this size. Half of [`DO_ROW_MAX_BYTES`], so a part and its row overhead fit.
pub const MESSAGE_PART_BYTES: usize = DO_ROW_MAX_BYTES / 2;

/// Largest `ops` column a log row keeps: the biggest bodies move to parts until the rest
/// fits, leaving room in the 2 MB row for the metadata (≤ 64 KiB) and the keys.
pub(super) const LOG_OPS_MAX_BYTES: usize = DO_ROW_MAX_BYTES / 2;

/// `ops[i][0]`: append the message, or replace the one with its id in place.
pub(super) const OP_UPSERT: i64 = 0;
/// `ops[i][0]`: remove the message whose id is the body.
const OP_REMOVE: i64 = 1;
/// `ops[i][0]`: remove every message.
const OP_REMOVE_ALL: i64 = 2;
/// `ops[i][0]`: an upsert whose body is in `em_body_parts`; the body is `[parts, id]`.
const OP_UPSERT_PARTS: i64 = 3;

const INSERT_PART: &str =
    "INSERT INTO em_body_parts (tkey, checkpoint_id, op, part, data) VALUES (?, ?, ?, ?, ?)";
const SELECT_PARTS: &str = "SELECT data FROM em_body_parts
             WHERE tkey = ? AND checkpoint_id = ? AND op = ? ORDER BY part";
/// A page of the log, newest first, from a checkpoint down.
const SELECT_PAGE_FROM: &str = "SELECT checkpoint_id, parent_id, next_pos, ops FROM em_log
             WHERE tkey = ? AND checkpoint_id <= ? ORDER BY checkpoint_id DESC LIMIT ?";
/// A page of the log, newest first, below a checkpoint.
const SELECT_PAGE_BELOW: &str = "SELECT checkpoint_id, parent_id, next_pos, ops FROM em_log
             WHERE tkey = ? AND checkpoint_id < ? ORDER BY checkpoint_id DESC LIMIT ?";

/// `em_log.parent_id` of a row whose parent is the row just before it in id order (a
/// put that continues the head: nearly every row), which saves the 36-byte id.
pub(super) const PARENT_IS_PREVIOUS: &str = "";

/// `em_log.parent_id` resolved, for a query over `em_log l`: the marker
/// [`PARENT_IS_PREVIOUS`] read as the id of the row before.
pub(super) const RESOLVED_PARENT: &str = "CASE WHEN l.parent_id = '' THEN
               (SELECT p.checkpoint_id FROM em_log p WHERE p.tkey = l.tkey
                AND p.checkpoint_id < l.checkpoint_id ORDER BY p.checkpoint_id DESC LIMIT 1)
             ELSE l.parent_id END";
const SELECT_ROW_OPS: &str = "SELECT ops FROM em_log WHERE tkey = ? AND checkpoint_id = ?";
/// The largest page a walk reads at once; a walk's pages double from its first up to it.
pub(super) const PAGE_MAX_ROWS: i64 = 512;

/// What one stored op holds.
#[derive(Debug)]
pub(super) enum StoredBody {
    /// A message appended or replaced.
    Upsert(Message),
    /// An upserted message stored in `count` parts.
    Parts { count: usize, id: String },
    /// A removal of this id.
    Remove(String),
    /// A removal of every message.
    RemoveAll,
}

/// One stored op and the position its message has in the list.
#[derive(Debug)]
pub(super) struct StoredOp {
    pub(super) pos: i64,
    pub(super) body: StoredBody,
}

impl StoredOp {
    /// The message id the op concerns, if any.
    pub(super) fn id(&self) -> Option<&str> {
        match &self.body {
            StoredBody::Upsert(message) => Some(&message.id),
            StoredBody::Parts { id, .. } | StoredBody::Remove(id) => Some(id),
            StoredBody::RemoveAll => None,
        }
    }
}

impl<'de> Deserialize<'de> for StoredOp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_seq(StoredOpVisitor)
    }
}

struct StoredOpVisitor;

impl<'de> Visitor<'de> for StoredOpVisitor {
    type Value = StoredOp;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a stored op [code, position, body]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<StoredOp, A::Error> {
        let missing = || de::Error::custom("stored op has too few fields");
        let code: i64 = seq.next_element()?.ok_or_else(missing)?;
        let pos: i64 = seq.next_element()?.ok_or_else(missing)?;
        let body = match code {
            OP_UPSERT => StoredBody::Upsert(seq.next_element()?.ok_or_else(missing)?),
            OP_REMOVE => StoredBody::Remove(seq.next_element()?.ok_or_else(missing)?),
            OP_REMOVE_ALL => {
                seq.next_element::<IgnoredAny>()?;
                StoredBody::RemoveAll
            }
            OP_UPSERT_PARTS => {
                let (count, id): (usize, String) = seq.next_element()?.ok_or_else(missing)?;
                StoredBody::Parts { count, id }
            }
            other => return Err(de::Error::custom(format!("unknown stored op {other}"))),
        };
        Ok(StoredOp { pos, body })
    }
}

/// An op with its position, ready to be encoded into a log row.
pub(super) struct PlacedOp<'a> {
    pub(super) op: &'a MessageOp,
    pub(super) pos: i64,
}

/// A log row's `ops` text and the parts rows of bodies moved out of it.
pub(super) struct EncodedOps {
    pub(super) text: String,
    /// `(op index, parts)` of bodies stored in `em_body_parts`.
    pub(super) parts: Vec<(usize, Vec<String>)>,
}

/// Encodes a checkpoint's ops: bodies inline, except any larger than
/// [`MESSAGE_PART_BYTES`] and then the largest ones until the row fits
/// [`LOG_OPS_MAX_BYTES`].
pub(super) fn encode_ops(ops: &[PlacedOp<'_>]) -> Result<EncodedOps> {
    let mut bodies: Vec<String> = ops
        .iter()
        .map(|placed| match placed.op {
            MessageOp::Upsert { message } => serde_json::to_string(message)
                .map_err(|e| Error::backend(format_args!("message does not serialize: {e}"))),
            MessageOp::Remove { id } => Ok(serde_json::Value::from(id.as_str()).to_string()),
            MessageOp::RemoveAll => Ok("null".to_string()),
        })
        .collect::<Result<_>>()?;
    let mut moved = vec![false; ops.len()];
    let mut total: usize = bodies.iter().map(|b| b.len() + 16).sum();
    let mut by_size: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].op, MessageOp::Upsert { .. }))
        .collect();
    crate::sort::sort_by(&mut by_size, |&a, &b| bodies[b].len().cmp(&bodies[a].len()));
    for i in by_size {
        if bodies[i].len() <= MESSAGE_PART_BYTES && total <= LOG_OPS_MAX_BYTES {
            break;
        }
        moved[i] = true;
        total -= bodies[i].len();
    }
    let mut text = String::with_capacity(total + 2);
    let mut parts = Vec::new();
    text.push('[');
    for (i, placed) in ops.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        let body = std::mem::take(&mut bodies[i]);
        let (code, inline) = match placed.op {
            MessageOp::Upsert { message } if moved[i] => {
                let pieces: Vec<String> =
                    crate::checkpoint::split_at_chars(&body, MESSAGE_PART_BYTES)
                        .into_iter()
                        .map(str::to_string)
                        .collect();
                let stub = serde_json::json!([pieces.len(), message.id]).to_string();
                parts.push((i, pieces));
                (OP_UPSERT_PARTS, stub)
            }
            MessageOp::Upsert { .. } => (OP_UPSERT, body),
            MessageOp::Remove { .. } => (OP_REMOVE, body),
            MessageOp::RemoveAll => (OP_REMOVE_ALL, body),
        };
        text.push_str(&format!("[{code},{},", placed.pos));
        text.push_str(&inline);
        text.push(']');
    }
    text.push(']');
    Ok(EncodedOps { text, parts })
}

/// Statements that store the parts of checkpoint `checkpoint_id`'s moved bodies.
pub(super) fn insert_parts(
    batch: &mut Vec<Statement>,
    tkey: i64,
    checkpoint_id: &str,
    parts: Vec<(usize, Vec<String>)>,
) {
    for (op, pieces) in parts {
        for (n, piece) in pieces.into_iter().enumerate() {
            batch.push(Statement::new(
                INSERT_PART,
                vec![
                    tkey.into(),
                    checkpoint_id.into(),
                    i64::try_from(op).unwrap_or(i64::MAX).into(),
                    i64::try_from(n).unwrap_or(i64::MAX).into(),
                    piece.into(),
                ],
            ));
        }
    }
}

/// Decodes a log row's `ops` column.
pub(super) fn decode_ops(text: &str) -> Result<Vec<StoredOp>> {
    serde_json::from_str(text)
        .map_err(|e| Error::backend(format_args!("em_log: ops do not decode: {e}")))
}

/// A log row as a walk reads it: its id, whether it is its chain's first, the next
/// free position after it, its ops.
pub(super) struct OpsRow {
    pub(super) checkpoint_id: String,
    pub(super) is_root: bool,
    pub(super) next_pos: i64,
    pub(super) ops: Vec<StoredOp>,
}

/// The row a walk looks for next.
enum Wanted {
    /// The row with this id.
    Id(String),
    /// The row just before the last one visited.
    Previous,
    /// Nothing: the last row visited was its chain's first.
    Done,
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// The message op `op` (index `index` of checkpoint `checkpoint_id`) stores, with
    /// a body in parts joined back.
    pub(super) fn resolve_op(
        &self,
        tkey: i64,
        checkpoint_id: &str,
        index: usize,
        op: StoredOp,
    ) -> Result<MessageOp> {
        Ok(match op.body {
            StoredBody::Upsert(message) => MessageOp::Upsert { message },
            StoredBody::Parts { count, id } => MessageOp::Upsert {
                message: self.message_from_parts(tkey, checkpoint_id, index, count, &id)?,
            },
            StoredBody::Remove(id) => MessageOp::Remove { id },
            StoredBody::RemoveAll => MessageOp::RemoveAll,
        })
    }

    /// The message an upsert's body stores (an upsert's message, or its parts joined).
    pub(super) fn resolve_message(
        &self,
        tkey: i64,
        checkpoint_id: &str,
        index: usize,
        body: StoredBody,
    ) -> Result<Message> {
        match body {
            StoredBody::Upsert(message) => Ok(message),
            StoredBody::Parts { count, id } => {
                self.message_from_parts(tkey, checkpoint_id, index, count, &id)
            }
            StoredBody::Remove(_) | StoredBody::RemoveAll => Err(Error::backend(format_args!(
                "em_log: checkpoint {checkpoint_id} op {index} is not a message"
            ))),
        }
    }

    /// The ops of checkpoint `checkpoint_id`'s row.
    pub(super) fn row_ops(&self, tkey: i64, checkpoint_id: &str) -> Result<Vec<StoredOp>> {
        let rows = self.query(SELECT_ROW_OPS, &[tkey.into(), checkpoint_id.into()])?;
        let row = rows.into_iter().next().ok_or_else(|| {
            Error::backend(format_args!(
                "em_log: checkpoint {checkpoint_id} is missing"
            ))
        })?;
        decode_ops(&Columns::new(row, "em_log").text()?)
    }

    fn message_from_parts(
        &self,
        tkey: i64,
        checkpoint_id: &str,
        index: usize,
        count: usize,
        id: &str,
    ) -> Result<Message> {
        let index = i64::try_from(index).unwrap_or(i64::MAX);
        let rows = self.query(
            SELECT_PARTS,
            &[tkey.into(), checkpoint_id.into(), index.into()],
        )?;
        if rows.len() != count {
            return Err(Error::backend(format_args!(
                "message {id}: {} of {count} parts stored",
                rows.len()
            )));
        }
        let mut whole = String::new();
        for row in rows {
            whole.push_str(&Columns::new(row, "em_body_parts").text()?);
        }
        Ok(serde_json::from_str(&whole)?)
    }

    /// Visits the rows of `from`'s parent chain, newest first, until `visit` breaks or
    /// the chain ends. Reads pages of the log (the first of `first_page` rows, as many as
    /// the caller expects to visit), so rows of other branches in between are read and
    /// skipped.
    pub(super) fn walk_chain(
        &self,
        tkey: i64,
        from: &str,
        first_page: i64,
        mut visit: impl FnMut(OpsRow) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut wanted = Wanted::Id(from.to_string());
        let mut page = first_page.clamp(1, PAGE_MAX_ROWS);
        let mut below: Option<String> = None;
        loop {
            let (sql, cursor) = match (&wanted, &below) {
                (Wanted::Id(id), _) => (SELECT_PAGE_FROM, id.clone()),
                (Wanted::Previous, Some(last)) => (SELECT_PAGE_BELOW, last.clone()),
                (Wanted::Previous, None) => return Err(Error::backend("em_log: no row to follow")),
                (Wanted::Done, _) => return Ok(()),
            };
            let rows = self.query(sql, &[tkey.into(), cursor.as_str().into(), page.into()])?;
            let full = rows.len() as i64 == page;
            for row in rows {
                let mut cols = Columns::new(row, "em_log");
                let checkpoint_id = cols.text()?;
                below = Some(checkpoint_id.clone());
                if matches!(&wanted, Wanted::Id(id) if *id != checkpoint_id) {
                    continue;
                }
                let parent = cols.optional_text()?;
                let row = OpsRow {
                    checkpoint_id,
                    is_root: parent.is_none(),
                    next_pos: cols.integer()?,
                    ops: decode_ops(&cols.text()?)?,
                };
                wanted = match parent {
                    None => Wanted::Done,
                    Some(p) if p == PARENT_IS_PREVIOUS => Wanted::Previous,
                    Some(p) => Wanted::Id(p),
                };
                if visit(row)?.is_break() || matches!(wanted, Wanted::Done) {
                    return Ok(());
                }
            }
            // A short page held every row below its cursor: a parent not among them is
            // missing.
            if !full {
                return Err(Error::backend(format_args!(
                    "em_log: the chain breaks below {cursor}"
                )));
            }
            page = (page * 2).min(PAGE_MAX_ROWS);
        }
    }

    /// The ops of `from`'s chain, oldest first, resolved into message ops.
    pub(super) fn chain_ops(&self, tkey: i64, from: &str) -> Result<Vec<(String, MessageOp)>> {
        let mut rows = Vec::new();
        self.walk_chain(tkey, from, PAGE_MAX_ROWS, |row| {
            rows.push(row);
            Ok(ControlFlow::Continue(()))
        })?;
        let mut ops = Vec::new();
        for row in rows.into_iter().rev() {
            for (index, op) in row.ops.into_iter().enumerate() {
                let resolved = self.resolve_op(tkey, &row.checkpoint_id, index, op)?;
                ops.push((row.checkpoint_id.clone(), resolved));
            }
        }
        Ok(ops)
    }
}
