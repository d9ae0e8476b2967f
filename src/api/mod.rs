//! The HTTP API as pure functions: request → command → response. No worker types.
//!
//! A request is first *planned* ([`plan`]): routed, its body decoded and validated, ids
//! generated. What needs no storage is answered right there; the rest becomes a
//! [`ThreadCall`] (a serializable command for exactly one thread) or a cross-thread
//! operation (search, copy, stateless run). [`serve`] carries the plan out through a
//! [`Backend`]: the worker's backend sends each thread call to that thread's Durable
//! Object, which [`execute()`]s it on its own storage; [`LocalBackend`] runs everything in
//! one process (native tests, the in-memory mode).
//!
//! Paths and shapes follow the LangGraph Platform threads/runs API (see README). Errors
//! are JSON `{"detail": "..."}` with a 4xx status naming the problem; a rejected request
//! changes nothing.

pub mod aisdk;
pub mod assistants;
pub mod auth;
pub mod cors;
pub mod diagnostics;
pub mod directory;
mod error;
mod execute;
mod gate;
mod http;
mod request;
pub mod runs;
pub mod store;
mod wire;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::chat::{ChatModel, Engine};
use crate::checkpoint::saver::SaverStore;
use crate::checkpoint::{Checkpointer, ThreadIndex, ThreadSearch};
use crate::error::{Error, Result};
use crate::runtime::{Clock, Entropy};
use crate::thread::{ThreadId, ThreadRecord};
use assistants::AssistantCall;
use auth::{authenticate, AuthSettings, Caller};
use directory::Shard;
pub use error::ApiError;

pub use execute::{
    check_caller, error_event, execute, execute_stateless, finish_run, finish_run_until,
    opens_stream, prepare_run, run_collected, whole_answer, CollectedEvents, PreparedRun, RunEnd,
    RunSink, IDEMPOTENCY_BODY, IDEMPOTENCY_KEY, IDEMPOTENCY_TTL_MS, IDEMPOTENCY_WINDOW,
};
pub use gate::{RunGate, RunTicket, ENQUEUE_MAX_WAITING};
pub use http::{HttpRequest, READ_HEADERS};
pub use request::{
    plan, Delivery, IfExists, IfNotExists, Multitask, Plan, RunGuard, RunOp, RunRequest,
    SaverCommand, StreamMode, ThreadCall, ThreadCommand, IDEMPOTENCY_KEY_MAX_LEN,
    IGNORED_INPUT_KEYS_HEADER,
};
pub use wire::{state_json, thread_json, values_json};

/// The single assistant this server runs (LangGraph's default for graph `agent`).
pub const ASSISTANT_ID: &str = "agent";
/// The UUID LangGraph derives for the `agent` graph's default assistant
/// (`uuid5(NAMESPACE, "agent")`); accepted wherever `agent` is.
pub const ASSISTANT_UUID: &str = "fe096781-5601-53d2-b2f6-0d3403f7e9ca";

/// One server-sent event: `event: NAME` and a JSON `data` line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SseEvent {
    /// The event name (`metadata`, `values`, `messages`, `updates`, `error`).
    pub event: String,
    /// The payload; always JSON, as the LangGraph SDKs `JSON.parse` every `data`.
    pub data: Value,
    /// The event's id (`id:`), when its run keeps its events for a client that
    /// reconnects with `Last-Event-ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl SseEvent {
    /// The event as `text/event-stream` text. Written straight into one buffer (a run
    /// writes dozens of these per turn; `format!` over `Value`'s `Display` costs twice).
    pub fn to_text(&self) -> String {
        let mut text = Vec::with_capacity(self.event.len() + 64);
        text.extend_from_slice(b"event: ");
        text.extend_from_slice(self.event.as_bytes());
        text.extend_from_slice(b"\ndata: ");
        // Writing a `Value` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut text, &self.data);
        if let Some(id) = &self.id {
            text.extend_from_slice(b"\nid: ");
            text.extend_from_slice(id.as_bytes());
        }
        text.extend_from_slice(b"\n\n");
        String::from_utf8(text).unwrap_or_default()
    }
}

