//! Dev-only routes (`DEV_MODE=true`, and only in a build with the `dev-routes`
//! feature, which `make dev` and the tests use and `make deploy` does not): the
//! conformance suites (Checkpointer and saver) inside a Durable Object, storage
//! statistics (of threads, directory shards, store shards), the last run's time, and a
//! cold start on demand.

use serde_json::json;
use worker::Env;

use super::objects::{call_object, DurableObjects};
use super::thread_object::ObjectInner;
use super::EdgeConfig;
use crate::api::auth::Caller;
use crate::api::directory::Shard;
use crate::api::{self, HttpRequest, HttpResponse, ThreadCall, ThreadCommand};
use crate::checkpoint::conformance;
use crate::checkpoint::saver::conformance as saver_conformance;
use crate::error::Error;

/// The object the dev-only conformance run uses, apart from every real thread.
const DEV_CONFORMANCE_OBJECT: &str = "dev/conformance";

/// `/__dev/*` routes (DEV_MODE only).
pub(super) async fn dev_route(
    config: &EdgeConfig,
    http: &HttpRequest,
    env: &Env,
    caller: &Caller,
) -> Result<Option<HttpResponse>, Error> {
    if !config.settings.dev_mode {
        return Ok(None);
    }
    if http.path == "/__dev/conformance" && http.method == "POST" {
        return call_object(
            env,
            DEV_CONFORMANCE_OBJECT,
            "/dev/conformance",
            String::new(),
        )
        .await
        .map(Some);
    }
    // Thread routes: (method, path prefix, the object's dev path).
    const THREAD_ROUTES: [(&str, &str, &str); 3] = [
        // The object answers, then aborts itself: its next request starts a fresh
        // instance that knows only what storage holds.
        ("POST", "/__dev/cold-start/", "/dev/abort"),
        // A streamed run's headers leave before it ends: its time is asked after.
        ("GET", "/__dev/last-run/", "/dev/last-run"),
        ("GET", "/__dev/storage/", "/dev/storage"),
    ];
    if let Some(shard) = http.path.strip_prefix("/__dev/directory/") {
        return directory_stats(env, caller, shard).await.map(Some);
    }
    if let Some(shard) = http.path.strip_prefix("/__dev/store/") {
        return super::store_shard::shard_stats(env, caller, shard)
            .await
            .map(Some);
    }
    for (method, prefix, object_path) in THREAD_ROUTES {
        let Some(thread) = http.path.strip_prefix(prefix) else {
            continue;
        };
        if http.method != method {
            continue;
        }
        let thread_id = crate::thread::ThreadId::parse(thread)?;
        // A user reaches only its own threads here too (404 otherwise).
        if let Some(owner) = caller.owner() {
            let probe = ThreadCall {
                thread_id: thread_id.clone(),
                command: ThreadCommand::Get,
                owner: Some(owner.to_string()),
            };
            let found = api::Backend::call(&DurableObjects { env, config }, probe).await;
            if found.status != 200 {
                return Ok(Some(found));
            }
        }
        let response = call_object(env, thread_id.as_str(), object_path, String::new()).await?;
        if object_path == "/dev/abort" {
            return Ok(Some(HttpResponse::ok(json!({
                "cold_start": true,
                "thread_id": thread_id.as_str(),
            }))));
        }
        return Ok(Some(response));
    }
    Ok(None)
}

/// `GET /__dev/directory/{s/N | u/OWNER}`: a directory shard object's storage stats and
/// request count (the benchmark's hot-spot share). A JWT user sees only their own shard.
async fn directory_stats(env: &Env, caller: &Caller, name: &str) -> Result<HttpResponse, Error> {
    let shard = match name.split_once('/') {
        Some(("s", index)) => index
            .parse::<u32>()
            .ok()
            .filter(|i| *i < crate::api::directory::SHARED_DIRECTORY_SHARDS)
            .map(Shard::Shared),
        Some(("u", owner)) if !owner.is_empty() => Some(Shard::Owner(owner.to_string())),
        _ => None,
    };
    let Some(shard) = shard else {
        return Err(Error::NotFound {
            what: "directory shard",
            id: name.to_string(),
        });
    };
    if let (Some(me), Shard::Owner(owner)) = (caller.owner(), &shard) {
        if me != owner {
            return Err(Error::NotFound {
                what: "directory shard",
                id: owner.clone(),
            });
        }
    }
    call_object(env, &shard.object_name(), "/dev/storage", String::new()).await
}

/// The thread object's dev routes (`/dev/*`).
pub(super) async fn object_route(inner: &ObjectInner, path: &str) -> HttpResponse {
    match path {
        "/dev/conformance" => inner.conformance().await,
        "/dev/storage" => inner.storage_stats(),
        "/dev/store" => inner.store_stats(),
        "/dev/last-run" => HttpResponse::ok(json!({
            "instance": inner.instance,
            "ms": inner.last_run_ms.get(),
        })),
        "/dev/abort" => inner.abort(),
        other => HttpResponse::error(Error::backend(format_args!(
            "thread object has no route {other}"
        ))),
    }
}

impl ObjectInner {
    /// `ctx.abort()`: drops this instance (its memory) the way an eviction or a cold start
    /// would; storage is untouched. Scheduled with a plain JavaScript timer after this
    /// response, so the abort never unwinds through a request that is still in Rust.
    fn abort(&self) -> HttpResponse {
        use wasm_bindgen::JsCast;
        let raw: &wasm_bindgen::JsValue = self.state.as_raw().as_ref();
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
            Err(e) => HttpResponse::error(Error::backend(format_args!("abort failed: {e:?}"))),
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
                "requests": self.requests.get(),
                // A directory shard's own table (its writes are not the store's).
                "directory_rows_written": self.directory.exec().counters().rows_written.get(),
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
            Err(err) => HttpResponse::error(err),
        }
    }

    /// Runs the Checkpointer suite on this object's store (its SQLite, or KV) and the
    /// saver suite on its SQLite, where the saver store always lives.
    async fn conformance(&self) -> HttpResponse {
        let backend = match &self.kv {
            Some(_) => "workers_kv",
            None => "durable_object_sql",
        };
        let report = conformance::run_all(&self.edge_store()).await;
        let saver = saver_conformance::run_all(&self.store);
        let mut body = report_json(backend, &report);
        body["saver"] = report_json("durable_object_sql", &saver);
        HttpResponse::ok(body)
    }
}

/// A suite's report: `{backend, passed, total, cases: [{name, passed, failure}]}`.
fn report_json(backend: &str, report: &conformance::Report) -> serde_json::Value {
    let cases: Vec<_> = report
        .cases
        .iter()
        .map(|c| json!({"name": c.name, "passed": c.failure.is_none(), "failure": c.failure}))
        .collect();
    json!({
        "backend": backend,
        "passed": report.passed(),
        "total": report.cases.len(),
        "cases": cases,
    })
}
