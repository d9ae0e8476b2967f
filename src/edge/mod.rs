//! The Workers edge layer (wasm32 only): the only code that names `worker::*`.
//!
//! - [`fetch`]: the worker's entry. It plans each request with the pure API layer and
//!   sends thread commands to the thread's Durable Object, named by the thread id.
//! - [`ThreadObject`]: the per-thread Durable Object; it executes commands on a
//!   [`SqlCheckpointer`] over its own SQLite storage ([`DoSql`]).
//!
//! Configuration (wrangler.toml `[vars]`): `MEMORY_BACKEND` = `durable_object` (default)
//! or `memory` (per-isolate memory, forgets on restart: for demonstrating the bug only);
//! `MODEL_PROVIDER` = `memory-demo` (default); `DEV_MODE` = `true` enables `/__dev/*`
//! routes (never set it in production).

mod do_sql;
mod worker_kv;

use serde_json::json;
use worker::{
    durable_object, event, Context, DurableObject, Env, Method, Request, RequestInit, Response,
    State,
};

use crate::api::{
    self, Body, HttpRequest, HttpResponse, IndexUpdate, LocalBackend, RunGate, RunRequest,
    ServerInfo, SseEvent, ThreadCall,
};
use crate::chat::demo::MemoryDemoResponder;
use crate::chat::Engine;
use crate::checkpoint::conformance;
use crate::checkpoint::kv::KvCheckpointer;
use crate::checkpoint::memory::MemoryCheckpointer;
use crate::checkpoint::sql::SqlCheckpointer;
use crate::checkpoint::{ThreadIndex, ThreadSearch};
use crate::error::Error;
use crate::limits::REQUEST_BODY_MAX_BYTES;
use crate::runtime::{SystemClock, SystemEntropy};
use crate::thread::ThreadRecord;

use do_sql::DoSql;
use worker_kv::{WorkerKv, KV_BINDING};

/// The Durable Object namespace binding of [`ThreadObject`] in wrangler.toml.
const THREADS_BINDING: &str = "THREADS";
/// The object that holds the thread index. `/` cannot appear in a thread id, so no
/// thread's object can have this name.
const INDEX_OBJECT: &str = "index/threads";
/// The object the dev-only conformance run uses, apart from every real thread.
const DEV_CONFORMANCE_OBJECT: &str = "dev/conformance";

/// Where checkpoints are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    DurableObject,
    Kv,
    Memory,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::DurableObject => "durable_object",
            Backend::Kv => "kv",
            Backend::Memory => "memory",
        }
    }
}

/// Settings read from the environment on each request (reading vars is cheap).
struct EdgeConfig {
    backend: Backend,
    dev_mode: bool,
    /// `API_KEYS` (a secret, or a var locally): comma-separated; none means no key needed.
    api_keys: Vec<String>,
}

impl EdgeConfig {
    fn from_env(env: &Env) -> Result<Self, Error> {
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let backend = match var("MEMORY_BACKEND").as_deref() {
            None | Some("") | Some("durable_object") => Backend::DurableObject,
            Some("memory") => Backend::Memory,
            Some("kv") => Backend::Kv,
            Some(other) => {
                return Err(Error::backend(format_args!(
                    "MEMORY_BACKEND={other:?} is not supported (durable_object, kv, memory)"
                )))
            }
        };
        match var("MODEL_PROVIDER").as_deref() {
            None | Some("") | Some("memory-demo") => {}
            Some(other) => {
                return Err(Error::backend(format_args!(
                    "MODEL_PROVIDER={other:?} is not supported (memory-demo)"
                )))
            }
        }
        let api_keys = env
            .secret("API_KEYS")
            .map(|s| s.to_string())
            .ok()
            .or_else(|| var("API_KEYS"))
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        Ok(EdgeConfig {
            backend,
            dev_mode: var("DEV_MODE").as_deref() == Some("true"),
            api_keys,
        })
    }

