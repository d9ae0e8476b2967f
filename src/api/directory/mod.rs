//! The thread directory: copies of thread records that search and count read, sharded
//! so that no object is on every turn's path.
//!
//! Each thread's own object is the source of truth. Its directory copy lives in one
//! **shard**: a JWT user's threads in that user's own shard (`dir/u/<owner>`), threads
//! without an owner (created with an API key, or on an open server) spread over
//! [`SHARED_DIRECTORY_SHARDS`] shards by a hash of the thread id. A search scoped to one
//! owner reads one shard; an unscoped search fans out to the shared shards and merges.
//!
//! The thread object sends its record to its shard itself, after the change and never
//! awaited by the caller's response ([`DirectorySync`] decides when: at once for what
//! search filters on, coalesced for plain turns). Copies are versioned by `updated_at`, so
//! a delayed older copy never replaces a newer one; search re-checks every result against
//! the thread's own object and repairs the shard when a copy is stale (deleted, moved to
//! another owner), so a lost, delayed or reordered update never shows a thread to
//! someone who does not own it.

use serde_json::{Map, Value};

mod search;

pub(crate) use search::all_of;
pub use search::{delete_for_runs, search};

use super::auth::OWNER_KEY;
use super::IndexUpdate;
use crate::checkpoint::ThreadSearch;
use crate::thread::{ThreadId, ThreadRecord};

/// Shards for threads without an owner. Each unscoped search asks every one of them (a
/// subrequest each), so the number weighs search cost (32 subrequests, inside the Free
/// plan's 50 per request with the default page of 10) against the share of directory
/// traffic each shard takes (1/32 of ownerless threads' updates: the scale benchmark
/// measures the busiest shard's share of all object requests, ~1.5% with threads of 5
/// back-to-back turns).
pub const SHARED_DIRECTORY_SHARDS: u32 = 32;

/// A thread sends its record to its shard at most once per this interval for plain turns
/// (status and `updated_at` changes): a busy thread costs its shard at most one request
/// per 10 s however fast it turns, and a search re-reads each result's own record anyway
/// (so only the order between pages can lag). Creation, metadata and deletion go at once.
pub const DIRECTORY_COALESCE_MS: i64 = 10_000;

/// A turn that changed neither the thread's metadata nor its status (only its time)
/// reaches the shard at most once per this interval, and waits for it even in a fresh
/// instance of the object (the alarm carries it): a person's turns are often more than
/// [`DIRECTORY_COALESCE_MS`] apart, each in a fresh instance (an idle object is evicted
/// after ~10 s), and would otherwise cost the shard a request and two rows written each.
/// Only `updated_at` lags, so only the order between pages of a search by it can.
pub const DIRECTORY_TIME_LAG_MS: i64 = 300_000;

/// How long a thread waits before sending its record again after its shard failed.
pub const DIRECTORY_RETRY_MS: i64 = 5_000;

/// The largest `offset + limit` a search may ask for: each shard of a fanned-out search
/// returns that many records to be merged, so the work is bounded by it.
pub const SEARCH_WINDOW_MAX: usize = 10_000;

/// Where a thread's directory copy lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Shard {
    /// The shard of one owner (a JWT user's `sub`): all of that user's threads.
    Owner(String),
    /// One of the [`SHARED_DIRECTORY_SHARDS`] shards of threads without an owner.
    Shared(u32),
    /// A store that is its own directory for every thread (memory, native SQLite).
    Whole,
}

impl Shard {
    /// The shard of the thread `thread_id` owned by `owner`.
    pub fn of(thread_id: &ThreadId, owner: Option<&str>) -> Shard {
        match owner {
            Some(owner) => Shard::Owner(owner.to_string()),
            None => Shard::Shared(fnv1a(thread_id.as_str()) % SHARED_DIRECTORY_SHARDS),
        }
    }

    /// The shard a record belongs in (its owner is the `owner` metadata key).
    pub fn of_record(record: &ThreadRecord) -> Shard {
        Shard::of(&record.thread_id, owner_of(&record.metadata))
    }

    /// The shard an index update goes to.
    pub fn of_update(update: &IndexUpdate) -> Shard {
        match update {
            IndexUpdate::Upsert { record } => Shard::of_record(record),
            IndexUpdate::Remove { thread_id, owner } => Shard::of(thread_id, owner.as_deref()),
            IndexUpdate::Run { run_id, owner, .. } => Shard::of_run(run_id, owner.as_deref()),
        }
    }

