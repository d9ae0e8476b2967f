//! Routing and request decoding: everything that can be checked without storage.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{assistant_json, HttpRequest, HttpResponse, ServerInfo, ASSISTANT_ID, ASSISTANT_UUID};
use crate::auth::{Caller, OWNER_KEY};
use crate::checkpoint::saver::{SaverExport, SaverList, SaverPut, SaverPutWrites};
use crate::checkpoint::{CheckpointId, NewCheckpoint, ThreadSearch, ThreadSortKey};
use crate::error::{Error, Result};
use crate::limits::{
    INPUT_MESSAGES_MAX, LIST_LIMIT_MAX, METADATA_MAX_BYTES, REQUEST_BODY_MAX_BYTES,
};
use crate::message::{json_type_name, parse_messages, MessageOp};
use crate::runtime::Entropy;
use crate::thread::{ThreadId, ThreadStatus};

mod fields;
mod run;

use fields::*;
use run::*;

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

/// A stream mode this server emits (`stream_mode`); other modes are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamMode {
    /// `values`: the state after the input, then the final state.
    Values,
    /// `messages-tuple`: one `messages` event per token chunk of the reply.
    MessagesTuple,
    /// `updates`: `{"agent": {"messages": [reply]}}`.
    Updates,
}

/// A validated run request (`runs/wait`, `runs/stream`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The input message operations.
    pub input: Vec<MessageOp>,
    /// Behaviour on an unknown thread.
    pub if_not_exists: IfNotExists,
    /// Continue from this checkpoint instead of the head (older: a fork).
    pub checkpoint_id: Option<CheckpointId>,
    /// Run metadata, stamped on the checkpoint.
    pub metadata: Map<String, Value>,
    /// `None` for `runs/wait`; the modes to emit for `runs/stream`.
    pub stream: Option<Vec<StreamMode>>,
    /// What the client believes about the thread; checked before anything is stored.
    #[serde(default)]
    pub guard: RunGuard,
    /// `Idempotency-Key`: a retry with the same key returns the original run's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// A digest of the request body the key came with: the same key with another body
    /// is a client bug (422), never answered with the first body's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_body: Option<String>,
    /// `multitask_strategy`: what to do when the thread is busy with another run.
    #[serde(default)]
    pub multitask: Multitask,
}

/// `multitask_strategy`: a run on a thread that is busy with another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Multitask {
    /// 409 (the default).
    #[default]
    Reject,
    /// Wait for the current run, then run.
    Enqueue,
}

/// Longest accepted `Idempotency-Key`; it is stored with the run's checkpoint.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// What a client believes about a thread before it runs on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunGuard {
    /// `If-Match`: the head must be exactly this checkpoint (optimistic concurrency).
    pub if_match: Option<CheckpointId>,
    /// `expected_head` / `x-expected-head`: a checkpoint the client saw; the server must
    /// have it, else the client remembers a conversation the server lost.
    pub expected_head: Option<CheckpointId>,
    /// `expected_turns` / `x-expected-turns`: the thread has at least this many turns.
    pub expected_turns: Option<u64>,
}

impl RunGuard {
    /// Whether the client claims the thread already has a history.
    pub fn expects_memory(&self) -> bool {
        self.expected_head.is_some() || self.expected_turns.is_some_and(|t| t > 0)
    }

    /// Whether anything is to be checked.
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none() && self.expected_head.is_none() && self.expected_turns.is_none()
    }
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
    /// `PATCH /threads/{id}`: merge metadata.
    Patch {
        /// Keys to set.
        metadata: Map<String, Value>,
    },
    /// `DELETE /threads/{id}`.
    Delete,
    /// `GET /threads/{id}/state[/{checkpoint_id}]`, `POST .../state/checkpoint`.
    GetState {
        /// A past checkpoint; the head when `None`.
        checkpoint_id: Option<CheckpointId>,
    },
    /// `POST /threads/{id}/state`.
    UpdateState {
        /// Message operations to apply.
        ops: Vec<MessageOp>,
        /// Apply on top of this checkpoint instead of the head.
        checkpoint_id: Option<CheckpointId>,
        /// The node the update is written as.
        as_node: String,
        /// Behaviour on an unknown thread (an extension: LangGraph has none here; chat
        /// histories use it to add messages in one request).
        #[serde(default = "reject")]
        if_not_exists: IfNotExists,
    },
    /// `POST /threads/{id}/history`.
    History {
        /// At most this many states.
        limit: usize,
        /// Only checkpoints older than this one.
        before: Option<CheckpointId>,
        /// Only checkpoints whose metadata has these key/values.
        metadata: Map<String, Value>,
        /// Only this checkpoint.
        checkpoint_id: Option<CheckpointId>,
    },
    /// `POST /threads/{id}/runs/wait|stream`.
    Run(RunRequest),
    /// Part of `POST /threads/{id}/copy`: the thread's whole history, as an `Import`.
    Export,
    /// Part of `POST /threads/{id}/copy`: create this thread from an export.
    Import {
        /// The new thread's metadata.
        metadata: Map<String, Value>,
        /// The checkpoints, oldest first.
        checkpoints: Vec<NewCheckpoint>,
    },
    /// `POST /threads/{id}/saver/*`: LangGraph checkpointer storage.
    Saver(SaverCommand),
}

