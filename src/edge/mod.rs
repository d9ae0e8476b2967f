//! The Workers edge layer (wasm32 only): the only code that names `worker::*`.
//!
//! - `entry`: the `#[event(fetch)]` handler, the worker's entry. It plans each request
//!   with the pure API layer and sends thread commands to the thread's Durable Object,
//!   named by the thread id.
//! - `objects`: [`DurableObjects`](objects::DurableObjects), the API's backend of
//!   objects, and the calls that reach one.
//! - `thread_object`: [`ThreadObject`](thread_object::ThreadObject), the per-thread Durable Object; it executes
//!   commands on a [`SqlCheckpointer`](crate::checkpoint::sql::SqlCheckpointer) over its
//!   own SQLite storage (`DoSql`); `run`: a run streamed from it.
//!
//! Configuration (wrangler.toml `[vars]`): `MEMORY_BACKEND` = `durable_object` (default)
//! or `memory` (per-isolate memory, forgets on restart: for demonstrating the bug only);
//! `MODEL_PROVIDER` = `memory-demo` (default); `DEV_MODE` = `true` enables `/__dev/*`
//! routes (never set it in production).

mod aisdk;
mod assistants;
#[cfg(feature = "dev-routes")]
mod dev;
mod directory;
mod do_sql;
mod doctor;
mod entry;
mod jwks;
mod model;
mod objects;
mod outgoing;
mod run;
mod runs;
mod store;
mod store_shard;
mod thread_object;
mod ttl;
mod worker_kv;

use worker::Env;

use crate::api::ServerInfo;
use crate::chat::Engine;
use crate::config::{self, MemoryBackend as Backend, Settings};
use crate::error::Error;
use crate::runtime::{SystemClock, SystemEntropy};

use model::EdgeModel;
use worker_kv::KV_BINDING;

/// API answers are never cached, and never re-encoded on the way: proxies that decode a
/// body but pass its `content-encoding` on (Next.js route handlers) break the page.
const API_CACHE_CONTROL: &str = "no-store, no-transform";
/// Sent as the body's `content-encoding`, so the runtime does not compress API answers
/// itself (Cloudflare compresses JSON for clients that accept gzip, unless the response
/// already names an encoding).
const API_CONTENT_ENCODING: &str = "identity";

/// Settings read from the environment, once per isolate: a deployment's vars and
/// secrets cannot change under a running isolate (a new version starts new ones). The
/// rules live in the native [`crate::config`] module.
#[derive(Clone)]
struct EdgeConfig {
    settings: Settings,
}

thread_local! {
    /// This isolate's settings, read on its first request that found them valid (a
    /// misconfigured worker keeps answering each request with the error).
    static ISOLATE_CONFIG: std::cell::RefCell<Option<std::rc::Rc<EdgeConfig>>> =
        const { std::cell::RefCell::new(None) };
}

impl EdgeConfig {
    /// This isolate's settings (see [`ISOLATE_CONFIG`]).
    fn from_env(env: &Env) -> Result<std::rc::Rc<Self>, Error> {
        if let Some(config) = ISOLATE_CONFIG.with(|c| c.borrow().clone()) {
            return Ok(config);
        }
        let config = std::rc::Rc::new(Self::read(env)?);
        ISOLATE_CONFIG.with(|c| c.replace(Some(config.clone())));
        Ok(config)
    }

    fn read(env: &Env) -> Result<Self, Error> {
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

    /// The settings of a run: the deployment's, with its assistant's overrides.
    fn for_run(&self, run: &crate::api::RunRequest) -> Self {
        EdgeConfig {
            settings: self.settings.with_overrides(&run.assistant.overrides),
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
