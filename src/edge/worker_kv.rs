//! [`KvPort`] on a Workers KV namespace binding, and [`KvRegister`] on the thread
//! object's own storage.

use worker::kv::KvStore;
use worker::Storage;

use crate::checkpoint::kv::{KvPage, KvPort, KvRegister};
use crate::error::{Error, Result};

/// The KV namespace the KV backend stores in (wrangler.toml `[[kv_namespaces]]`).
pub(crate) const KV_BINDING: &str = "MEMORY_KV";

/// A KV namespace as a [`KvPort`].
pub(crate) struct WorkerKv {
    store: KvStore,
    /// The KV-lag nemesis's fault switch (`DEV_KV_FAULTS`), dev builds only.
    #[cfg(feature = "dev-routes")]
    faults: Option<faults::KvFaults>,
}

impl WorkerKv {
    pub(crate) fn new(store: KvStore, env: &worker::Env) -> Self {
        let _ = env;
        WorkerKv {
            store,
            #[cfg(feature = "dev-routes")]
            faults: faults::KvFaults::from_env(env),
        }
    }

    async fn get_now(&self, key: &str) -> Result<Option<String>> {
        self.store.get(key).text().await.map_err(Error::backend)
    }

    async fn list_now(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KvPage> {
        let mut request = self
            .store
            .list()
            .prefix(prefix.to_string())
            .limit(limit.clamp(1, 1000) as u64);
        if let Some(cursor) = cursor {
            request = request.cursor(cursor.to_string());
        }
        let page = request.execute().await.map_err(Error::backend)?;
        #[cfg(feature = "dev-routes")]
        let page = faults::hide_lagging(&self.faults, page);
        Ok(KvPage {
            keys: page.keys.into_iter().map(|k| k.name).collect(),
            cursor: if page.list_complete {
                None
            } else {
                page.cursor
            },
        })
    }
}

impl KvPort for WorkerKv {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        #[cfg(feature = "dev-routes")]
        if let Some(faults) = &self.faults {
            return faults.get(&self.store, key).await;
        }
        self.get_now(key).await
    }

    async fn put(&self, key: &str, value: &str) -> Result<()> {
        let put = self.store.put(key, value).map_err(Error::backend)?;
        #[cfg(feature = "dev-routes")]
        let put = match &self.faults {
            Some(faults) => faults.lagging(put)?,
            None => put,
        };
        put.execute().await.map_err(Error::backend)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.store.delete(key).await.map_err(Error::backend)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KvPage> {
        self.list_now(prefix, cursor, limit).await
    }
}

/// The thread object's own storage (strongly consistent, durable, one writer) as the KV
/// backend's [`KvRegister`].
pub(crate) struct ObjectRegister {
    storage: Storage,
}

impl ObjectRegister {
    pub(crate) fn new(storage: Storage) -> Self {
        ObjectRegister { storage }
    }
}

impl KvRegister for ObjectRegister {
    async fn read(&self, key: &str) -> Result<Option<String>> {
        self.storage
            .get::<String>(key)
            .await
            .map_err(Error::backend)
    }

    async fn write(&self, key: &str, value: &str) -> Result<()> {
        self.storage.put(key, value).await.map_err(Error::backend)
    }

    async fn remove(&self, key: &str) -> Result<()> {
        self.storage
            .delete(key)
            .await
            .map(|_| ())
            .map_err(Error::backend)
    }
}

/// The KV-lag nemesis's fault switch: compiled only with the `dev-routes` feature, and
/// on only with `DEV_MODE=true` and `DEV_KV_FAULTS` set.
#[cfg(feature = "dev-routes")]
mod faults {
    use serde::{Deserialize, Serialize};
    use worker::kv::{KvStore, ListResponse, PutOptionsBuilder};

    use crate::error::{Error, Result};
    use crate::runtime::{Clock, Entropy, SystemClock, SystemEntropy};

    /// Where a cached miss of `key` is remembered (outside every thread's `t/` prefix).
    const MISS_PREFIX: &str = "faults/miss/";

    /// When a written value shows, kept in its KV metadata: the lag outlives the object.
    #[derive(Serialize, Deserialize)]
    struct Visibility {
        visible_at: i64,
    }

    /// `DEV_KV_FAULTS` (e.g. `lag=1500,miss=1500`): each write shows to reads and
    /// listings only after a random delay of up to `lag` ms (listings and reads lag
    /// writes, and later writes can show before earlier ones), and a read that finds
    /// nothing keeps finding nothing for `miss` ms (KV caches misses), also across
    /// restarts of the object.
    pub(super) struct KvFaults {
        lag_ms: i64,
        miss_ms: i64,
    }

    impl KvFaults {
        pub(super) fn from_env(env: &worker::Env) -> Option<KvFaults> {
            let dev_mode = env.var("DEV_MODE").ok()?.to_string() == "true";
            let spec = env.var("DEV_KV_FAULTS").ok()?.to_string();
            if !dev_mode || spec.is_empty() {
                return None;
            }
            let mut faults = KvFaults {
                lag_ms: 0,
                miss_ms: 0,
            };
            for part in spec.split(',') {
                let (key, value) = part.split_once('=')?;
                let value: i64 = value.trim().parse().ok()?;
                match key.trim() {
                    "lag" => faults.lag_ms = value,
                    "miss" => faults.miss_ms = value,
                    _ => return None,
                }
            }
            Some(faults)
        }

        /// A put that shows only after its lag.
        pub(super) fn lagging(&self, put: PutOptionsBuilder) -> Result<PutOptionsBuilder> {
            let mut bytes = [0u8; 4];
            SystemEntropy.fill(&mut bytes);
            let lag = i64::from(u32::from_le_bytes(bytes)) % (self.lag_ms + 1);
            let visible_at = SystemClock.now_ms() + lag;
            put.metadata(Visibility { visible_at })
                .map_err(Error::backend)
        }

        /// A read: nothing while the value lags or a miss of it is cached.
        pub(super) async fn get(&self, store: &KvStore, key: &str) -> Result<Option<String>> {
            let now = SystemClock.now_ms();
            let miss_key = format!("{MISS_PREFIX}{key}");
            let cached_miss = store.get(&miss_key).text().await.map_err(Error::backend)?;
            if cached_miss.and_then(|until| until.parse::<i64>().ok()) > Some(now) {
                return Ok(None);
            }
            let (value, visibility) = store
                .get(key)
                .text_with_metadata::<Visibility>()
                .await
                .map_err(Error::backend)?;
            let shown = value.filter(|_| visibility.is_none_or(|v| v.visible_at <= now));
            if shown.is_none() && self.miss_ms > 0 {
                store
                    .put(&miss_key, (now + self.miss_ms).to_string())
                    .map_err(Error::backend)?
                    .expiration_ttl(60 + (self.miss_ms / 1000) as u64)
                    .execute()
                    .await
                    .map_err(Error::backend)?;
            }
            Ok(shown)
        }
    }

    /// A listing without the keys that do not show yet.
    pub(super) fn hide_lagging(faults: &Option<KvFaults>, mut page: ListResponse) -> ListResponse {
        if faults.is_some() {
            let now = SystemClock.now_ms();
            page.keys.retain(|k| {
                k.metadata
                    .as_ref()
                    .and_then(|m| m.get("visible_at"))
                    .and_then(serde_json::Value::as_i64)
                    .is_none_or(|at| at <= now)
            });
        }
        page
    }
}
