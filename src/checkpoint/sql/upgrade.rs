//! The move from the layout of schema version 4 (a row per checkpoint, a row per message
//! op, a row per live message, each with an index) to the log (a row per checkpoint with
//! its ops inline): the rows of every thread, converted in memory and written in the
//! migration's own transaction.

use std::collections::HashMap;

use super::log::{encode_ops, insert_parts, PlacedOp};
use super::port::{SqlExec, Statement};
use super::Columns;
use crate::error::{Error, Result};
use crate::message::{Message, MessageOp};

const SELECT_OLD_CHECKPOINTS: &str =
    "SELECT c.ckey, c.tkey, c.checkpoint_id, p.checkpoint_id, c.created_at, c.metadata
             FROM em_checkpoints c LEFT JOIN em_checkpoints p ON p.ckey = c.parent ORDER BY c.ckey";
const SELECT_OLD_OPS: &str = "SELECT seq, ckey, op, body FROM em_messages ORDER BY seq";
const SELECT_OLD_PARTS: &str = "SELECT seq, data FROM em_message_parts ORDER BY seq, part";
const INSERT_LOG: &str =
    "INSERT INTO em_log (tkey, checkpoint_id, parent_id, created_at, metadata, next_pos, ops)
             VALUES (?, ?, ?, ?, ?, ?, ?)";
const INSERT_ID: &str =
    "INSERT INTO em_live_ids (tkey, msg_id, pos, checkpoint_id) VALUES (?, ?, ?, ?)";

/// A list as positions: each live id's position and the checkpoint of its body.
#[derive(Clone, Default)]
struct ListState {
    live: HashMap<String, (i64, String)>,
    next_pos: i64,
}

impl ListState {
    /// Applies `op` (of checkpoint `checkpoint_id`) and returns the position it takes.
    fn place(&mut self, op: &MessageOp, checkpoint_id: &str) -> i64 {
        match op {
            MessageOp::Upsert { message } => match self.live.get_mut(&message.id) {
                Some(entry) => {
                    entry.1 = checkpoint_id.to_string();
                    entry.0
                }
                None => {
                    let pos = self.next_pos;
                    self.next_pos += 1;
                    self.live
                        .insert(message.id.clone(), (pos, checkpoint_id.to_string()));
                    pos
                }
            },
            MessageOp::Remove { id } => self.live.remove(id).map_or(0, |(pos, _)| pos),
            MessageOp::RemoveAll => {
                self.live.clear();
                0
            }
        }
    }
}

/// An old checkpoint row.
struct OldCheckpoint {
    ckey: i64,
    tkey: i64,
    id: String,
    parent_id: Option<String>,
    created_at: i64,
    metadata: String,
}

/// The statements that write every thread's rows in the log layout, read from the
/// tables of schema version 4 (which the migration drops after them).
pub(super) fn log_rows_from_v4<E: SqlExec>(exec: &E) -> Result<Vec<Statement>> {
    let checkpoints = old_checkpoints(exec)?;
    if checkpoints.is_empty() {
        return Ok(Vec::new());
    }
    let mut ops = old_ops(exec)?;
    let mut children: HashMap<(i64, &str), usize> = HashMap::new();
    for c in &checkpoints {
        if let Some(p) = &c.parent_id {
            *children.entry((c.tkey, p.as_str())).or_default() += 1;
        }
    }
    let mut heads: HashMap<i64, &str> = HashMap::new();
    for c in &checkpoints {
        let head = heads.entry(c.tkey).or_insert(c.id.as_str());
        if c.id.as_str() > *head {
            *head = c.id.as_str();
        }
    }
    let mut states: HashMap<(i64, String), ListState> = HashMap::new();
    let mut batch = Vec::new();
    for c in &checkpoints {
        let mut state = match &c.parent_id {
            None => ListState {
                next_pos: 1,
                ..ListState::default()
            },
            Some(p) => parent_state(&mut states, &mut children, c.tkey, p),
        };
        let own = ops.remove(&c.ckey).unwrap_or_default();
        let placed: Vec<PlacedOp<'_>> = own
            .iter()
            .map(|op| PlacedOp {
                pos: state.place(op, &c.id),
                op,
            })
            .collect();
        let encoded = encode_ops(&placed)?;
        batch.push(Statement::new(
            INSERT_LOG,
            vec![
                c.tkey.into(),
                c.id.as_str().into(),
                c.parent_id.as_deref().into(),
                c.created_at.into(),
                c.metadata.as_str().into(),
                state.next_pos.into(),
                encoded.text.into(),
            ],
        ));
        insert_parts(&mut batch, c.tkey, &c.id, encoded.parts);
        if heads.get(&c.tkey) == Some(&c.id.as_str()) {
            for (id, (pos, at)) in &state.live {
                batch.push(Statement::new(
                    INSERT_ID,
                    vec![
                        c.tkey.into(),
                        id.as_str().into(),
                        (*pos).into(),
                        at.as_str().into(),
                    ],
                ));
            }
        }
        if children.get(&(c.tkey, c.id.as_str())).copied().unwrap_or(0) > 0 {
            states.insert((c.tkey, c.id.clone()), state);
        }
    }
    Ok(batch)
}

