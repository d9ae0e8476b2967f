//! Ports to model providers, and what every provider shares.
//!
//! The core builds requests and reads streams; the edge layer only moves bytes
//! ([`HttpClient`] over `fetch`, [`AiBinding`] over the Workers AI binding) and owns the
//! timeouts. Native tests script both ports.

use serde_json::{json, Value};

use super::sse::{SseFrame, SseParser};
use crate::error::{Error, Result};
use crate::message::{Message, MessageType};

/// Default `MODEL_TIMEOUT_MS`: the longest wait for a provider's response headers or
/// for its next chunk. A hung upstream then fails the turn instead of holding the
/// thread busy.
pub const MODEL_TIMEOUT_MS_DEFAULT: u64 = 60_000;

/// The longest a whole reply may take, in ms (`MODEL_DEADLINE_MS`), however steadily it
/// streams: a model that drips tokens forever would otherwise hold the thread (and the
/// Durable Object's billed duration) without end.
pub const MODEL_DEADLINE_MS_DEFAULT: u64 = 300_000;

/// Most bytes of an upstream error body read to explain the error.
pub const UPSTREAM_ERROR_BODY_MAX_BYTES: usize = 4 * 1024;

/// A request to a provider.
#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// Where to `POST`.
    pub url: String,
    /// Request headers; may hold a credential, so this type has no `Debug`.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: String,
}

/// A response body, read chunk by chunk as the network delivers it.
#[allow(async_fn_in_trait)]
pub trait ByteSource {
    /// The next chunk; `None` at the end. Waiting longer than the client's timeout is
    /// [`Error::UpstreamTimeout`].
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>>;
}

/// A provider's response, once its headers arrived.
pub struct UpstreamResponse<B> {
    /// The HTTP status.
    pub status: u16,
    /// The `content-type` header, lowercased.
    pub content_type: String,
    /// The `retry-after` header, if any.
    pub retry_after: Option<String>,
    /// The body.
    pub body: B,
}

/// Sends HTTP requests to a provider (`fetch` on Workers).
#[allow(async_fn_in_trait)]
pub trait HttpClient {
    /// The response body type.
    type Body: ByteSource;

    /// `POST`s `request`; resolves when the response headers arrive. A network failure
    /// is [`Error::Upstream`], no headers within the timeout [`Error::UpstreamTimeout`].
    async fn post(&self, request: &UpstreamRequest) -> Result<UpstreamResponse<Self::Body>>;
}

/// The Workers AI binding (`env.AI`).
#[allow(async_fn_in_trait)]
pub trait AiBinding {
    /// The streamed output body type.
    type Body: ByteSource;

    /// `AI.run(model, input)` with `input.stream = true`: a `text/event-stream` body.
    async fn run(&self, model: &str, input: &Value) -> Result<Self::Body>;
}

/// Reads a whole body, keeping at most `max` bytes (for error explanations).
pub async fn read_prefix<B: ByteSource>(body: &mut B, max: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await? {
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// Reads a `text/event-stream` body, calling `on_data` with each event's data until
/// `[DONE]` or the end. Returns whether `[DONE]` was seen.
pub async fn read_events<B: ByteSource>(
    body: &mut B,
    mut on_data: impl FnMut(&str) -> Result<()>,
) -> Result<bool> {
    let mut parser = SseParser::new();
    loop {
        let frames = match body.next_chunk().await? {
            Some(chunk) => parser.push(&chunk)?,
            None => {
                for frame in parser.finish()? {
                    match frame {
                        SseFrame::Data(data) => on_data(&data)?,
                        SseFrame::Done => return Ok(true),
                    }
                }
                return Ok(false);
            }
        };
        for frame in frames {
            match frame {
                SseFrame::Data(data) => on_data(&data)?,
                SseFrame::Done => return Ok(true),
            }
        }
    }
}

/// The OpenAI chat `role` of a message type (Workers AI uses the same names).
pub fn chat_role(kind: MessageType) -> &'static str {
    match kind {
        MessageType::Human => "user",
        MessageType::Ai => "assistant",
        MessageType::System => "system",
        MessageType::Tool => "tool",
    }
}

/// The context as OpenAI chat messages: `{role, content}`, plus `tool_calls` on AI
/// messages (LangChain's `{id, name, args}` in OpenAI's function form) and
/// `tool_call_id` on tool results, so a tool exchange reads as one to the model.
pub fn chat_messages(context: &[Message]) -> Vec<Value> {
    context
        .iter()
        .map(|message| {
            let mut out = json!({
                "role": chat_role(message.kind),
                "content": message.text(),
            });
            if let Some(name) = &message.name {
                out["name"] = json!(name);
            }
            if let Some(call_id) = &message.tool_call_id {
                out["tool_call_id"] = json!(call_id);
            }
            let calls: Vec<Value> = message
                .extra
                .get("tool_calls")
                .and_then(Value::as_array)
                .map(|calls| calls.iter().map(openai_tool_call).collect())
                .unwrap_or_default();
            if message.kind == MessageType::Ai && !calls.is_empty() {
                out["tool_calls"] = Value::Array(calls);
            }
            out
        })
        .collect()
}

fn openai_tool_call(call: &Value) -> Value {
    // Already in OpenAI's form (a client that stores raw provider messages).
    if call.get("function").is_some() {
        return call.clone();
    }
    let arguments = match call.get("args") {
        Some(Value::String(s)) => s.clone(),
        Some(args) => args.to_string(),
        None => "{}".to_string(),
    };
    json!({
        "id": call.get("id").cloned().unwrap_or(Value::Null),
        "type": "function",
        "function": {"name": call.get("name").cloned().unwrap_or(Value::Null), "arguments": arguments},
    })
}

/// The `message` of a provider's JSON error body (`{"error": {"message": ...}}`,
/// `{"error": "..."}`, `{"detail": ...}`), else the body's start, with `secret` (the
/// API key) redacted wherever it appears.
pub fn error_message(body: &[u8], secret: Option<&str>) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            let error = v.get("error").or_else(|| v.get("detail"))?;
            Some(match error {
                Value::String(s) => s.clone(),
                other => other
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| other.to_string(), str::to_string),
            })
        })
        .unwrap_or_else(|| text.trim().to_string());
    let mut message: String = message.chars().take(300).collect();
    if let Some(secret) = secret.filter(|s| s.len() >= 4) {
        message = message.replace(secret, "***");
    }
    message
}

