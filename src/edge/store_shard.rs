//! The Store API on Durable Objects: the worker embeds and fans out
//! ([`EdgeStoreShards`]), store shard objects (`store/u/<sub>`, `store/s/<i>`: more
//! objects of the thread class) keep the items in their SQLite and expire them by alarm.

use worker::Env;

use super::model::FetchClient;
use super::objects::call_object;
use super::thread_object::{decode, ObjectInner};
use crate::api::store::{self, execute_shard, ShardCommand, StorePlan, StoreShard, StoreShards};
use crate::api::{Body, HttpResponse};
use crate::chat::upstream::MODEL_TIMEOUT_MS_DEFAULT;
use crate::error::{Error, Result};
use crate::runtime::{Clock, SystemClock};
use crate::store::embed::LocalEmbedder;
use crate::store::openai::{Embedder, EmbeddingsChoice, OpenAiEmbedder};

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
    HttpResponse::error(&plan)
}

impl StoreShards for EdgeStoreShards<'_> {
    async fn shard(&self, shard: &StoreShard, command: &ShardCommand) -> Result<serde_json::Value> {
        let payload = serde_json::to_string(command).map_err(Error::backend)?;
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
        }
    }
}

impl ObjectInner {
    /// A store shard object's route: one [`ShardCommand`] on its SQLite.
    pub(super) async fn store_route(&self, body: &str) -> HttpResponse {
        let command = match decode::<ShardCommand>(body) {
            Ok(command) => command,
            Err(err) => return HttpResponse::error(&err),
        };
        match execute_shard(&self.items, command, SystemClock.now_ms()) {
            Ok((answer, expiry)) => {
                if let Some(at) = expiry {
                    self.arm_store_alarm(at).await;
                }
                HttpResponse::ok(answer)
            }
            Err(err) => HttpResponse::error(&err),
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
