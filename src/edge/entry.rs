//! The worker's fetch entry: reads the request (credentials before the body, the body
//! as it streams, up to its limit), serves it, and writes the response.

use futures_util::StreamExt;
use worker::{event, Context, Env, Method, Request, Response};

use super::doctor::{self, DETECTORS};
use super::objects::{DurableObjects, Served};
use super::store::EdgeStore;
use super::{jwks, Backend, EdgeConfig, API_CACHE_CONTROL, API_CONTENT_ENCODING};
use crate::api::diagnostics::{self, ClientKey, Observation, Outcome, Verdict};
use crate::api::{
    self, ApiError, Body, HttpRequest, HttpResponse, LocalBackend, Plan, RunGate, SseEvent,
    ThreadCommand,
};
use crate::checkpoint::memory::MemoryCheckpointer;
use crate::error::Error;
use crate::limits::REQUEST_BODY_MAX_BYTES;
use crate::runtime::{Clock, SystemClock, SystemEntropy};

thread_local! {
    /// The `MEMORY_BACKEND=memory` store: lives exactly as long as this isolate.
    static ISOLATE_MEMORY: &'static MemoryCheckpointer = Box::leak(Box::new(MemoryCheckpointer::new()));
    /// Runs in progress in this isolate (memory mode).
    static ISOLATE_RUNS: &'static RunGate = Box::leak(Box::new(RunGate::new()));
}

