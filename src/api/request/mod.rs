//! Routing and request decoding: everything that can be checked without storage.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::assistants::{AssistantCall, RunAssistant};
use super::{ApiError, HttpRequest, HttpResponse, ServerInfo, ASSISTANT_ID, ASSISTANT_UUID};
use crate::api::auth::{Caller, OWNER_KEY};
use crate::checkpoint::saver::{SaverExport, SaverList, SaverPut, SaverPutWrites};
use crate::checkpoint::{CheckpointId, NewCheckpoint, ThreadSearch, ThreadSortKey};
use crate::error::{Error, Result};
use crate::limits::{
    INPUT_MESSAGES_MAX, LIST_LIMIT_MAX, METADATA_MAX_BYTES, REQUEST_BODY_MAX_BYTES,
};
use crate::message::{json_type_name, parse_messages, MessageOp};
use crate::runtime::Entropy;
use crate::thread::{ThreadId, ThreadStatus};

mod aisdk;
mod assistants;
mod fields;
mod info;
mod route;
mod run;
mod runs;
mod saver;
mod state;
mod store;
mod threads;

use assistants::plan_assistants;
use fields::read_object;
use info::plan_info;
use route::Route;
use run::plan_run;
pub use run::RunGuard;
use saver::plan_saver;
use state::plan_state;
use threads::plan_threads;

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
    /// `events`: LangChain's `astream_events` v2 (chains, chat model start/stream/end).
    Events,
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
    /// Keys of `input` beside `messages`, which the run ignores (as LangGraph ignores
    /// keys its state lacks): named in [`IGNORED_INPUT_KEYS_HEADER`] on the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_input_keys: Vec<String>,
    /// How the run is delivered and kept beyond its response.
    #[serde(default)]
    pub delivery: Delivery,
    /// The assistant the run runs as (`assistant_id`), with its settings once resolved.
    #[serde(default)]
    pub assistant: RunAssistant,
    /// `interrupt_before` names the graph's node (`agent`, or `"*"`): the run stores its
    /// input and stops before the model, leaving the thread `interrupted`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupt_before: bool,
    /// A chat turn of the AI SDK (`POST /api/chat`): its input is what the transcript
    /// adds to the stored history, found in the thread; answered as a UI message stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<Box<crate::api::aisdk::ChatTurn>>,
}

/// How a run is delivered and kept: what LangGraph's run-creating routes add to a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Delivery {
    /// The run's id; chosen by the thread object when empty.
    #[serde(default)]
    pub run_id: String,
    /// `POST /threads/{id}/runs`: answered at once with the pending run, which runs in
    /// the thread's object without any client attached.
    #[serde(default)]
    pub background: bool,
    /// `stream_resumable`: its events are kept for a client that reconnects.
    #[serde(default)]
    pub resumable: bool,
    /// `after_seconds`, in ms: a background run starts no earlier.
    #[serde(default)]
    pub after_ms: i64,
    /// A stateless background run's thread is deleted when it ends (`on_completion`).
    #[serde(default)]
    pub delete_thread_after: bool,
    /// What the run was asked, as LangGraph answers it in a run's `kwargs`.
    #[serde(default)]
    pub kwargs: Value,
    /// `ttl` (minutes): the thread (created by the run, or not) is deleted this long after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<f64>,
}

/// The response header that names the input keys a run ignored, so a client whose
/// state key does not match (`input.history` instead of `input.messages` beside it)
/// sees it at once instead of wondering why memory is missing.
pub const IGNORED_INPUT_KEYS_HEADER: &str = "x-edge-memory-ignored-input-keys";

/// `multitask_strategy`: a run on a thread that is busy with another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Multitask {
    /// 409 (the default).
    #[default]
    Reject,
    /// Wait for the current run, then run.
    Enqueue,
    /// Stop the current run, keep what it wrote, then run.
    Interrupt,
    /// Stop the current run, remove what it wrote, then run.
    Rollback,
}

impl Multitask {
    /// The strategy as LangGraph names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Multitask::Reject => "reject",
            Multitask::Enqueue => "enqueue",
            Multitask::Interrupt => "interrupt",
            Multitask::Rollback => "rollback",
        }
    }
}

