//! The thread object: one Durable Object per thread, whose storage is the thread's
//! memory. It serves thread calls (runs in `run`), directory shard routes, and the dev
//! routes. Objects named for other jobs (directory and store shards, an owner's
//! assistants, a client's diagnostics) are the same class with their own routes.

use std::rc::Rc;

use worker::{durable_object, DurableObject, Env, Request, Response, State};

use super::do_sql::DoSql;
use super::model::EdgeModel;
use super::store::EdgeStore;
use super::worker_kv::{ObjectRegister, WorkerKv, KV_BINDING};
use super::{Backend, EdgeConfig};
use crate::api::directory::DirectorySync;
use crate::api::runs::{LiveRuns, SqlRuns};
use crate::api::{HttpResponse, IndexUpdate, RunGate, ThreadCall, ThreadCommand};
use crate::checkpoint::assistants::SqlAssistants;
use crate::checkpoint::directory::SqlDirectory;
use crate::checkpoint::keys::{IdempotencyKeys, SqlKeys};
use crate::checkpoint::kv::KvCheckpointer;
use crate::checkpoint::sql::SqlCheckpointer;
use crate::error::Error;
#[cfg(feature = "dev-routes")]
use crate::runtime::SystemEntropy;

/// One conversation thread's Durable Object: its storage is the thread's memory.
/// `alarm`: the class exports `fetch` and `alarm` only; it never accepts WebSockets or
/// sockets, and the handlers `#[durable_object]` exports for them by default (each
/// would only panic) cost ~7 KB of wasm.
#[durable_object(alarm)]
pub struct ThreadObject {
    /// Shared with runs that outlive their request (a stream whose client went away).
    inner: Rc<ObjectInner>,
}

