//! The Store API on Durable Objects: the worker embeds and fans out
//! ([`EdgeStoreShards`]), store shard objects (`store/u/<sub>`, `store/s/<i>`: more
//! objects of the thread class) keep the items in their SQLite and expire them by alarm.

use worker::Env;

use super::model::{FetchClient, WorkerAi};
use super::objects::call_object;
use super::thread_object::{decode, ObjectInner};
use crate::api::store::{self, execute_shard, ShardCommand, StorePlan, StoreShard, StoreShards};
use crate::api::{Body, HttpResponse};
use crate::chat::upstream::MODEL_TIMEOUT_MS_DEFAULT;
use crate::error::{Error, Result};
use crate::runtime::{Clock, SystemClock};
use crate::store::embed::LocalEmbedder;
use crate::store::openai::{Embedder, EmbeddingsChoice, OpenAiEmbedder};
use crate::store::workers_ai::{AiJsonBinding, WorkersAiEmbedder};

/// The object-storage key set while a shard's expiry alarm is armed: the alarm of a
/// store shard sweeps, a thread object's alarm (without it) does not touch store tables.
const STORE_ALARM_KEY: &str = "store_expiry";

/// The worker's view of the store: shard objects, and the configured embedder.
pub(super) struct EdgeStoreShards<'a> {
    pub(super) env: &'a Env,
    pub(super) embeddings: EmbeddingsChoice,
}

impl<'a> EdgeStoreShards<'a> {
    /// The store of `env`, with the embedder `STORE_EMBEDDINGS` names.
    pub(super) fn new(env: &'a Env) -> Result<Self> {
        let var = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let secret = |name: &str| env.secret(name).ok().map(|s| s.to_string());
        Ok(EdgeStoreShards {
            env,
            embeddings: EmbeddingsChoice::from_vars(var, secret)?,
        })
    }
}

/// Carries a store plan out on the worker's shard objects.
pub(super) async fn serve(env: &Env, plan: StorePlan) -> HttpResponse {
    let plan = match EdgeStoreShards::new(env) {
        Ok(shards) => {
            // Without embeddings a query is ignored, as LangGraph's server does.
            let mut plan = plan;
            if shards.embeddings == EmbeddingsChoice::Off {
                if let store::StoreOp::Search { text, .. } = &mut plan.op {
                    *text = None;
                }
                if let store::StoreOp::Put { index, .. } = &mut plan.op {
                    *index = store::IndexSpec::Off;
                }
            }
            return store::carry_out(plan, &shards).await;
        }
        Err(err) => err,
    };
    HttpResponse::error(plan)
}

impl StoreShards for EdgeStoreShards<'_> {
    async fn shard(&self, shard: &StoreShard, command: &ShardCommand) -> Result<serde_json::Value> {
        let payload = crate::json::to_text(command).map_err(Error::backend)?;
        let response = call_object(self.env, &shard.object_name(), "/store", payload).await?;
        match response.body {
            Body::Json(value) if response.status == 200 => Ok(value),
            _ if response.status < 500 => Err(Error::backend(format_args!(
                "store shard {} answered {}",
                shard.object_name(),
                response.status
            ))),
            _ => Err(Error::Unavailable {
                reason: format!("store shard {} failed", shard.object_name()),
            }),
        }
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        match &self.embeddings {
            EmbeddingsChoice::Local | EmbeddingsChoice::Off => {
                Embedder::embed(&LocalEmbedder, texts).await
            }
            EmbeddingsChoice::OpenAi(config) => {
                let client = FetchClient {
                    timeout_ms: MODEL_TIMEOUT_MS_DEFAULT,
                };
                OpenAiEmbedder {
                    client: &client,
                    config,
                }
                .embed(texts)
                .await
            }
            EmbeddingsChoice::WorkersAi { model } => {
                let ai = WorkerAi::from_env(
                    self.env,
                    MODEL_TIMEOUT_MS_DEFAULT,
                    "STORE_EMBEDDINGS=workers-ai",
                )?;
                let model = model.clone();
                WorkersAiEmbedder { model, ai }.embed(texts).await
            }
        }
    }
}