/// Longest accepted `Idempotency-Key`; it is stored with the run's checkpoint.
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// A command for one thread's storage.
// A run's request is the large variant; commands are built once per request and moved,
// never held in collections, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadCommand {
    /// `POST /threads`.
    Create {
        /// Initial metadata.
        metadata: Map<String, Value>,
        /// Behaviour on an existing id.
        if_exists: IfExists,
        /// `ttl` (minutes, strategy `delete`): the thread is deleted this long after.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_minutes: Option<f64>,
        /// `supersteps`: state updates applied in order, one checkpoint each, so a
        /// thread can be made from a list of messages (LangGraph's batch update).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        supersteps: Vec<Vec<MessageOp>>,
    },
    /// `GET /threads/{id}`.
    Get,
    /// `PATCH /threads/{id}`: merge metadata.
    Patch {
        /// Keys to set.
        metadata: Map<String, Value>,
        /// `ttl` (minutes): the thread is deleted this long after now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_minutes: Option<f64>,
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
    /// `/threads/{id}/runs/*` on run records: list, get, delete, cancel, join.
    RunOp(RunOp),
    /// `GET /api/chat/{id}/messages`: the head state as the AI SDK's `UIMessage[]`.
    ChatMessages,
}

/// A call on the thread's runs (answered by the thread's object, which holds them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOp {
    /// `GET /threads/{id}/runs`.
    List {
        /// Only runs of this status (a name LangGraph does not use matches none).
        status: Option<String>,
        /// At most this many.
        limit: usize,
        /// Skip this many.
        offset: usize,
    },
    /// `GET /threads/{id}/runs/{run_id}`.
    Get {
        /// The run.
        run_id: String,
    },
    /// `DELETE /threads/{id}/runs/{run_id}`.
    Delete {
        /// The run.
        run_id: String,
    },
    /// `POST /threads/{id}/runs/{run_id}/cancel`.
    Cancel {
        /// The run.
        run_id: String,
        /// Answer when the run has stopped (else 202 at once).
        wait: bool,
        /// Keep what it wrote, or remove it.
        action: crate::chat::StopAction,
    },
    /// `GET /threads/{id}/runs/{run_id}/join`: the thread's values once the run ends.
    Join {
        /// The run.
        run_id: String,
    },
    /// `GET /threads/{id}/runs/{run_id}/stream`: the run's events.
    JoinStream {
        /// The run.
        run_id: String,
        /// Where to start (`Last-Event-ID`).
        replay: crate::api::runs::Replay,
        /// Only these modes (`stream_mode`); all when `None`.
        modes: Option<Vec<String>>,
    },
    /// `GET /api/chat/{id}/stream`: the thread's run under way, from its first event, as
    /// a UI message stream; 204 when none is.
    ChatStream,
}

/// A LangGraph checkpointer call (`EdgeMemorySaver`), one request each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// Part of `delete_for_runs`: the checkpoints of these runs, and their writes.
    DeleteRuns {
        /// The runs.
        run_ids: Vec<String>,
    },
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
    /// `POST /runs/batch`: background runs, each on its own new thread.
    Batch(Vec<ThreadCall>),
    /// A call on the caller's assistants.
    Assistants(AssistantCall),
    /// `delete_for_runs` of the checkpointer storage, on every thread the runs wrote to.
    SaverDeleteRuns {
        /// The runs (`metadata.run_id` of their checkpoints).
        run_ids: Vec<String>,
        /// The caller's scope, if any.
        owner: Option<String>,
    },
    /// A Store API request (`/store/*`).
    Store(crate::api::store::StorePlan),
    /// `GET /diagnostics`: the caller's hints ([`crate::api::diagnostics`]).
    Diagnostics {
        /// The user asking, if scoped: a user sees only their own hints.
        owner: Option<String>,
    },
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
        Err(err) => Plan::Respond(HttpResponse::error(err)),
    }
}