/// A LangGraph checkpointer call (`EdgeMemorySaver`), one request each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SaverCommand {
    /// `put`.
    Put(SaverPut),
    /// `put_writes`.
    PutWrites(SaverPutWrites),
    /// `get_tuple`.
    Get {
        /// Namespace.
        checkpoint_ns: String,
        /// A checkpoint; the newest when `None`.
        checkpoint_id: Option<String>,
    },
    /// `list`.
    List(SaverList),
    /// `prune`.
    Prune {
        /// `keep_latest` (true) or `delete` (false).
        keep_latest: bool,
    },
    /// Part of `copy_thread`: everything, as an import.
    Export,
    /// Part of `copy_thread`: write an export here.
    Import(SaverExport),
}

/// A command addressed to one thread: what the worker sends to its Durable Object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadCall {
    /// The thread.
    pub thread_id: ThreadId,
    /// What to do with it.
    pub command: ThreadCommand,
    /// The user the thread must belong to (a JWT's `sub`); `None` for services and
    /// open servers. Another user's thread is answered as unknown (404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// The outcome of [`plan`].
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Answer with this; no storage needed.
    Respond(HttpResponse),
    /// Execute this on the thread's storage.
    Thread(ThreadCall),
    /// Search (or count) threads through the index.
    Search {
        /// Filters and paging.
        query: ThreadSearch,
        /// `POST /threads/count`.
        count_only: bool,
    },
    /// Copy a thread's history to a new thread.
    Copy {
        /// The source thread.
        from: ThreadId,
        /// The new thread's id.
        to: ThreadId,
        /// The user both threads belong to, if scoped.
        owner: Option<String>,
    },
    /// A run on a throwaway thread.
    Stateless(RunRequest),
    /// `copy_thread` of the checkpointer storage.
    SaverCopy {
        /// The source thread.
        from: ThreadId,
        /// The target thread.
        to: ThreadId,
        /// The user both threads belong to, if scoped.
        owner: Option<String>,
    },
}

/// Routes and validates a request. Never touches storage.
pub fn plan(req: &HttpRequest, info: &ServerInfo, now_ms: i64, entropy: &dyn Entropy) -> Plan {
    match plan_inner(req, info, now_ms, entropy) {
        Ok(plan) => plan,
        Err(err) => Plan::Respond(HttpResponse::error(&err)),
    }
}

fn plan_inner(
    req: &HttpRequest,
    info: &ServerInfo,
    now_ms: i64,
    entropy: &dyn Entropy,
) -> Result<Plan> {
    // Browsers send preflights without credentials.
    if req.method == "OPTIONS" {
        return Ok(Plan::Respond(super::cors::preflight(req, &info.cors)));
    }
    let caller = super::authorize(req, &info.auth, now_ms)?;
    // Bodies are read as JSON whatever their `content-type` (`text/plain` from proxies
    // and `fetch` with a string body, none at all), as LangGraph's server does; a body
    // that is not JSON is a 400. Safe because credentials are never cookies: a
    // cross-site "simple" request carries none (README: Security).
    scope(route(req, info, entropy)?, &caller)
}

