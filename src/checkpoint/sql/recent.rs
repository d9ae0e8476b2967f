//! What a checkpointer remembers of the thread it served last: the thread's row key and
//! record, its head (newest checkpoint row) and the newest messages of the head's state,
//! by list position.
//!
//! A Durable Object holds one thread and is the only writer of its storage, so a turn can
//! start from memory instead of reading and decoding the head and its context window
//! again (on Durable Object SQLite, each row read crosses into JavaScript: the window was
//! a fifth of a turn's runtime CPU). The rule that keeps it right: a checkpoint's state
//! never changes, so the tail is kept *for one head id*; a put on that head moves it
//! forward with the ops the put placed, and every other write forgets everything (a
//! fork, a removal, a rollback, a deletion, a saver or directory write). It also keeps
//! where the ids it looked up sit: list positions never move, so a put on the head changes
//! that only for the ids the put places or removes.

use std::collections::HashMap;

use super::log::PlacedOp;
use super::rows::CheckpointRow;
use crate::message::{Message, MessageOp};
use crate::thread::{ThreadId, ThreadRecord};

/// The most bytes of message content the remembered tail may hold: an isolate's 128 MB
/// are shared by every object it runs, and a tail of large messages is cheap to read
/// compared to its size anyway.
pub(super) const RECENT_TAIL_MAX_BYTES: usize = 1 << 20;

/// The most look-ups remembered: a turn asks about a few ids; a client that names
/// thousands in one input must not grow the object's memory with them.
const LOOKED_UP_MAX: usize = 256;

/// The remembered thread.
#[derive(Debug)]
pub(super) struct Recent {
    thread_id: ThreadId,
    tkey: i64,
    /// `None`: not known; `Some(None)`: the thread has no checkpoint.
    head: Option<Option<CheckpointRow>>,
    tail: Option<Tail>,
    /// The thread's record as a read returns it (`updated_at` counts its newest
    /// checkpoint).
    record: Option<ThreadRecord>,
    /// Where ids looked up at the head sit in its state (`None`: not in it).
    looked_up: HashMap<String, Option<i64>>,
}

/// The newest messages of the head's state.
#[derive(Debug)]
struct Tail {
    /// Messages with their list positions, in position order.
    messages: Vec<(i64, Message)>,
    /// Whether `messages` are every live message of the state.
    complete: bool,
    /// How many messages it keeps at most (the largest window asked).
    keep: usize,
    /// The messages' stored size ([`Message::stored_size`]), kept up to date.
    bytes: usize,
}

impl Recent {
    /// The thread `thread_id` has row key `tkey`; nothing else known yet.
    pub(super) fn new(thread_id: &ThreadId, tkey: i64) -> Self {
        Recent {
            thread_id: thread_id.clone(),
            tkey,
            head: None,
            tail: None,
            record: None,
            looked_up: HashMap::new(),
        }
    }

    /// Whether this is what is remembered of `thread_id`.
    pub(super) fn is_of(&self, thread_id: &ThreadId) -> bool {
        &self.thread_id == thread_id
    }

    /// The thread's row key.
    pub(super) fn tkey(&self) -> i64 {
        self.tkey
    }

    /// The thread's record, if known.
    pub(super) fn record(&self) -> Option<ThreadRecord> {
        self.record.clone()
    }

    /// Remembers the thread's record as a read returned it.
    pub(super) fn set_record(&mut self, record: ThreadRecord) {
        self.record = Some(record);
    }

    /// The thread's record was written: remembered as a read would return it (the row's
    /// creation time, `updated_at` the later of the written one and the head's time), or
    /// forgotten when that is not known here.
    pub(super) fn record_written(&mut self, written: &ThreadRecord) {
        let created = self.record.as_ref().map(|r| r.created_at_ms);
        let head_time = match &self.head {
            Some(Some(head)) => Some(head.record.created_at_ms),
            Some(None) => Some(0),
            None => None,
        };
        self.record = created
            .zip(head_time)
            .map(|(created_at_ms, head_time)| ThreadRecord {
                created_at_ms,
                updated_at_ms: written.updated_at_ms.max(head_time),
                ..written.clone()
            });
    }