    /// The shard that knows which threads run `run_id` wrote to: the owner's, else a
    /// shared one by a hash of the run id (found again from the run id alone).
    pub fn of_run(run_id: &str, owner: Option<&str>) -> Shard {
        match owner {
            Some(owner) => Shard::Owner(owner.to_string()),
            None => Shard::Shared(fnv1a(run_id) % SHARED_DIRECTORY_SHARDS),
        }
    }

    /// The shards a search must read: its owner's, or every shared shard.
    pub fn for_search(query: &ThreadSearch) -> Vec<Shard> {
        match query.metadata.get(OWNER_KEY) {
            Some(Value::String(owner)) => vec![Shard::Owner(owner.clone())],
            // An owner filter that is not a string matches no owned thread.
            Some(_) => Vec::new(),
            None => (0..SHARED_DIRECTORY_SHARDS).map(Shard::Shared).collect(),
        }
    }

    /// The name of the object that holds this shard. Thread ids cannot contain `/`, so
    /// no thread's object can have it.
    pub fn object_name(&self) -> String {
        match self {
            Shard::Owner(owner) => format!("dir/u/{owner}"),
            Shard::Shared(index) => format!("dir/s/{index}"),
            Shard::Whole => "dir/whole".to_string(),
        }
    }
}

/// The owner named in thread metadata, if it is a string.
pub fn owner_of(metadata: &Map<String, Value>) -> Option<&str> {
    metadata.get(OWNER_KEY).and_then(Value::as_str)
}

/// FNV-1a: a stable hash (the same in every isolate and release) to pick a shard.
pub(crate) fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The query each shard of a fanned-out search answers: the first `offset + limit`
/// records, so that the merge can page over all of them.
pub fn shard_query(query: &ThreadSearch) -> ThreadSearch {
    let mut each = query.clone();
    each.limit = query.offset.saturating_add(query.limit);
    each.offset = 0;
    each
}

/// Merges the shards' answers to [`shard_query`]: sorted and paged as `query` asks,
/// each record with the shard it came from.
///
/// Each answer is already in the query's order, so this is a k-way merge: it takes the
/// first of the heads until the page is full (no sort: less work, and less code in the
/// worker's wasm than a general sort).
pub fn merge(
    query: &ThreadSearch,
    answers: Vec<(Shard, Vec<ThreadRecord>)>,
) -> Vec<(Shard, ThreadRecord)> {
    let mut lists: Vec<(Shard, std::vec::IntoIter<ThreadRecord>)> = answers
        .into_iter()
        .map(|(shard, records)| (shard, records.into_iter()))
        .collect();
    let mut heads: Vec<Option<ThreadRecord>> = lists.iter_mut().map(|(_, l)| l.next()).collect();
    let mut page = Vec::new();
    let mut skipped = 0;
    while page.len() < query.limit {
        let mut first: Option<usize> = None;
        for (i, head) in heads.iter().enumerate() {
            let Some(record) = head else { continue };
            let better = match first.and_then(|f| heads[f].as_ref()) {
                Some(best) => query.compare(record, best).is_lt(),
                None => true,
            };
            if better {
                first = Some(i);
            }
        }
        let Some(i) = first else { break };
        let next = lists[i].1.next();
        let Some(record) = std::mem::replace(&mut heads[i], next) else {
            break;
        };
        if skipped < query.offset {
            skipped += 1;
        } else {
            page.push((lists[i].0.clone(), record));
        }
    }
    page
}

/// What a thread object does with its directory copy after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAction {
    /// Send the record now (in the background: never awaited by the response).
    SendNow,
    /// Set the object's alarm to this many ms from now; the alarm sends the record as it
    /// is then.
    ArmAlarm {
        /// Delay from now, in ms.
        in_ms: i64,
    },
    /// A turn that changed only the thread's time, in an object that has not sent the
    /// thread yet (a fresh instance): an alarm already pending for the thread (stored
    /// with it) is enough, else set one this many ms from now.
    Defer {
        /// Delay from now, in ms.
        in_ms: i64,
    },
    /// Nothing: an armed alarm will send the newest record.
    Wait,
}