/// Confines a user's plan to the user's threads: new threads are stamped with the
/// user as owner, thread calls must find it there, searches only see its threads.
fn scope(plan: Plan, caller: &Caller) -> Result<Plan> {
    let Some(owner) = caller.owner() else {
        return Ok(plan);
    };
    let owner_value = || Value::String(owner.to_string());
    Ok(match plan {
        Plan::Thread(mut call) => {
            match &mut call.command {
                ThreadCommand::Create { metadata, .. } => {
                    if metadata
                        .get(OWNER_KEY)
                        .is_some_and(|v| v.as_str() != Some(owner))
                    {
                        return Err(owner_is_reserved());
                    }
                    metadata.insert(OWNER_KEY.into(), owner_value());
                }
                ThreadCommand::Patch { metadata } if metadata.contains_key(OWNER_KEY) => {
                    return Err(owner_is_reserved());
                }
                _ => {}
            }
            call.owner = Some(owner.to_string());
            Plan::Thread(call)
        }
        Plan::Search {
            mut query,
            count_only,
        } => {
            query.metadata.insert(OWNER_KEY.into(), owner_value());
            Plan::Search { query, count_only }
        }
        Plan::Copy { from, to, .. } => Plan::Copy {
            from,
            to,
            owner: Some(owner.to_string()),
        },
        Plan::SaverCopy { from, to, .. } => Plan::SaverCopy {
            from,
            to,
            owner: Some(owner.to_string()),
        },
        plan @ (Plan::Respond(_) | Plan::Stateless(_)) => plan,
    })
}

fn owner_is_reserved() -> Error {
    Error::invalid(
        format!("metadata.{OWNER_KEY}"),
        "is set by the server from the token's `sub` and cannot be chosen or changed",
    )
}

/// Routes a request and validates its body.
fn route(req: &HttpRequest, info: &ServerInfo, entropy: &dyn Entropy) -> Result<Plan> {
    if req.body.len() > REQUEST_BODY_MAX_BYTES {
        return Err(Error::TooLarge {
            what: "request body (bytes)".into(),
            size: req.body.len(),
            limit: REQUEST_BODY_MAX_BYTES,
        });
    }
    let trimmed = req.path.trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let method = req.method.as_str();
    let respond = |value: Value| Ok(Plan::Respond(HttpResponse::ok(value)));
    let thread = |raw: &str, command: ThreadCommand| -> Result<Plan> {
        Ok(Plan::Thread(ThreadCall {
            thread_id: ThreadId::parse(raw)?,
            command,
            owner: None,
        }))
    };
    let body = || read_object(&req.body);
    match (method, segments.as_slice()) {
        ("GET", ["ok"]) => respond(json!({"ok": true})),
        ("GET", ["info"]) => respond(json!({
            "name": "edge-memory",
            "version": env!("CARGO_PKG_VERSION"),
            "storage_backend": info.backend,
            "model": info.model,
            "assistant_id": ASSISTANT_ID,
            "dev_mode": info.dev_mode,
            "auth": auth_json(&info.auth),
            "flags": {"assistants": true, "crons": false, "langsmith": false},
        })),
        ("GET", ["assistants", id]) => {
            if is_our_assistant(id) {
                respond(assistant_json())
            } else {
                Err(Error::NotFound {
                    what: "assistant",
                    id: (*id).to_string(),
                })
            }
        }
        ("POST", ["assistants", "search"]) => {
            let body = body()?;
            let graph_ok = opt_str(&body, "graph_id")?.is_none_or(|g| g == ASSISTANT_ID);
            let (limit, offset) = paging(&body)?;
            let found = graph_ok && offset == 0 && limit > 0;
            respond(Value::Array(if found {
                vec![assistant_json()]
            } else {
                vec![]
            }))
        }
        ("POST", ["threads"]) => {
            let body = body()?;
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
                owner: None,
            }))
        }
        ("POST", ["threads", "search"]) => Ok(Plan::Search {
            query: parse_search(&body()?)?,
            count_only: false,
        }),
        ("POST", ["threads", "count"]) => Ok(Plan::Search {
            query: parse_search(&body()?)?,
            count_only: true,
        }),
        ("GET", ["threads", id]) => thread(id, ThreadCommand::Get),
        ("PATCH", ["threads", id]) => {
            let metadata = opt_metadata(&body()?, "metadata")?;
            thread(id, ThreadCommand::Patch { metadata })
        }
        ("DELETE", ["threads", id]) => thread(id, ThreadCommand::Delete),
        ("POST", ["threads", id, "copy"]) => Ok(Plan::Copy {
            from: ThreadId::parse(id)?,
            to: ThreadId::generate(entropy),
            owner: None,
        }),
        ("GET", ["threads", id, "state"]) => thread(
            id,
            ThreadCommand::GetState {
                checkpoint_id: None,
            },
        ),
        ("GET", ["threads", id, "state", checkpoint]) => {
            let checkpoint_id = Some(CheckpointId::parse(checkpoint)?);
            thread(id, ThreadCommand::GetState { checkpoint_id })
        }
        ("POST", ["threads", id, "state", "checkpoint"]) => {
            let body = body()?;
            let checkpoint_id = checkpoint_in(&body, "checkpoint")?;
            thread(id, ThreadCommand::GetState { checkpoint_id })
        }
        ("POST", ["threads", id, "state"]) => {
            let thread_id = ThreadId::parse(id)?;
            let command = parse_update_state(&body()?, entropy)?;
            Ok(Plan::Thread(ThreadCall {
                thread_id,
                command,
                owner: None,
            }))
        }
        ("POST", ["threads", id, "history"]) => {
            let thread_id = ThreadId::parse(id)?;
            let body = body()?;
            let limit = opt_count(&body, "limit")?.unwrap_or(10).min(LIST_LIMIT_MAX);
            let before = checkpoint_in(&body, "before")?;
            let checkpoint_id = checkpoint_in(&body, "checkpoint")?;
            let metadata = opt_metadata(&body, "metadata")?;
            Ok(Plan::Thread(ThreadCall {
                thread_id,
                command: ThreadCommand::History {
                    limit,
                    before,
                    metadata,
                    checkpoint_id,
                },
                owner: None,
            }))
        }
        ("POST", ["threads", id, "runs", kind @ ("wait" | "stream")]) => {
            let thread_id = ThreadId::parse(id)?;
            let body = body()?;
            let mut run = parse_run(&body, *kind == "stream", entropy)?;
            run.guard = parse_guard(&body, req)?;
            run.idempotency_key = match req.header("idempotency-key").map(str::trim) {
                Some(key) if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX_LEN => {
                    return Err(Error::invalid(
                        "Idempotency-Key",
                        format!("must be 1 to {IDEMPOTENCY_KEY_MAX_LEN} characters"),
                    ))
                }
                key => key.map(str::to_string),
            };
            run.idempotency_body = run.idempotency_key.as_ref().map(|_| body_digest(&body));
            Ok(Plan::Thread(ThreadCall {
                thread_id,
                command: ThreadCommand::Run(run),
                owner: None,
            }))
        }
        ("POST", ["threads", id, "saver", op]) => {
            let thread_id = ThreadId::parse(id)?;
            let body = body()?;
            Ok(match parse_saver(op, &body)? {
                SaverCall::Copy(target) => Plan::SaverCopy {
                    from: thread_id,
                    to: target,
                    owner: None,
                },
                SaverCall::Command(command) => Plan::Thread(ThreadCall {
                    thread_id,
                    command: ThreadCommand::Saver(*command),
                    owner: None,
                }),
            })
        }
        ("POST", ["runs", kind @ ("wait" | "stream")]) => Ok(Plan::Stateless(parse_run(
            &body()?,
            *kind == "stream",
            entropy,
        )?)),
        _ if is_known_path(&segments) => Err(Error::MethodNotAllowed {
            method: req.method.clone(),
        }),
        _ => Err(Error::NotFound {
            what: "route",
            id: format!("{} {}", req.method, req.path),
        }),
    }
}