    /// The head, if known (`Some(None)`: no checkpoint yet).
    pub(super) fn head(&self) -> Option<Option<CheckpointRow>> {
        self.head.clone()
    }

    /// Remembers the head as read.
    pub(super) fn set_head(&mut self, head: Option<CheckpointRow>) {
        let same = match (&self.head, &head) {
            (Some(Some(old)), Some(new)) => old.id() == new.id(),
            (Some(None), None) => true,
            _ => false,
        };
        if !same {
            self.tail = None;
            self.looked_up.clear();
        }
        self.head = Some(head);
    }

    fn at_head(&self, head_id: &str) -> bool {
        matches!(&self.head, Some(Some(head)) if head.id() == head_id)
    }

    /// Where `id` sits in the state at the head `head_id` (`Some(None)`: not in it), when
    /// known without reading: a message of the remembered tail, an id looked up at this
    /// head, or any other id when the tail holds the whole state.
    pub(super) fn position(&self, head_id: &str, id: &str) -> Option<Option<i64>> {
        if !self.at_head(head_id) {
            return None;
        }
        let in_tail = self.tail.as_ref().and_then(|tail| {
            let found = tail.messages.iter().rev().find(|(_, m)| m.id == id);
            match found {
                Some((pos, _)) => Some(Some(*pos)),
                None => tail.complete.then_some(None),
            }
        });
        in_tail.or_else(|| self.looked_up.get(id).copied())
    }

    /// Remembers where a look-up at the head `head_id` found `id` (`None`: absent).
    pub(super) fn looked_up(&mut self, head_id: &str, id: &str, pos: Option<i64>) {
        if self.at_head(head_id) {
            self.remember_position(id, pos);
        }
    }

    fn remember_position(&mut self, id: &str, pos: Option<i64>) {
        if self.looked_up.len() >= LOOKED_UP_MAX && !self.looked_up.contains_key(id) {
            self.looked_up.clear();
        }
        self.looked_up.insert(id.to_string(), pos);
    }

    /// The last `max` messages of the state at the head `head_id`, if remembered.
    pub(super) fn tail(&self, head_id: &str, max: usize) -> Option<Vec<Message>> {
        let tail = self.tail.as_ref()?;
        if !self.at_head(head_id) || (tail.messages.len() < max && !tail.complete) {
            return None;
        }
        let skip = tail.messages.len().saturating_sub(max);
        Some(
            tail.messages[skip..]
                .iter()
                .map(|(_, message)| message.clone())
                .collect(),
        )
    }

    /// Remembers the tail read at the head `head_id` (if that is the head remembered):
    /// `placed` are the last `asked` messages (or fewer, when the state holds fewer) with
    /// their positions, in position order.
    pub(super) fn set_tail(&mut self, head_id: &str, placed: Vec<(i64, Message)>, asked: usize) {
        if !self.at_head(head_id) {
            return;
        }
        let complete = placed.len() < asked;
        let bytes = placed.iter().map(|(_, m)| m.stored_size()).sum();
        let tail = Tail {
            messages: placed,
            complete,
            keep: asked,
            bytes,
        };
        self.tail = tail.within_budget().then_some(tail);
    }