/// The error for a provider's non-2xx answer; `what` names the provider and `hint`
/// what to check for auth and not-found errors.
pub fn status_error(
    provider: &str,
    status: u16,
    message: &str,
    retry_after: Option<&str>,
    auth_hint: &str,
    not_found_hint: &str,
) -> Error {
    let said = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    match status {
        401 | 403 => Error::Upstream {
            reason: format!(
                "{provider} refused the credentials ({status}); check {auth_hint}{said}"
            ),
        },
        404 => Error::Upstream {
            reason: format!("{provider} answered 404; check {not_found_hint}{said}"),
        },
        429 => Error::UpstreamBusy {
            reason: format!(
                "{provider} is rate-limiting requests (429){}{said}",
                retry_after
                    .map(|s| format!("; retry after {s} s"))
                    .unwrap_or_default()
            ),
        },
        _ => Error::Upstream {
            reason: format!("{provider} failed ({status}){said}"),
        },
    }
}

#[cfg(test)]
pub(crate) mod scripted {
    //! Ports that replay scripted bytes, for native tests of the providers.

    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    /// A body that yields its chunks, then an optional error.
    pub(crate) struct Script {
        pub(crate) chunks: VecDeque<Result<Vec<u8>>>,
    }

    impl Script {
        pub(crate) fn of(chunks: &[&[u8]]) -> Self {
            Script {
                chunks: chunks.iter().map(|c| Ok(c.to_vec())).collect(),
            }
        }
    }

    impl ByteSource for Script {
        async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
            self.chunks.pop_front().transpose()
        }
    }

    /// An HTTP client answering each request with the next scripted response.
    pub(crate) struct ScriptedHttp {
        pub(crate) responses: RefCell<VecDeque<Result<UpstreamResponse<Script>>>>,
        pub(crate) requests: RefCell<Vec<UpstreamRequest>>,
    }

    impl ScriptedHttp {
        pub(crate) fn answering(status: u16, content_type: &str, chunks: &[&[u8]]) -> Self {
            let response = UpstreamResponse {
                status,
                content_type: content_type.to_string(),
                retry_after: None,
                body: Script::of(chunks),
            };
            ScriptedHttp {
                responses: RefCell::new(VecDeque::from([Ok(response)])),
                requests: RefCell::new(Vec::new()),
            }
        }

        pub(crate) fn failing(err: Error) -> Self {
            ScriptedHttp {
                responses: RefCell::new(VecDeque::from([Err(err)])),
                requests: RefCell::new(Vec::new()),
            }
        }
    }

    impl HttpClient for ScriptedHttp {
        type Body = Script;

        async fn post(&self, request: &UpstreamRequest) -> Result<UpstreamResponse<Script>> {
            self.requests.borrow_mut().push(request.clone());
            self.responses
                .borrow_mut()
                .pop_front()
                .unwrap_or_else(|| Err(Error::backend("no scripted response left")))
        }
    }
}
