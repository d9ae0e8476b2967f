//! The HTTP API as pure functions: request → command → response. No worker types.
//!
//! A request is first *planned* ([`plan`]): routed, its body decoded and validated, ids
//! generated. What needs no thread storage is answered right there; the rest becomes a
//! [`ThreadCall`], a serializable command for exactly one thread. The worker sends it to
//! that thread's Durable Object, which [`execute`]s it against its own storage. Native
//! tests call [`handle`], which does both in one process.
//!
//! Paths and shapes follow the LangGraph Platform threads/runs API (see README).
//! Errors are JSON `{"detail": "..."}` with a 4xx status naming the problem; a rejected
//! request changes nothing.

mod wire;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::chat::{ChatModel, Engine, Turn};
use crate::checkpoint::{CheckpointId, Checkpointer};
use crate::error::{Error, Result};
use crate::limits::{INPUT_MESSAGES_MAX, METADATA_MAX_BYTES, REQUEST_BODY_MAX_BYTES};
use crate::message::{json_type_name, parse_messages, MessageOp};
use crate::runtime::Entropy;
use crate::thread::{ThreadId, ThreadRecord};

pub use wire::{state_json, thread_json};

/// The single assistant this server runs (LangGraph's default for graph `agent`).
pub const ASSISTANT_ID: &str = "agent";
/// The UUID LangGraph derives for the `agent` graph's default assistant
/// (`uuid5(NAMESPACE, "agent")`); accepted wherever `agent` is.
pub const ASSISTANT_UUID: &str = "fe096781-5601-53d2-b2f6-0d3403f7e9ca";

/// An HTTP request, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without query string (`/threads/abc/state`).
    pub path: String,
    /// The raw body.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request with a JSON body.
    pub fn json(method: &str, path: &str, body: &Value) -> Self {
        HttpRequest {
            method: method.to_string(),
            path: path.to_string(),
            body: body.to_string().into_bytes(),
        }
    }

    /// A request without a body.
    pub fn empty(method: &str, path: &str) -> Self {
        HttpRequest {
            method: method.to_string(),
            path: path.to_string(),
            body: Vec::new(),
        }
    }
}

/// An HTTP response, as plain data. The body, when present, is JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// JSON body; `None` for 204.
    pub body: Option<Value>,
    /// For 5xx: what failed, for the logs. Never sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_error: Option<String>,
}

impl HttpResponse {
    /// 200 with a JSON body.
    pub fn ok(body: Value) -> Self {
        HttpResponse {
            status: 200,
            body: Some(body),
            internal_error: None,
        }
    }

    /// The error response for `err`; server errors are logged by the caller.
    pub fn error(err: &Error) -> Self {
        HttpResponse {
            status: err.status(),
            body: Some(json!({ "detail": err.client_detail() })),
            internal_error: (err.status() >= 500).then(|| err.to_string()),
        }
    }

    /// 204 No Content.
    pub fn no_content() -> Self {
        HttpResponse {
            status: 204,
            body: None,
            internal_error: None,
        }
    }
}

impl From<Result<Value>> for HttpResponse {
    fn from(result: Result<Value>) -> Self {
        match result {
            Ok(body) => HttpResponse::ok(body),
            Err(err) => HttpResponse::error(&err),
        }
    }
}

/// What the server says about itself at `GET /info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Where checkpoints live (`durable_object`, `memory`).
    pub backend: String,
    /// The model's name.
    pub model: String,
}

/// What to do with unknown thread ids on a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfNotExists {
    /// 404 (the default).
    Reject,
    /// Create the thread first.
    Create,
}

/// What to do when `POST /threads` names an existing id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfExists {
    /// 409 (the default).
    Raise,
    /// Return the existing thread.
    DoNothing,
}

/// A command for one thread's storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ThreadCommand {
    /// `POST /threads`.
    Create {
        /// Initial metadata.
        metadata: Map<String, Value>,
        /// Behaviour on an existing id.
        if_exists: IfExists,
    },
    /// `GET /threads/{id}`.
    Get,
    /// `DELETE /threads/{id}`.
    Delete,
    /// `GET /threads/{id}/state`.
    GetState,
    /// `POST /threads/{id}/runs/wait`.
    RunWait {
        /// The validated input messages.
        input: Vec<MessageOp>,
        /// Behaviour on an unknown thread.
        if_not_exists: IfNotExists,
        /// The assistant, as the client named it.
        assistant_id: String,
        /// Continue from this checkpoint instead of the head.
        checkpoint_id: Option<CheckpointId>,
        /// Run metadata, stamped on the checkpoint.
        metadata: Map<String, Value>,
    },
}

