//! Long-term memory: LangGraph's Store (`BaseStore`) — JSON items under namespaces, with
//! filters, semantic search and per-item TTL — kept in SQLite over the [`SqlExec`] port.
//!
//! Threads hold what was said in one conversation; the store holds what an agent
//! remembers across conversations (a user's preferences, facts, decisions). An item is a
//! JSON object under a namespace (a path of labels, `["users", "u1", "prefs"]`) and a key.
//!
//! - [`sql::SqlStore`]: one shard's items on SQLite (Durable Object SQL in the worker,
//!   rusqlite in tests): put, get, search, list namespaces, TTL expiry.
//! - [`filter`]: the `filter` of a search, with the operators of LangGraph's
//!   `InMemoryStore` (`$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`).
//! - [`embed`]: text embeddings for semantic search: the built-in local embedder
//!   (hashed character n-grams), the text at an item's `index` paths, vectors as f32 blobs.
//! - [`openai`]: the [`openai::Embedder`] port, the OpenAI-compatible `/embeddings`
//!   request and answer, and `STORE_EMBEDDINGS` (which embedder).
//! - [`workers_ai`]: embeddings by Workers AI (`@cf/baai/bge-*`) through the `AI` binding.
//!
//! Which shard holds an item, and the HTTP shapes, are the API's ([`crate::api::store`]).
//!
//! [`SqlExec`]: crate::checkpoint::sql::SqlExec

pub mod embed;
pub mod filter;
pub mod openai;
pub mod sql;
pub mod workers_ai;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::limits::{STORE_KEY_MAX_BYTES, STORE_NAMESPACE_MAX_BYTES};

/// A namespace: a non-empty path of labels, each a non-empty string without `.`.
///
/// Stored as its labels joined by `.` (which no label contains), so that a prefix of
/// labels is a prefix of the text and SQLite finds it with a range on the primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Namespace(Vec<String>);

impl Namespace {
    /// A namespace from its labels, checked (`field` names it in errors). May be empty
    /// only where `allow_empty` (a search prefix, a namespace filter).
    pub fn new(labels: Vec<String>, field: &str, allow_empty: bool) -> Result<Self> {
        if labels.is_empty() && !allow_empty {
            return Err(Error::invalid(field, "cannot be empty"));
        }
        for label in &labels {
            check_label(label, field)?;
        }
        let namespace = Namespace(labels);
        let bytes = namespace.path().len();
        if bytes > STORE_NAMESPACE_MAX_BYTES {
            return Err(Error::TooLarge {
                what: format!("{field} (bytes, labels joined by '.')"),
                size: bytes,
                limit: STORE_NAMESPACE_MAX_BYTES,
            });
        }
        Ok(namespace)
    }

    /// A namespace read back from storage (`a.b.c`), trusted.
    pub fn from_path(path: &str) -> Self {
        Namespace(path.split('.').map(str::to_string).collect())
    }

    /// The labels joined by `.`: the stored form.
    pub fn path(&self) -> String {
        self.0.join(".")
    }

    /// The labels.
    pub fn labels(&self) -> &[String] {
        &self.0
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels (only a prefix may be empty).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `prefix` is a prefix of this namespace (label by label).
    pub fn starts_with(&self, prefix: &Namespace) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The first `depth` labels.
    pub fn truncated(&self, depth: usize) -> Namespace {
        Namespace(self.0.iter().take(depth).cloned().collect())
    }

    /// The labels after the first `count`.
    pub fn skipped(&self, count: usize) -> Namespace {
        Namespace(self.0.iter().skip(count).cloned().collect())
    }

    /// `label` followed by these labels (`label` is one checked label).
    pub fn under(&self, label: &str) -> Namespace {
        Namespace(
            std::iter::once(label.to_string())
                .chain(self.0.iter().cloned())
                .collect(),
        )
    }
}

/// LangGraph's rule: a label is a non-empty string without periods.
fn check_label(label: &str, field: &str) -> Result<()> {
    if label.is_empty() || label.contains('.') {
        return Err(Error::invalid(
            field,
            format!("namespace label '{label}' must be a non-empty string without periods"),
        ));
    }
    Ok(())
}

/// Checks an item key: a non-empty string within [`STORE_KEY_MAX_BYTES`].
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key", "must be a non-empty string"));
    }
    if key.len() > STORE_KEY_MAX_BYTES {
        return Err(Error::TooLarge {
            what: "key (bytes)".into(),
            size: key.len(),
            limit: STORE_KEY_MAX_BYTES,
        });
    }
    Ok(())
}