/// The worker's fetch handler.
#[event(fetch)]
pub(crate) async fn fetch(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let mut cors = Vec::new();
    let served = match EdgeConfig::from_env(&env) {
        // Fail closed: without a secure random source, ids would be guessable.
        Ok(_) if !crate::runtime::secure_random_available() => Err(Error::backend(
            "crypto.getRandomValues failed: no secure random source, refusing to serve",
        )
        .into()),
        Ok(config) => match read_request(&mut req, &config).await {
            Ok(http) => {
                cors = api::cors::headers(&http, &config.settings.cors);
                if config.settings.auth.is_open() {
                    cors.push((api::OPEN_HEADER.into(), "none".into()));
                }
                warn_if_open(&config);
                serve(http, &env, &ctx, &config).await
            }
            Err(err) => Err(err),
        },
        Err(err) => Err(err.into()),
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
        Err(err) => HttpResponse::error(err),
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

async fn serve(
    http: HttpRequest,
    env: &Env,
    ctx: &Context,
    config: &EdgeConfig,
) -> Result<Served, ApiError> {
    // Dev routes are answered before planning: check credentials here for them too. A
    // build without the `dev-routes` feature has none: `/__dev/*` is then an unknown route.
    #[cfg(feature = "dev-routes")]
    if http.path.starts_with("/__dev/") {
        let caller = api::authorize(&http, &config.settings.auth, SystemClock.now_ms())?;
        if let Some(response) = super::dev::dev_route(config, &http, env, &caller).await? {
            return Ok(Served::Http(response));
        }
    }
    let info = config.info();
    let plan = api::plan(&http, &info, SystemClock.now_ms(), &SystemEntropy);
    let client = ClientKey::of(&http, diagnostics::plan_owner(&plan));
    if let Plan::Diagnostics { .. } = plan {
        // The client's object has every isolate's facts; this isolate's view if it is
        // out of reach.
        let record = match doctor::sync(env, &client).await {
            Ok(record) => record,
            Err(_) => DETECTORS.with(|d| d.view(&client)),
        };
        let mut report = record.report(&client);
        report["storage_backend"] = info.backend.clone().into();
        return Ok(Served::Http(HttpResponse::ok(report)));
    }
    let observation = Observation::of(&plan);
    let mut headers: Vec<(&str, String)> = Vec::new();
    if let Some(keys) = api::ignored_input_keys(&plan) {
        headers.push((api::IGNORED_INPUT_KEYS_HEADER, keys));
    }
    let served = carry_out(plan, env, config).await?;
    let outcome = match &served {
        Served::Http(response) => Outcome::of(response),
        Served::Stream(response) => stream_outcome(response),
    };
    let ephemeral = diagnostics::ephemeral(&info);
    let now = SystemClock.now_ms();
    let verdict = DETECTORS.with(|d| d.record(&client, &observation, &outcome, ephemeral, now));
    for hint in &verdict.log {
        worker::console_log!("{}", Verdict::log_line(&client, *hint, &http.path));
    }
    if let Some(hints) = verdict.header() {
        headers.push((diagnostics::HINT_HEADER, hints));
    }
    if verdict.sync {
        let (env, client) = (env.clone(), client.clone());
        // After the response: the failure is logged by `sync`, the client never waits.
        ctx.wait_until(async move {
            let _ = doctor::sync(&env, &client).await;
        });
    }
    Ok(match served {
        Served::Http(mut response) => {
            let extra = headers.into_iter().map(|(n, v)| (n.to_string(), v));
            response.headers.extend(extra);
            Served::Http(response)
        }
        Served::Stream(response) => {
            for (name, value) in &headers {
                response
                    .headers()
                    .set(name, value)
                    .map_err(Error::backend)?;
            }
            Served::Stream(response)
        }
    })
}

/// What the detectors read of a run's event stream: its opening's status and turn.
fn stream_outcome(response: &Response) -> Outcome {
    let turn = response
        .headers()
        .get(diagnostics::TURN_HEADER)
        .ok()
        .flatten();
    Outcome {
        status: response.status_code(),
        turn: turn.and_then(|t| t.parse().ok()),
        ..Outcome::default()
    }
}

/// Carries out a plan on the configured backend.
async fn carry_out(plan: Plan, env: &Env, config: &EdgeConfig) -> Result<Served, Error> {
    Ok(Served::Http(match config.settings.backend {
        // KV mode still sends each thread's calls to its Durable Object: the object
        // serializes turns on a thread; KV is where they are stored.
        Backend::DurableObject | Backend::Kv => {
            let backend = DurableObjects { env, config };
            match plan {
                Plan::Thread(call)
                    if matches!(
                        call.command,
                        ThreadCommand::Run(_) | ThreadCommand::RunOp(_)
                    ) =>
                {
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

/// Reads method, path and body, refusing bodies over the limit before buffering them.
async fn read_request(req: &mut Request, config: &EdgeConfig) -> Result<HttpRequest, ApiError> {
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
        }
        .into());
    }
    let headers = api::READ_HEADERS
        .iter()
        .filter_map(|name| {
            let value = req.headers().get(name).ok().flatten()?;
            Some((name.to_string(), value))
        })
        .collect();
    let query = query_of(&req.inner().url());
    let mut http = HttpRequest {
        method: req.method().to_string(),
        path: req.path(),
        query,
        body: Vec::new(),
        headers,
        verified_token: None,
    };
    if let Some(jwt) = &config.settings.auth.jwt {
        http.verified_token = jwks::verify_bearer(http.header("authorization"), jwt).await;
    }
    // DELETE has a body on `/store/items` (LangGraph's shape); elsewhere it is empty.
    if matches!(req.method(), Method::Get | Method::Head | Method::Options) {
        return Ok(http);
    }
    // Credentials before the body: an unauthenticated request costs no body reading.
    // Its body is cancelled, so the runtime answers at once instead of draining it.
    if let Err(err) = api::authorize(&http, &config.settings.auth, SystemClock.now_ms()) {
        cancel_body(req);
        return Err(err);
    }
    http.body = match declared {
        // Its size known and within the limit: read whole, in one call (streaming it
        // chunk by chunk costs a promise and the reader's glue per chunk).
        Some(_) => req.bytes().await.map_err(unreadable)?,
        None => read_body(req).await?,
    };
    Ok(http)
}

/// A body that could not be read is the client's (a dropped connection, a bad length).
fn unreadable(e: worker::Error) -> Error {
    Error::BadRequest {
        reason: format!("body could not be read ({e})"),
    }
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

fn to_worker_response(response: &HttpResponse) -> worker::Result<Response> {
    let out = match &response.body {
        Body::Json(body) => super::thread_object::json_text_response(body.to_string())?,
        Body::Empty => Response::empty()?,
        Body::EventStream(events) => {
            let text: String = events.iter().map(SseEvent::to_text).collect();
            let out = Response::ok(text)?;
            let headers = out.headers();
            headers.set("content-type", "text/event-stream; charset=utf-8")?;
            headers.set("x-accel-buffering", "no")?;
            out
        }
        Body::UiMessageStream(chunks) => {
            let mut text: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
            text.push_str(api::aisdk::DONE_LINE);
            let out = Response::ok(text)?;
            let headers = out.headers();
            headers.set("content-type", "text/event-stream")?;
            headers.set(api::aisdk::UI_STREAM_HEADER, api::aisdk::UI_STREAM_VERSION)?;
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

/// The query string of a request URL, without `?` or a `#fragment`. Read from the raw
/// URL: `Request::url()` parses it with the `url` crate, whose IDNA tables would add
/// ~200 KB to the wasm every isolate loads.
fn query_of(url: &str) -> String {
    let without_fragment = url.split('#').next().unwrap_or_default();
    without_fragment
        .split_once('?')
        .map(|(_, query)| query.to_string())
        .unwrap_or_default()
}