/// A command addressed to one thread: what the worker sends to its Durable Object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadCall {
    /// The thread.
    pub thread_id: ThreadId,
    /// What to do with it.
    pub command: ThreadCommand,
}

/// The outcome of [`plan`].
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Answer with this; no thread storage needed.
    Respond(HttpResponse),
    /// Execute this on the thread's storage.
    Thread(ThreadCall),
}

/// Routes and validates a request. Never touches storage.
pub fn plan(req: &HttpRequest, info: &ServerInfo, entropy: &dyn Entropy) -> Plan {
    match plan_inner(req, info, entropy) {
        Ok(plan) => plan,
        Err(err) => Plan::Respond(HttpResponse::error(&err)),
    }
}

fn plan_inner(req: &HttpRequest, info: &ServerInfo, entropy: &dyn Entropy) -> Result<Plan> {
    if req.body.len() > REQUEST_BODY_MAX_BYTES {
        return Err(Error::TooLarge {
            what: "request body (bytes)".into(),
            size: req.body.len(),
            limit: REQUEST_BODY_MAX_BYTES,
        });
    }
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').skip(1).collect();
    let method = req.method.as_str();
    let respond = |value: Value| Ok(Plan::Respond(HttpResponse::ok(value)));
    let thread = |raw: &str, command: ThreadCommand| -> Result<Plan> {
        Ok(Plan::Thread(ThreadCall {
            thread_id: ThreadId::parse(raw)?,
            command,
        }))
    };
    match (method, segments.as_slice()) {
        ("GET", ["ok"]) => respond(json!({"ok": true})),
        ("GET", ["info"]) => respond(json!({
            "name": "edge-memory",
            "version": env!("CARGO_PKG_VERSION"),
            "storage_backend": info.backend,
            "model": info.model,
            "assistant_id": ASSISTANT_ID,
            "flags": {"assistants": true, "crons": false, "langsmith": false},
        })),
        ("POST", ["threads"]) => {
            let body = read_object(&req.body)?;
            let thread_id = match body.get("thread_id") {
                None | Some(Value::Null) => ThreadId::generate(entropy),
                Some(Value::String(raw)) => ThreadId::parse(raw)?,
                Some(other) => {
                    return Err(Error::invalid(
                        "thread_id",
                        format!("must be a string, got {}", json_type_name(other)),
                    ))
                }
            };
            let if_exists = match opt_str(&body, "if_exists")?.as_deref() {
                None | Some("raise") => IfExists::Raise,
                Some("do_nothing") => IfExists::DoNothing,
                Some(other) => {
                    return Err(Error::invalid(
                        "if_exists",
                        format!("must be \"raise\" or \"do_nothing\", got {other:?}"),
                    ))
                }
            };
            Ok(Plan::Thread(ThreadCall {
                thread_id,
                command: ThreadCommand::Create {
                    metadata: opt_metadata(&body, "metadata")?,
                    if_exists,
                },
            }))
        }
        ("GET", ["threads", id]) => thread(id, ThreadCommand::Get),
        ("DELETE", ["threads", id]) => thread(id, ThreadCommand::Delete),
        ("GET", ["threads", id, "state"]) => thread(id, ThreadCommand::GetState),
        ("POST", ["threads", id, "runs", "wait"]) => {
            let thread_id = ThreadId::parse(id)?;
            let body = read_object(&req.body)?;
            let command = parse_run(&body, entropy)?;
            Ok(Plan::Thread(ThreadCall { thread_id, command }))
        }
        (_, ["ok" | "info"])
        | (_, ["threads"])
        | (_, ["threads", _])
        | (_, ["threads", _, "state"])
        | (_, ["threads", _, "runs", "wait"]) => Err(Error::MethodNotAllowed {
            method: req.method.clone(),
        }),
        _ => Err(Error::NotFound {
            what: "route",
            id: format!("{} {}", req.method, req.path),
        }),
    }
}

