//! The thread's messages as `UIMessage`s, and a run's events written in the UI message
//! stream protocol v1: `data: {json}` chunks (`start`, `start-step`, `text-start`,
//! `text-delta`, `text-end`, `finish-step`, `message-metadata`, `finish`, `error`), then
//! `data: [DONE]`.
//!
//! The events are the run's own (the `LiveRun`'s log, as a LangGraph client gets them):
//! a chat response, a resumed chat stream and a LangGraph `joinStream` are three views
//! of one run.

use serde_json::{json, Value};

use super::TRANSCRIPT_HEADER;
use crate::api::runs::RunItem;
use crate::api::{Body, HttpResponse, SseEvent};
use crate::message::{Message, MessageType};

/// The line that ends a UI message stream.
pub const DONE_LINE: &str = "data: [DONE]\n\n";

/// A stored message as the AI SDK's `UIMessage` (`{id, role, parts, metadata?}`): the
/// inverse of [`super::ui_message`] for every message it stored. Messages written by
/// other clients map by type (a tool result is an assistant message with a
/// `data-langchain-tool` part holding the LangChain message).
pub fn ui_message_json(message: &Message) -> Value {
    let role = match message.kind {
        MessageType::Human => "user",
        MessageType::System => "system",
        MessageType::Ai | MessageType::Tool => "assistant",
    };
    let parts = match (&message.content, message.kind) {
        (_, MessageType::Tool) => {
            json!([{"type": "data-langchain-tool", "data": message.to_json()}])
        }
        (Value::String(text), MessageType::Ai) => json!([
            {"type": "step-start"},
            {"type": "text", "text": text, "state": "done"}
        ]),
        (Value::String(text), _) => json!([{"type": "text", "text": text}]),
        (Value::Array(parts), _) => Value::Array(parts.iter().map(ui_part).collect()),
        (other, _) => json!([{"type": "text", "text": other.to_string()}]),
    };
    let mut out = json!({"id": message.id, "role": role, "parts": parts});
    if let Some(metadata) = message
        .extra
        .get("additional_kwargs")
        .and_then(|kwargs| kwargs.get("metadata"))
    {
        out["metadata"] = metadata.clone();
    }
    out
}

/// A LangChain content block as a UI part: strings are text parts, blocks keep their
/// shape (a LangChain text block is a UI text part).
fn ui_part(block: &Value) -> Value {
    match block {
        Value::String(text) => json!({"type": "text", "text": text}),
        other => other.clone(),
    }
}

/// A thread's messages as the `UIMessage[]` `useChat({ messages })` restores.
pub fn ui_messages_json(messages: &[Message]) -> Value {
    Value::Array(messages.iter().map(ui_message_json).collect())
}

/// Writes one run's events as UI message stream chunks. The reply's text is one text
/// part; `start` names the id the reply is stored under; the end carries the thread's
/// head and turns (`message-metadata`) and why the model stopped (`finish`).
#[derive(Debug, Default)]
pub struct UiStream {
    /// The reply's id, once its first piece was written.
    reply_id: Option<String>,
    run_id: Option<String>,
    finish_reason: Option<String>,
    /// The last assistant message of a `values` event: the reply of a run that streamed
    /// no `messages` (a LangGraph run in `values` mode), written whole at its end.
    values_reply: Option<(String, String)>,
    failed: bool,
}

impl UiStream {
    /// A stream that has written nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The chunks of one run item, as stream text (the end includes `data: [DONE]`).
    pub fn item(&mut self, item: &RunItem) -> String {
        let chunks = match item {
            RunItem::Event(event) => self.event(event),
            RunItem::Done(response) => self.done(response),
        };
        let mut text: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        if matches!(item, RunItem::Done(_)) {
            text.push_str(DONE_LINE);
        }
        text
    }

