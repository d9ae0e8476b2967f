//! The turn engine: load the thread, store the input, ask the model, store the reply.
//!
//! Here are the model's ports ([`ChatModel`], [`DeltaSink`]); [`Engine`] (in `engine`)
//! runs the turns, `input` says how an input meets the stored state, and the other
//! modules are the context window and the providers.

pub mod context;
pub mod demo;
mod engine;
mod input;
pub mod openai;
pub mod overrides;
mod reply;
pub mod sse;
pub mod upstream;
pub mod workers_ai;

use crate::error::Result;
use crate::message::Message;

pub use context::{ContextBudget, CONTEXT_MAX_CHARS, CONTEXT_MAX_MESSAGES, CONTEXT_READ_MAX};
pub use engine::{Engine, StoredInput, Turn, TurnOutcome};
pub use overrides::ModelOverrides;
pub use reply::Replied;

/// Token counts a provider reported for one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Tokens of the prompt (the context window).
    pub input_tokens: u64,
    /// Tokens of the reply.
    pub output_tokens: u64,
}

/// How a model's reply ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplyEnd {
    /// Token usage, when the provider reports it.
    pub usage: Option<Usage>,
    /// Why the model stopped (`stop`, `length`, ...), when it says.
    pub finish_reason: Option<String>,
}

/// Receives a reply's text as the model produces it.
pub trait DeltaSink {
    /// `text` follows what was sent before.
    fn delta(&self, text: &str);
}

/// A chat model: given the conversation, stream the assistant's reply.
///
/// Implementations must read the conversation only from `context` (the thread's
/// persisted state plus the new input, trimmed to the context window), never from their
/// own memory: that is what makes the reply survive a cold start. Futures are not
/// `Send` (see [`Checkpointer`](crate::checkpoint::Checkpointer)).
#[allow(async_fn_in_trait)]
pub trait ChatModel {
    /// A short name for `/info` and logs.
    fn name(&self) -> &str;

    /// Streams the reply to `context` (oldest first, a system prompt first if any) into
    /// `sink`, in order; the reply is the concatenation of what was sent. An error after
    /// some text was sent means the reply is incomplete and is not stored.
    async fn stream(&self, context: &[Message], sink: &dyn DeltaSink) -> Result<ReplyEnd>;
}

/// What the model is shown of a thread: the system prompt and the budgets
/// (`SYSTEM_PROMPT`, `CONTEXT_MAX_MESSAGES`, `CONTEXT_MAX_CHARS`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContextSettings {
    /// Shown first to the model on every turn; never stored in the thread.
    pub system_prompt: Option<String>,
    /// How much of the conversation the model sees.
    pub budget: ContextBudget,
}

/// What stopping a run under way asks of it (a `cancel`, or a newer run's
/// `multitask_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopAction {
    /// Stop; keep what it wrote (its input, and the reply so far).
    Interrupt,
    /// Stop and remove everything it wrote.
    Rollback,
}

/// Tells a turn under way that it must stop: the engine races the model against it.
pub trait StopSignal {
    /// Resolves when the turn must stop, with how.
    fn stopped(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = StopAction> + '_>>;
}

/// A [`StopSignal`] that never fires.
pub struct NeverStop;

impl StopSignal for NeverStop {
    fn stopped(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = StopAction> + '_>> {
        Box::pin(std::future::pending())
    }
}

/// A [`DeltaSink`] that drops everything.
pub struct NoSink;

impl DeltaSink for NoSink {
    fn delta(&self, _: &str) {}
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

    #[test]
    fn chunks_concatenate_to_the_reply() {
        for text in ["", "one", "Nice to meet you, Sam!  Twice", " lead"] {
            assert_eq!(stream_chunks(text).concat(), text);
        }
        assert_eq!(stream_chunks("a b  c"), ["a ", "b  ", "c"]);
    }
}