/// When a thread object sends its record to its directory shard: what search filters on
/// (creation, metadata, owner, deletion) at once, changes of status at most once per
/// [`DIRECTORY_COALESCE_MS`], turns that only move its time at most once per
/// [`DIRECTORY_TIME_LAG_MS`]; a failed send is retried from the alarm. Kept in the
/// object's memory: a fresh instance sends its first change at once, unless it moves
/// only the time.
#[derive(Debug)]
pub struct DirectorySync {
    /// When the last send started, and the metadata it carried.
    last_sent: Option<(i64, Map<String, Value>)>,
    /// When the armed alarm is due, if one is.
    armed: Option<i64>,
    /// [`DIRECTORY_TIME_LAG_MS`] (shorter in dev-mode tests).
    time_lag_ms: i64,
}

impl Default for DirectorySync {
    fn default() -> Self {
        Self::with_time_lag(DIRECTORY_TIME_LAG_MS)
    }
}

impl DirectorySync {
    /// A new object's state: nothing sent yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new object's state whose quiet turns wait `time_lag_ms` instead of
    /// [`DIRECTORY_TIME_LAG_MS`] (for tests that cannot wait minutes).
    pub fn with_time_lag(time_lag_ms: i64) -> Self {
        DirectorySync {
            last_sent: None,
            armed: None,
            time_lag_ms,
        }
    }

    /// Decides what to do about `update`, made at `now_ms`. `quiet`: a run's update that
    /// changed neither the thread's metadata nor its status.
    pub fn on_change(&mut self, update: &IndexUpdate, quiet: bool, now_ms: i64) -> SyncAction {
        let record = match update {
            IndexUpdate::Remove { .. } => {
                self.last_sent = None;
                return SyncAction::SendNow;
            }
            // A run's first write: recorded before its checkpoint is acknowledged.
            IndexUpdate::Run { .. } => return SyncAction::SendNow,
            IndexUpdate::Upsert { record } => record,
        };
        let interval = if quiet {
            self.time_lag_ms
        } else {
            DIRECTORY_COALESCE_MS
        };
        match &self.last_sent {
            Some((at, metadata)) if *metadata == record.metadata => {
                let due = at + interval;
                if now_ms >= due {
                    self.mark_sent(record, now_ms);
                    SyncAction::SendNow
                } else {
                    self.arm_by(due, now_ms)
                }
            }
            None if quiet => match self.armed {
                Some(_) => SyncAction::Wait,
                None => SyncAction::Defer {
                    in_ms: self.time_lag_ms,
                },
            },
            _ => {
                self.mark_sent(record, now_ms);
                SyncAction::SendNow
            }
        }
    }

    /// An alarm due by `due`: the armed one if it is due sooner, else a new one.
    fn arm_by(&mut self, due: i64, now_ms: i64) -> SyncAction {
        match self.armed {
            Some(armed) if armed <= due => SyncAction::Wait,
            _ => {
                self.armed = Some(due);
                SyncAction::ArmAlarm {
                    in_ms: due - now_ms,
                }
            }
        }
    }

    /// After [`SyncAction::Defer`]: the alarm that will send the record is due at
    /// `due_ms` (one found pending, or the one just set).
    pub fn deferred_to(&mut self, due_ms: i64) {
        self.armed = Some(due_ms);
    }

    /// A run starts: only metadata the run stamped (search filters on it) is sent now;
    /// status and time go with the run's end, which also sends a thread this instance
    /// has not sent yet (a cold object, or a thread the run created).
    pub fn on_run_start(&mut self, update: &IndexUpdate, now_ms: i64) -> SyncAction {
        match (update, &self.last_sent) {
            (IndexUpdate::Upsert { record }, Some((_, metadata)))
                if *metadata != record.metadata =>
            {
                self.on_change(update, false, now_ms)
            }
            _ => SyncAction::Wait,
        }
    }

    /// After a send at `now_ms`: a failure is retried from the alarm.
    pub fn on_sent(&mut self, delivered: bool, now_ms: i64) -> SyncAction {
        if delivered {
            return SyncAction::Wait;
        }
        self.arm_by(now_ms + DIRECTORY_RETRY_MS, now_ms)
    }

    /// The alarm went off: the object sends its record as it is now.
    pub fn on_alarm(&mut self, update: &IndexUpdate, now_ms: i64) {
        self.armed = None;
        match update {
            IndexUpdate::Upsert { record } => self.mark_sent(record, now_ms),
            IndexUpdate::Remove { .. } => self.last_sent = None,
            IndexUpdate::Run { .. } => {}
        }
    }