    /// A put on the remembered head succeeded: `new_head` follows it with `placed` ops
    /// (a put that did not continue the head goes through [`Recent::forget_tail`]).
    pub(super) fn advance(&mut self, new_head: CheckpointRow, placed: &[PlacedOp<'_>]) {
        // Ids looked up before follow what the put did to them (the tail knows the rest).
        for op in placed {
            let (id, pos) = match op.op {
                MessageOp::Upsert { message } => (&message.id, Some(op.pos)),
                MessageOp::Remove { id } => (id, None),
                MessageOp::RemoveAll => {
                    self.looked_up.values_mut().for_each(|known| *known = None);
                    continue;
                }
            };
            if let Some(known) = self.looked_up.get_mut(id) {
                *known = pos;
            }
        }
        let tail = self.tail.take().and_then(|mut tail| {
            for placed in placed {
                match placed.op {
                    MessageOp::Upsert { message } => tail.place(placed.pos, message),
                    // A removal brings an older message into the window: read it again.
                    MessageOp::Remove { .. } | MessageOp::RemoveAll => return None,
                }
            }
            tail.trim();
            tail.within_budget().then_some(tail)
        });
        self.touch(&new_head);
        self.head = Some(Some(new_head));
        self.tail = tail;
    }

    /// A new head makes the record's `updated_at` at least its time.
    fn touch(&mut self, new_head: &CheckpointRow) {
        if let Some(record) = &mut self.record {
            record.updated_at_ms = record.updated_at_ms.max(new_head.record.created_at_ms);
        }
    }

    /// Forgets the tail; the head becomes `new_head` (a fork's put).
    pub(super) fn forget_tail(&mut self, new_head: CheckpointRow) {
        self.touch(&new_head);
        self.head = Some(Some(new_head));
        self.tail = None;
        self.looked_up.clear();
    }
}

impl Tail {
    /// A message at `pos`: a new one (past every position) or one replaced in place.
    /// One replaced before the oldest kept goes again with the trim: a tail holding
    /// fewer than it keeps holds every message.
    fn place(&mut self, pos: i64, message: &Message) {
        self.bytes = self.bytes.saturating_add(message.stored_size());
        match self.messages.binary_search_by_key(&pos, |(p, _)| *p) {
            Ok(at) => {
                let old = std::mem::replace(&mut self.messages[at].1, message.clone());
                self.bytes = self.bytes.saturating_sub(old.stored_size());
            }
            Err(at) => self.messages.insert(at, (pos, message.clone())),
        }
    }

    /// Keeps the newest `keep` messages.
    fn trim(&mut self) {
        let excess = self.messages.len().saturating_sub(self.keep);
        if excess > 0 {
            let dropped: usize = self
                .messages
                .drain(..excess)
                .map(|(_, m)| m.stored_size())
                .sum();
            self.bytes = self.bytes.saturating_sub(dropped);
            self.complete = false;
        }
    }

