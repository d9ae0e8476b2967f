//! The Store API (`/store/*`, LangGraph's shapes) carried out on sharded storage.
//!
//! **Sharding rule.** A JWT user's items live under their own root: every namespace the
//! user writes is kept in the user's own shard, `store/u/<sub>`, which no other user can
//! name (one object per user: its 10 GB and ~1,000 requests/s are that user's). Items
//! written with an API key (or on an open server) go to one of [`SHARED_STORE_SHARDS`]
//! shards, `store/s/<i>`, picked by a hash of the namespace's first two labels: the usual
//! `("memories", user_id)` and `(user_id, "memories")` spread over all of them, and a
//! search or listing whose prefix has two labels or more reads exactly one shard. A
//! shorter prefix fans out to every shared shard (one subrequest each), whose pages are
//! merged in order and paged: each shard returns at most `offset + limit` entries, so the
//! work is bounded by the page, not by the number of items. A service reaches a user's
//! items by a namespace starting with the user's root label, `user:<sub>` ([`Space`]).
//!
//! Items are embedded here, before they reach their shard: the shard stores vectors and
//! ranks by them, the [`StoreShards`] backend supplies the embedder.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::directory::{all_of, fnv1a};
use super::HttpResponse;
use crate::checkpoint::sql::SqlExec;
use crate::error::{Error, Result};
use crate::limits::STORE_INDEX_TEXTS_MAX;
use crate::runtime::iso8601;
use crate::store::embed::texts_at;
use crate::store::sql::SqlStore;
use crate::store::{Item, Namespace, NamespaceQuery, PutItem, SearchQuery};

mod space;
pub use space::{user_root, Space, USER_ROOT_PREFIX};

/// Shards of items without an owner. A search with a short prefix asks each of them (a
/// subrequest each): 32, as for the thread directory, stays inside the Free plan's 50
/// subrequests per request with one left for the query's embedding.
pub const SHARED_STORE_SHARDS: u32 = 32;

/// What a put embeds: `index` of the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexSpec {
    /// Absent or `null`: the whole value (`$`).
    Default,
    /// `false`: nothing.
    Off,
    /// `["text", "tags[*]"]`: the texts at these paths.
    Paths(Vec<String>),
}

/// A store request, decoded and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreOp {
    /// `PUT /store/items`.
    Put {
        /// The item's namespace.
        namespace: Namespace,
        /// Its key.
        key: String,
        /// Its value.
        value: Map<String, Value>,
        /// What to embed.
        index: IndexSpec,
        /// Minutes to live.
        ttl_minutes: Option<f64>,
    },
    /// `DELETE /store/items`.
    Delete {
        /// The item's namespace.
        namespace: Namespace,
        /// Its key.
        key: String,
    },
    /// `GET /store/items`.
    Get {
        /// The item's namespace.
        namespace: Namespace,
        /// Its key.
        key: String,
        /// Restart its TTL.
        refresh_ttl: bool,
    },
    /// `POST /store/items/search`.
    Search {
        /// Prefix, filter, page (no vector yet).
        query: SearchQuery,
        /// The text to rank by, embedded when carried out.
        text: Option<String>,
    },
    /// `POST /store/namespaces`.
    ListNamespaces(NamespaceQuery),
}

/// A store request and whose items it may touch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorePlan {
    /// What to do.
    pub op: StoreOp,
    /// The JWT user whose root it runs in; `None` for services and open servers.
    pub owner: Option<String>,
}

/// What a shard object is asked (the worker's internal wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardCommand {
    /// Write (or delete) these items.
    Put(Vec<PutItem>),
    /// Read one item.
    Get {
        /// The namespace.
        namespace: Namespace,
        /// The key.
        key: String,
        /// Restart its TTL.
        refresh_ttl: bool,
    },
    /// Search, the first `offset + limit` (the caller pages the merge).
    Search(SearchQuery),
    /// List namespaces, the first `offset + limit`.
    ListNamespaces(NamespaceQuery),
}

/// Where items live.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreShard {
    /// A JWT user's root: all of that user's items.
    Owner(String),
    /// One of the [`SHARED_STORE_SHARDS`] shards of items without an owner.
    Shared(u32),
}

impl StoreShard {
    /// The shared shard of a service's `namespace`: by its first two labels.
    pub fn shared_of(namespace: &Namespace) -> StoreShard {
        let head = namespace.truncated(2).path();
        StoreShard::Shared(fnv1a(&head) % SHARED_STORE_SHARDS)
    }