impl AiJsonBinding for WorkerAi {
    async fn run_json(&self, model: &str, input: &serde_json::Value) -> Result<serde_json::Value> {
        let output = self.output(model, input).await?;
        let text = js_sys::JSON::stringify(&output)
            .ok()
            .and_then(|t| t.as_string())
            .ok_or_else(|| Error::Upstream {
                reason: "Workers AI answered with something that is not JSON".into(),
            })?;
        serde_json::from_str(&text).map_err(|e| Error::Upstream {
            reason: format!("Workers AI answered with something that is not JSON ({e})"),
        })
    }
}

impl ObjectInner {
    /// A store shard object's route: one [`ShardCommand`] on its SQLite.
    pub(super) async fn store_route(&self, body: &str) -> HttpResponse {
        let command = match decode::<ShardCommand>(body) {
            Ok(command) => command,
            Err(err) => return HttpResponse::error(err),
        };
        match execute_shard(&self.items, command, SystemClock.now_ms()) {
            Ok((answer, expiry)) => {
                if let Some(at) = expiry {
                    self.arm_store_alarm(at).await;
                }
                HttpResponse::ok(answer)
            }
            Err(err) => HttpResponse::error(err),
        }
    }

    /// Sets the alarm to `at` unless one is set sooner.
    async fn arm_store_alarm(&self, at: i64) {
        let storage = self.state.storage();
        let sooner = match storage.get_alarm().await {
            Ok(Some(set)) => set <= at,
            _ => false,
        };
        if sooner {
            return;
        }
        let in_ms = (at - SystemClock.now_ms()).max(0);
        let armed = match storage.put(STORE_ALARM_KEY, true).await {
            Ok(()) => storage.set_alarm(in_ms).await,
            Err(err) => Err(err),
        };
        if let Err(err) = armed {
            worker::console_error!("edge-memory: store expiry alarm not set: {err}");
        }
    }

    /// The alarm of a store shard: deletes the expired items, and sets the alarm again
    /// for the next expiry. Expired items are never returned before it runs either.
    pub(super) async fn store_alarm(&self) {
        let storage = self.state.storage();
        if !matches!(storage.get::<bool>(STORE_ALARM_KEY).await, Ok(Some(true))) {
            return;
        }
        let _ = storage.delete(STORE_ALARM_KEY).await;
        match self.items.sweep(SystemClock.now_ms()) {
            Ok(Some(next)) => self.arm_store_alarm(next).await,
            Ok(None) => {}
            Err(err) => {
                worker::console_error!("edge-memory: store sweep failed: {err}");
                self.arm_store_alarm(SystemClock.now_ms() + 60_000).await;
            }
        }
    }
}

/// `GET /__dev/store/{s/N | u/OWNER}` (dev builds): a store shard's rows, expired ones
/// included, and its next expiry. A JWT user sees only their own shard.
#[cfg(feature = "dev-routes")]
pub(super) async fn shard_stats(
    env: &Env,
    caller: &crate::api::auth::Caller,
    name: &str,
) -> Result<HttpResponse> {
    let shard = match name.split_once('/') {
        Some(("s", index)) => index
            .parse::<u32>()
            .ok()
            .filter(|i| *i < store::SHARED_STORE_SHARDS)
            .map(StoreShard::Shared),
        Some(("u", owner)) if !owner.is_empty() => Some(StoreShard::Owner(owner.to_string())),
        _ => None,
    };
    let not_found = || Error::NotFound {
        what: "store shard",
        id: name.to_string(),
    };
    let shard = shard.ok_or_else(not_found)?;
    if let Some(me) = caller.owner() {
        if shard != StoreShard::Owner(me.to_string()) {
            return Err(not_found());
        }
    }
    call_object(env, &shard.object_name(), "/dev/store", String::new()).await
}

#[cfg(feature = "dev-routes")]
impl ObjectInner {
    /// A store shard's rows and next expiry (`/dev/store`).
    pub(super) fn store_stats(&self) -> HttpResponse {
        let stats = self.items.row_counts().and_then(|(items, vectors)| {
            let next_expiry = self.items.next_expiry()?;
            Ok(serde_json::json!({
                "items": items,
                "vectors": vectors,
                "next_expiry_ms": next_expiry,
            }))
        });
        match stats {
            Ok(body) => HttpResponse::ok(body),
            Err(err) => HttpResponse::error(err),
        }
    }
}
