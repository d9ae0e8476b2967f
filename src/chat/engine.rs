//! The engine: one turn as two halves, the input stored before the model is asked and
//! the reply stored after it answered; and state updates without a model.

use serde_json::{json, Map, Value};

use super::context::{self, CONTEXT_READ_MAX};
use super::input::{apply_to_view, forked, retried, Retried};
use super::{ChatModel, ContextSettings, NoSink, ReplyEnd};
use crate::checkpoint::keys::IdempotencyKeys;
use crate::checkpoint::{
    CheckpointId, CheckpointRecord, CheckpointSource, Checkpointer, NewCheckpoint, Window,
};
use crate::error::{Error, Result};
use crate::message::{Message, MessageOp, MessageType};
use crate::runtime::{uuid_v4, Clock, Entropy};
use crate::thread::ThreadId;

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
    /// What the model is shown.
    pub context: ContextSettings,
    /// Where answered runs' `Idempotency-Key`s are kept for a day (the thread object's
    /// SQLite); without it a key is found among the thread's newest checkpoints only.
    pub keys: Option<&'a dyn IdempotencyKeys>,
}

impl<'a, C, M> Engine<'a, C, M> {
    /// An engine with the default context settings.
    pub fn new(store: &'a C, model: &'a M, clock: &'a dyn Clock, entropy: &'a dyn Entropy) -> Self {
        Engine {
            store,
            model,
            clock,
            entropy,
            context: ContextSettings::default(),
            keys: None,
        }
    }

    /// The same engine over another store.
    pub fn on<'b, D>(&self, store: &'b D) -> Engine<'b, D, M>
    where
        'a: 'b,
    {
        Engine {
            store,
            model: self.model,
            clock: self.clock,
            entropy: self.entropy,
            context: self.context.clone(),
            keys: self.keys,
        }
    }
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
    /// The checkpoint holding the input, stored before the model was asked; `None` for
    /// a turn without input.
    pub input_checkpoint: Option<CheckpointRecord>,
    /// The checkpoint holding the reply (the new head).
    pub checkpoint: CheckpointRecord,
    /// The assistant's reply, as stored.
    pub reply: Message,
    /// What the model was shown: the context window of the state with the input applied.
    pub context: Vec<Message>,
    /// How the model's reply ended.
    pub end: ReplyEnd,
}

/// A turn whose input is stored: what the model will be shown and where its reply goes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInput {
    /// The thread.
    pub thread_id: ThreadId,
    /// The checkpoint holding the input; `None` for a turn without input.
    pub input_checkpoint: Option<CheckpointRecord>,
    /// The checkpoint the reply will follow (the input's, else the one continued from).
    pub base: Option<CheckpointRecord>,
    /// The context window the model will be shown.
    pub context: Vec<Message>,
    /// The id the reply will have (streamed and stored under it).
    pub reply_id: String,
    /// The step of the reply's checkpoint.
    pub reply_step: i64,
    /// Metadata the reply's checkpoint gets.
    pub metadata: Map<String, Value>,
    /// A retry of a turn that was already answered: this reply, stored at `base`.
    /// Nothing is stored and no model is asked.
    pub answered: Option<Message>,
    pub(super) newest: Option<CheckpointId>,
    pub(super) fork: bool,
}