    fn within_budget(&self) -> bool {
        self.bytes <= RECENT_TAIL_MAX_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{CheckpointId, CheckpointRecord};
    use crate::message::MessageType;
    use serde_json::Map;

    fn row(id: &str) -> CheckpointRow {
        CheckpointRow {
            record: CheckpointRecord {
                thread_id: ThreadId::parse("t").unwrap(),
                checkpoint_id: CheckpointId::parse(id).unwrap(),
                parent_id: None,
                created_at_ms: 1,
                metadata: Map::new(),
            },
            next_pos: 1,
        }
    }

    fn message(id: &str, text: &str) -> Message {
        Message::new(MessageType::Human, id, text)
    }

    fn texts(messages: &[Message]) -> Vec<String> {
        messages.iter().map(Message::text).collect()
    }

    fn recent_with(head: &str, placed: Vec<(i64, Message)>, asked: usize) -> Recent {
        let mut recent = Recent::new(&ThreadId::parse("t").unwrap(), 7);
        recent.set_head(Some(row(head)));
        recent.set_tail(head, placed, asked);
        recent
    }

    #[test]
    fn a_tail_is_served_only_at_its_head_and_within_what_it_holds() {
        let placed = vec![(3, message("a", "A")), (4, message("b", "B"))];
        let recent = recent_with("c1", placed, 2);
        assert_eq!(texts(&recent.tail("c1", 2).unwrap()), ["A", "B"]);
        assert_eq!(texts(&recent.tail("c1", 1).unwrap()), ["B"]);
        assert!(recent.tail("c2", 1).is_none(), "another head");
        assert!(recent.tail("c1", 3).is_none(), "more than it holds");
        // A state shorter than the window asked is held whole: any window is served.
        let short = recent_with("c1", vec![(1, message("a", "A"))], 5);
        assert_eq!(texts(&short.tail("c1", 50).unwrap()), ["A"]);
    }

    #[test]
    fn a_put_on_the_head_appends_replaces_in_place_and_trims() {
        let placed = vec![(3, message("a", "A")), (4, message("b", "B"))];
        let mut recent = recent_with("c1", placed, 2);
        let (new, replaced, old) = (
            MessageOp::Upsert {
                message: message("c", "C"),
            },
            MessageOp::Upsert {
                message: message("b", "B2"),
            },
            MessageOp::Upsert {
                message: message("z", "Z2"),
            },
        );
        let ops = [
            PlacedOp { op: &new, pos: 5 },
            PlacedOp {
                op: &replaced,
                pos: 4,
            },
            // A message older than the window, replaced: the window does not change.
            PlacedOp { op: &old, pos: 1 },
        ];
        recent.advance(row("c2"), &ops);
        assert!(recent.tail("c1", 1).is_none(), "the old head is gone");
        assert_eq!(texts(&recent.tail("c2", 2).unwrap()), ["B2", "C"]);
        assert!(
            recent.tail("c2", 3).is_none(),
            "trimmed to the window asked"
        );
    }

    #[test]
    fn removals_forks_and_other_heads_forget_the_tail() {
        let removal = MessageOp::Remove { id: "a".into() };
        let mut recent = recent_with("c1", vec![(1, message("a", "A"))], 5);
        recent.advance(
            row("c2"),
            &[PlacedOp {
                op: &removal,
                pos: 1,
            }],
        );
        assert!(recent.tail("c2", 1).is_none());
        let mut recent = recent_with("c1", vec![(1, message("a", "A"))], 5);
        recent.forget_tail(row("c2"));
        assert!(recent.tail("c2", 1).is_none());
        let mut recent = recent_with("c1", vec![(1, message("a", "A"))], 5);
        recent.set_head(Some(row("c0")));
        assert!(recent.tail("c0", 1).is_none(), "a head read differs");
    }

    #[test]
    fn where_an_id_sits_is_known_from_the_tail_or_a_look_up_at_the_same_head() {
        let placed = vec![(3, message("a", "A")), (4, message("b", "B"))];
        let mut recent = recent_with("c1", placed, 2);
        assert_eq!(recent.position("c1", "b"), Some(Some(4)), "in the tail");
        assert_eq!(
            recent.position("c1", "old"),
            None,
            "older than the tail: unknown"
        );
        recent.looked_up("c1", "old", Some(1));
        recent.looked_up("c1", "new", None);
        recent.looked_up("c0", "elsewhere", Some(2));
        assert_eq!(recent.position("c1", "old"), Some(Some(1)));
        assert_eq!(recent.position("c1", "new"), Some(None));
        assert_eq!(
            recent.position("c1", "elsewhere"),
            None,
            "looked up at another head"
        );
        assert_eq!(recent.position("c0", "old"), None, "asked at another head");
        // A put on the head: what it removes or places follows; the rest stays.
        let (removed, placed) = (
            MessageOp::Remove { id: "old".into() },
            MessageOp::Upsert {
                message: message("new", "N"),
            },
        );
        recent.advance(
            row("c2"),
            &[
                PlacedOp {
                    op: &removed,
                    pos: 1,
                },
                PlacedOp {
                    op: &placed,
                    pos: 5,
                },
            ],
        );
        assert_eq!(recent.position("c2", "old"), Some(None));
        assert_eq!(recent.position("c2", "new"), Some(Some(5)));
        // A tail holding the whole state knows every other id is absent.
        let whole = recent_with("c1", vec![(1, message("a", "A"))], 5);
        assert_eq!(whole.position("c1", "zzz"), Some(None));
        // Forks forget.
        recent.looked_up("c2", "kept", Some(9));
        recent.forget_tail(row("c3"));
        assert_eq!(recent.position("c3", "kept"), None);
    }

    #[test]
    fn a_tail_over_the_byte_budget_is_not_kept() {
        let big = "x".repeat(RECENT_TAIL_MAX_BYTES + 1);
        let recent = recent_with("c1", vec![(1, message("a", &big))], 5);
        assert!(recent.tail("c1", 1).is_none());
    }
}
