//! The turn engine: load the thread, apply the input, ask the model, persist.

pub mod demo;

use serde_json::{json, Map, Value};

use crate::checkpoint::{
    CheckpointId, CheckpointRecord, CheckpointSource, Checkpointer, NewCheckpoint,
};
use crate::error::Result;
use crate::message::{add_messages, Message, MessageOp, MessageType};
use crate::runtime::{uuid_v4, Clock, Entropy};
use crate::thread::ThreadId;

/// A chat model: given the conversation, produce the assistant's reply.
///
/// Implementations must read the conversation only from `messages` (the thread's
/// persisted state plus the new input), never from their own memory: that is what makes
/// the reply survive a cold start. Futures are not `Send` (see [`Checkpointer`]).
#[allow(async_fn_in_trait)]
pub trait ChatModel {
    /// A short name for `/info` and logs.
    fn name(&self) -> &str;

    /// The reply text to the conversation `messages` (oldest first).
    async fn reply(&self, messages: &[Message]) -> Result<String>;
}

/// What the engine needs from its environment, by reference so a Durable Object or a
/// test can lend its own.
pub struct Engine<'a, C, M> {
    /// Where checkpoints live.
    pub store: &'a C,
    /// Who answers.
    pub model: &'a M,
    /// Time source for ids and timestamps.
    pub clock: &'a dyn Clock,
    /// Random source for ids.
    pub entropy: &'a dyn Entropy,
}

/// One chat turn to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The thread; it must exist.
    pub thread_id: ThreadId,
    /// The input message operations (usually one human message).
    pub input: Vec<MessageOp>,
    /// Continue from this checkpoint instead of the head. Older than the head: a fork.
    pub from_checkpoint: Option<CheckpointId>,
    /// Extra checkpoint metadata (run id, graph id, ...).
    pub metadata: Map<String, Value>,
}

/// What a turn produced.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    /// The checkpoint the turn stored.
    pub checkpoint: CheckpointRecord,
    /// The state after the input was applied, before the reply.
    pub input_state: Vec<Message>,
    /// The assistant's reply, as stored.
    pub reply: Message,
    /// The state after the turn (input and reply applied).
    pub messages: Vec<Message>,
}

/// The state a write continues from.
struct Base {
    /// The checkpoint it continues from; `None` on an empty thread.
    parent: Option<CheckpointRecord>,
    /// The newest checkpoint id of the thread (new ids must exceed it).
    newest: Option<CheckpointId>,
    /// Whether `parent` is older than the head.
    forked: bool,
    /// The messages at `parent`.
    messages: Vec<Message>,
}

impl<C: Checkpointer, M: ChatModel> Engine<'_, C, M> {
    /// Runs one turn: load the state (head, or `from_checkpoint`), apply the input with
    /// the `add_messages` reducer, ask the model, and store one checkpoint holding the
    /// input and the reply.
    ///
    /// Nothing is stored unless the whole turn succeeds: an invalid input (e.g. removing
    /// an unknown id), a model failure or a storage conflict leave the thread unchanged.
    pub async fn run_turn(&self, turn: Turn) -> Result<TurnOutcome> {
        let base = self
            .load_base(&turn.thread_id, turn.from_checkpoint.as_ref())
            .await?;
        let input_state = add_messages(base.messages.clone(), &turn.input)?;
        let reply_text = self.model.reply(&input_state).await?;
        let reply = Message::new(MessageType::Ai, uuid_v4(self.entropy), reply_text);
        let reply_op = MessageOp::Upsert {
            message: reply.clone(),
        };
        let messages = add_messages(input_state.clone(), std::slice::from_ref(&reply_op))?;
        let source = if base.forked {
            CheckpointSource::Fork
        } else {
            CheckpointSource::Loop
        };
        let writes = json!({"__input__": {"messages": turn.input.len()}, "agent": {"messages": 1}});
        let mut ops = turn.input;
        ops.push(reply_op);
        let checkpoint = self
            .commit(&turn.thread_id, base, ops, source, writes, turn.metadata)
            .await?;
        Ok(TurnOutcome {
            checkpoint,
            input_state,
            reply,
            messages,
        })
    }

    /// Applies `ops` to the state (head, or `from_checkpoint`) without running the model,
    /// and stores them as one checkpoint with `source: "update"`, as LangGraph's
    /// `update_state` does. `as_node` names the writer in `metadata.writes`.
    pub async fn update_state(
        &self,
        thread_id: &ThreadId,
        ops: Vec<MessageOp>,
        from_checkpoint: Option<&CheckpointId>,
        as_node: &str,
    ) -> Result<(CheckpointRecord, Vec<Message>)> {
        let base = self.load_base(thread_id, from_checkpoint).await?;
        let messages = add_messages(base.messages.clone(), &ops)?;
        let writes = json!({ as_node: {"messages": ops.len()} });
        let checkpoint = self
            .commit(
                thread_id,
                base,
                ops,
                CheckpointSource::Update,
                writes,
                Map::new(),
            )
            .await?;
        Ok((checkpoint, messages))
    }

    async fn load_base(&self, thread_id: &ThreadId, from: Option<&CheckpointId>) -> Result<Base> {
        let head = self.store.latest(thread_id).await?;
        let newest = head.as_ref().map(|h| h.checkpoint.checkpoint_id.clone());
        let base = match (from, head) {
            (Some(from), head)
                if head
                    .as_ref()
                    .is_none_or(|h| h.checkpoint.checkpoint_id != *from) =>
            {
                Some(self.store.get(thread_id, from).await?)
            }
            (_, head) => head,
        };
        let forked = match (&base, &newest) {
            (Some(b), Some(n)) => b.checkpoint.checkpoint_id != *n,
            _ => false,
        };
        Ok(match base {
            Some(snapshot) => Base {
                parent: Some(snapshot.checkpoint),
                newest,
                forked,
                messages: snapshot.messages,
            },
            None => Base {
                parent: None,
                newest,
                forked,
                messages: Vec::new(),
            },
        })
    }

    async fn commit(
        &self,
        thread_id: &ThreadId,
        base: Base,
        ops: Vec<MessageOp>,
        source: CheckpointSource,
        writes: Value,
        mut metadata: Map<String, Value>,
    ) -> Result<CheckpointRecord> {
        let now = self.clock.now_ms();
        let step = base.parent.as_ref().map_or(0, CheckpointRecord::step) + 1;
        metadata.insert("source".into(), json!(source.as_str()));
        metadata.insert("step".into(), json!(step));
        metadata.insert("writes".into(), writes);
        let checkpoint = NewCheckpoint {
            record: CheckpointRecord {
                thread_id: thread_id.clone(),
                checkpoint_id: CheckpointId::next(base.newest.as_ref(), now, self.entropy),
                parent_id: base.parent.map(|p| p.checkpoint_id),
                created_at_ms: now,
                metadata,
            },
            ops,
        };
        self.store.put(&checkpoint).await?;
        Ok(checkpoint.record)
    }
}