impl<C: Checkpointer, M: ChatModel> Engine<'_, C, M> {
    /// Runs one whole turn: [`Engine::store_input`], then [`Engine::reply`].
    pub async fn run_turn(&self, turn: Turn) -> Result<TurnOutcome> {
        let input = self.store_input(turn).await?;
        self.reply(input, &NoSink).await
    }

    /// The first half of a turn: read the tail of the state (head, or
    /// `from_checkpoint`), apply the input with `add_messages` semantics and store it as
    /// a checkpoint, so it is durable before any model is asked. An invalid input (e.g.
    /// removing an unknown id) or a storage conflict stores nothing.
    pub async fn store_input(&self, turn: Turn) -> Result<StoredInput> {
        let window = self
            .window(&turn.thread_id, turn.from_checkpoint.as_ref(), &turn.input)
            .await?;
        let fork = forked(&window);
        let mut turn = turn;
        let mut answered = None;
        if turn.input.is_empty() {
            // A run without input resumes the state, as LangGraph's `input: null` does
            // (agent-chat-ui's regenerate): a state that ends with the user's turn is
            // answered; one the model already answered has nothing left to run, and its
            // last reply is the run's result, stored nothing new.
            match window.messages.last() {
                Some(last) if last.kind == MessageType::Ai => answered = Some(last.clone()),
                Some(_) => {}
                None => {
                    return Err(Error::invalid(
                        "input",
                        "is required: the thread has no messages to continue from; send {\"input\": {\"messages\": [...]}}",
                    ))
                }
            }
        }
        match retried(&window.messages, &window.existing, &turn.input) {
            Retried::No => {}
            // Stored before, never answered (e.g. the model failed): answer it now.
            Retried::Unanswered => turn.input.clear(),
            Retried::Answered(reply) => {
                turn.input.clear();
                answered = Some(reply);
            }
        }
        let view = apply_to_view(window.messages.clone(), &turn.input)?;
        let input_checkpoint = if turn.input.is_empty() {
            None
        } else {
            let source = if fork {
                CheckpointSource::Fork
            } else {
                CheckpointSource::Input
            };
            let record = self
                .commit(
                    &turn.thread_id,
                    window.checkpoint.as_ref(),
                    window.newest.as_ref(),
                    turn.input,
                    source,
                    turn.metadata.clone(),
                )
                .await?;
            Some(record)
        };
        let newest = match &input_checkpoint {
            Some(record) => Some(record.checkpoint_id.clone()),
            None => window.newest.clone(),
        };
        let base = input_checkpoint.clone().or(window.checkpoint);
        let reply_step = base.as_ref().map_or(0, CheckpointRecord::step) + 1;
        Ok(StoredInput {
            thread_id: turn.thread_id,
            context: context::context_window(
                self.context.system_prompt.as_deref(),
                &view,
                self.context.budget,
            ),
            input_checkpoint,
            base,
            reply_id: answered
                .as_ref()
                .map_or_else(|| uuid_v4(self.entropy), |m| m.id.clone()),
            reply_step,
            newest,
            fork,
            metadata: turn.metadata,
            answered,
        })
    }

    /// A turn that `checkpoint` (a reply) already answered: for retries that name the
    /// original run (an idempotency key). Reads the state there; stores nothing.
    pub async fn answered_at(
        &self,
        thread_id: &ThreadId,
        checkpoint: &CheckpointId,
    ) -> Result<StoredInput> {
        let snapshot = self.store.get(thread_id, checkpoint).await?;
        let reply = snapshot
            .messages
            .last()
            .filter(|m| m.kind == MessageType::Ai)
            .cloned()
            .ok_or_else(|| {
                Error::backend(format_args!("checkpoint {checkpoint} holds no reply"))
            })?;
        Ok(StoredInput {
            thread_id: thread_id.clone(),
            input_checkpoint: None,
            reply_id: reply.id.clone(),
            reply_step: snapshot.checkpoint.step(),
            base: Some(snapshot.checkpoint),
            context: Vec::new(),
            metadata: Map::new(),
            answered: Some(reply),
            newest: None,
            fork: false,
        })
    }

    /// Applies `ops` to the state (head, or `from_checkpoint`) without running the model,
    /// and stores them as one checkpoint with `source: "update"`, as LangGraph's
    /// `update_state` does.
    pub async fn update_state(
        &self,
        thread_id: &ThreadId,
        ops: Vec<MessageOp>,
        from_checkpoint: Option<&CheckpointId>,
    ) -> Result<CheckpointRecord> {
        let window = self.window(thread_id, from_checkpoint, &ops).await?;
        self.commit(
            thread_id,
            window.checkpoint.as_ref(),
            window.newest.as_ref(),
            ops,
            CheckpointSource::Update,
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
        // Room for the input, so the model is offered at most the budget's messages.
        let room = self
            .context
            .budget
            .max_messages
            .min(CONTEXT_READ_MAX)
            .saturating_sub(input.len());
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

    /// Stores `ops` as the checkpoint after `parent`; its id must exceed `newest`. Its
    /// metadata is LangGraph's (`source`, `step`; no `writes`, as since LangGraph 1.0).
    pub(super) async fn commit(
        &self,
        thread_id: &ThreadId,
        parent: Option<&CheckpointRecord>,
        newest: Option<&CheckpointId>,
        ops: Vec<MessageOp>,
        source: CheckpointSource,
        mut metadata: Map<String, Value>,
    ) -> Result<CheckpointRecord> {
        let now = self.clock.now_ms();
        let step = parent.map_or(0, CheckpointRecord::step) + 1;
        // A reply completes a turn; the count rides along the branch, so the head always
        // says how many turns the thread has (the amnesia guard compares it).
        let turns = parent.map_or(0, CheckpointRecord::turns)
            + u64::from(
                matches!(source, CheckpointSource::Loop)
                    || (source == CheckpointSource::Fork && ops.iter().any(is_reply)),
            );
        metadata.insert("source".into(), json!(source.as_str()));
        metadata.insert("step".into(), json!(step));
        metadata.insert("turns".into(), json!(turns));
        let checkpoint = NewCheckpoint {
            record: CheckpointRecord {
                thread_id: thread_id.clone(),
                checkpoint_id: CheckpointId::next(newest, now, self.entropy),
                parent_id: parent.map(|p| p.checkpoint_id.clone()),
                created_at_ms: now,
                metadata,
            },
            ops,
        };
        self.store.put(&checkpoint).await?;
        Ok(checkpoint.record)
    }
}

fn is_reply(op: &MessageOp) -> bool {
    matches!(op, MessageOp::Upsert { message } if message.kind == MessageType::Ai)
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
    fn a_turn_stores_its_input_then_its_reply() {
        pollster::block_on(async {
            let store = MemoryCheckpointer::new();
            let clock = ManualClock::new(1_000);
            let entropy = SeededEntropy::new(9);
            let engine = Engine::new(&store, &MemoryDemoResponder, &clock, &entropy);
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
            let input = first.input_checkpoint.clone().unwrap();
            assert_eq!(input.parent_id, None);
            assert_eq!(input.metadata["source"], "input");
            assert_eq!(
                first.checkpoint.parent_id,
                Some(input.checkpoint_id.clone()),
                "the reply follows the stored input"
            );
            assert_eq!(first.checkpoint.step(), 2);
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
                second.input_checkpoint.unwrap().parent_id,
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
            assert_eq!(fork.input_checkpoint.unwrap().metadata["source"], "fork");
            assert_eq!(fork.checkpoint.metadata["source"], "loop");
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
                .update_state(&t, human("edited"), None)
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
    fn an_invalid_input_stores_nothing() {
        pollster::block_on(async {
            let store = MemoryCheckpointer::new();
            let clock = ManualClock::new(1_000);
            let entropy = SeededEntropy::new(9);
            let engine = Engine::new(&store, &MemoryDemoResponder, &clock, &entropy);
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
            assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
            assert!(store.latest(&t).await.unwrap().is_none());
        });
    }
}