/// A stored item, as a read returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Its namespace.
    pub namespace: Namespace,
    /// Its key, unique in the namespace.
    pub key: String,
    /// The JSON object stored.
    pub value: Map<String, Value>,
    /// When it was first put (a put over an existing key keeps it), Unix ms.
    pub created_at_ms: i64,
    /// When it was last put, Unix ms.
    pub updated_at_ms: i64,
    /// Cosine similarity to a search's `query` (the best of its indexed texts); `None`
    /// when the search had no query or the item has no vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// What a put writes (or a delete: `value: None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutItem {
    /// The namespace.
    pub namespace: Namespace,
    /// The key.
    pub key: String,
    /// The object to store; `None` deletes the item.
    pub value: Option<Map<String, Value>>,
    /// The item's vectors, one per indexed text (`path`, vector); empty: not indexed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vectors: Vec<(String, Vec<f32>)>,
    /// Time to live in minutes; `None`: forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<f64>,
}

/// A search of items under a namespace prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchQuery {
    /// Only items whose namespace starts with this (empty: all).
    pub prefix: Namespace,
    /// Only items whose value matches (see [`filter`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<filter::Filter>,
    /// At most this many items.
    pub limit: usize,
    /// Skip this many first.
    pub offset: usize,
    /// The embedded `query`: items are ranked by cosine similarity to it, best first,
    /// then the items without vectors. Without it: by namespace path, then key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// Restart the TTL of the items returned.
    #[serde(default)]
    pub refresh_ttl: bool,
}

/// How `list_namespaces` matches a namespace against a path (`*` matches any label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceQuery {
    /// The namespace starts with these labels.
    #[serde(default)]
    pub prefix: Vec<String>,
    /// The namespace ends with these labels.
    #[serde(default)]
    pub suffix: Vec<String>,
    /// Namespaces are cut to this many labels (and the duplicates removed).
    #[serde(default)]
    pub max_depth: Option<usize>,
    /// At most this many.
    pub limit: usize,
    /// Skip this many first.
    pub offset: usize,
}

impl NamespaceQuery {
    /// Whether `namespace` matches the prefix and suffix conditions.
    pub fn matches(&self, namespace: &Namespace) -> bool {
        let labels = namespace.labels();
        let fits = |pattern: &[String], candidate: &mut dyn Iterator<Item = &String>| {
            labels.len() >= pattern.len()
                && pattern
                    .iter()
                    .zip(candidate)
                    .all(|(p, l)| p == "*" || p == l)
        };
        fits(&self.prefix, &mut labels.iter())
            && fits(
                &self.suffix.iter().rev().cloned().collect::<Vec<_>>(),
                &mut labels.iter().rev(),
            )
    }

    /// The labels of the prefix before its first wildcard: what storage can narrow by.
    pub fn literal_prefix(&self) -> Namespace {
        Namespace(
            self.prefix
                .iter()
                .take_while(|label| label.as_str() != "*")
                .cloned()
                .collect(),
        )
    }

    /// The matching namespaces of `all` (sorted or not), cut to `max_depth`, sorted,
    /// without duplicates, paged.
    pub fn select(&self, all: impl IntoIterator<Item = Namespace>) -> Vec<Namespace> {
        let mut found: Vec<Namespace> = all
            .into_iter()
            .filter(|ns| self.matches(ns))
            .map(|ns| match self.max_depth {
                Some(depth) => ns.truncated(depth),
                None => ns,
            })
            .collect();
        crate::sort::sort(&mut found);
        found.dedup();
        found
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect()
    }
}
