//! What is new in what a chat client sent: the AI SDK sends the whole transcript every
//! turn (or only the new message); the thread stores each message once, by id.
//!
//! Read against the thread's stored history (its last [`TRANSCRIPT_TAIL`] messages, or
//! [`TRANSCRIPT_COMPARE_MAX`] for a turn that names one, and an indexed look-up of every
//! id sent): a message whose id is stored and
//! unchanged is skipped; a new id is appended; a stored message whose text or role
//! differs is replaced in place (`add_messages`). A transcript that contradicts the
//! history (new ids before stored ones, edited messages, stored ones it lacks) is
//! applied that way and reported, never silently forked. `regenerate-message` removes
//! the reply it replaces (and what follows it); `submit-message` with the `messageId` of
//! a stored user message (an edit) removes what followed that message. The old messages
//! stay in the thread's history.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;

use super::{ChatTurn, Trigger, TRANSCRIPT_COMPARE_MAX, TRANSCRIPT_TAIL};
use crate::checkpoint::{Checkpointer, Window};
use crate::error::{Error, Result};
use crate::limits::INPUT_MESSAGES_MAX;
use crate::message::{Message, MessageOp, MessageType};
use crate::thread::ThreadId;

/// Most ids each list of a [`TranscriptReport`] names (the counts are whole).
const REPORT_IDS_MAX: usize = 10;

/// How a transcript disagreed with the stored history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TranscriptReport {
    /// New ids sent before ids the thread already has: appended at the end.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub out_of_order: Vec<String>,
    /// Stored messages whose text or role the transcript changed: replaced in place.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub edited: Vec<String>,
    /// Stored messages removed by a regenerate or an edit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Stored messages among the last compared that a whole transcript lacks: kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_in_transcript: Vec<String>,
}

impl TranscriptReport {
    /// Whether the transcript agreed with the history (a regenerate's removal is asked
    /// for, so it alone is no disagreement).
    pub fn agrees(&self) -> bool {
        self.out_of_order.is_empty() && self.edited.is_empty() && self.not_in_transcript.is_empty()
    }

    /// The report as JSON, each list cut to its first ids, with its full count.
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (key, ids) in [
            ("out_of_order", &self.out_of_order),
            ("edited", &self.edited),
            ("removed", &self.removed),
            ("not_in_transcript", &self.not_in_transcript),
        ] {
            if !ids.is_empty() {
                let named: Vec<&String> = ids.iter().take(REPORT_IDS_MAX).collect();
                out.insert(key.into(), serde_json::json!(named));
                out.insert(format!("{key}_count"), ids.len().into());
            }
        }
        Value::Object(out)
    }
}

/// A chat turn's input, and how its transcript disagreed with the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciled {
    /// The run's input: removals first, then new and edited messages in the order sent.
    pub input: Vec<MessageOp>,
    /// What disagreed.
    pub report: TranscriptReport,
}

/// Reads `turn` against the thread's stored history: its input and report.
pub async fn chat_input<C: Checkpointer>(
    store: &C,
    thread_id: &ThreadId,
    turn: &ChatTurn,
) -> Result<Reconciled> {
    let mut ids: Vec<&str> = turn.messages.iter().map(|m| m.id.as_str()).collect();
    ids.extend(turn.message_id.as_deref());
    // A turn that names a message reads further back, to find it and what follows it.
    let tail = match (&turn.message_id, turn.trigger) {
        (None, Trigger::Submit) => TRANSCRIPT_TAIL,
        _ => TRANSCRIPT_COMPARE_MAX,
    };
    let window = store.window(thread_id, None, tail, &ids).await?;
    let reconciled = reconcile(turn, &window)?;
    if reconciled.input.len() > INPUT_MESSAGES_MAX {
        return Err(Error::TooLarge {
            what: "new messages in one chat turn".into(),
            size: reconciled.input.len(),
            limit: INPUT_MESSAGES_MAX,
        });
    }
    Ok(reconciled)
}