/// What a thread object holds: its stores, run gate and directory sync.
pub(super) struct ObjectInner {
    pub(super) store: SqlCheckpointer<DoSql>,
    /// The directory table, when this object is a directory shard.
    pub(super) directory: SqlDirectory<DoSql>,
    /// The assistants tables, when this object is an owner's assistants object.
    pub(super) assistants: SqlAssistants<DoSql>,
    /// The store's items, when this object is a store shard (`store/...`).
    pub(super) items: crate::store::sql::SqlStore<DoSql>,
    /// When this thread's record goes to its directory shard.
    pub(super) directory_sync: std::cell::RefCell<DirectorySync>,
    /// Runs whose first checkpointer write this instance recorded in the directory.
    pub(super) recorded_runs: std::cell::RefCell<std::collections::VecDeque<String>>,
    /// The last copy sent, for the fault switch's stale duplicates.
    #[cfg(feature = "dev-routes")]
    pub(super) directory_previous: std::cell::RefCell<Option<IndexUpdate>>,
    /// The KV store, when `MEMORY_BACKEND=kv` and the namespace is bound.
    pub(super) kv: Option<KvCheckpointer<WorkerKv, ObjectRegister>>,
    pub(super) runs: RunGate,
    /// The runs under way in this object (their events, followers, stops).
    pub(super) live: LiveRuns,
    /// The thread's run records and kept events.
    pub(super) run_records: SqlRuns<DoSql>,
    /// Answered runs' idempotency keys, kept for a day.
    pub(super) keys: SqlKeys<DoSql>,
    /// Whether this instance has looked for runs a restart left behind.
    pub(super) runs_reconciled: std::cell::Cell<bool>,
    pub(super) state: State,
    pub(super) env: Env,
    /// A random id of this instance: it changes when the object starts cold.
    #[cfg(feature = "dev-routes")]
    pub(super) instance: String,
    /// How long the last finished run took in this object, in ms.
    pub(super) last_run_ms: std::cell::Cell<f64>,
    /// Requests and alarms this instance served (the benchmark's hot-spot share).
    #[cfg(feature = "dev-routes")]
    pub(super) requests: std::cell::Cell<u64>,
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
        // One count of the object's rows (its directory shard's table counted apart).
        let counters: Rc<super::do_sql::SqlCounters> = Rc::default();
        let counted = || DoSql::counted_by(state.storage(), counters.clone());
        ThreadObject {
            inner: Rc::new(ObjectInner {
                store: SqlCheckpointer::new(counted()),
                directory: SqlDirectory::new(DoSql::new(state.storage())),
                assistants: SqlAssistants::new(counted()),
                items: crate::store::sql::SqlStore::new(counted()),
                directory_sync: std::cell::RefCell::new(directory_sync(&env)),
                recorded_runs: std::cell::RefCell::new(std::collections::VecDeque::new()),
                #[cfg(feature = "dev-routes")]
                directory_previous: std::cell::RefCell::new(None),
                kv: kv.map(|store| {
                    KvCheckpointer::with_register(
                        WorkerKv::new(store, &env),
                        ObjectRegister::new(state.storage()),
                    )
                }),
                runs: RunGate::new(),
                live: LiveRuns::new(),
                run_records: SqlRuns::new(counted()),
                keys: SqlKeys::new(counted()),
                runs_reconciled: std::cell::Cell::new(false),
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

    /// The alarm starts and watches the thread's runs (pending runs, runs a restart cut
    /// off, expired kept events) and sends this thread's record to its directory shard
    /// (coalesced turns, retries after a failed send); in a store shard, it expires items.
    async fn alarm(&self) -> worker::Result<Response> {
        #[cfg(feature = "dev-routes")]
        self.inner.requests.set(self.inner.requests.get() + 1);
        self.inner.runs_alarm().await;
        self.inner.ttl_alarm().await;
        self.inner.directory_alarm().await;
        self.inner.store_alarm().await;
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
            return object_response(&HttpResponse::error(err));
        }
        let response = match path.as_str() {
            "/call" => match decode::<ThreadCall>(&body) {
                Ok(
                    call @ ThreadCall {
                        command: ThreadCommand::Run(_),
                        ..
                    },
                ) => return ObjectInner::run(inner.clone(), call).await,
                Ok(
                    call @ ThreadCall {
                        command: ThreadCommand::RunOp(_),
                        ..
                    },
                ) => return ObjectInner::run_op(inner.clone(), call).await,
                Ok(call) => inner.thread_call(call).await,
                Err(err) => HttpResponse::error(err),
            },
            index if index.starts_with("/index/") => inner.directory_route(index, &body).await,
            "/assistants" => inner.assistants_route(&body),
            "/doctor/sync" => inner.doctor_route(&body).await,
            "/store" => inner.store_route(&body).await,
            #[cfg(feature = "dev-routes")]
            dev if dev.starts_with("/dev/") => super::dev::object_route(inner, dev).await,
            other => HttpResponse::error(Error::backend(format_args!(
                "thread object has no route {other}"
            ))),
        };
        object_response(&response)
    }
}

/// An object's answer as JSON, logging what failed.
pub(super) fn object_response(response: &HttpResponse) -> worker::Result<Response> {
    if let Some(reason) = &response.internal_error {
        worker::console_error!("edge-memory thread object: {reason}");
    }
    // Straight to text: a response's body can be a whole state, not worth a copy.
    let text =
        serde_json::to_string(response).map_err(|e| worker::Error::RustError(e.to_string()))?;
    json_text_response(text)
}

/// JSON text as a response.
pub(super) fn json_text_response(text: String) -> worker::Result<Response> {
    let mut response = Response::ok(text)?;
    response
        .headers_mut()
        .set("content-type", "application/json")?;
    Ok(response)
}

/// Decodes an internal request body (from the worker or another object).
pub(super) fn decode<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, Error> {
    crate::json::from_text(body)
        .map_err(|e| Error::backend(format_args!("undecodable internal request: {e}")))
}

impl ObjectInner {
    /// Where this object keeps the thread: KV when configured, else its SQLite.
    pub(super) fn edge_store(&self) -> EdgeStore<'_> {
        match &self.kv {
            Some(kv) => EdgeStore::Kv(kv),
            None => EdgeStore::Sql(&self.store),
        }
    }

    /// Drops a deleted thread's run records, their kept events and its idempotency keys.
    pub(super) fn forget_runs(&self, thread_id: &crate::thread::ThreadId) -> Result<(), Error> {
        self.run_records.delete_thread(thread_id)?;
        self.keys.delete_thread(thread_id)
    }

    /// Carries out a thread call other than a run on this thread.
    async fn thread_call(self: &Rc<Self>, call: ThreadCall) -> HttpResponse {
        self.reconcile_runs();
        let thread_id = call.thread_id.clone();
        let deleting = matches!(call.command, ThreadCommand::Delete);
        let ttl = match &call.command {
            ThreadCommand::Create { ttl_minutes, .. }
            | ThreadCommand::Patch { ttl_minutes, .. } => *ttl_minutes,
            _ => None,
        };
        let mut response = self.thread_call_inner(call).await;
        if let (Some(minutes), 200) = (ttl, response.status) {
            self.set_thread_ttl(&thread_id, minutes).await;
        }
        if deleting && response.status == 204 {
            if let Err(err) = self.forget_runs(&thread_id) {
                worker::console_error!("edge-memory: runs of a deleted thread kept: {err}");
            }
        }
        // A thread with a run under way (or waiting) is `busy`, as LangGraph says.
        if self.live.busy(thread_id.as_str()) {
            if let crate::api::Body::Json(serde_json::Value::Object(thread)) = &mut response.body {
                if thread.get("thread_id").is_some() && thread.contains_key("status") {
                    thread.insert("status".into(), "busy".into());
                }
            }
        }
        response
    }

    async fn thread_call_inner(&self, call: ThreadCall) -> HttpResponse {
        let started = precise_now_ms();
        let config = match EdgeConfig::from_env(&self.env) {
            Ok(config) => config,
            Err(err) => return HttpResponse::error(err),
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
                    response = HttpResponse::error(err);
                }
            }
            Some(update) => self.directory_update(update, false, false).await,
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
pub(super) fn server_timing(ms: f64) -> String {
    let us = (ms.max(0.0) * 1000.0) as u64;
    format!("do;dur={}.{:03}", us / 1000, us % 1000)
}

/// `performance.now()` where the runtime has it (sub-millisecond in local workerd;
/// coarsened in production), else `Date.now()`.
pub(super) fn precise_now_ms() -> f64 {
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

/// The object's directory sync: with the `dev-routes` build and `DEV_MODE`,
/// `DEV_DIRECTORY_TIME_LAG_MS` shortens how long a quiet turn waits, so the tests see it
/// arrive in seconds.
fn directory_sync(env: &Env) -> DirectorySync {
    #[cfg(feature = "dev-routes")]
    {
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        if var("DEV_MODE").as_deref() == Some("true") {
            if let Some(ms) = var("DEV_DIRECTORY_TIME_LAG_MS").and_then(|v| v.parse().ok()) {
                return DirectorySync::with_time_lag(ms);
            }
        }
    }
    let _ = env;
    DirectorySync::new()
}