    /// The chunks of one run event.
    pub fn event(&mut self, event: &SseEvent) -> Vec<Value> {
        match event.event.as_str() {
            "metadata" => {
                self.run_id = event.data["run_id"].as_str().map(str::to_string);
                Vec::new()
            }
            "messages" => {
                let chunk = &event.data[0];
                let id = chunk["id"].as_str().unwrap_or_default();
                let delta = chunk["content"].as_str().unwrap_or_default();
                if let Some(reason) = chunk["response_metadata"]["finish_reason"].as_str() {
                    self.finish_reason = Some(reason.to_string());
                }
                let mut chunks = self.open(id);
                if !delta.is_empty() {
                    chunks.push(json!({"type": "text-delta", "id": text_id(id), "delta": delta}));
                }
                chunks
            }
            "values" => {
                let last = event.data["messages"].as_array().and_then(|m| m.last());
                if let Some(last) = last.filter(|m| m["type"] == "ai") {
                    let text = Message {
                        content: last["content"].clone(),
                        ..Message::new(MessageType::Ai, "", "")
                    }
                    .text();
                    let id = last["id"].as_str().unwrap_or_default().to_string();
                    self.values_reply = Some((id, text));
                }
                Vec::new()
            }
            "error" => {
                self.failed = true;
                let text = event.data["message"].as_str().unwrap_or("the run failed");
                vec![json!({"type": "error", "errorText": text})]
            }
            _ => Vec::new(),
        }
    }

    /// The chunks that end the stream: an error, or the reply's end and the thread's
    /// head.
    pub fn done(&mut self, response: &HttpResponse) -> Vec<Value> {
        if self.failed {
            return Vec::new();
        }
        if response.status >= 400 {
            self.failed = true;
            let detail = response
                .json()
                .and_then(|body| body["detail"].as_str())
                .unwrap_or("the run failed");
            return vec![json!({"type": "error", "errorText": detail})];
        }
        let mut chunks = Vec::new();
        if self.reply_id.is_none() {
            if let Some((id, text)) = self.values_reply.take() {
                chunks.extend(self.open(&id));
                chunks.push(json!({"type": "text-delta", "id": text_id(&id), "delta": text}));
            }
        }
        if let Some(id) = &self.reply_id {
            chunks.push(json!({"type": "text-end", "id": text_id(id)}));
            chunks.push(json!({"type": "finish-step"}));
        }
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let mut metadata = json!({
            "checkpointId": header("x-thread-head"),
            "turns": header("x-thread-turns").and_then(|t| t.parse::<u64>().ok()),
            "runId": self.run_id,
        });
        if let Some(report) = header(TRANSCRIPT_HEADER) {
            metadata["transcript"] = serde_json::from_str(&report).unwrap_or(Value::Null);
        }
        chunks.push(json!({"type": "message-metadata", "messageMetadata": metadata}));
        let reason = finish_reason(self.finish_reason.as_deref());
        chunks.push(json!({"type": "finish", "finishReason": reason}));
        chunks
    }

    /// `start`, `start-step` and `text-start` before the reply's first piece.
    fn open(&mut self, reply_id: &str) -> Vec<Value> {
        if self.reply_id.is_some() {
            return Vec::new();
        }
        self.reply_id = Some(reply_id.to_string());
        vec![
            json!({"type": "start", "messageId": reply_id}),
            json!({"type": "start-step"}),
            json!({"type": "text-start", "id": text_id(reply_id)}),
        ]
    }
}

/// The id of the reply's one text part.
fn text_id(reply_id: &str) -> String {
    format!("{reply_id}:text")
}

/// A provider's finish reason as the AI SDK names it.
fn finish_reason(provider: Option<&str>) -> &'static str {
    match provider {
        None | Some("stop") => "stop",
        Some("length") => "length",
        Some("content_filter") => "content-filter",
        Some("tool_calls" | "function_call") => "tool-calls",
        Some(_) => "other",
    }
}