/// The pure part of [`chat_input`]: `turn` against a `window` of the history that
/// knows which of the turn's ids are stored.
pub fn reconcile(turn: &ChatTurn, window: &Window) -> Result<Reconciled> {
    let tail: HashMap<&str, (usize, &Message)> = window
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), (i, m)))
        .collect();
    let stored = |id: &str| window.existing.contains(id) || tail.contains_key(id);
    let sent_ids: HashSet<&str> = turn.messages.iter().map(|m| m.id.as_str()).collect();
    let cut = truncation(turn, window, &tail, &sent_ids)?;
    let removed: Vec<&Message> =
        cut.map_or(Vec::new(), |from| window.messages[from..].iter().collect());
    let removed_ids: HashSet<&str> = removed.iter().map(|m| m.id.as_str()).collect();
    let mut report = TranscriptReport {
        removed: removed.iter().map(|m| m.id.clone()).collect(),
        ..TranscriptReport::default()
    };
    let mut input: Vec<MessageOp> = removed
        .iter()
        .map(|m| MessageOp::Remove { id: m.id.clone() })
        .collect();
    let kept: Vec<&Message> = turn
        .messages
        .iter()
        .filter(|m| !removed_ids.contains(m.id.as_str()))
        .collect();
    // Where the last message the thread already has is, in what was sent.
    let last_stored = kept.iter().rposition(|m| stored(&m.id));
    for (i, message) in kept.iter().enumerate() {
        match tail.get(message.id.as_str()) {
            _ if !stored(&message.id) => {
                if last_stored.is_some_and(|last| i < last) {
                    report.out_of_order.push(message.id.clone());
                }
                input.push(upsert(message));
            }
            Some((_, was)) if was.kind != message.kind || was.text() != message.text() => {
                report.edited.push(message.id.clone());
                input.push(upsert(message));
            }
            // Stored and unchanged (or stored before the compared tail): skipped.
            _ => {}
        }
    }
    if turn.whole {
        report.not_in_transcript = window
            .messages
            .iter()
            .filter(|m| !sent_ids.contains(m.id.as_str()) && !removed_ids.contains(m.id.as_str()))
            .map(|m| m.id.clone())
            .collect();
    }
    Ok(Reconciled { input, report })
}

/// Where in the tail the turn removes from, if anywhere: a regenerated reply (and what
/// follows it), or what follows an edited user message.
fn truncation(
    turn: &ChatTurn,
    window: &Window,
    tail: &HashMap<&str, (usize, &Message)>,
    sent_ids: &HashSet<&str>,
) -> Result<Option<usize>> {
    let named = turn.message_id.as_deref();
    match turn.trigger {
        Trigger::Regenerate => {
            let target = match named {
                Some(id) => id,
                // The last reply, which the client dropped from what it sent.
                None => match window.messages.last() {
                    Some(last)
                        if last.kind == MessageType::Ai && !sent_ids.contains(last.id.as_str()) =>
                    {
                        last.id.as_str()
                    }
                    _ => return Ok(None),
                },
            };
            match tail.get(target) {
                // A user message regenerates the reply after it.
                Some((i, m)) if m.kind == MessageType::Human => Ok(Some(i + 1)),
                Some((i, _)) => Ok(Some(*i)),
                None if window.existing.contains(target) => Err(Error::invalid(
                    "messageId",
                    format!(
                        "message '{target}' is older than the last {TRANSCRIPT_COMPARE_MAX} messages; regenerate a recent one"
                    ),
                )),
                None => Err(Error::invalid(
                    "messageId",
                    format!("no stored message '{target}' in this chat to regenerate"),
                )),
            }
        }
        Trigger::Submit => Ok(named
            .and_then(|id| tail.get(id))
            .filter(|(_, m)| m.kind == MessageType::Human)
            .map(|(i, _)| i + 1)
            .filter(|from| *from < window.messages.len())),
    }
}

