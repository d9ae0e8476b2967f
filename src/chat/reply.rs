//! The second half of a turn: the model's reply streamed and stored, or stopped midway
//! (a cancel, a newer run) with what was said so far kept or dropped.

use std::cell::RefCell;

use futures_util::future::{select, Either};
use serde_json::json;

use super::engine::{Engine, StoredInput, TurnOutcome};
use super::{ChatModel, DeltaSink, NeverStop, ReplyEnd, StopAction, StopSignal};
use crate::checkpoint::{CheckpointSource, Checkpointer};
use crate::error::{Error, Result};
use crate::message::{Message, MessageOp, MessageType};

/// How a reply ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Replied {
    /// The model finished and its reply is stored.
    Complete(TurnOutcome),
    /// The run was stopped before the model finished.
    Stopped {
        /// How it was asked to stop.
        action: StopAction,
        /// For an interrupt, the partial reply stored (when the model had said anything).
        partial: Option<TurnOutcome>,
    },
}

/// Collects the reply and passes each delta on.
struct ReplyCollector<'a> {
    text: RefCell<String>,
    sink: &'a dyn DeltaSink,
}

impl DeltaSink for ReplyCollector<'_> {
    fn delta(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.text.borrow_mut().push_str(text);
        self.sink.delta(text);
    }
}

impl<C: Checkpointer, M: ChatModel> Engine<'_, C, M> {
    /// The second half of a turn: stream the model's reply to `sink` and store it, whole,
    /// as the checkpoint after the input's. A model failure stores nothing more (the
    /// input stays) and is returned.
    pub async fn reply(&self, input: StoredInput, sink: &dyn DeltaSink) -> Result<TurnOutcome> {
        match self.reply_until(input, sink, &NeverStop).await? {
            Replied::Complete(outcome) => Ok(outcome),
            Replied::Stopped { .. } => Err(Error::backend("a reply that cannot stop stopped")),
        }
    }

    /// [`Engine::reply`], racing the model against `stop`: stopped, an interrupt stores
    /// the reply so far (marked `interrupted` in its checkpoint's metadata) and a rollback
    /// stores nothing.
    pub async fn reply_until(
        &self,
        input: StoredInput,
        sink: &dyn DeltaSink,
        stop: &dyn StopSignal,
    ) -> Result<Replied> {
        if let (Some(reply), Some(base)) = (&input.answered, &input.base) {
            // A retry of an answered turn: the original reply, once more.
            sink.delta(&reply.text());
            return Ok(Replied::Complete(TurnOutcome {
                input_checkpoint: None,
                checkpoint: base.clone(),
                reply: reply.clone(),
                context: input.context,
                end: ReplyEnd {
                    usage: None,
                    finish_reason: Some("stop".into()),
                },
            }));
        }
        let collector = ReplyCollector {
            text: RefCell::new(String::new()),
            sink,
        };
        let streamed = {
            let model = std::pin::pin!(self.model.stream(&input.context, &collector));
            match select(model, stop.stopped()).await {
                Either::Left((end, _)) => Ok(end?),
                Either::Right((action, _)) => Err(action),
            }
        };
        let text = collector.text.take();
        match streamed {
            Ok(end) => Ok(Replied::Complete(self.store_reply(input, text, end).await?)),
            Err(StopAction::Interrupt) if !text.is_empty() => {
                let end = ReplyEnd {
                    usage: None,
                    finish_reason: None,
                };
                let mut input = input;
                input.metadata.insert("interrupted".into(), json!(true));
                let partial = self.store_reply(input, text, end).await?;
                Ok(Replied::Stopped {
                    action: StopAction::Interrupt,
                    partial: Some(partial),
                })
            }
            Err(action) => Ok(Replied::Stopped {
                action,
                partial: None,
            }),
        }
    }

    /// Stores the reply `text` as the checkpoint after the input's.
    async fn store_reply(
        &self,
        input: StoredInput,
        text: String,
        end: ReplyEnd,
    ) -> Result<TurnOutcome> {
        let reply = Message::new(MessageType::Ai, input.reply_id, text);
        let mut metadata = input.metadata;
        if let Some(usage) = end.usage {
            metadata.insert(
                "usage".into(),
                json!({"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}),
            );
        }
        // A fork without input: the reply itself is the branch's first checkpoint.
        let source = if input.fork && input.input_checkpoint.is_none() {
            CheckpointSource::Fork
        } else {
            CheckpointSource::Loop
        };
        let checkpoint = self
            .commit(
                &input.thread_id,
                input.base.as_ref(),
                input.newest.as_ref(),
                vec![MessageOp::Upsert {
                    message: reply.clone(),
                }],
                source,
                metadata,
            )
            .await?;
        Ok(TurnOutcome {
            input_checkpoint: input.input_checkpoint,
            checkpoint,
            reply,
            context: input.context,
            end,
        })
    }
}