/// How this server admits callers, as `/info` says it (never a secret).
fn auth_json(auth: &crate::auth::AuthSettings) -> Value {
    if let Some(reason) = &auth.not_configured {
        return json!({"mode": "not_configured", "detail": reason});
    }
    let mode = match (auth.api_keys.is_empty(), auth.jwt.is_some()) {
        (true, false) => "none",
        (false, false) => "api_key",
        (true, true) => "jwt",
        (false, true) => "jwt+api_key",
    };
    json!({ "mode": mode })
}

fn is_our_assistant(id: &str) -> bool {
    id == ASSISTANT_ID || id == ASSISTANT_UUID
}

fn is_known_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        ["ok" | "info"]
            | ["assistants", _]
            | ["threads"]
            | ["threads", _]
            | ["threads", _, "copy" | "state" | "history"]
            | ["threads", _, "state", _]
            | ["threads", _, "runs", "wait" | "stream"]
            | ["threads", _, "saver", _]
            | ["runs", "wait" | "stream"]
    )
}

fn parse_search(body: &Map<String, Value>) -> Result<ThreadSearch> {
    let (limit, offset) = paging(body)?;
    let ids = match body.get("ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => ThreadId::parse(s),
                    other => Err(Error::invalid(
                        "ids",
                        format!("must be a list of strings, got {}", json_type_name(other)),
                    )),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(other) => {
            return Err(Error::invalid(
                "ids",
                format!("must be a list, got {}", json_type_name(other)),
            ))
        }
    };
    let status = match opt_str(body, "status")?.as_deref() {
        None => None,
        Some("idle") => Some(ThreadStatus::Idle),
        Some("busy") => Some(ThreadStatus::Busy),
        Some("error") => Some(ThreadStatus::Error),
        // No thread is ever interrupted here: a valid filter that matches nothing.
        Some("interrupted") => Some(ThreadStatus::Interrupted),
        Some(other) => {
            return Err(Error::invalid(
                "status",
                format!("must be idle, busy, interrupted or error, got {other:?}"),
            ))
        }
    };
    let sort_by = match opt_str(body, "sort_by")?.as_deref() {
        None | Some("updated_at") => ThreadSortKey::UpdatedAt,
        Some("created_at") => ThreadSortKey::CreatedAt,
        Some("thread_id") => ThreadSortKey::ThreadId,
        Some(other) => {
            return Err(Error::invalid(
                "sort_by",
                format!("must be updated_at, created_at or thread_id, got {other:?}"),
            ))
        }
    };
    let ascending = match opt_str(body, "sort_order")?.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(other) => {
            return Err(Error::invalid(
                "sort_order",
                format!("must be asc or desc, got {other:?}"),
            ))
        }
    };
    Ok(ThreadSearch {
        metadata: opt_metadata(body, "metadata")?,
        ids,
        status,
        sort_by,
        ascending,
        limit,
        offset,
    })
}

