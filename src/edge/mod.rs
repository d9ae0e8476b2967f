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

use serde_json::json;
use worker::{
    durable_object, event, Context, DurableObject, Env, Method, Request, RequestInit, Response,
    State,
};

use crate::api::{self, HttpRequest, HttpResponse, Plan, ServerInfo, ThreadCall};
use crate::chat::demo::MemoryDemoResponder;
use crate::chat::Engine;
use crate::checkpoint::conformance;
use crate::checkpoint::memory::MemoryCheckpointer;
use crate::checkpoint::sql::SqlCheckpointer;
use crate::error::Error;
use crate::limits::REQUEST_BODY_MAX_BYTES;
use crate::runtime::{SystemClock, SystemEntropy};

use do_sql::DoSql;

/// The Durable Object namespace binding of [`ThreadObject`] in wrangler.toml.
const THREADS_BINDING: &str = "THREADS";

/// Where checkpoints are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    DurableObject,
    Memory,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::DurableObject => "durable_object",
            Backend::Memory => "memory",
        }
    }
}

/// Settings read from the environment on each request (reading vars is cheap).
struct EdgeConfig {
    backend: Backend,
    dev_mode: bool,
}

impl EdgeConfig {
    fn from_env(env: &Env) -> Result<Self, Error> {
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let backend = match var("MEMORY_BACKEND").as_deref() {
            None | Some("") | Some("durable_object") => Backend::DurableObject,
            Some("memory") => Backend::Memory,
            Some(other) => {
                return Err(Error::backend(format_args!(
                    "MEMORY_BACKEND={other:?} is not supported (durable_object, memory)"
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
        Ok(EdgeConfig {
            backend,
            dev_mode: var("DEV_MODE").as_deref() == Some("true"),
        })
    }

    fn info(&self) -> ServerInfo {
        ServerInfo {
            backend: self.backend.name().to_string(),
            model: "memory-demo".to_string(),
        }
    }
}

thread_local! {
    /// The `MEMORY_BACKEND=memory` store: lives exactly as long as this isolate.
    static ISOLATE_MEMORY: &'static MemoryCheckpointer = Box::leak(Box::new(MemoryCheckpointer::new()));
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
    if config.dev_mode && http.path == "/__dev/conformance" && http.method == "POST" {
        return forward_dev_conformance(env).await;
    }
    match api::plan(&http, &config.info(), &SystemEntropy) {
        Plan::Respond(response) => Ok(response),
        Plan::Thread(call) => match config.backend {
            Backend::DurableObject => forward_to_thread_object(env, &call).await,
            Backend::Memory => {
                let store = ISOLATE_MEMORY.with(|store| *store);
                let engine = Engine {
                    store,
                    model: &MemoryDemoResponder,
                    clock: &SystemClock,
                    entropy: &SystemEntropy,
                };
                Ok(api::execute(call, &engine).await)
            }
        },
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
    Ok(HttpRequest {
        method: req.method().to_string(),
        path,
        body,
    })
}

async fn forward_to_thread_object(env: &Env, call: &ThreadCall) -> Result<HttpResponse, Error> {
    let payload = serde_json::to_string(call).map_err(Error::backend)?;
    call_object(
        env,
        call.thread_id.as_str(),
        "https://thread.internal/call",
        payload,
    )
    .await
}

async fn forward_dev_conformance(env: &Env) -> Result<HttpResponse, Error> {
    // A dedicated object, so the suite never shares storage with a real thread.
    call_object(
        env,
        "__dev_conformance__",
        "https://thread.internal/dev/conformance",
        String::new(),
    )
    .await
}

async fn call_object(
    env: &Env,
    name: &str,
    url: &str,
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
    let request = Request::new_with_init(url, &init).map_err(Error::backend)?;
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
    let mut out = match &response.body {
        Some(body) => Response::from_json(body)?,
        None => Response::empty()?,
    };
    out = out.with_status(response.status);
    out.headers_mut().set("cache-control", "no-store")?;
    Ok(out)
}

/// One conversation thread's Durable Object: its storage is the thread's memory.
#[durable_object]
pub struct ThreadObject {
    store: SqlCheckpointer<DoSql>,
}

impl DurableObject for ThreadObject {
    fn new(state: State, _env: Env) -> Self {
        // No fallible work here: a panic in a constructor kills the isolate. The schema
        // is set up lazily by the checkpointer on first use.
        ThreadObject {
            store: SqlCheckpointer::new(DoSql::new(state.storage())),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let response = if req.path() == "/dev/conformance" {
            let report = conformance::run_all(&self.store).await;
            let cases: Vec<_> = report
                .cases
                .iter()
                .map(|c| json!({"name": c.name, "passed": c.failure.is_none(), "failure": c.failure}))
                .collect();
            HttpResponse::ok(json!({
                "backend": "durable_object_sql",
                "passed": report.passed(),
                "total": report.cases.len(),
                "cases": cases,
            }))
        } else {
            match req.json::<ThreadCall>().await {
                Ok(call) => {
                    let engine = Engine {
                        store: &self.store,
                        model: &MemoryDemoResponder,
                        clock: &SystemClock,
                        entropy: &SystemEntropy,
                    };
                    let response = api::execute(call, &engine).await;
                    if let Some(reason) = &response.internal_error {
                        worker::console_error!("edge-memory thread object: {reason}");
                    }
                    response
                }
                Err(err) => {
                    let err = Error::backend(format_args!("undecodable thread call: {err}"));
                    worker::console_error!("edge-memory thread object: {err}");
                    HttpResponse::error(&err)
                }
            }
        };
        Response::from_json(&response)
    }
}
