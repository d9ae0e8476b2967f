//! The run cache of assistants: what a worker isolate remembers of the assistants its
//! runs used, so that a run does not ask the owner's assistants object on every turn.
//!
//! The rule: an entry is used for at most [`ASSISTANT_CACHE_TTL_MS`] after it was
//! fetched; the isolate that changes or deletes an assistant forgets it at once; other
//! isolates may run with the previous version until their entry expires. Misses are not
//! remembered, so an assistant is usable as soon as it is created.

use std::collections::HashMap;

use crate::checkpoint::assistants::Assistant;

/// How long a run may use an assistant fetched earlier (the staleness bound of a change
/// seen from another isolate): short enough that an edit shows within seconds, long
/// enough that a chatting user's turns reuse one fetch.
pub const ASSISTANT_CACHE_TTL_MS: i64 = 5_000;

/// Most assistants one isolate remembers: a bound on its memory whatever the traffic
/// (an entry is a few KiB at most; the isolate has 128 MB).
pub const ASSISTANT_CACHE_MAX: usize = 256;

/// Assistants by owner and id, each with when it was fetched.
#[derive(Debug, Default)]
pub struct AssistantCache {
    entries: HashMap<(Option<String>, String), (i64, Assistant)>,
}

impl AssistantCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The assistant, if fetched less than [`ASSISTANT_CACHE_TTL_MS`] before `now_ms`.
    pub fn get(&self, owner: Option<&str>, assistant_id: &str, now_ms: i64) -> Option<Assistant> {
        let key = (owner.map(str::to_string), assistant_id.to_string());
        self.entries
            .get(&key)
            .filter(|(fetched, _)| fresh(*fetched, now_ms))
            .map(|(_, assistant)| assistant.clone())
    }

    /// Remembers `assistant`, fetched at `now_ms`. When full, expired entries go first,
    /// then everything (a burst of distinct assistants costs refetches, never memory).
    pub fn put(&mut self, owner: Option<&str>, assistant: Assistant, now_ms: i64) {
        if self.entries.len() >= ASSISTANT_CACHE_MAX {
            self.entries
                .retain(|_, (fetched, _)| fresh(*fetched, now_ms));
            if self.entries.len() >= ASSISTANT_CACHE_MAX {
                self.entries.clear();
            }
        }
        let key = (owner.map(str::to_string), assistant.assistant_id.clone());
        self.entries.insert(key, (now_ms, assistant));
    }

    /// Forgets an assistant (it was changed or deleted here).
    pub fn forget(&mut self, owner: Option<&str>, assistant_id: &str) {
        self.entries
            .remove(&(owner.map(str::to_string), assistant_id.to_string()));
    }

    /// How many entries are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Whether an entry fetched at `fetched` may still be used at `now_ms` (a clock that
/// went back counts as stale).
fn fresh(fetched: i64, now_ms: i64) -> bool {
    now_ms >= fetched && now_ms - fetched < ASSISTANT_CACHE_TTL_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::assistants::system_assistant;

    fn assistant(id: &str) -> Assistant {
        Assistant {
            assistant_id: id.to_string(),
            ..system_assistant()
        }
    }

    #[test]
    fn entries_expire_after_the_ttl_and_are_scoped_by_owner() {
        let mut cache = AssistantCache::new();
        cache.put(Some("ann"), assistant("a"), 1_000);
        assert!(cache.get(Some("ann"), "a", 1_000).is_some());
        assert!(cache
            .get(Some("ann"), "a", 1_000 + ASSISTANT_CACHE_TTL_MS - 1)
            .is_some());
        assert!(cache
            .get(Some("ann"), "a", 1_000 + ASSISTANT_CACHE_TTL_MS)
            .is_none());
        assert!(cache.get(Some("bob"), "a", 1_000).is_none());
        assert!(cache.get(None, "a", 1_000).is_none());
        assert!(
            cache.get(Some("ann"), "a", 999).is_none(),
            "clock went back"
        );
        cache.forget(Some("ann"), "a");
        assert!(cache.get(Some("ann"), "a", 1_000).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = AssistantCache::new();
        for i in 0..ASSISTANT_CACHE_MAX * 3 {
            cache.put(None, assistant(&format!("a{i}")), i as i64);
            assert!(cache.len() <= ASSISTANT_CACHE_MAX);
        }
        let last = format!("a{}", ASSISTANT_CACHE_MAX * 3 - 1);
        assert!(cache
            .get(None, &last, (ASSISTANT_CACHE_MAX * 3) as i64)
            .is_some());
    }
}
