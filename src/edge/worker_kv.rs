//! [`KvPort`] on a Workers KV namespace binding.

use worker::kv::KvStore;

use crate::checkpoint::kv::{KvPage, KvPort};
use crate::error::{Error, Result};

/// The KV namespace the KV backend stores in (wrangler.toml `[[kv_namespaces]]`).
pub(crate) const KV_BINDING: &str = "MEMORY_KV";

/// A KV namespace as a [`KvPort`].
pub(crate) struct WorkerKv {
    store: KvStore,
}

impl WorkerKv {
    pub(crate) fn new(store: KvStore) -> Self {
        WorkerKv { store }
    }
}

impl KvPort for WorkerKv {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.store.get(key).text().await.map_err(Error::backend)
    }

    async fn put(&self, key: &str, value: &str) -> Result<()> {
        self.store
            .put(key, value)
            .map_err(Error::backend)?
            .execute()
            .await
            .map_err(Error::backend)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.store.delete(key).await.map_err(Error::backend)
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KvPage> {
        let mut request = self
            .store
            .list()
            .prefix(prefix.to_string())
            .limit(limit.clamp(1, 1000) as u64);
        if let Some(cursor) = cursor {
            request = request.cursor(cursor.to_string());
        }
        let page = request.execute().await.map_err(Error::backend)?;
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