    /// The shared shards that may hold a service's namespaces starting with `prefix`
    /// (literal labels): one for two labels or more, else all of them.
    pub fn shared_for_prefix(prefix: &Namespace) -> Vec<StoreShard> {
        if prefix.len() >= 2 {
            vec![StoreShard::shared_of(prefix)]
        } else {
            (0..SHARED_STORE_SHARDS).map(StoreShard::Shared).collect()
        }
    }

    /// The name of the object that holds the shard. Thread ids and directory shards
    /// never start with `store/`.
    pub fn object_name(&self) -> String {
        match self {
            StoreShard::Owner(owner) => format!("store/u/{owner}"),
            StoreShard::Shared(index) => format!("store/s/{index}"),
        }
    }
}

/// The shards of the store and the embedder, as the worker (or a test) provides them.
///
/// Not `Send`, like everything on Workers.
#[allow(async_fn_in_trait)]
pub trait StoreShards {
    /// Carries `command` out on `shard` ([`execute_shard`] on its storage).
    async fn shard(&self, shard: &StoreShard, command: &ShardCommand) -> Result<Value>;

    /// The vectors of `texts`.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
}

/// Carries a shard command out on a shard's storage. Returns the JSON answer and, for a
/// put, the earliest expiry it wrote (for the shard's alarm).
pub fn execute_shard<E: SqlExec>(
    store: &SqlStore<E>,
    command: ShardCommand,
    now_ms: i64,
) -> Result<(Value, Option<i64>)> {
    let answer = match command {
        ShardCommand::Put(puts) => return Ok((Value::Null, store.put(&puts, now_ms)?)),
        ShardCommand::Get {
            namespace,
            key,
            refresh_ttl,
        } => serde_json::to_value(store.get(&namespace, &key, refresh_ttl, now_ms)?)?,
        ShardCommand::Search(query) => serde_json::to_value(store.search(&query, now_ms)?)?,
        ShardCommand::ListNamespaces(query) => {
            serde_json::to_value(store.list_namespaces(&query, now_ms)?)?
        }
    };
    Ok((answer, None))
}

/// Carries a store plan out through `shards`.
pub async fn carry_out<S: StoreShards>(plan: StorePlan, shards: &S) -> HttpResponse {
    carry_out_inner(plan, shards).await.into()
}

async fn carry_out_inner<S: StoreShards>(plan: StorePlan, shards: &S) -> Result<HttpResponse> {
    let owner = plan.owner.as_deref();
    match plan.op {
        StoreOp::Put {
            namespace,
            key,
            value,
            index,
            ttl_minutes,
        } => {
            let (space, namespace) = Space::locate(&namespace, owner, false, "namespace")?;
            let vectors = embed_item(shards, &value, &index).await?;
            let put = PutItem {
                namespace,
                key,
                value: Some(value),
                vectors,
                ttl_minutes,
            };
            let shard = space.shard_of(&put.namespace);
            shards.shard(&shard, &ShardCommand::Put(vec![put])).await?;
            Ok(HttpResponse::no_content())
        }
        StoreOp::Delete { namespace, key } => {
            let (space, namespace) = Space::locate(&namespace, owner, false, "namespace")?;
            let shard = space.shard_of(&namespace);
            let delete = PutItem {
                namespace,
                key,
                value: None,
                vectors: Vec::new(),
                ttl_minutes: None,
            };
            shards
                .shard(&shard, &ShardCommand::Put(vec![delete]))
                .await?;
            Ok(HttpResponse::no_content())
        }
        StoreOp::Get {
            namespace,
            key,
            refresh_ttl,
        } => {
            let (space, namespace) = Space::locate(&namespace, owner, false, "namespace")?;
            let shard = space.shard_of(&namespace);
            let command = ShardCommand::Get {
                namespace,
                key,
                refresh_ttl,
            };
            let item: Option<Item> = decode(shards.shard(&shard, &command).await?)?;
            let answer = item.map_or(Value::Null, |i| item_json(&space.outward_item(i), false));
            Ok(HttpResponse::ok(answer))
        }
        StoreOp::Search { query, text } => search(shards, query, text, owner).await,
        StoreOp::ListNamespaces(query) => list_namespaces(shards, query, owner).await,
    }
}