/// A run answered whole (the native backend) as a chat response: its events as a UI
/// message stream, or its error as it is (JSON with its status, as before the stream
/// opens on the worker).
pub fn collected(response: HttpResponse) -> HttpResponse {
    let Body::EventStream(events) = &response.body else {
        return response;
    };
    let mut stream = UiStream::new();
    let mut chunks: Vec<Value> = events.iter().flat_map(|e| stream.event(e)).collect();
    chunks.extend(stream.done(&response));
    HttpResponse {
        status: 200,
        body: Body::UiMessageStream(chunks),
        internal_error: response.internal_error,
        index: response.index,
        headers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::runs::{LiveEvent, RunItem};

    fn piece(id: &str, text: &str, reason: Option<&str>) -> SseEvent {
        let metadata = reason.map_or(json!({}), |r| json!({"finish_reason": r}));
        SseEvent {
            event: "messages".into(),
            data: json!([{"id": id, "content": text, "response_metadata": metadata}, {}]),
            id: None,
        }
    }

    fn kinds(text: &str) -> Vec<String> {
        text.split("\n\n")
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| match serde_json::from_str::<Value>(data) {
                Ok(chunk) => chunk["type"].as_str().unwrap_or("?").to_string(),
                Err(_) => data.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_reply_is_one_text_part_under_its_stored_id() {
        let mut stream = UiStream::new();
        let run_id = SseEvent {
            event: "metadata".into(),
            data: json!({"run_id": "r1"}),
            id: None,
        };
        let mut text = stream.item(&RunItem::Event(LiveEvent::shared(run_id)));
        for event in [
            piece("a1", "Hel", None),
            piece("a1", "lo", None),
            piece("a1", "", Some("length")),
        ] {
            text += &stream.item(&RunItem::Event(LiveEvent::shared(event)));
        }
        let done = HttpResponse::no_content()
            .with_header("x-thread-head", "cp9")
            .with_header("x-thread-turns", "2");
        text += &stream.item(&RunItem::Done(done));
        assert_eq!(
            kinds(&text).join(" "),
            "start start-step text-start text-delta text-delta text-end finish-step message-metadata finish [DONE]"
        );
        assert!(
            text.contains(r#"{"messageId":"a1","type":"start"}"#),
            "{text}"
        );
        assert!(text.contains(r#""finishReason":"length""#));
        assert!(text.contains(r#""checkpointId":"cp9""#) && text.contains(r#""turns":2"#));
        assert!(text.contains(r#""runId":"r1""#));
        assert!(!text.contains("event:"), "data lines only");
    }

    #[test]
    fn a_failure_after_the_first_piece_is_an_error_chunk() {
        let mut stream = UiStream::new();
        let mut text = stream.item(&RunItem::Event(LiveEvent::shared(piece("a1", "Hi", None))));
        let failed = HttpResponse::error(crate::error::Error::Upstream {
            reason: "model timed out".into(),
        });
        text += &stream.item(&RunItem::Done(failed));
        assert_eq!(
            kinds(&text).join(" "),
            "start start-step text-start text-delta error [DONE]"
        );
    }

    #[test]
    fn a_run_streamed_as_values_is_written_whole_at_its_end() {
        let mut stream = UiStream::new();
        let values = SseEvent {
            event: "values".into(),
            data: json!({"messages": [{"type": "human", "id": "u", "content": "Hi"}, {"type": "ai", "id": "a", "content": "Hello"}]}),
            id: None,
        };
        let mut text = stream.item(&RunItem::Event(LiveEvent::shared(values)));
        text += &stream.item(&RunItem::Done(HttpResponse::no_content()));
        assert!(text.contains(r#""delta":"Hello""#), "{text}");
        assert_eq!(kinds(&text)[0], "start");
    }

    #[test]
    fn messages_round_trip_through_ui_messages() {
        let entropy = crate::runtime::SeededEntropy::new(3);
        for ui in [
            json!({"id": "u", "role": "user", "parts": [{"type": "text", "text": "Hi"}]}),
            json!({"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be brief"}]}),
            json!({"id": "a", "role": "assistant", "parts": [{"type": "step-start"}, {"type": "text", "text": "Yo", "state": "done"}]}),
            json!({"id": "b", "role": "assistant", "parts": [{"type": "text", "text": "plain"}]}),
            json!({"id": "f", "role": "user", "metadata": {"k": [1]}, "parts": [
                {"type": "file", "mediaType": "text/plain", "url": "data:,x"},
                {"type": "data-x", "data": {"a": 1}},
                {"type": "text", "text": "see", "providerMetadata": {"p": {}}},
                {"type": "unknown-part"}
            ]}),
        ] {
            let stored = super::super::ui_message(&ui, "m", &entropy).unwrap();
            assert_eq!(ui_message_json(&stored), ui, "{ui}");
        }
        let reply = Message::new(MessageType::Ai, "r", "Hello");
        assert_eq!(
            super::super::ui_message(&ui_message_json(&reply), "m", &entropy).unwrap(),
            reply
        );
    }
}
