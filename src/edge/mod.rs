//! The Workers edge layer (wasm32 only): the only code that names `worker::*`.
//!
//! - `fetch` (the `#[event(fetch)]` handler): the worker's entry. It plans each request
//!   with the pure API layer and sends thread commands to the thread's Durable Object,
//!   named by the thread id.
//! - [`ThreadObject`]: the per-thread Durable Object; it executes commands on a
//!   [`SqlCheckpointer`] over its own SQLite storage ([`DoSql`]).
//!
//! Configuration (wrangler.toml `[vars]`): `MEMORY_BACKEND` = `durable_object` (default)
//! or `memory` (per-isolate memory, forgets on restart: for demonstrating the bug only);
//! `MODEL_PROVIDER` = `memory-demo` (default); `DEV_MODE` = `true` enables `/__dev/*`
//! routes (never set it in production).

#[cfg(feature = "dev-routes")]
mod dev;
mod directory;
mod do_sql;
mod jwks;
mod model;
mod store;
mod worker_kv;

use std::rc::Rc;

use futures_channel::mpsc::{unbounded, UnboundedSender};
use futures_util::StreamExt;
use worker::{
    durable_object, event, Context, DurableObject, Env, Method, Request, RequestInit, Response,
    ResponseBody, State,
};

use crate::api::directory::{DirectorySync, Shard};
use crate::api::{
    self, Body, HttpRequest, HttpResponse, IndexUpdate, LocalBackend, Plan, RunGate, RunRequest,
    ServerInfo, SseEvent, ThreadCall, ThreadCommand,
};
use crate::chat::Engine;
use crate::checkpoint::directory::SqlDirectory;
use crate::checkpoint::kv::KvCheckpointer;
use crate::checkpoint::memory::MemoryCheckpointer;
use crate::checkpoint::sql::SqlCheckpointer;
use crate::checkpoint::{Checkpointer, ThreadSearch};
use crate::config::{self, MemoryBackend as Backend, Settings};
use crate::error::Error;
use crate::limits::REQUEST_BODY_MAX_BYTES;
use crate::runtime::{Clock, SystemClock, SystemEntropy};
use crate::thread::ThreadRecord;

use do_sql::DoSql;
use model::EdgeModel;
use store::EdgeStore;
use worker_kv::{WorkerKv, KV_BINDING};

/// The Durable Object namespace binding of [`ThreadObject`] in wrangler.toml.
const THREADS_BINDING: &str = "THREADS";
/// API answers are never cached, and never re-encoded on the way: proxies that decode a
/// body but pass its `content-encoding` on (Next.js route handlers) break the page.
const API_CACHE_CONTROL: &str = "no-store, no-transform";
/// Sent as the body's `content-encoding`, so the runtime does not compress API answers
/// itself (Cloudflare compresses JSON for clients that accept gzip, unless the response
/// already names an encoding).
const API_CONTENT_ENCODING: &str = "identity";

/// Settings read from the environment on each request (reading vars is cheap); the
/// rules live in the native [`crate::config`] module.
struct EdgeConfig {
    settings: Settings,
}

impl EdgeConfig {
    fn from_env(env: &Env) -> Result<Self, Error> {
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let secret = |name: &str| env.secret(name).ok().map(|s| s.to_string());
        let settings = config::from_env(var, secret)?;
        if settings.backend == Backend::Kv && env.kv(KV_BINDING).is_err() {
            return Err(Error::backend(format_args!(
                "MEMORY_BACKEND=kv needs a KV namespace bound as {KV_BINDING} (wrangler.toml [[kv_namespaces]])"
            )));
        }
        Ok(EdgeConfig { settings })
    }

    fn info(&self) -> ServerInfo {
        let s = &self.settings;
        ServerInfo {
            backend: s.backend.name().to_string(),
            model: s.model.name(),
            dev_mode: s.dev_mode,
            auth: s.auth.clone(),
            cors: s.cors.clone(),
        }
    }