/// The vectors of an item's indexed texts.
async fn embed_item<S: StoreShards>(
    shards: &S,
    value: &Map<String, Value>,
    index: &IndexSpec,
) -> Result<Vec<(String, Vec<f32>)>> {
    let paths = match index {
        IndexSpec::Off => return Ok(Vec::new()),
        IndexSpec::Default => vec!["$".to_string()],
        IndexSpec::Paths(paths) => paths.clone(),
    };
    let texts = texts_at(value, &paths);
    if texts.len() > STORE_INDEX_TEXTS_MAX {
        return Err(Error::TooLarge {
            what: "index (texts to embed)".into(),
            size: texts.len(),
            limit: STORE_INDEX_TEXTS_MAX,
        });
    }
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let (names, texts): (Vec<String>, Vec<String>) = texts.into_iter().unzip();
    let vectors = shards.embed(&texts).await?;
    Ok(names.into_iter().zip(vectors).collect())
}

async fn search<S: StoreShards>(
    shards: &S,
    query: SearchQuery,
    text: Option<String>,
    owner: Option<&str>,
) -> Result<HttpResponse> {
    let (space, prefix) = Space::locate(&query.prefix, owner, true, "namespace_prefix")?;
    let mut query = SearchQuery { prefix, ..query };
    if let Some(text) = text {
        let mut vectors = shards.embed(&[text]).await?;
        query.vector = vectors.pop();
    }
    let targets = space.shards_for_prefix(&query.prefix);
    let mut each = query.clone();
    each.limit = query.offset.saturating_add(query.limit);
    each.offset = 0;
    let command = ShardCommand::Search(each);
    let answers = all_of(targets.iter().map(|s| shards.shard(s, &command)).collect()).await;
    let mut items: Vec<Item> = Vec::new();
    for answer in answers {
        items.extend(decode::<Vec<Item>>(answer?)?);
    }
    // Each shard's list is in this order already; one sort merges them.
    crate::sort::sort_by(&mut items, |a, b| rank(a, b, query.vector.is_some()));
    let page: Vec<Value> = items
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|i| item_json(&space.outward_item(i), true))
        .collect();
    Ok(HttpResponse::ok(json!({ "items": page })))
}

/// The order of search results: by score when ranked (unscored last), then by
/// namespace path and key.
fn rank(a: &Item, b: &Item, ranked: bool) -> std::cmp::Ordering {
    let by_score = match (ranked, a.score, b.score) {
        (false, _, _) => std::cmp::Ordering::Equal,
        (true, Some(x), Some(y)) => y.total_cmp(&x),
        (true, Some(_), None) => std::cmp::Ordering::Less,
        (true, None, Some(_)) => std::cmp::Ordering::Greater,
        (true, None, None) => std::cmp::Ordering::Equal,
    };
    by_score
        .then_with(|| a.namespace.path().cmp(&b.namespace.path()))
        .then_with(|| a.key.cmp(&b.key))
}

async fn list_namespaces<S: StoreShards>(
    shards: &S,
    query: NamespaceQuery,
    owner: Option<&str>,
) -> Result<HttpResponse> {
    let (space, inner) = Space::locate_listing(&query, owner)?;
    let targets = space.shards_for_prefix(&inner.literal_prefix());
    let mut each = inner.clone();
    each.limit = inner.offset.saturating_add(inner.limit);
    each.offset = 0;
    let command = ShardCommand::ListNamespaces(each);
    let answers = all_of(targets.iter().map(|s| shards.shard(s, &command)).collect()).await;
    let mut found: Vec<Namespace> = Vec::new();
    for answer in answers {
        let namespaces = decode::<Vec<Namespace>>(answer?)?;
        found.extend(namespaces.iter().map(|ns| space.outward(ns)));
    }
    // Already matched by the shards: sort, dedupe, page (and cut to `max_depth` again,
    // for the root label put back).
    let page = NamespaceQuery {
        prefix: Vec::new(),
        suffix: Vec::new(),
        ..query
    }
    .select(found);
    Ok(HttpResponse::ok(json!({ "namespaces": page })))
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::backend(format_args!("a store shard's answer is malformed: {e}")))
}

impl Space {
    /// An item of this space as the caller names it.
    fn outward_item(&self, item: Item) -> Item {
        Item {
            namespace: self.outward(&item.namespace),
            ..item
        }
    }
}

/// An item as LangGraph's API answers it; `score` (a number or `null`) on search results.
pub fn item_json(item: &Item, with_score: bool) -> Value {
    let mut out = json!({
        "namespace": item.namespace.labels(),
        "key": item.key,
        "value": item.value,
        "created_at": iso8601(item.created_at_ms),
        "updated_at": iso8601(item.updated_at_ms),
    });
    if with_score {
        out["score"] = item.score.map_or(Value::Null, |s| json!(s));
    }
    out
}