/// Splits a reply into the chunks a token stream would carry (words with their
/// trailing spaces); concatenated, they are the reply.
pub fn stream_chunks(text: &str) -> Vec<&str> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            chunks.push(&text[start..i]);
            start = i;
            in_space = false;
        }
    }
    if start < text.len() {
        chunks.push(&text[start..]);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::demo::MemoryDemoResponder;
    use crate::checkpoint::memory::MemoryCheckpointer;
    use crate::runtime::{ManualClock, SeededEntropy};
    use crate::thread::ThreadRecord;

    fn human(text: &str) -> Vec<MessageOp> {
        vec![MessageOp::Upsert {
            message: Message::new(MessageType::Human, format!("h-{text}"), text),
        }]
    }

    #[test]
    fn a_turn_stores_input_and_reply_in_one_checkpoint() {
        pollster::block_on(async {
            let store = MemoryCheckpointer::new();
            let clock = ManualClock::new(1_000);
            let entropy = SeededEntropy::new(9);
            let engine = Engine {
                store: &store,
                model: &MemoryDemoResponder,
                clock: &clock,
                entropy: &entropy,
            };
            let t = ThreadId::parse("t1").unwrap();
            store
                .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))
                .await
                .unwrap();
            let first = engine
                .run_turn(Turn {
                    thread_id: t.clone(),
                    input: human("My name is Sam"),
                    from_checkpoint: None,
                    metadata: Map::new(),
                })
                .await
                .unwrap();
            assert_eq!(first.messages.len(), 2);
            assert_eq!(first.checkpoint.parent_id, None);
            assert_eq!(first.checkpoint.step(), 1);
            clock.advance(5);
            let second = engine
                .run_turn(Turn {
                    thread_id: t.clone(),
                    input: human("What's my name?"),
                    from_checkpoint: None,
                    metadata: Map::new(),
                })
                .await
                .unwrap();
            assert!(
                second.reply.text().contains("Sam"),
                "{}",
                second.reply.text()
            );
            assert_eq!(
                second.checkpoint.parent_id,
                Some(first.checkpoint.checkpoint_id.clone())
            );
            assert_eq!(second.checkpoint.metadata["source"], "loop");
            assert_eq!(store.latest(&t).await.unwrap().unwrap().messages.len(), 4);

            // Continue from the first checkpoint: a fork that does not see turn two.
            let fork = engine
                .run_turn(Turn {
                    thread_id: t.clone(),
                    input: human("What did I say?"),
                    from_checkpoint: Some(first.checkpoint.checkpoint_id.clone()),
                    metadata: Map::new(),
                })
                .await
                .unwrap();
            assert_eq!(fork.checkpoint.metadata["source"], "fork");
            assert_eq!(fork.messages.len(), 4);
            assert!(
                !fork.reply.text().contains("What's my name"),
                "{}",
                fork.reply.text()
            );

            // A state update: no model call, source "update".
            let (record, messages) = engine
                .update_state(&t, human("edited"), None, "agent")
                .await
                .unwrap();
            assert_eq!(record.metadata["source"], "update");
            assert_eq!(
                record.parent_id,
                Some(fork.checkpoint.checkpoint_id.clone())
            );
            assert_eq!(messages.len(), 5);
        });
    }

    #[test]
    fn chunks_concatenate_to_the_reply() {
        for text in ["", "one", "Nice to meet you, Sam!  Twice", " lead"] {
            assert_eq!(stream_chunks(text).concat(), text);
        }
        assert_eq!(stream_chunks("a b  c"), ["a ", "b  ", "c"]);
    }

    #[test]
    fn an_invalid_input_stores_nothing() {
        pollster::block_on(async {
            let store = MemoryCheckpointer::new();
            let clock = ManualClock::new(1_000);
            let entropy = SeededEntropy::new(9);
            let engine = Engine {
                store: &store,
                model: &MemoryDemoResponder,
                clock: &clock,
                entropy: &entropy,
            };
            let t = ThreadId::parse("t2").unwrap();
            store
                .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))
                .await
                .unwrap();
            let err = engine
                .run_turn(Turn {
                    thread_id: t.clone(),
                    input: vec![MessageOp::Remove { id: "ghost".into() }],
                    from_checkpoint: None,
                    metadata: Map::new(),
                })
                .await
                .unwrap_err();
            assert_eq!(err.status(), 422);
            assert!(store.latest(&t).await.unwrap().is_none());
        });
    }
}