    /// The configured model, reached through `env`.
    fn model(&self, env: &Env) -> Result<EdgeModel, Error> {
        EdgeModel::new(
            &self.settings.model,
            (
                self.settings.model_timeout_ms,
                self.settings.model_deadline_ms,
            ),
            env,
        )
    }

    /// An engine on `store` with the configured model and context settings.
    fn engine<'a, C>(&self, store: &'a C, model: &'a EdgeModel) -> Engine<'a, C, EdgeModel> {
        let mut engine = Engine::new(store, model, &SystemClock, &SystemEntropy);
        engine.context = self.settings.context.clone();
        engine
    }
}

thread_local! {
    /// The `MEMORY_BACKEND=memory` store: lives exactly as long as this isolate.
    static ISOLATE_MEMORY: &'static MemoryCheckpointer = Box::leak(Box::new(MemoryCheckpointer::new()));
    /// Runs in progress in this isolate (memory mode).
    static ISOLATE_RUNS: &'static RunGate = Box::leak(Box::new(RunGate::new()));
}

/// The worker's fetch handler.
#[event(fetch)]
pub(crate) async fn fetch(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let mut cors = Vec::new();
    let served = match EdgeConfig::from_env(&env) {
        // Fail closed: without a secure random source, ids would be guessable.
        Ok(_) if !crate::runtime::secure_random_available() => Err(Error::backend(
            "crypto.getRandomValues failed: no secure random source, refusing to serve",
        )),
        Ok(config) => match read_request(&mut req, &config).await {
            Ok(http) => {
                cors = api::cors::headers(&http, &config.settings.cors);
                if config.settings.auth.is_open() {
                    cors.push((api::OPEN_HEADER.into(), "none".into()));
                }
                warn_if_open(&config);
                serve(http, &env, &config).await
            }
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    let response = match served {
        Ok(Served::Stream(response)) => {
            let headers = response.headers();
            for (name, value) in &cors {
                headers.set(name, value)?;
            }
            return Ok(response);
        }
        Ok(Served::Http(response)) => response,
        Err(err) => HttpResponse::error(&err),
    };
    if let Some(reason) = &response.internal_error {
        worker::console_error!("edge-memory: {reason}");
    }
    let out = to_worker_response(&response)?;
    let headers = out.headers();
    for (name, value) in &cors {
        headers.set(name, value)?;
    }
    Ok(out)
}

thread_local! {
    static WARNED_OPEN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `AUTH_MODE=none` is for local development and the demo: said loudly, once per isolate.
fn warn_if_open(config: &EdgeConfig) {
    if config.settings.auth.is_open() && !WARNED_OPEN.with(|w| w.replace(true)) {
        worker::console_warn!(
            "edge-memory: AUTH_MODE=none — no API key or token is required; anyone who knows a thread id can read and write it. Set API_KEYS and/or JWT_SECRET before exposing this worker."
        );
    }
}

/// A response: plain data, or a run's event stream passed through from its object.
enum Served {
    Http(HttpResponse),
    Stream(Response),
}

async fn serve(http: HttpRequest, env: &Env, config: &EdgeConfig) -> Result<Served, Error> {
    // Dev routes are answered before planning: check credentials here for them too. A
    // build without the `dev-routes` feature has none: `/__dev/*` is then an unknown route.
    #[cfg(feature = "dev-routes")]
    if http.path.starts_with("/__dev/") {
        let caller = api::authorize(&http, &config.settings.auth, SystemClock.now_ms())?;
        if let Some(response) = dev::dev_route(config, &http, env, &caller).await? {
            return Ok(Served::Http(response));
        }
    }
    let info = config.info();
    let plan = api::plan(&http, &info, SystemClock.now_ms(), &SystemEntropy);
    Ok(Served::Http(match config.settings.backend {
        // KV mode still sends each thread's calls to its Durable Object: the object
        // serializes turns on a thread; KV is where they are stored.
        Backend::DurableObject | Backend::Kv => {
            let backend = DurableObjects { env, config };
            match plan {
                Plan::Thread(call) if matches!(call.command, ThreadCommand::Run(_)) => {
                    return backend.run(call).await;
                }
                plan => api::carry_out(plan, &backend).await,
            }
        }
        Backend::Memory => {
            let model = config.model(env)?;
            let store = EdgeStore::Memory(ISOLATE_MEMORY.with(|store| *store));
            let backend = LocalBackend {
                gate: ISOLATE_RUNS.with(|gate| *gate),
                engine: config.engine(&store, &model),
            };
            api::carry_out(plan, &backend).await
        }
    }))
}

/// Thread calls go to the thread's own Durable Object; directory shards are more objects
/// of the same class, under names no thread id can take.
struct DurableObjects<'a> {
    env: &'a Env,
    config: &'a EdgeConfig,
}

/// Marks an object's response as a run's event stream (not a JSON [`HttpResponse`]).
const STREAM_HEADER: &str = "x-edge-memory-stream";

impl DurableObjects<'_> {
    /// Sends a run to its thread's object. A streamed run comes back as the object's
    /// event stream, passed through as it is produced.
    async fn run(&self, call: ThreadCall) -> Result<Served, Error> {
        let payload = serde_json::to_string(&call).map_err(Error::backend)?;
        let mut response =
            fetch_object(self.env, call.thread_id.as_str(), "/call", payload).await?;
        let headers = response.headers().clone();
        if headers.get(STREAM_HEADER).ok().flatten().is_none() {
            let http: HttpResponse = response.json().await.map_err(Error::backend)?;
            return Ok(Served::Http(http));
        }
        let ResponseBody::Stream(body) = response.body() else {
            return Err(Error::backend("a streamed run has no stream"));
        };
        let out = Response::builder().with_status(200).stream(body.clone());
        let out_headers = out.headers();
        for (name, value) in headers.entries() {
            if name != STREAM_HEADER {
                out_headers.set(&name, &value).map_err(Error::backend)?;
            }
        }
        out_headers
            .set("cache-control", API_CACHE_CONTROL)
            .map_err(Error::backend)?;
        out_headers
            .set("content-encoding", API_CONTENT_ENCODING)
            .map_err(Error::backend)?;
        Ok(Served::Stream(out))
    }
}

impl api::Backend for DurableObjects<'_> {
    async fn call(&self, call: ThreadCall) -> HttpResponse {
        let result = match serde_json::to_string(&call) {
            Ok(payload) => call_object(self.env, call.thread_id.as_str(), "/call", payload).await,
            Err(e) => Err(Error::backend(e)),
        };
        result.into()
    }

    async fn call_stateless(&self, run: RunRequest) -> HttpResponse {
        // Nothing is kept, so no object is needed: run in this isolate.
        match self.config.model(self.env) {
            Ok(model) => {
                let scratch = MemoryCheckpointer::new();
                let store = EdgeStore::Memory(&scratch);
                api::execute_stateless(run, &self.config.engine(&store, &model)).await
            }
            Err(err) => HttpResponse::error(&err),
        }
    }

    async fn index_apply(&self, shard: &Shard, update: &IndexUpdate) -> Result<(), Error> {
        directory::shard_apply(self.env, shard, update).await
    }

    async fn index_search(
        &self,
        shard: &Shard,
        query: &ThreadSearch,
    ) -> Result<Vec<ThreadRecord>, Error> {
        directory::shard_query(self.env, shard, "/index/search", query).await
    }

    async fn index_count(&self, shard: &Shard, query: &ThreadSearch) -> Result<usize, Error> {
        directory::shard_query(self.env, shard, "/index/count", query).await
    }

    async fn run_threads(
        &self,
        shard: &Shard,
        run_ids: &[String],
    ) -> Result<Vec<crate::thread::ThreadId>, Error> {
        directory::shard_query(self.env, shard, "/index/runs", &run_ids).await
    }
}

