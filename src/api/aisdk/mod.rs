//! The Vercel AI SDK's chat protocol (`useChat`, `AbstractChat`, `DefaultChatTransport`):
//! `POST /api/chat` answered in the UI message stream protocol v1, `GET
//! /api/chat/{id}/messages`, and `GET /api/chat/{id}/stream` (resume).
//!
//! A chat is a thread and a chat turn is a run: the request becomes a [`RunRequest`]
//! carrying a [`ChatTurn`], run by the same engine, in the same thread object, with the
//! same [`LiveRun`](crate::api::runs::LiveRun) and run record as a LangGraph run. Only
//! two things are the AI SDK's own: what is new in the transcript the client sends
//! ([`chat_input`], read against the stored state in the thread), and how the run's
//! events are written ([`UiStream`]). So a LangGraph client, the Python savers and the
//! demo see the same conversation, and a resumed chat stream follows the very run a
//! LangGraph `joinStream` would.
//!
//! [`RunRequest`]: crate::api::RunRequest

mod decode;
mod encode;
mod transcript;

use serde::{Deserialize, Serialize};

pub use decode::{parse_chat_body, ui_message, ChatBody};
pub use encode::{collected, ui_message_json, ui_messages_json, UiStream, DONE_LINE};
pub use transcript::{chat_input, reconcile, Reconciled, TranscriptReport};

use crate::message::Message;

/// The response header that names the UI message stream protocol (`v1`), as the AI
/// SDK's `createUIMessageStreamResponse` sends it.
pub const UI_STREAM_HEADER: &str = "x-vercel-ai-ui-message-stream";

/// The protocol version this server speaks.
pub const UI_STREAM_VERSION: &str = "v1";

/// The metadata key of a chat run (and so of its input checkpoint) under which a
/// transcript that disagreed with the stored history is reported.
pub const TRANSCRIPT_KEY: &str = "aisdk_transcript";

/// The header of a finished chat run's response that carries the same report, for the
/// stream's closing `message-metadata`.
pub const TRANSCRIPT_HEADER: &str = "x-edge-memory-transcript";

/// Most messages a whole transcript may hold: each is looked up by id in the thread
/// (one indexed read each), so a turn's cost stays bounded; longer chats send only the
/// new message (`message`, the slim body).
pub const TRANSCRIPT_MESSAGES_MAX: usize = 2_000;

/// How many of the thread's last messages a turn that names a message (`messageId`: a
/// regenerate, an edit) reads, to find it and what follows it.
pub const TRANSCRIPT_COMPARE_MAX: usize = 100;

/// How many of the thread's last messages a plain turn compares the transcript with
/// (edits, stored messages it lacks): older messages sent again are taken as stored. Kept
/// small: a plain chat turn reads this many rows on top of the model's context window.
pub const TRANSCRIPT_TAIL: usize = 10;

/// What the client asked the turn to do (`trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `submit-message`: answer the transcript (after `messageId` when it edits one).
    #[default]
    Submit,
    /// `regenerate-message`: replace the assistant message `messageId` (or the last).
    Regenerate,
}

/// A chat turn as the AI SDK sent it, decoded; the thread reads it against its stored
/// history ([`chat_input`]) to find the run's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatTurn {
    /// The messages sent, as the thread stores them: the whole transcript
    /// (`messages`), or only the new one (`message`).
    pub messages: Vec<Message>,
    /// Whether `messages` is the whole transcript.
    pub whole: bool,
    /// `trigger`.
    pub trigger: Trigger,
    /// `messageId`: the message regenerated, or the user message edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}