    fn mark_sent(&mut self, record: &ThreadRecord, now_ms: i64) {
        self.last_sent = Some((now_ms, record.metadata.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, owner: Option<&str>, updated: i64) -> ThreadRecord {
        let mut metadata = Map::new();
        if let Some(owner) = owner {
            metadata.insert(OWNER_KEY.into(), json!(owner));
        }
        let mut record = ThreadRecord::new(ThreadId::parse(id).unwrap(), metadata, 1);
        record.updated_at_ms = updated;
        record
    }

    fn upsert(record: &ThreadRecord) -> IndexUpdate {
        IndexUpdate::Upsert {
            record: record.clone(),
        }
    }

    #[test]
    fn owned_threads_live_in_their_owners_shard_and_the_rest_spread() {
        let alice = record("t-1", Some("alice"), 5);
        assert_eq!(Shard::of_record(&alice), Shard::Owner("alice".into()));
        assert_eq!(Shard::of_record(&alice).object_name(), "dir/u/alice");
        let mut used = std::collections::HashSet::new();
        for i in 0..400 {
            let shard = Shard::of_record(&record(&format!("thread-{i}"), None, 1));
            let Shard::Shared(index) = shard else {
                panic!("an ownerless thread is in a shared shard")
            };
            assert!(index < SHARED_DIRECTORY_SHARDS);
            used.insert(index);
        }
        assert_eq!(
            used.len() as u32,
            SHARED_DIRECTORY_SHARDS,
            "every shard used"
        );
        // Stable: the same thread always lands in the same shard.
        let id = ThreadId::parse("same").unwrap();
        assert_eq!(Shard::of(&id, None), Shard::of(&id, None));
        let removal = IndexUpdate::Remove {
            thread_id: alice.thread_id.clone(),
            owner: Some("alice".into()),
        };
        assert_eq!(Shard::of_update(&removal), Shard::Owner("alice".into()));
    }

    #[test]
    fn searches_read_one_owner_shard_or_every_shared_one() {
        let mut query = ThreadSearch::default();
        assert_eq!(
            Shard::for_search(&query).len() as u32,
            SHARED_DIRECTORY_SHARDS
        );
        query.metadata.insert(OWNER_KEY.into(), json!("bob"));
        assert_eq!(Shard::for_search(&query), vec![Shard::Owner("bob".into())]);
        query.metadata.insert(OWNER_KEY.into(), json!(7));
        assert!(Shard::for_search(&query).is_empty());
    }

    #[test]
    fn merge_sorts_and_pages_across_shards() {
        let query = ThreadSearch {
            limit: 2,
            offset: 1,
            ..ThreadSearch::default()
        };
        let each = shard_query(&query);
        assert_eq!((each.offset, each.limit), (0, 3));
        let a = vec![record("a1", None, 50), record("a2", None, 10)];
        let b = vec![record("b1", None, 40), record("b2", None, 30)];
        let page = merge(&query, vec![(Shard::Shared(0), a), (Shard::Shared(1), b)]);
        let ids: Vec<_> = page
            .iter()
            .map(|(s, r)| (s.clone(), r.thread_id.as_str().to_string()))
            .collect();
        assert_eq!(
            ids,
            vec![
                (Shard::Shared(1), "b1".to_string()),
                (Shard::Shared(1), "b2".to_string())
            ]
        );
    }

    #[test]
    fn turns_are_coalesced_and_what_search_filters_on_goes_at_once() {
        let mut sync = DirectorySync::new();
        let mut thread = record("t", None, 1);
        assert_eq!(
            sync.on_change(&upsert(&thread), false, 0),
            SyncAction::SendNow
        );
        // Changes within the interval: one alarm, then nothing more.
        thread.updated_at_ms = 2;
        assert_eq!(
            sync.on_change(&upsert(&thread), false, 100),
            SyncAction::ArmAlarm {
                in_ms: DIRECTORY_COALESCE_MS - 100
            }
        );
        assert_eq!(
            sync.on_change(&upsert(&thread), false, 200),
            SyncAction::Wait
        );
        assert_eq!(
            sync.on_change(&upsert(&thread), true, 250),
            SyncAction::Wait
        );
        // A metadata change is not held back.
        thread.metadata.insert("title".into(), json!("renamed"));
        assert_eq!(
            sync.on_change(&upsert(&thread), false, 300),
            SyncAction::SendNow
        );
        sync.on_alarm(&upsert(&thread), DIRECTORY_COALESCE_MS);
        // After the interval a change goes at once again.
        let later = 2 * DIRECTORY_COALESCE_MS + 100;
        assert_eq!(
            sync.on_change(&upsert(&thread), false, later),
            SyncAction::SendNow
        );
        let removal = IndexUpdate::Remove {
            thread_id: thread.thread_id.clone(),
            owner: None,
        };
        assert_eq!(
            sync.on_change(&removal, false, later + 50),
            SyncAction::SendNow
        );
    }

    #[test]
    fn turns_that_move_only_the_time_wait_the_longer_interval() {
        let mut sync = DirectorySync::new();
        let thread = record("t", None, 1);
        assert_eq!(
            sync.on_change(&upsert(&thread), false, 0),
            SyncAction::SendNow
        );
        // A quiet turn past the short interval still waits for the long one.
        let at = 2 * DIRECTORY_COALESCE_MS;
        assert_eq!(
            sync.on_change(&upsert(&thread), true, at),
            SyncAction::ArmAlarm {
                in_ms: DIRECTORY_TIME_LAG_MS - at
            }
        );
        assert_eq!(
            sync.on_change(&upsert(&thread), true, at + 1),
            SyncAction::Wait
        );
        // A status change meanwhile does not wait for the long alarm.
        assert_eq!(
            sync.on_change(&upsert(&thread), false, at + 2),
            SyncAction::SendNow,
            "the short interval since the last send is over"
        );
        assert_eq!(
            sync.on_change(&upsert(&thread), false, at + 3),
            SyncAction::ArmAlarm {
                in_ms: DIRECTORY_COALESCE_MS - 1
            },
            "the alarm is brought forward to the short interval"
        );
        let sent = at + 2 + DIRECTORY_COALESCE_MS;
        sync.on_alarm(&upsert(&thread), sent);
        assert_eq!(
            sync.on_change(&upsert(&thread), true, sent + 10),
            SyncAction::ArmAlarm {
                in_ms: DIRECTORY_TIME_LAG_MS - 10
            }
        );
        assert_eq!(
            sync.on_change(&upsert(&thread), false, sent + 20),
            SyncAction::ArmAlarm {
                in_ms: DIRECTORY_COALESCE_MS - 20
            },
            "a status change does not wait for the long alarm"
        );
    }

    #[test]
    fn a_fresh_instance_defers_a_quiet_turn_to_the_alarm() {
        let mut sync = DirectorySync::new();
        let thread = record("t", None, 1);
        assert_eq!(
            sync.on_change(&upsert(&thread), true, 0),
            SyncAction::Defer {
                in_ms: DIRECTORY_TIME_LAG_MS
            }
        );
        sync.deferred_to(DIRECTORY_TIME_LAG_MS);
        assert_eq!(sync.on_change(&upsert(&thread), true, 10), SyncAction::Wait);
        // What it has not sent yet and is not quiet goes at once.
        assert_eq!(
            sync.on_change(&upsert(&thread), false, 20),
            SyncAction::SendNow
        );
    }

    #[test]
    fn a_run_start_is_sent_only_when_search_needs_it() {
        let mut sync = DirectorySync::new();
        let mut thread = record("t", None, 1);
        // A cold object: the run's end sends it.
        assert_eq!(sync.on_run_start(&upsert(&thread), 0), SyncAction::Wait);
        assert_eq!(
            sync.on_change(&upsert(&thread), false, 50),
            SyncAction::SendNow
        );
        thread.updated_at_ms = 50_000;
        assert_eq!(
            sync.on_run_start(&upsert(&thread), 50_000),
            SyncAction::Wait
        );
        assert_eq!(
            sync.on_change(&upsert(&thread), false, 50_100),
            SyncAction::SendNow
        );
        thread.metadata.insert("graph_id".into(), json!("agent"));
        assert_eq!(
            sync.on_run_start(&upsert(&thread), 51_000),
            SyncAction::SendNow
        );
    }

    #[test]
    fn a_failed_send_is_retried_from_the_alarm_once() {
        let mut sync = DirectorySync::new();
        assert_eq!(
            sync.on_sent(false, 0),
            SyncAction::ArmAlarm {
                in_ms: DIRECTORY_RETRY_MS
            }
        );
        assert_eq!(sync.on_sent(false, 10), SyncAction::Wait, "already armed");
        assert_eq!(sync.on_sent(true, 20), SyncAction::Wait);
        // A retry is not held back by a later alarm (a quiet turn's).
        let mut sync = DirectorySync::new();
        sync.deferred_to(DIRECTORY_TIME_LAG_MS);
        assert_eq!(
            sync.on_sent(false, 0),
            SyncAction::ArmAlarm {
                in_ms: DIRECTORY_RETRY_MS
            }
        );
    }
}