fn parse_update_state(body: &Map<String, Value>, entropy: &dyn Entropy) -> Result<ThreadCommand> {
    let ops = match body.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(values)) => {
            if let Some(unknown) = values.keys().find(|k| k.as_str() != "messages") {
                return Err(Error::invalid(
                    format!("values.{unknown}"),
                    "is not a key of this graph's state; the state has only `messages`",
                ));
            }
            match values.get("messages") {
                Some(messages) => bounded(parse_messages(messages, "values.messages", entropy)?)?,
                None => Vec::new(),
            }
        }
        // A list of values updates, LangGraph's batch form: only one is supported.
        Some(other) => {
            return Err(Error::invalid(
                "values",
                format!(
                    "must be an object like {{\"messages\": [...]}}, got {}",
                    json_type_name(other)
                ),
            ))
        }
    };
    let checkpoint_id = match opt_str(body, "checkpoint_id")? {
        Some(raw) => Some(CheckpointId::parse(&raw)?),
        None => checkpoint_in(body, "checkpoint")?,
    };
    let as_node = opt_str(body, "as_node")?.unwrap_or_else(|| ASSISTANT_ID.to_string());
    Ok(ThreadCommand::UpdateState {
        ops,
        checkpoint_id,
        as_node,
        if_not_exists: parse_if_not_exists(body)?,
    })
}

/// A checkpointer call: on this thread, or a copy to another.
enum SaverCall {
    Command(Box<SaverCommand>),
    Copy(ThreadId),
}

fn parse_saver(op: &str, body: &Map<String, Value>) -> Result<SaverCall> {
    let value = Value::Object(body.clone());
    let decode = |what: &str| {
        let field = format!("saver {what} body");
        move |e: serde_json::Error| Error::invalid(field, e.to_string())
    };
    let command = match op {
        "put" => SaverCommand::Put(serde_json::from_value(value).map_err(decode("put"))?),
        "put_writes" => {
            SaverCommand::PutWrites(serde_json::from_value(value).map_err(decode("put_writes"))?)
        }
        "get" => SaverCommand::Get {
            checkpoint_ns: opt_str(body, "checkpoint_ns")?.unwrap_or_default(),
            checkpoint_id: opt_str(body, "checkpoint_id")?,
        },
        "list" => SaverCommand::List(serde_json::from_value(value).map_err(decode("list"))?),
        "prune" => SaverCommand::Prune {
            keep_latest: match opt_str(body, "strategy")?.as_deref() {
                None | Some("keep_latest") => true,
                Some("delete") => false,
                Some(other) => {
                    return Err(Error::invalid(
                        "strategy",
                        format!("must be \"keep_latest\" or \"delete\", got {other:?}"),
                    ))
                }
            },
        },
        "copy" => {
            let target = opt_str(body, "target_thread_id")?
                .ok_or_else(|| Error::invalid("target_thread_id", "is required"))?;
            return Ok(SaverCall::Copy(ThreadId::parse(&target)?));
        }
        other => {
            return Err(Error::NotFound {
                what: "route",
                id: format!("POST /threads/{{id}}/saver/{other}"),
            })
        }
    };
    Ok(SaverCall::Command(Box::new(command)))
}

fn reject() -> IfNotExists {
    IfNotExists::Reject
}
