//! What the conformance cases share: fresh threads, messages, and a chain of
//! checkpoints with increasing ids.

use std::fmt;

use serde_json::{json, Map};

use super::Failure;
use crate::checkpoint::{CheckpointId, CheckpointRecord, Checkpointer, NewCheckpoint};
use crate::error::Error;
use crate::message::{Message, MessageOp, MessageType};
use crate::runtime::{Clock, SystemClock, SystemEntropy};
use crate::thread::{ThreadId, ThreadRecord};

/// A fresh thread id (not created).
pub(super) fn fresh_thread_id() -> ThreadId {
    // A random id per case: no wiping between cases, safe on shared stores.
    let id = ThreadId::generate(&SystemEntropy);
    ThreadId::parse(&format!("conformance-{id}")).unwrap_or(id)
}

/// A new thread, created with `suite` metadata.
pub(super) async fn new_thread<C: Checkpointer>(store: &C) -> Result<ThreadId, Failure> {
    let id = fresh_thread_id();
    let mut metadata = Map::new();
    metadata.insert("suite".into(), json!("conformance"));
    store
        .create_thread(&ThreadRecord::new(
            id.clone(),
            metadata,
            SystemClock.now_ms(),
        ))
        .await?;
    Ok(id)
}

/// Upserts a human message.
pub(super) fn human(id: &str, text: &str) -> MessageOp {
    MessageOp::Upsert {
        message: Message::new(MessageType::Human, id, text),
    }
}

/// Upserts an AI message.
pub(super) fn ai(id: &str, text: &str) -> MessageOp {
    MessageOp::Upsert {
        message: Message::new(MessageType::Ai, id, text),
    }
}

/// Builds checkpoints with increasing ids for one thread.
pub(super) struct Chain {
    thread: ThreadId,
    /// The newest id handed out (stored or not), so ids keep increasing.
    last: Option<CheckpointId>,
    /// The newest checkpoint stored through `push`.
    pub(super) head: Option<CheckpointId>,
}

impl Chain {
    /// A chain on `thread`, with nothing handed out yet.
    pub(super) fn new(thread: &ThreadId) -> Self {
        Chain {
            thread: thread.clone(),
            last: None,
            head: None,
        }
    }

    /// The next checkpoint of this thread on `parent`, not stored.
    pub(super) fn next(
        &mut self,
        parent: Option<&CheckpointId>,
        ops: Vec<MessageOp>,
    ) -> NewCheckpoint {
        let id = CheckpointId::next(self.last.as_ref(), SystemClock.now_ms(), &SystemEntropy);
        self.last = Some(id.clone());
        let mut metadata = Map::new();
        metadata.insert("source".into(), json!("loop"));
        metadata.insert("step".into(), json!(1));
        NewCheckpoint {
            record: CheckpointRecord {
                thread_id: self.thread.clone(),
                checkpoint_id: id,
                parent_id: parent.cloned(),
                created_at_ms: SystemClock.now_ms(),
                metadata,
            },
            ops,
        }
    }

    /// Puts a checkpoint continuing from the last one and returns its id.
    pub(super) async fn push<C: Checkpointer>(
        &mut self,
        store: &C,
        ops: Vec<MessageOp>,
    ) -> Result<CheckpointId, Failure> {
        let parent = self.head.clone();
        let cp = self.next(parent.as_ref(), ops);
        store.put(&cp).await?;
        self.head = Some(cp.record.checkpoint_id.clone());
        Ok(cp.record.checkpoint_id)
    }
}

/// The messages' texts, in order.
pub(super) fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(Message::text).collect()
}

/// Whether `result` is `NotFound` for `what`.
pub(super) fn is_not_found(result: &Result<impl fmt::Debug, Error>, what: &str) -> bool {
    matches!(result, Err(Error::NotFound { what: w, .. }) if *w == what)
}