fn plan_inner(
    req: &HttpRequest,
    info: &ServerInfo,
    now_ms: i64,
    entropy: &dyn Entropy,
) -> Result<Plan, ApiError> {
    // Browsers send preflights without credentials.
    if req.method == "OPTIONS" {
        return Ok(Plan::Respond(super::cors::preflight(req, &info.cors)));
    }
    let caller = super::authorize(req, &info.auth, now_ms)?;
    // Bodies are read as JSON whatever their `content-type` (`text/plain` from proxies
    // and `fetch` with a string body, none at all), as LangGraph's server does; a body
    // that is not JSON is a 400. Safe because credentials are never cookies: a
    // cross-site "simple" request carries none (README: Security).
    Ok(scope(route(req, info, entropy, now_ms)?, &caller)?)
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
                ThreadCommand::Patch { metadata, .. } if metadata.contains_key(OWNER_KEY) => {
                    return Err(owner_is_reserved());
                }
                _ => {}
            }
            if let ThreadCommand::Run(run) = &mut call.command {
                run.assistant.owner = Some(owner.to_string());
            }
            call.owner = Some(owner.to_string());
            Plan::Thread(call)
        }
        Plan::Stateless(mut run) => {
            run.assistant.owner = Some(owner.to_string());
            Plan::Stateless(run)
        }
        Plan::Assistants(mut call) => {
            call.owner = Some(owner.to_string());
            Plan::Assistants(call)
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
        Plan::SaverDeleteRuns { run_ids, .. } => Plan::SaverDeleteRuns {
            run_ids,
            owner: Some(owner.to_string()),
        },
        Plan::Batch(calls) => Plan::Batch(
            calls
                .into_iter()
                .map(|call| ThreadCall {
                    owner: Some(owner.to_string()),
                    ..call
                })
                .collect(),
        ),
        // A user's items live under the user's own root (their own shard).
        Plan::Store(mut plan) => {
            plan.owner = Some(owner.to_string());
            Plan::Store(plan)
        }
        Plan::Diagnostics { .. } => Plan::Diagnostics {
            owner: Some(owner.to_string()),
        },
        plan @ Plan::Respond(_) => plan,
    })
}

fn owner_is_reserved() -> Error {
    Error::invalid(
        format!("metadata.{OWNER_KEY}"),
        "is set by the server from the token's `sub` and cannot be chosen or changed",
    )
}

/// What every handler may read of the request being planned.
struct Incoming<'a> {
    req: &'a HttpRequest,
    info: &'a ServerInfo,
    entropy: &'a dyn Entropy,
    now_ms: i64,
}

impl Incoming<'_> {
    /// The body as a JSON object. Read by each handler where it always was, so a bad
    /// body never hides a bad id before it (or the other way round).
    fn body(&self) -> Result<Map<String, Value>> {
        read_object(&self.req.body)
    }
}

/// Routes a request and validates its body: the body's size, then the [`Route`], then
/// the route's own handler.
fn route(
    req: &HttpRequest,
    info: &ServerInfo,
    entropy: &dyn Entropy,
    now_ms: i64,
) -> Result<Plan, ApiError> {
    if req.body.len() > REQUEST_BODY_MAX_BYTES {
        return Err(Error::TooLarge {
            what: "request body (bytes)".into(),
            size: req.body.len(),
            limit: REQUEST_BODY_MAX_BYTES,
        }
        .into());
    }
    let incoming = Incoming {
        req,
        info,
        entropy,
        now_ms,
    };
    let planned = match Route::parse(&req.method, &req.path)? {
        Route::Info(route) => plan_info(route, &incoming),
        Route::Assistants(route) => plan_assistants(route, &incoming),
        Route::Threads(route) => plan_threads(route, &incoming),
        Route::State(route) => plan_state(route, &incoming),
        Route::Runs(route) => plan_run(route, &incoming),
        Route::Chat(route) => aisdk::plan_chat(route, &incoming),
        Route::RunRecords(route) => runs::plan_run_records(route, &incoming),
        Route::Saver { thread, op } => plan_saver(thread, op, &incoming),
        Route::SaverDeleteRuns => saver::plan_delete_for_runs(&incoming),
        Route::Store(route) => store::plan_store(route, &incoming),
    };
    Ok(planned?)
}

/// A command for one thread, not yet scoped to an owner (see [`scope`]).
fn thread_call(thread_id: ThreadId, command: ThreadCommand) -> Plan {
    Plan::Thread(ThreadCall {
        thread_id,
        command,
        owner: None,
    })
}

fn reject() -> IfNotExists {
    IfNotExists::Reject
}
