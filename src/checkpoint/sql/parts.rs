//! How a message operation is stored: one `em_messages` row, and for a message larger
//! than a row may hold, its text in `em_message_parts` rows behind a stub.

use super::port::{SqlExec, Statement};
use super::{Columns, SqlCheckpointer};
use crate::error::{Error, Result};
use crate::limits::DO_ROW_MAX_BYTES;
use crate::message::{Message, MessageOp};

/// Largest message body kept in its `em_messages` row; larger ones are split into
/// `em_message_parts` rows of this size. Half of [`DO_ROW_MAX_BYTES`], so a part and its
/// row overhead always fit.
pub const MESSAGE_PART_BYTES: usize = DO_ROW_MAX_BYTES / 2;

/// How a split body starts (its stub: `{"__parts__": N, "id": ...}`; keys sort so).
const PARTS_STUB_PREFIX: &str = "{\"__parts__\":";

/// `em_messages.op`: the body is a message to append or replace.
pub(super) const OP_UPSERT: i64 = 0;
/// `em_messages.op`: the body is the id of a message to remove.
const OP_REMOVE: i64 = 1;
/// `em_messages.op`: remove every message (empty body).
const OP_REMOVE_ALL: i64 = 2;

/// Stores an op under the checkpoint named by `tkey` and its id (inserted earlier in
/// the same batch).
const INSERT_MESSAGE: &str = "INSERT INTO em_messages (ckey, op, body)
                 VALUES ((SELECT ckey FROM em_checkpoints WHERE tkey = ? AND checkpoint_id = ?), ?, ?)";
/// Parts tables are WITHOUT ROWID: last_insert_rowid() stays the message's seq.
const INSERT_PART: &str =
    "INSERT INTO em_message_parts (seq, part, data) VALUES (last_insert_rowid(), ?, ?)";
const SELECT_PARTS: &str = "SELECT data FROM em_message_parts WHERE seq = ? ORDER BY part";

/// An op encoded for `em_messages`: `(op, body, parts)`; `parts` holds the text of a
/// message too large for one row, whose body is then a stub.
pub(super) type EncodedOp = (i64, String, Vec<String>);

/// Encodes an op for `em_messages` (and `em_message_parts`).
pub(super) fn encode_op(op: &MessageOp) -> Result<EncodedOp> {
    Ok(match op {
        MessageOp::Upsert { message } => {
            let body = serde_json::to_string(message)
                .map_err(|e| Error::backend(format_args!("message does not serialize: {e}")))?;
            if body.len() <= MESSAGE_PART_BYTES {
                return Ok((OP_UPSERT, body, Vec::new()));
            }
            let parts: Vec<String> = crate::checkpoint::split_at_chars(&body, MESSAGE_PART_BYTES)
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

/// The op an `em_messages` row holds, given its whole body.
pub(super) fn decode_op(op: i64, body: String) -> Result<MessageOp> {
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

/// Statements that store an encoded op of checkpoint `checkpoint_id`: its row, then
/// its parts; `last_insert_rowid()` is the op's `seq` after them.
pub(super) fn insert_op(
    batch: &mut Vec<Statement>,
    tkey: i64,
    checkpoint_id: &str,
    (code, body, parts): EncodedOp,
) {
    batch.push(Statement::new(
        INSERT_MESSAGE,
        vec![tkey.into(), checkpoint_id.into(), code.into(), body.into()],
    ));
    for (n, part) in parts.into_iter().enumerate() {
        batch.push(Statement::new(
            INSERT_PART,
            vec![i64::try_from(n).unwrap_or(i64::MAX).into(), part.into()],
        ));
    }
}

impl<E: SqlExec> SqlCheckpointer<E> {
    /// A message body as stored: itself, or, for a stub, its parts joined.
    pub(super) fn whole_body(&self, seq: i64, body: String) -> Result<String> {
        let Some(rest) = body.strip_prefix(PARTS_STUB_PREFIX) else {
            return Ok(body);
        };
        let expected: usize = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::backend(format_args!("message {seq}: malformed parts stub")))?;
        let rows = self.query(SELECT_PARTS, &[seq.into()])?;
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
}