/// Reads the body of a run request.
fn parse_run(body: &Map<String, Value>, entropy: &dyn Entropy) -> Result<ThreadCommand> {
    let assistant_id = opt_str(body, "assistant_id")?.unwrap_or_else(|| ASSISTANT_ID.to_string());
    if assistant_id != ASSISTANT_ID && assistant_id != ASSISTANT_UUID {
        return Err(Error::NotFound {
            what: "assistant",
            id: assistant_id,
        });
    }
    let input = match body.get("input") {
        Some(Value::Object(input)) => input,
        None | Some(Value::Null) => {
            return Err(Error::invalid(
                "input",
                "is required: send {\"input\": {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}}",
            ))
        }
        Some(other) => {
            return Err(Error::invalid(
                "input",
                format!(
                    "must be an object with a `messages` key, got {}",
                    json_type_name(other)
                ),
            ))
        }
    };
    let Some(messages) = input.get("messages") else {
        let keys: Vec<String> = input.keys().map(|k| format!("`{k}`")).collect();
        return Err(Error::invalid(
            "input.messages",
            format!(
                "missing input key `messages`; expected {{\"messages\": [...]}}, got {}",
                if keys.is_empty() {
                    "an empty object".to_string()
                } else {
                    format!("keys {}", keys.join(", "))
                }
            ),
        ));
    };
    let input = parse_messages(messages, "input.messages", entropy)?;
    if input.is_empty() {
        return Err(Error::invalid(
            "input.messages",
            "must hold at least one message",
        ));
    }
    if input.len() > INPUT_MESSAGES_MAX {
        return Err(Error::TooLarge {
            what: "input.messages (messages)".into(),
            size: input.len(),
            limit: INPUT_MESSAGES_MAX,
        });
    }
    let if_not_exists = match opt_str(body, "if_not_exists")?.as_deref() {
        None | Some("reject") => IfNotExists::Reject,
        Some("create") => IfNotExists::Create,
        Some(other) => {
            return Err(Error::invalid(
                "if_not_exists",
                format!("must be \"reject\" or \"create\", got {other:?}"),
            ))
        }
    };
    let checkpoint_id = match opt_str(body, "checkpoint_id")? {
        Some(raw) => Some(CheckpointId::parse(&raw)?),
        None => match body.get("checkpoint") {
            Some(Value::Object(cp)) => opt_str(cp, "checkpoint_id")?
                .map(|raw| CheckpointId::parse(&raw))
                .transpose()?,
            None | Some(Value::Null) => None,
            Some(other) => {
                return Err(Error::invalid(
                    "checkpoint",
                    format!("must be an object, got {}", json_type_name(other)),
                ))
            }
        },
    };
    Ok(ThreadCommand::RunWait {
        input,
        if_not_exists,
        assistant_id,
        checkpoint_id,
        metadata: opt_metadata(body, "metadata")?,
    })
}

/// Executes a planned command on one thread's storage.
pub async fn execute<C: Checkpointer, M: ChatModel>(
    call: ThreadCall,
    engine: &Engine<'_, C, M>,
) -> HttpResponse {
    match execute_inner(call, engine).await {
        Ok(response) => response,
        Err(err) => HttpResponse::error(&err),
    }
}

