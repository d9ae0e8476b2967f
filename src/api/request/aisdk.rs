//! The Vercel AI SDK's chat routes: `POST /api/chat` (a chat turn: a streamed run on
//! the chat's thread, created on first use), `GET /api/chat/{id}/messages` and `GET
//! /api/chat/{id}/stream` (resume the reply under way).

use super::route::ChatRoute;
use super::run::parse_guard;
use super::*;
use crate::api::aisdk::parse_chat_body;

/// Plans a chat route.
pub(super) fn plan_chat(route: ChatRoute<'_>, incoming: &Incoming<'_>) -> Result<Plan> {
    match route {
        ChatRoute::Send => {
            let body = incoming.body()?;
            let chat = parse_chat_body(&body, incoming.entropy)?;
            let mut run = chat_run(chat.turn);
            run.guard = parse_guard(&body, incoming.req)?;
            Ok(thread_call(chat.thread_id, ThreadCommand::Run(run)))
        }
        ChatRoute::Messages(id) => Ok(thread_call(chat_thread(id)?, ThreadCommand::ChatMessages)),
        ChatRoute::Resume(id) => Ok(thread_call(
            chat_thread(id)?,
            ThreadCommand::RunOp(RunOp::ChatStream),
        )),
    }
}

/// A chat turn as a run: streamed in `messages-tuple` mode (what the UI stream is
/// written from), resumable (its events are kept for `GET .../stream` and a LangGraph
/// `joinStream`), on a thread created on first use; its input is found in the thread.
fn chat_run(turn: crate::api::aisdk::ChatTurn) -> RunRequest {
    let kwargs = json!({
        "input": null,
        "stream_mode": ["messages-tuple"],
        "resumable": true,
        "protocol": "ai-sdk-ui-message-stream-v1",
    });
    let mut metadata = Map::new();
    metadata.insert("source_protocol".into(), json!("ai-sdk"));
    RunRequest {
        input: Vec::new(),
        if_not_exists: IfNotExists::Create,
        checkpoint_id: None,
        metadata,
        stream: Some(vec![StreamMode::MessagesTuple]),
        guard: RunGuard::default(),
        idempotency_key: None,
        idempotency_body: None,
        multitask: Multitask::Reject,
        ignored_input_keys: Vec::new(),
        delivery: Delivery {
            resumable: true,
            kwargs,
            ..Delivery::default()
        },
        assistant: RunAssistant::default(),
        interrupt_before: false,
        chat: Some(Box::new(turn)),
    }
}

/// The chat id of a path: a thread id, reported as `id`.
fn chat_thread(raw: &str) -> Result<ThreadId> {
    ThreadId::parse(raw).map_err(|err| match err {
        Error::InvalidInput { reason, .. } => Error::invalid("id", reason),
        other => other,
    })
}
