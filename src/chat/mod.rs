//! The turn engine: load the thread, apply the input, ask the model, persist.

pub mod context;
pub mod demo;
pub mod sse;

use serde_json::{json, Map, Value};

use crate::checkpoint::{
    CheckpointId, CheckpointRecord, CheckpointSource, Checkpointer, NewCheckpoint, Window,
};
use crate::error::{Error, Result};
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
    /// The assistant's reply, as stored.
    pub reply: Message,
    /// What the model saw: the tail of the state with the input applied.
    pub context: Vec<Message>,
}

/// How many of the newest messages a turn reads and shows the model. A turn never reads
/// the whole thread, so its cost does not grow with the thread.
pub const CONTEXT_MAX_MESSAGES: usize = 100;

impl<C: Checkpointer, M: ChatModel> Engine<'_, C, M> {
    /// Runs one turn: read the tail of the state (head, or `from_checkpoint`), apply the
    /// input with `add_messages` semantics, ask the model, and store one checkpoint
    /// holding the input and the reply.
    ///
    /// Nothing is stored unless the whole turn succeeds: an invalid input (e.g. removing
    /// an unknown id), a model failure or a storage conflict leave the thread unchanged.
    pub async fn run_turn(&self, turn: Turn) -> Result<TurnOutcome> {
        let window = self
            .window(&turn.thread_id, turn.from_checkpoint.as_ref(), &turn.input)
            .await?;
        let context = apply_to_view(window.messages.clone(), &turn.input)?;
        let reply_text = self.model.reply(&context).await?;
        let reply = Message::new(MessageType::Ai, uuid_v4(self.entropy), reply_text);
        let source = if forked(&window) {
            CheckpointSource::Fork
        } else {
            CheckpointSource::Loop
        };
        let writes = json!({"__input__": {"messages": turn.input.len()}, "agent": {"messages": 1}});
        let mut ops = turn.input;
        ops.push(MessageOp::Upsert {
            message: reply.clone(),
        });
        let checkpoint = self
            .commit(&turn.thread_id, window, ops, source, writes, turn.metadata)
            .await?;
        Ok(TurnOutcome {
            checkpoint,
            reply,
            context,
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
    ) -> Result<CheckpointRecord> {
        let window = self.window(thread_id, from_checkpoint, &ops).await?;
        let writes = json!({ as_node: {"messages": ops.len()} });
        self.commit(
            thread_id,
            window,
            ops,
            CheckpointSource::Update,
            writes,
            Map::new(),
        )
        .await
    }

    /// Reads the window for `input` and checks that the input applies to the state.
    async fn window(
        &self,
        thread_id: &ThreadId,
        from: Option<&CheckpointId>,
        input: &[MessageOp],
    ) -> Result<Window> {
        let ids: Vec<&str> = input.iter().filter_map(MessageOp::message_id).collect();
        // Room for the input, so the model sees at most CONTEXT_MAX_MESSAGES.
        let room = CONTEXT_MAX_MESSAGES.saturating_sub(input.len());
        let window = self.store.window(thread_id, from, room, &ids).await?;
        // Removing an id the state does not hold fails, as in LangGraph's reducer.
        let mut known = window.existing.clone();
        for op in input {
            match op {
                MessageOp::Upsert { message } => {
                    known.insert(message.id.clone());
                }
                MessageOp::Remove { id } => {
                    if !known.remove(id) {
                        return Err(Error::invalid(
                            "messages",
                            format!("cannot remove message '{id}': no message with that id"),
                        ));
                    }
                }
                MessageOp::RemoveAll => known.clear(),
            }
        }
        Ok(window)
    }

    async fn commit(
        &self,
        thread_id: &ThreadId,
        window: Window,
        ops: Vec<MessageOp>,
        source: CheckpointSource,
        writes: Value,
        mut metadata: Map<String, Value>,
    ) -> Result<CheckpointRecord> {
        let now = self.clock.now_ms();
        let step = window.checkpoint.as_ref().map_or(0, CheckpointRecord::step) + 1;
        metadata.insert("source".into(), json!(source.as_str()));
        metadata.insert("step".into(), json!(step));
        metadata.insert("writes".into(), writes);
        let checkpoint = NewCheckpoint {
            record: CheckpointRecord {
                thread_id: thread_id.clone(),
                checkpoint_id: CheckpointId::next(window.newest.as_ref(), now, self.entropy),
                parent_id: window.checkpoint.map(|p| p.checkpoint_id),
                created_at_ms: now,
                metadata,
            },
            ops,
        };
        self.store.put(&checkpoint).await?;
        Ok(checkpoint.record)
    }
}

/// Whether the window continues from a checkpoint older than the thread's newest.
fn forked(window: &Window) -> bool {
    match (&window.checkpoint, &window.newest) {
        (Some(base), Some(newest)) => base.checkpoint_id != *newest,
        _ => false,
    }
}

/// The model's view: the window with the input applied. A removal of a message outside
/// the window (valid, checked against the whole state) has nothing to remove here.
fn apply_to_view(view: Vec<Message>, input: &[MessageOp]) -> Result<Vec<Message>> {
    let in_view: std::collections::HashSet<&str> = view.iter().map(|m| m.id.as_str()).collect();
    let mut added: std::collections::HashSet<&str> = std::collections::HashSet::new();
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
            assert_eq!(first.context.len(), 1, "the model saw the input");
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
            assert_eq!(
                fork.context.len(),
                3,
                "the fork's model saw turn one and the input"
            );
            assert!(
                !fork.reply.text().contains("What's my name"),
                "{}",
                fork.reply.text()
            );

            // A state update: no model call, source "update".
            let record = engine
                .update_state(&t, human("edited"), None, "agent")
                .await
                .unwrap();
            assert_eq!(record.metadata["source"], "update");
            assert_eq!(
                record.parent_id,
                Some(fork.checkpoint.checkpoint_id.clone())
            );
            let state = store.latest(&t).await.unwrap().unwrap();
            assert_eq!(state.messages.len(), 5);
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