    fn info(&self) -> ServerInfo {
        ServerInfo {
            backend: self.backend.name().to_string(),
            model: "memory-demo".to_string(),
            dev_mode: self.dev_mode,
            api_keys: self.api_keys.clone(),
        }
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
pub(crate) async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let response = match serve(req, &env).await {
        Ok(response) => response,
        Err(err) => HttpResponse::error(&err),
    };
    if let Some(reason) = &response.internal_error {
        worker::console_error!("edge-memory: {reason}");
    }
    to_worker_response(&response)
}

async fn serve(mut req: Request, env: &Env) -> Result<HttpResponse, Error> {
    let config = EdgeConfig::from_env(env)?;
    let http = read_request(&mut req).await?;
    // Dev routes below are answered before planning: check the key here for them too.
    api::authorize(&http, &config.api_keys)?;
    if config.dev_mode && http.path == "/__dev/conformance" && http.method == "POST" {
        return call_object(
            env,
            DEV_CONFORMANCE_OBJECT,
            "/dev/conformance",
            String::new(),
        )
        .await;
    }
    if let Some(thread) = http.path.strip_prefix("/__dev/cold-start/") {
        if config.dev_mode && http.method == "POST" {
            let thread_id = crate::thread::ThreadId::parse(thread)?;
            // The object answers, then aborts itself: its next request starts a fresh
            // instance that knows only what storage holds.
            call_object(env, thread_id.as_str(), "/dev/abort", String::new()).await?;
            return Ok(HttpResponse::ok(json!({
                "cold_start": true,
                "thread_id": thread_id.as_str(),
            })));
        }
    }
    if let Some(thread) = http.path.strip_prefix("/__dev/storage/") {
        if config.dev_mode && http.method == "GET" {
            let thread_id = crate::thread::ThreadId::parse(thread)?;
            return call_object(env, thread_id.as_str(), "/dev/storage", String::new()).await;
        }
    }
    let info = config.info();
    Ok(match config.backend {
        // KV mode still sends each thread's calls to its Durable Object: the object
        // serializes turns on a thread; KV is where they are stored.
        Backend::DurableObject | Backend::Kv => {
            api::serve(&http, &info, &SystemEntropy, &DurableObjects { env }).await
        }
        Backend::Memory => {
            let backend = LocalBackend {
                gate: ISOLATE_RUNS.with(|gate| *gate),
                engine: Engine {
                    store: ISOLATE_MEMORY.with(|store| *store),
                    model: &MemoryDemoResponder,
                    clock: &SystemClock,
                    entropy: &SystemEntropy,
                },
            };
            api::serve(&http, &info, &SystemEntropy, &backend).await
        }
    })
}

/// Thread calls go to the thread's own Durable Object; the thread index is one more
/// object of the same class under a name no thread id can take.
struct DurableObjects<'a> {
    env: &'a Env,
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
        api::execute_stateless(run, &MemoryDemoResponder, &SystemClock, &SystemEntropy).await
    }

    async fn index_apply(&self, update: &IndexUpdate) -> Result<(), Error> {
        let payload = serde_json::to_string(update).map_err(Error::backend)?;
        let response = call_object(self.env, INDEX_OBJECT, "/index/apply", payload).await?;
        match response.status {
            200..=299 => Ok(()),
            status => Err(Error::backend(format_args!(
                "index apply answered {status}"
            ))),
        }
    }

    async fn index_search(&self, query: &ThreadSearch) -> Result<Vec<ThreadRecord>, Error> {
        let payload = serde_json::to_string(query).map_err(Error::backend)?;
        let response = call_object(self.env, INDEX_OBJECT, "/index/search", payload).await?;
        match response.body {
            Body::Json(records) if response.status == 200 => {
                serde_json::from_value(records).map_err(Error::backend)
            }
            _ => Err(Error::backend(format_args!(
                "index search answered {}",
                response.status
            ))),
        }
    }
}

/// Reads method, path and body, refusing bodies over the limit before buffering them.
async fn read_request(req: &mut Request) -> Result<HttpRequest, Error> {
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
    let path = req.path();
    let body = match req.method() {
        Method::Get | Method::Head | Method::Delete | Method::Options => Vec::new(),
        _ => req.bytes().await.map_err(|e| Error::BadRequest {
            reason: format!("body could not be read ({e})"),
        })?,
    };
    let api_key = req.headers().get("x-api-key").ok().flatten();
    Ok(HttpRequest {
        method: req.method().to_string(),
        path,
        body,
        api_key,
    })
}

/// Sends `payload` to the object named `name` at `path`; it answers with an
/// [`HttpResponse`] as JSON.
async fn call_object(
    env: &Env,
    name: &str,
    path: &str,
    payload: String,
) -> Result<HttpResponse, Error> {
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
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(Error::backend)?;
    response
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
    headers.set("cache-control", "no-store")?;
    for (name, value) in &response.headers {
        headers.set(name, value)?;
    }
    Ok(out)
}

/// One conversation thread's Durable Object: its storage is the thread's memory.
#[durable_object]
pub struct ThreadObject {
    store: SqlCheckpointer<DoSql>,
    /// The KV store, when `MEMORY_BACKEND=kv` and the namespace is bound.
    kv: Option<KvCheckpointer<WorkerKv>>,
    runs: RunGate,
    /// The runtime's object state, for `abort()` (dev-only cold starts).
    raw_state: worker::worker_sys::DurableObjectState,
    /// A random id of this instance: it changes when the object starts cold.
    instance: String,
}