/// Reads method, path and body, refusing bodies over the limit before buffering them.
async fn read_request(req: &mut Request, config: &EdgeConfig) -> Result<HttpRequest, Error> {
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared.filter(|size| *size > REQUEST_BODY_MAX_BYTES) {
        return Err(Error::TooLarge {
            what: "request body (bytes)".into(),
            size,
            limit: REQUEST_BODY_MAX_BYTES,
        });
    }
    let headers = api::READ_HEADERS
        .iter()
        .filter_map(|name| {
            let value = req.headers().get(name).ok().flatten()?;
            Some((name.to_string(), value))
        })
        .collect();
    let mut http = HttpRequest {
        method: req.method().to_string(),
        path: req.path(),
        body: Vec::new(),
        headers,
        verified_token: None,
    };
    if let Some(jwt) = &config.settings.auth.jwt {
        http.verified_token = jwks::verify_bearer(http.header("authorization"), jwt).await;
    }
    if matches!(
        req.method(),
        Method::Get | Method::Head | Method::Delete | Method::Options
    ) {
        return Ok(http);
    }
    // Credentials before the body: an unauthenticated request costs no body reading.
    // Its body is cancelled, so the runtime answers at once instead of draining it.
    if let Err(err) = api::authorize(&http, &config.settings.auth, SystemClock.now_ms()) {
        cancel_body(req);
        return Err(err);
    }
    http.body = read_body(req).await?;
    Ok(http)
}

