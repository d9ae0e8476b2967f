//! How a turn's input meets the stored state: a retry of the last turn, a fork, and
//! the model's view of the window with the input applied.

use std::collections::HashSet;

use crate::checkpoint::Window;
use crate::error::Result;
use crate::message::{add_messages, Message, MessageOp, MessageType};

/// How an input relates to the end of the thread it is sent to.
pub(super) enum Retried {
    /// New input.
    No,
    /// The same messages (ids and text) end the thread: stored, not answered yet.
    Unanswered,
    /// The same messages end the thread, followed by this reply.
    Answered(Message),
}

/// Whether `input` repeats the thread's last messages: a client retrying a turn with
/// its own message ids must not append them twice.
pub(super) fn retried(
    view: &[Message],
    existing: &HashSet<String>,
    input: &[MessageOp],
) -> Retried {
    let sent: Vec<&Message> = input
        .iter()
        .filter_map(|op| match op {
            MessageOp::Upsert { message } => Some(message),
            _ => None,
        })
        .collect();
    if sent.is_empty()
        || sent.len() != input.len()
        || !sent.iter().all(|m| existing.contains(&m.id))
    {
        return Retried::No;
    }
    let same = |stored: &[Message]| {
        stored.len() == sent.len()
            && stored
                .iter()
                .zip(&sent)
                .all(|(a, b)| a.id == b.id && a.kind == b.kind && a.text() == b.text())
    };
    let n = sent.len();
    if view.len() >= n && same(&view[view.len() - n..]) {
        return Retried::Unanswered;
    }
    match view.split_last() {
        Some((last, rest))
            if last.kind == MessageType::Ai && rest.len() >= n && same(&rest[rest.len() - n..]) =>
        {
            Retried::Answered(last.clone())
        }
        _ => Retried::No,
    }
}

/// Whether the window continues from a checkpoint older than the thread's newest.
pub(super) fn forked(window: &Window) -> bool {
    match (&window.checkpoint, &window.newest) {
        (Some(base), Some(newest)) => base.checkpoint_id != *newest,
        _ => false,
    }
}

/// The model's view: the window with the input applied. A removal of a message outside
/// the window (valid, checked against the whole state) has nothing to remove here.
pub(super) fn apply_to_view(view: Vec<Message>, input: &[MessageOp]) -> Result<Vec<Message>> {
    let in_view: HashSet<&str> = view.iter().map(|m| m.id.as_str()).collect();
    let mut added: HashSet<&str> = HashSet::new();
    let applicable: Vec<MessageOp> = input
        .iter()
        .filter(|op| match op {
            MessageOp::Remove { id } => {
                in_view.contains(id.as_str()) || added.contains(id.as_str())
            }
            MessageOp::Upsert { message } => {
                added.insert(message.id.as_str());
                true
            }
            MessageOp::RemoveAll => true,
        })
        .cloned()
        .collect();
    add_messages(view, &applicable)
}