async fn execute_inner<C: Checkpointer, M: ChatModel>(
    call: ThreadCall,
    engine: &Engine<'_, C, M>,
) -> Result<HttpResponse> {
    let store = engine.store;
    let thread_id = call.thread_id;
    match call.command {
        ThreadCommand::Create {
            metadata,
            if_exists,
        } => {
            let record = ThreadRecord::new(thread_id.clone(), metadata, engine.clock.now_ms());
            match store.create_thread(&record).await {
                Ok(()) => Ok(HttpResponse::ok(thread_json(&record, None))),
                Err(Error::Conflict { .. }) if if_exists == IfExists::DoNothing => {
                    let existing = store.get_thread(&thread_id).await?;
                    let latest = store.latest(&thread_id).await?;
                    Ok(HttpResponse::ok(thread_json(&existing, latest.as_ref())))
                }
                Err(err) => Err(err),
            }
        }
        ThreadCommand::Get => {
            let record = store.get_thread(&thread_id).await?;
            let latest = store.latest(&thread_id).await?;
            Ok(HttpResponse::ok(thread_json(&record, latest.as_ref())))
        }
        ThreadCommand::Delete => {
            store.delete_thread(&thread_id).await?;
            Ok(HttpResponse::no_content())
        }
        ThreadCommand::GetState => {
            store.get_thread(&thread_id).await?;
            let latest = store.latest(&thread_id).await?;
            let parent = latest.as_ref().and_then(|s| s.checkpoint.parent_id.clone());
            Ok(HttpResponse::ok(state_json(
                &thread_id,
                latest.as_ref(),
                parent.as_ref(),
            )))
        }
        ThreadCommand::RunWait {
            input,
            if_not_exists,
            assistant_id,
            checkpoint_id,
            metadata,
        } => {
            let mut record = match store.get_thread(&thread_id).await {
                Ok(record) => record,
                Err(Error::NotFound { what: "thread", .. })
                    if if_not_exists == IfNotExists::Create =>
                {
                    let record =
                        ThreadRecord::new(thread_id.clone(), Map::new(), engine.clock.now_ms());
                    store.create_thread(&record).await?;
                    record
                }
                Err(err) => return Err(err),
            };
            let mut run_metadata = metadata;
            run_metadata.insert("graph_id".into(), json!(ASSISTANT_ID));
            run_metadata.insert(
                "assistant_id".into(),
                json!(assistant_id_uuid(&assistant_id)),
            );
            let outcome = engine
                .run_turn(Turn {
                    thread_id: thread_id.clone(),
                    input,
                    from_checkpoint: checkpoint_id,
                    metadata: run_metadata,
                })
                .await?;
            // Chat UIs list threads by these (LangGraph stamps them at the first run).
            if !record.metadata.contains_key("graph_id") {
                record
                    .metadata
                    .insert("graph_id".into(), json!(ASSISTANT_ID));
                record
                    .metadata
                    .insert("assistant_id".into(), json!(ASSISTANT_UUID));
                record.updated_at_ms = outcome.checkpoint.created_at_ms;
                store.update_thread(&record).await?;
            }
            Ok(HttpResponse::ok(wire::values_json(&outcome.messages)))
        }
    }
}

fn assistant_id_uuid(_given: &str) -> &'static str {
    // Both accepted spellings name the one assistant; metadata always carries its UUID,
    // as LangGraph's server does.
    ASSISTANT_UUID
}

/// Plans and executes a request in one process (native tests, memory mode).
pub async fn handle<C: Checkpointer, M: ChatModel>(
    req: &HttpRequest,
    info: &ServerInfo,
    engine: &Engine<'_, C, M>,
) -> HttpResponse {
    match plan(req, info, engine.entropy) {
        Plan::Respond(response) => response,
        Plan::Thread(call) => execute(call, engine).await,
    }
}

/// Decodes a JSON object body; an empty body is an empty object.
fn read_object(body: &[u8]) -> Result<Map<String, Value>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let text = std::str::from_utf8(body).map_err(|e| Error::BadRequest {
        reason: format!("body is not valid UTF-8 ({e})"),
    })?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::BadRequest {
            reason: format!("expected a JSON object, got {}", json_type_name(&other)),
        }),
        Err(e) => Err(Error::BadRequest {
            reason: format!("invalid JSON ({e})"),
        }),
    }
}

fn opt_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(Error::invalid(
            key,
            format!("must be a string, got {}", json_type_name(other)),
        )),
    }
}

fn opt_metadata(obj: &Map<String, Value>, key: &str) -> Result<Map<String, Value>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => {
            let size = Value::Object(map.clone()).to_string().len();
            if size > METADATA_MAX_BYTES {
                return Err(Error::TooLarge {
                    what: format!("{key} (bytes)"),
                    size,
                    limit: METADATA_MAX_BYTES,
                });
            }
            Ok(map.clone())
        }
        Some(other) => Err(Error::invalid(
            key,
            format!("must be an object, got {}", json_type_name(other)),
        )),
    }
}