impl DurableObject for ThreadObject {
    fn new(state: State, env: Env) -> Self {
        // No fallible work here: a panic in a constructor kills the isolate. The schema
        // is set up lazily by the checkpointer on first use.
        let kv_mode = matches!(
            EdgeConfig::from_env(&env).map(|c| c.backend),
            Ok(Backend::Kv)
        );
        let kv = if kv_mode {
            env.kv(KV_BINDING).ok()
        } else {
            None
        };
        ThreadObject {
            store: SqlCheckpointer::new(DoSql::new(state.storage())),
            kv: kv.map(|store| KvCheckpointer::new(WorkerKv::new(store))),
            runs: RunGate::new(),
            raw_state: state._inner(),
            instance: crate::runtime::uuid_v4(&SystemEntropy),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let path = req.path();
        let body = req.text().await.unwrap_or_default();
        let response = match path.as_str() {
            "/call" => self.thread_call(&body).await,
            "/index/apply" => self.index_apply(&body).await,
            "/index/search" => self.index_search(&body).await,
            "/dev/conformance" => self.conformance().await,
            "/dev/storage" => self.storage_stats(),
            "/dev/abort" => self.abort(),
            other => HttpResponse::error(&Error::backend(format_args!(
                "thread object has no route {other}"
            ))),
        };
        if let Some(reason) = &response.internal_error {
            worker::console_error!("edge-memory thread object: {reason}");
        }
        Response::from_json(&response)
    }
}

/// The engine every thread call runs on, over `store`.
fn engine_on<C>(store: &C) -> Engine<'_, C, MemoryDemoResponder> {
    Engine {
        store,
        model: &MemoryDemoResponder,
        clock: &SystemClock,
        entropy: &SystemEntropy,
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Error> {
    serde_json::from_str(body)
        .map_err(|e| Error::backend(format_args!("undecodable internal request: {e}")))
}

impl ThreadObject {
    async fn thread_call(&self, body: &str) -> HttpResponse {
        match decode::<ThreadCall>(body) {
            Ok(call) => {
                let started = precise_now_ms();
                let response = match &self.kv {
                    Some(kv) => self.runs.execute(call, &engine_on(kv)).await,
                    None => self.runs.execute(call, &engine_on(&self.store)).await,
                };
                // The object's own time for the call (storage, model, response), for
                // clients and the benchmark: `server-timing: do;dur=<ms>`.
                let took = precise_now_ms() - started;
                response.with_header("server-timing", format!("do;dur={took:.3}"))
            }
            Err(err) => HttpResponse::error(&err),
        }
    }

    /// `ctx.abort()`: drops this instance (its memory) the way an eviction or a cold start
    /// would; storage is untouched. Scheduled with a plain JavaScript timer after this
    /// response, so the abort never unwinds through a request that is still in Rust.
    fn abort(&self) -> HttpResponse {
        use wasm_bindgen::JsCast;
        let raw: &wasm_bindgen::JsValue = self.raw_state.as_ref();
        let global = js_sys::global();
        let result = js_sys::Reflect::get(raw, &"abort".into())
            .and_then(|f| f.dyn_into::<js_sys::Function>())
            .and_then(|abort| {
                let bound = abort.bind1(raw, &"cold start requested (DEV_MODE)".into());
                let set_timeout: js_sys::Function =
                    js_sys::Reflect::get(&global, &"setTimeout".into())?.dyn_into()?;
                set_timeout.call2(&global, &bound, &0.into())
            });
        match result {
            Ok(_) => HttpResponse::no_content(),
            Err(e) => HttpResponse::error(&Error::backend(format_args!("abort failed: {e:?}"))),
        }
    }

    /// Row counters and table sizes, for `/__dev/storage/{thread}` and the benchmark.
    fn storage_stats(&self) -> HttpResponse {
        let counters = self.store.exec().counters();
        // Read before the queries below add their own rows.
        let (rows_read, rows_written) = (counters.rows_read.get(), counters.rows_written.get());
        let result = self.store.table_stats().map(|tables| {
            json!({
                "instance": self.instance,
                "rows_read": rows_read,
                "rows_written": rows_written,
                // Where the counters stand after this call's own scans, so a caller can
                // subtract them from the next reading.
                "rows_read_after": counters.rows_read.get(),
                "database_size": self.store.exec().database_size(),
                "tables": tables,
            })
        });
        match result {
            Ok(body) => HttpResponse::ok(body),
            Err(err) => HttpResponse::error(&err),
        }
    }

    async fn index_apply(&self, body: &str) -> HttpResponse {
        let result = match decode::<IndexUpdate>(body) {
            Ok(IndexUpdate::Upsert { record }) => self.store.index_upsert(&record).await,
            Ok(IndexUpdate::Remove { thread_id }) => self.store.index_remove(&thread_id).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => HttpResponse::no_content(),
            Err(err) => HttpResponse::error(&err),
        }
    }

    async fn index_search(&self, body: &str) -> HttpResponse {
        let result = match decode::<ThreadSearch>(body) {
            Ok(query) => self.store.search_threads(&query).await,
            Err(err) => Err(err),
        };
        match result.and_then(|records| serde_json::to_value(records).map_err(Error::backend)) {
            Ok(records) => HttpResponse::ok(records),
            Err(err) => HttpResponse::error(&err),
        }
    }

    async fn conformance(&self) -> HttpResponse {
        let (backend, report) = match &self.kv {
            Some(kv) => ("workers_kv", conformance::run_all(kv).await),
            None => (
                "durable_object_sql",
                conformance::run_all(&self.store).await,
            ),
        };
        let cases: Vec<_> = report
            .cases
            .iter()
            .map(|c| json!({"name": c.name, "passed": c.failure.is_none(), "failure": c.failure}))
            .collect();
        HttpResponse::ok(json!({
            "backend": backend,
            "passed": report.passed(),
            "total": report.cases.len(),
            "cases": cases,
        }))
    }
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