/// Cancels the rest of a request body that will not be read, so the runtime answers at
/// once instead of draining it first.
fn cancel_body(req: &Request) {
    if let Some(body) = req.inner().body() {
        // A failure (the stream is locked or done) leaves nothing to cancel.
        let _ = body.cancel();
    }
}

/// Reads the body as it streams in, refusing it as soon as it passes the limit: a
/// chunked or HTTP/2 body has no `content-length` to check first, and buffering it whole
/// could exhaust the isolate's memory (128 MB) shared with other requests.
async fn read_body(req: &mut Request) -> Result<Vec<u8>, Error> {
    let unreadable = |e: worker::Error| Error::BadRequest {
        reason: format!("body could not be read ({e})"),
    };
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new()); // no body at all
    };
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable)?;
        if body.len() + chunk.len() > REQUEST_BODY_MAX_BYTES {
            drop(stream);
            cancel_body(req);
            return Err(Error::TooLarge {
                what: "request body (bytes)".into(),
                size: body.len() + chunk.len(),
                limit: REQUEST_BODY_MAX_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sends `payload` to the object named `name` at `path`.
async fn fetch_object(
    env: &Env,
    name: &str,
    path: &str,
    payload: String,
) -> Result<Response, Error> {
    let namespace = env
        .durable_object(THREADS_BINDING)
        .map_err(Error::backend)?;
    let stub = namespace
        .id_from_name(name)
        .and_then(|id| id.get_stub())
        .map_err(Error::backend)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(payload.into()));
    let url = format!("https://thread-object.internal{path}");
    let request = Request::new_with_init(&url, &init).map_err(Error::backend)?;
    stub.fetch_with_request(request)
        .await
        .map_err(Error::backend)
}

/// Sends `payload` to the object named `name` at `path`; it answers with an
/// [`HttpResponse`] as JSON.
async fn call_object(
    env: &Env,
    name: &str,
    path: &str,
    payload: String,
) -> Result<HttpResponse, Error> {
    fetch_object(env, name, path, payload)
        .await?
        .json::<HttpResponse>()
        .await
        .map_err(Error::backend)
}

fn to_worker_response(response: &HttpResponse) -> worker::Result<Response> {
    let out = match &response.body {
        Body::Json(body) => Response::from_json(body)?,
        Body::Empty => Response::empty()?,
        Body::EventStream(events) => {
            let text: String = events.iter().map(SseEvent::to_text).collect();
            let out = Response::ok(text)?;
            let headers = out.headers();
            headers.set("content-type", "text/event-stream; charset=utf-8")?;
            headers.set("x-accel-buffering", "no")?;
            out
        }
    };
    let out = out.with_status(response.status);
    let headers = out.headers();
    headers.set("cache-control", API_CACHE_CONTROL)?;
    if response.body != Body::Empty {
        headers.set("content-encoding", API_CONTENT_ENCODING)?;
    }
    for (name, value) in &response.headers {
        headers.set(name, value)?;
    }
    Ok(out)
}

/// One conversation thread's Durable Object: its storage is the thread's memory.
#[durable_object]
pub struct ThreadObject {
    /// Shared with runs that outlive their request (a stream whose client went away).
    inner: Rc<ObjectInner>,
}

struct ObjectInner {
    store: SqlCheckpointer<DoSql>,
    /// The directory table, when this object is a directory shard.
    directory: SqlDirectory<DoSql>,
    /// When this thread's record goes to its directory shard.
    directory_sync: std::cell::RefCell<DirectorySync>,
    /// Runs whose first checkpointer write this instance recorded in the directory.
    recorded_runs: std::cell::RefCell<std::collections::VecDeque<String>>,
    /// The last copy sent, for the fault switch's stale duplicates.
    #[cfg(feature = "dev-routes")]
    directory_previous: std::cell::RefCell<Option<IndexUpdate>>,
    /// The KV store, when `MEMORY_BACKEND=kv` and the namespace is bound.
    kv: Option<KvCheckpointer<WorkerKv>>,
    runs: RunGate,
    state: State,
    env: Env,
    /// A random id of this instance: it changes when the object starts cold.
    #[cfg(feature = "dev-routes")]
    instance: String,
    /// How long the last finished run took in this object, in ms.
    last_run_ms: std::cell::Cell<f64>,
    /// Requests and alarms this instance served (the benchmark's hot-spot share).
    #[cfg(feature = "dev-routes")]
    requests: std::cell::Cell<u64>,
}

impl DurableObject for ThreadObject {
    fn new(state: State, env: Env) -> Self {
        // No fallible work here: a panic in a constructor kills the isolate. The schema
        // is set up lazily by the checkpointer on first use.
        let kv_mode = matches!(
            EdgeConfig::from_env(&env).map(|c| c.settings.backend),
            Ok(Backend::Kv)
        );
        let kv = if kv_mode {
            env.kv(KV_BINDING).ok()
        } else {
            None
        };
        ThreadObject {
            inner: Rc::new(ObjectInner {
                store: SqlCheckpointer::new(DoSql::new(state.storage())),
                directory: SqlDirectory::new(DoSql::new(state.storage())),
                directory_sync: std::cell::RefCell::new(DirectorySync::new()),
                recorded_runs: std::cell::RefCell::new(std::collections::VecDeque::new()),
                #[cfg(feature = "dev-routes")]
                directory_previous: std::cell::RefCell::new(None),
                kv: kv.map(|store| KvCheckpointer::new(WorkerKv::new(store))),
                runs: RunGate::new(),
                state,
                env,
                #[cfg(feature = "dev-routes")]
                instance: crate::runtime::uuid_v4(&SystemEntropy),
                last_run_ms: std::cell::Cell::new(f64::NAN),
                #[cfg(feature = "dev-routes")]
                requests: std::cell::Cell::new(0),
            }),
        }
    }

    /// The alarm sends this thread's record to its directory shard (coalesced turns,
    /// retries after a failed send).
    async fn alarm(&self) -> worker::Result<Response> {
        #[cfg(feature = "dev-routes")]
        self.inner.requests.set(self.inner.requests.get() + 1);
        self.inner.directory_alarm().await;
        Response::empty()
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let path = req.path();
        let body = req.text().await.unwrap_or_default();
        let inner = &self.inner;
        #[cfg(feature = "dev-routes")]
        inner.requests.set(inner.requests.get() + 1);
        if !crate::runtime::secure_random_available() {
            let err = Error::backend("crypto.getRandomValues failed in the thread object");
            return object_response(&HttpResponse::error(&err));
        }
        let response = match path.as_str() {
            "/call" => match decode::<ThreadCall>(&body) {
                Ok(
                    call @ ThreadCall {
                        command: ThreadCommand::Run(_),
                        ..
                    },
                ) => return ObjectInner::run(inner.clone(), call).await,
                Ok(call) => inner.thread_call(call).await,
                Err(err) => HttpResponse::error(&err),
            },
            index if index.starts_with("/index/") => inner.directory_route(index, &body).await,
            #[cfg(feature = "dev-routes")]
            dev if dev.starts_with("/dev/") => dev::object_route(inner, dev).await,
            other => HttpResponse::error(&Error::backend(format_args!(
                "thread object has no route {other}"
            ))),
        };
        object_response(&response)
    }
}

/// An object's answer as JSON, logging what failed.
fn object_response(response: &HttpResponse) -> worker::Result<Response> {
    if let Some(reason) = &response.internal_error {
        worker::console_error!("edge-memory thread object: {reason}");
    }
    Response::from_json(response)
}

fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Error> {
    serde_json::from_str(body)
        .map_err(|e| Error::backend(format_args!("undecodable internal request: {e}")))
}

/// What a run sends from its task to the response.
enum RunItem {
    Event(SseEvent),
    Done(HttpResponse),
}

/// Sends a run's events into the channel its response reads; a closed channel (the
/// client went away) is ignored: the run goes on and is stored.
struct ChannelSink(UnboundedSender<RunItem>);

impl api::RunSink for ChannelSink {
    fn event(&self, event: SseEvent) {
        let _ = self.0.unbounded_send(RunItem::Event(event));
    }
}

impl ObjectInner {
    /// Runs on this thread. The run itself is a task of the object (`waitUntil`): a
    /// client that goes away mid-stream does not stop it, and its reply is stored. The
    /// response waits for the reply's first piece, so a run that fails before it (a
    /// model error, a timeout, an invalid input) is answered with its error status; a
    /// later failure ends the stream with an `error` event.
    async fn run(inner: Rc<ObjectInner>, call: ThreadCall) -> worker::Result<Response> {
        let config = match EdgeConfig::from_env(&inner.env) {
            Ok(config) => config,
            Err(err) => return object_response(&HttpResponse::error(&err)),
        };
        // Another user's thread is unknown before it can be found busy or queued on.
        if let Err(err) = api::check_caller(&inner.edge_store(), &call).await {
            return object_response(&HttpResponse::error(&err));
        }
        let ThreadCall {
            thread_id,
            command: ThreadCommand::Run(run),
            owner,
        } = call
        else {
            return object_response(&HttpResponse::error(&Error::backend("not a run")));
        };
        let ticket = match inner.runs.admit(&thread_id, run.multitask).await {
            Ok(ticket) => ticket,
            Err(err) => return object_response(&HttpResponse::error(&err)),
        };
        let model = match config.model(&inner.env) {
            Ok(model) => model,
            Err(err) => return object_response(&HttpResponse::error(&err)),
        };
        let store = inner.edge_store();
        let engine = config.engine(&store, &model);
        let prepared = api::prepare_run(&engine, thread_id, run, owner.as_deref()).await;
        let prepared = match prepared {
            Ok(prepared) => prepared,
            Err(err) => return object_response(&HttpResponse::error(&err)),
        };
        inner.directory_run_started(prepared.index_update());
        let thread_id = prepared.thread_id.clone();
        let (sender, mut items) = unbounded::<RunItem>();
        let task_inner = inner.clone();
        inner.state.wait_until(async move {
            let _ticket = ticket;
            let sink = ChannelSink(sender);
            let started = precise_now_ms();
            let store = task_inner.edge_store();
            let mut response =
                api::finish_run(&config.engine(&store, &model), prepared, &sink).await;
            if response.index.take().is_some() {
                // The record as the run left it (status, time), not as it began.
                if let Ok(record) = store.get_thread(&thread_id).await {
                    task_inner.directory_changed(IndexUpdate::Upsert { record });
                }
            }
            if let Some(reason) = &response.internal_error {
                worker::console_error!("edge-memory run: {reason}");
            }
            let took = precise_now_ms() - started;
            task_inner.last_run_ms.set(took);
            let response = response.with_header("server-timing", server_timing(took));
            let _ = sink.0.unbounded_send(RunItem::Done(response));
        });
        let mut before_open = Vec::new();
        loop {
            match items.next().await {
                Some(RunItem::Event(event)) => {
                    let opens = api::opens_stream(&event);
                    before_open.push(event);
                    if opens {
                        break;
                    }
                }
                Some(RunItem::Done(response)) => {
                    // Over before the reply's first piece: answered whole, as JSON.
                    return object_response(&api::whole_answer(response, before_open));
                }
                None => {
                    return object_response(&HttpResponse::error(&Error::backend(
                        "the run ended without an answer",
                    )))
                }
            }
        }
        let head: String = before_open.iter().map(SseEvent::to_text).collect();
        let rest = items.map(|item| match item {
            RunItem::Event(event) => event.to_text(),
            RunItem::Done(response) if response.status >= 400 => {
                api::error_event(&response).to_text()
            }
            RunItem::Done(_) => String::new(),
        });
        let body = futures_util::stream::once(async move { head })
            .chain(rest)
            .map(|text| Ok::<Vec<u8>, worker::Error>(text.into_bytes()));
        let response = Response::from_stream(body)?;
        let headers = response.headers();
        headers.set("content-type", "text/event-stream; charset=utf-8")?;
        headers.set("x-accel-buffering", "no")?;
        headers.set(STREAM_HEADER, "1")?;
        Ok(response)
    }

    /// Where this object keeps the thread: KV when configured, else its SQLite.
    fn edge_store(&self) -> EdgeStore<'_> {
        match &self.kv {
            Some(kv) => EdgeStore::Kv(kv),
            None => EdgeStore::Sql(&self.store),
        }
    }

    async fn thread_call(&self, call: ThreadCall) -> HttpResponse {
        let started = precise_now_ms();
        let config = match EdgeConfig::from_env(&self.env) {
            Ok(config) => config,
            Err(err) => return HttpResponse::error(&err),
        };
        // Only runs ask the model; every other call gets the offline one.
        let model = EdgeModel::demo();
        let store = self.edge_store();
        let mut response = self
            .runs
            .execute(call, &config.engine(&store, &model))
            .await;
        match response.index.take() {
            Some(run @ IndexUpdate::Run { .. }) => {
                if let Err(err) = self.record_run(run).await {
                    response = HttpResponse::error(&err);
                }
            }
            Some(update) => self.directory_changed_awaited(update).await,
            None => {}
        }
        // The object's own time for the call (storage, model, response), for
        // clients and the benchmark: `server-timing: do;dur=<ms>`.
        let took = precise_now_ms() - started;
        response.with_header("server-timing", server_timing(took))
    }
}

/// `server-timing: do;dur=<ms>` with microseconds, formatted without the float
/// formatter (which costs the wasm module ~10 KB).
fn server_timing(ms: f64) -> String {
    let us = (ms.max(0.0) * 1000.0) as u64;
    format!("do;dur={}.{:03}", us / 1000, us % 1000)
}

/// `performance.now()` where the runtime has it (sub-millisecond in local workerd;
/// coarsened in production), else `Date.now()`.
fn precise_now_ms() -> f64 {
    use wasm_bindgen::JsCast;
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|performance| {
            let now = js_sys::Reflect::get(&performance, &"now".into()).ok()?;
            let now: js_sys::Function = now.dyn_into().ok()?;
            now.call0(&performance).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}