fn upsert(message: &Message) -> MessageOp {
    MessageOp::Upsert {
        message: message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: MessageType, id: &str, text: &str) -> Message {
        Message::new(kind, id, text)
    }

    fn stored_window(messages: Vec<Message>, ids: &[&str]) -> Window {
        Window::from_state(None, None, messages, TRANSCRIPT_COMPARE_MAX, ids)
    }

    fn turn(messages: Vec<Message>, whole: bool) -> ChatTurn {
        ChatTurn {
            messages,
            whole,
            trigger: Trigger::Submit,
            message_id: None,
        }
    }

    fn ops(reconciled: &Reconciled) -> Vec<String> {
        reconciled
            .input
            .iter()
            .map(|op| match op {
                MessageOp::Upsert { message } => format!("+{}", message.id),
                MessageOp::Remove { id } => format!("-{id}"),
                MessageOp::RemoveAll => "-all".into(),
            })
            .collect()
    }

    fn history() -> Vec<Message> {
        vec![
            msg(MessageType::Human, "u1", "Hi, I'm Sam"),
            msg(MessageType::Ai, "a1", "Hello Sam"),
        ]
    }

    fn with_ids(turn: &ChatTurn) -> Window {
        let ids: Vec<&str> = turn.messages.iter().map(|m| m.id.as_str()).collect();
        stored_window(history(), &ids)
    }

    #[test]
    fn a_whole_transcript_stores_only_what_is_new() {
        let mut sent = history();
        sent.push(msg(MessageType::Human, "u2", "What's my name?"));
        let turn = turn(sent, true);
        let reconciled = reconcile(&turn, &with_ids(&turn)).unwrap();
        assert_eq!(ops(&reconciled), ["+u2"]);
        assert!(reconciled.report.agrees());
        assert_eq!(reconciled.report.to_json(), serde_json::json!({}));
    }

    #[test]
    fn the_slim_body_and_an_echo_add_nothing_twice() {
        let new = turn(vec![msg(MessageType::Human, "u2", "again")], false);
        assert_eq!(ops(&reconcile(&new, &with_ids(&new)).unwrap()), ["+u2"]);
        let echo = turn(vec![msg(MessageType::Human, "u1", "Hi, I'm Sam")], false);
        let reconciled = reconcile(&echo, &with_ids(&echo)).unwrap();
        assert!(reconciled.input.is_empty());
        // A slim body never reports the history it does not send.
        assert!(reconciled.report.agrees());
    }

    #[test]
    fn contradictions_are_applied_with_add_messages_and_reported() {
        let sent = vec![
            msg(MessageType::Human, "x0", "inserted before"),
            msg(MessageType::Human, "u1", "Hi, I'm Tom"),
            msg(MessageType::Human, "u2", "new"),
        ];
        let turn = turn(sent, true);
        let reconciled = reconcile(&turn, &with_ids(&turn)).unwrap();
        assert_eq!(ops(&reconciled), ["+x0", "+u1", "+u2"]);
        let report = &reconciled.report;
        assert_eq!(report.out_of_order, ["x0"]);
        assert_eq!(report.edited, ["u1"]);
        assert_eq!(report.not_in_transcript, ["a1"]);
        assert_eq!(report.to_json()["edited_count"], 1);
    }

    #[test]
    fn regenerate_removes_the_reply_named_or_the_last() {
        let user_only = vec![msg(MessageType::Human, "u1", "Hi, I'm Sam")];
        for message_id in [Some("a1".to_string()), None] {
            let turn = ChatTurn {
                trigger: Trigger::Regenerate,
                message_id: message_id.clone(),
                ..turn(user_only.clone(), true)
            };
            let mut ids = vec!["u1"];
            ids.extend(message_id.as_deref());
            let reconciled = reconcile(&turn, &stored_window(history(), &ids)).unwrap();
            assert_eq!(ops(&reconciled), ["-a1"], "{message_id:?}");
            assert_eq!(reconciled.report.removed, ["a1"]);
            assert!(reconciled.report.agrees());
        }
        let unknown = ChatTurn {
            trigger: Trigger::Regenerate,
            message_id: Some("nope".into()),
            ..turn(user_only, true)
        };
        let err = reconcile(&unknown, &stored_window(history(), &["u1", "nope"])).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    }

    #[test]
    fn an_edited_user_message_drops_what_followed_it() {
        let turn = ChatTurn {
            message_id: Some("u1".into()),
            ..turn(vec![msg(MessageType::Human, "u1", "Hi, I'm Tom")], true)
        };
        let reconciled = reconcile(&turn, &with_ids(&turn)).unwrap();
        assert_eq!(ops(&reconciled), ["-a1", "+u1"]);
        assert_eq!(reconciled.report.edited, ["u1"]);
    }
}