/// A response body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// No body (204).
    Empty,
    /// `application/json`.
    Json(Value),
    /// `text/event-stream`.
    EventStream(Vec<SseEvent>),
    /// `text/event-stream` of `data:` lines only, each chunk's JSON, then `data: [DONE]`:
    /// the AI SDK's UI message stream ([`aisdk`]).
    UiMessageStream(Vec<Value>),
}

/// A change to the thread index that a thread command asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexUpdate {
    /// Insert or replace this record.
    Upsert {
        /// The thread's current record.
        record: ThreadRecord,
    },
    /// Forget this thread.
    Remove {
        /// The deleted thread.
        thread_id: ThreadId,
        /// Its owner, which names its directory shard.
        #[serde(default)]
        owner: Option<String>,
    },
    /// Remember that run `run_id` wrote to this thread (LangGraph's server deletes a
    /// run's checkpoints by run id alone: `delete_for_runs`).
    Run {
        /// The run (`metadata.run_id` of a checkpointer put).
        run_id: String,
        /// The thread it wrote to.
        thread_id: ThreadId,
        /// The caller's scope, which names the shard (as for threads).
        owner: Option<String>,
    },
}

/// An HTTP response, as plain data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// The body.
    pub body: Body,
    /// What failed, for the logs; never sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_error: Option<String>,
    /// The thread index change this response implies; the [`Backend`] that executed
    /// the call applies it (never sent to the client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexUpdate>,
    /// Extra response headers (e.g. `server-timing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl HttpResponse {
    /// 200 with a JSON body.
    pub fn ok(body: Value) -> Self {
        HttpResponse {
            status: 200,
            body: Body::Json(body),
            internal_error: None,
            index: None,
            headers: Vec::new(),
        }
    }

    /// 200 with an event stream.
    pub fn events(events: Vec<SseEvent>) -> Self {
        HttpResponse {
            status: 200,
            body: Body::EventStream(events),
            internal_error: None,
            index: None,
            headers: Vec::new(),
        }
    }

    /// The error response for `err`: `{"detail": ..., "code": ...}`; 5xx details stay
    /// in the logs.
    pub fn error(err: impl Into<ApiError>) -> Self {
        Self::error_of(err.into())
    }

    /// [`HttpResponse::error`], not generic: one copy in the wasm.
    fn error_of(err: ApiError) -> Self {
        let body = json!({ "detail": err.client_detail(), "code": err.code() });
        HttpResponse {
            status: err.status(),
            body: Body::Json(body),
            internal_error: (err.status() >= 500).then(|| err.to_string()),
            index: None,
            headers: Vec::new(),
        }
    }

    /// 204 No Content.
    pub fn no_content() -> Self {
        HttpResponse {
            status: 204,
            body: Body::Empty,
            internal_error: None,
            index: None,
            headers: Vec::new(),
        }
    }

    /// The same response with one more header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The same response, asking for an index update.
    pub fn with_index(mut self, update: IndexUpdate) -> Self {
        self.index = Some(update);
        self
    }

    /// The JSON body, if it is one.
    pub fn json(&self) -> Option<&Value> {
        match &self.body {
            Body::Json(value) => Some(value),
            _ => None,
        }
    }
}

impl From<Result<HttpResponse>> for HttpResponse {
    fn from(result: Result<HttpResponse>) -> Self {
        result.unwrap_or_else(HttpResponse::error)
    }
}

/// What the server says about itself at `GET /info`, and how it admits callers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerInfo {
    /// Where checkpoints live (`durable_object`, `memory`).
    pub backend: String,
    /// The model's name.
    pub model: String,
    /// Whether dev-only routes (`/__dev/*`) are on.
    pub dev_mode: bool,
    /// API keys and JWT settings; none: `AUTH_MODE=none`.
    pub auth: AuthSettings,
    /// Browser origins allowed to call the API (CORS).
    pub cors: cors::CorsPolicy,
}