/// A child's starting list: its parent's, moved for its last child, else copied.
fn parent_state<'a>(
    states: &mut HashMap<(i64, String), ListState>,
    children: &mut HashMap<(i64, &'a str), usize>,
    tkey: i64,
    parent: &'a str,
) -> ListState {
    let key = (tkey, parent.to_string());
    let left = children.get_mut(&(tkey, parent)).map(|n| {
        *n -= 1;
        *n
    });
    match left {
        Some(0) => states.remove(&key).unwrap_or_default(),
        _ => states.get(&key).cloned().unwrap_or_default(),
    }
}

fn old_checkpoints<E: SqlExec>(exec: &E) -> Result<Vec<OldCheckpoint>> {
    exec.query(SELECT_OLD_CHECKPOINTS, &[])?
        .into_iter()
        .map(|row| {
            let mut cols = Columns::new(row, "em_checkpoints");
            Ok(OldCheckpoint {
                ckey: cols.integer()?,
                tkey: cols.integer()?,
                id: cols.text()?,
                parent_id: cols.optional_text()?,
                created_at: cols.integer()?,
                metadata: cols.text()?,
            })
        })
        .collect()
}

/// The old message ops, by checkpoint row key, in write order, large bodies joined.
fn old_ops<E: SqlExec>(exec: &E) -> Result<HashMap<i64, Vec<MessageOp>>> {
    let mut parts: HashMap<i64, String> = HashMap::new();
    for row in exec.query(SELECT_OLD_PARTS, &[])? {
        let mut cols = Columns::new(row, "em_message_parts");
        let seq = cols.integer()?;
        parts.entry(seq).or_default().push_str(&cols.text()?);
    }
    let mut ops: HashMap<i64, Vec<MessageOp>> = HashMap::new();
    for row in exec.query(SELECT_OLD_OPS, &[])? {
        let mut cols = Columns::new(row, "em_messages");
        let seq = cols.integer()?;
        let ckey = cols.integer()?;
        let code = cols.integer()?;
        let body = cols.text()?;
        let op = match code {
            0 => {
                let body = match body.starts_with("{\"__parts__\":") {
                    true => parts.remove(&seq).ok_or_else(|| {
                        Error::backend(format_args!("message {seq}: parts missing"))
                    })?,
                    false => body,
                };
                MessageOp::Upsert {
                    message: serde_json::from_str::<Message>(&body)?,
                }
            }
            1 => MessageOp::Remove { id: body },
            2 => MessageOp::RemoveAll,
            other => {
                return Err(Error::backend(format_args!(
                    "unknown stored message op {other}"
                )))
            }
        };
        ops.entry(ckey).or_default().push(op);
    }
    Ok(ops)
}