/// Authenticates `req`: `GET /ok` is open, and so is `GET /info` on a deployment with
/// no authentication configured (it says why everything else is refused); everything
/// else needs credentials when any are configured. The answer never mentions threads.
pub fn authorize(req: &HttpRequest, auth: &AuthSettings, now_ms: i64) -> Result<Caller, ApiError> {
    let unconfigured_info = auth.not_configured.is_some() && req.path == "/info";
    if req.method == "GET" && (req.path == "/ok" || unconfigured_info) {
        return Ok(Caller::Anyone);
    }
    authenticate(
        auth,
        (req.header("x-api-key"), req.header("authorization")),
        now_ms,
        req.verified_token.as_deref(),
    )
}

/// Where thread calls go and where the thread directory lives.
///
/// Not `Send`, like everything on Workers (see [`Checkpointer`]).
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// Executes a call on its thread's storage, and sees to the directory update it
    /// implies ([`HttpResponse::index`]): the answer carries none.
    async fn call(&self, call: ThreadCall) -> HttpResponse;

    /// Runs on a throwaway thread that nothing keeps (`POST /runs/wait`).
    async fn call_stateless(&self, run: RunRequest) -> HttpResponse;

    /// Carries out a Store API request (`/store/*`) on the store's shards. A backend
    /// without a store answers that it has none.
    async fn store(&self, _plan: store::StorePlan) -> HttpResponse {
        HttpResponse::error(Error::Unsupported {
            what: "the Store API (/store/*) on this backend: it needs Durable Objects (MEMORY_BACKEND=durable_object)".into(),
        })
    }

    /// The directory shards a search reads.
    fn search_shards(&self, query: &ThreadSearch) -> Vec<Shard> {
        Shard::for_search(query)
    }

    /// The directory shard that knows which threads run `run_id` wrote to.
    fn run_shard(&self, run_id: &str, owner: Option<&str>) -> Shard {
        Shard::of_run(run_id, owner)
    }

    /// Applies a change to a directory shard (search repairs stale copies with it).
    async fn index_apply(&self, shard: &Shard, update: &IndexUpdate) -> Result<()>;

    /// Searches one directory shard.
    async fn index_search(&self, shard: &Shard, query: &ThreadSearch) -> Result<Vec<ThreadRecord>>;

    /// Counts one directory shard's records that match `query`.
    async fn index_count(&self, shard: &Shard, query: &ThreadSearch) -> Result<usize>;

    /// The threads that runs `run_ids` wrote to, as one directory shard knows them.
    async fn run_threads(&self, shard: &Shard, run_ids: &[String]) -> Result<Vec<ThreadId>>;

    /// Carries out a call on an owner's assistants (their assistants object). A backend
    /// that keeps none knows only the system assistant.
    async fn assistant_call(&self, call: AssistantCall) -> HttpResponse {
        assistants::without_storage(call)
    }

    /// The current version of a stored assistant, for a run (the worker answers from
    /// its cache, see [`assistants::cache`]); 404 when `owner` has no such assistant.
    async fn find_assistant(
        &self,
        assistant_id: &str,
        owner: Option<&str>,
    ) -> Result<crate::checkpoint::assistants::Assistant> {
        assistants::fetch_stored(self, assistant_id, owner).await
    }
}

/// Plans `req` and carries the plan out through `backend`.
pub async fn serve<B: Backend>(
    req: &HttpRequest,
    info: &ServerInfo,
    clock: &dyn Clock,
    entropy: &dyn Entropy,
    backend: &B,
) -> HttpResponse {
    let plan = plan(req, info, clock.now_ms(), entropy);
    let ignored = ignored_input_keys(&plan);
    let mut response = carry_out(plan, backend).await;
    if let Some(keys) = ignored {
        response
            .headers
            .push((IGNORED_INPUT_KEYS_HEADER.into(), keys));
    }
    response.headers.extend(cors::headers(req, &info.cors));
    if info.auth.is_open() {
        response.headers.push((OPEN_HEADER.into(), "none".into()));
    }
    response
}

/// The value of [`IGNORED_INPUT_KEYS_HEADER`] for a run that ignores input keys.
pub fn ignored_input_keys(plan: &Plan) -> Option<String> {
    let run = match plan {
        Plan::Thread(ThreadCall {
            command: ThreadCommand::Run(run),
            ..
        })
        | Plan::Stateless(run) => run,
        _ => return None,
    };
    (!run.ignored_input_keys.is_empty()).then(|| run.ignored_input_keys.join(", "))
}

/// A response header on every answer of a server that admits anyone
/// (`AUTH_MODE=none`, or `DEV_MODE` without credentials), so it is never open unseen.
pub const OPEN_HEADER: &str = "x-edge-memory-auth";

/// Carries out a [`plan`] through `backend`.
pub async fn carry_out<B: Backend>(plan: Plan, backend: &B) -> HttpResponse {
    match plan {
        Plan::Respond(response) => response,
        Plan::Thread(mut call) => {
            if let ThreadCommand::Run(run) = &mut call.command {
                if let Err(err) = assistants::resolve(backend, run).await {
                    return HttpResponse::error(err);
                }
            }
            backend.call(call).await
        }
        Plan::Assistants(call) => assistants::carry_out(backend, call).await,
        Plan::Search { query, count_only } => {
            directory::search(backend, &query, count_only).await.into()
        }
        // `copy`: the thread's history and metadata, as a new thread.
        Plan::Copy { from, to, owner } => {
            export_import(backend, (from, to), owner, ThreadCommand::Export, |c| c)
                .await
                .into()
        }
        Plan::Stateless(mut run) => match assistants::resolve(backend, &mut run).await {
            Ok(()) => backend.call_stateless(run).await,
            Err(err) => HttpResponse::error(err),
        },
        Plan::Batch(calls) => {
            let mut runs = Vec::with_capacity(calls.len());
            for mut call in calls {
                if let ThreadCommand::Run(run) = &mut call.command {
                    if let Err(err) = assistants::resolve(backend, run).await {
                        return HttpResponse::error(err);
                    }
                }
                let response = backend.call(call).await;
                match response.json() {
                    Some(run) if response.status == 200 => runs.push(run.clone()),
                    _ => return response,
                }
            }
            HttpResponse::ok(Value::Array(runs))
        }
        Plan::Store(plan) => backend.store(plan).await,
        // The detectors live in the worker's isolate, which answers this before here.
        Plan::Diagnostics { .. } => HttpResponse::error(Error::Unsupported {
            what: "GET /diagnostics on this backend (the worker's detectors answer it)".into(),
        }),
        Plan::SaverDeleteRuns { run_ids, owner } => {
            directory::delete_for_runs(backend, &run_ids, owner)
                .await
                .into()
        }
        // `copy_thread`: the source's checkpointer storage, written into the target.
        Plan::SaverCopy { from, to, owner } => export_import(
            backend,
            (from, to),
            owner,
            ThreadCommand::Saver(SaverCommand::Export),
            |export| ThreadCommand::Saver(SaverCommand::Import(export)),
        )
        .await
        .into(),
    }
}

/// Copies a thread's storage to another thread: `export` runs on `from`, and its answer,
/// decoded, becomes the command `import` builds for `to`. A failed export is answered
/// as is.
async fn export_import<B: Backend, T: serde::de::DeserializeOwned>(
    backend: &B,
    (from, to): (ThreadId, ThreadId),
    owner: Option<String>,
    export: ThreadCommand,
    import: impl FnOnce(T) -> ThreadCommand,
) -> Result<HttpResponse> {
    let exported = backend
        .call(ThreadCall {
            thread_id: from,
            command: export,
            owner: owner.clone(),
        })
        .await;
    let decoded = match (exported.status, exported.body) {
        (200, Body::Json(export)) => serde_json::from_value(export)
            .map_err(|e| Error::backend(format_args!("thread export is malformed: {e}")))?,
        (200, _) => return Err(Error::backend("thread export returned no JSON")),
        (status, body) => {
            return Ok(HttpResponse {
                status,
                body,
                internal_error: exported.internal_error,
                index: None,
                headers: Vec::new(),
            })
        }
    };
    let response = backend
        .call(ThreadCall {
            thread_id: to,
            command: import(decoded),
            owner,
        })
        .await;
    Ok(response)
}

/// Everything in one process: thread calls run on `engine`, whose store is also the
/// thread index. For native tests and the worker's in-memory mode.
pub struct LocalBackend<'a, C, M> {
    /// The engine thread calls run on.
    pub engine: Engine<'a, C, M>,
    /// Runs in progress, per thread.
    pub gate: &'a RunGate,
}

impl<C: Checkpointer + ThreadIndex + SaverStore, M: ChatModel> Backend for LocalBackend<'_, C, M> {
    async fn call(&self, call: ThreadCall) -> HttpResponse {
        let mut response = self.gate.execute(call, &self.engine).await;
        // One store, its own directory: the record the call wrote is the copy.
        response.index = None;
        response
    }

    async fn call_stateless(&self, run: RunRequest) -> HttpResponse {
        execute_stateless(run, &self.engine).await
    }

    fn search_shards(&self, _query: &ThreadSearch) -> Vec<Shard> {
        vec![Shard::Whole]
    }

    fn run_shard(&self, _run_id: &str, _owner: Option<&str>) -> Shard {
        Shard::Whole
    }

    async fn index_apply(&self, _shard: &Shard, update: &IndexUpdate) -> Result<()> {
        match update {
            IndexUpdate::Upsert { record } => self.engine.store.index_upsert(record).await,
            IndexUpdate::Remove { thread_id, .. } => {
                self.engine.store.index_remove(thread_id).await
            }
            IndexUpdate::Run {
                run_id, thread_id, ..
            } => self.engine.store.index_run(run_id, thread_id).await,
        }
    }

    async fn run_threads(&self, _shard: &Shard, run_ids: &[String]) -> Result<Vec<ThreadId>> {
        self.engine.store.threads_of_runs(run_ids).await
    }

    async fn index_search(
        &self,
        _shard: &Shard,
        query: &ThreadSearch,
    ) -> Result<Vec<ThreadRecord>> {
        self.engine.store.search_threads(query).await
    }

    async fn index_count(&self, _shard: &Shard, query: &ThreadSearch) -> Result<usize> {
        self.engine.store.count_threads(query).await
    }
}

/// Plans and executes a request in one process (native tests, in-memory mode).
pub async fn handle<C: Checkpointer + ThreadIndex + SaverStore, M: ChatModel>(
    req: &HttpRequest,
    info: &ServerInfo,
    engine: &Engine<'_, C, M>,
    gate: &RunGate,
) -> HttpResponse {
    let backend = LocalBackend {
        gate,
        engine: engine.on(engine.store),
    };
    serve(req, info, engine.clock, engine.entropy, &backend).await
}

#[cfg(test)]
mod tests {
    use super::SseEvent;
    use serde_json::json;

    #[test]
    fn an_event_is_written_as_event_stream_text() {
        let plain = SseEvent {
            event: "messages".into(),
            data: json!([{"content": "é \"quoted\"\n"}, {"step": 1}]),
            id: None,
        };
        let text = plain.to_text();
        assert_eq!(
            text,
            "event: messages\ndata: [{\"content\":\"é \\\"quoted\\\"\\n\"},{\"step\":1}]\n\n"
        );
        let with_id = SseEvent {
            id: Some("17".into()),
            ..plain
        };
        assert!(with_id.to_text().ends_with("}]\nid: 17\n\n"));
    }
}
