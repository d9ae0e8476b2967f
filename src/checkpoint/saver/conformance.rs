//! The saver store's conformance suite: what `EdgeMemorySaver` (and through it
//! LangGraph) relies on from a [`SaverStore`].
//!
//! Each case is `pub fn case(store) -> Outcome` and documents the property it checks.
//! Cases use fresh random thread ids, so they share one store without wiping it.
//! Backends stamp one named test per case with
//! [`saver_conformance_tests!`](crate::saver_conformance_tests):
//! ```ignore
//! edge_memory::saver_conformance_tests!(support::sqlite_store());
//! ```
//! [`run_all`] runs every case and returns a [`Report`].
//!
//! Cases live in `checkpoints` (puts, writes, `list`), `lifecycle` (prune,
//! isolation, `copy_thread`) and `lists` (message lists).

mod checkpoints;
mod lifecycle;
mod lists;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Map, Value};

pub use checkpoints::*;
pub use lifecycle::*;
pub use lists::*;

use super::{
    BlobIn, ListOp, MessageListIn, SaverList, SaverPut, SaverPutWrites, SaverStore, SaverTuple,
    Typed, WriteIn, WriteOut,
};
use crate::checkpoint::conformance::{Failure, Report};
use crate::error::{Error, Result};
use crate::runtime::{Clock, SystemClock, SystemEntropy};
use crate::thread::ThreadId;

/// Stamps one `#[test]` per saver conformance case for a backend. The argument is an
/// expression that makes a store (a fresh one per test).
#[macro_export]
macro_rules! saver_conformance_tests {
    ($make:expr) => {
        $crate::__saver_conformance_cases!(@native $make);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __saver_conformance_cases {
    (@native $make:expr; $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                let store = $make;
                if let Err(failure) = $crate::checkpoint::saver::conformance::$case(&store) {
                    panic!("{}: {}", stringify!($case), failure);
                }
            }
        )*
    };
    (@report $store:ident, $report:ident; $($case:ident)*) => {
        $(
            $report.cases.push($crate::checkpoint::conformance::CaseResult {
                name: stringify!($case),
                failure: $crate::checkpoint::saver::conformance::$case($store).err().map(|f| f.0),
            });
        )*
    };
    // The one list of cases, for both arms above.
    (@$mode:ident $($args:tt)*) => {
        $crate::__saver_conformance_cases!(@$mode $($args)*;
            put_then_get_round_trips
            channels_are_read_at_their_versions
            retried_put_changes_nothing
            get_reads_the_newest_or_the_named_checkpoint
            put_writes_retries_keep_regular_and_replace_special_writes
            list_filters_pages_and_orders_newest_first
            prune_keep_latest_keeps_the_newest_of_each_namespace
            prune_delete_removes_everything
            threads_are_isolated
            bad_input_stores_nothing
            blobs_up_to_the_limit_round_trip
            export_import_copies_exactly
            import_into_a_thread_with_checkpoints_conflicts
            message_list_deltas_append_replace_and_remove
            delta_on_a_missing_base_asks_for_the_full_list
            forks_keep_separate_message_lists
            long_message_lists_keep_their_order
        );
    };
}

/// Runs every case against `store` and reports each result.
pub fn run_all<S: SaverStore>(store: &S) -> Report {
    let mut report = Report::default();
    crate::__saver_conformance_cases!(@report store, report);
    report
}

// ---- building puts and reading tuples ---------------------------------------------

fn fresh_thread() -> ThreadId {
    let id = ThreadId::generate(&SystemEntropy);
    ThreadId::parse(&format!("saver-conformance-{id}")).unwrap_or(id)
}

fn now() -> i64 {
    SystemClock.now_ms()
}

fn typed(kind: &str, bytes: &[u8]) -> Typed {
    Typed {
        kind: kind.into(),
        data: BASE64.encode(bytes),
    }
}

fn text_of(value: &Typed) -> String {
    String::from_utf8_lossy(&BASE64.decode(&value.data).unwrap_or_default()).into_owned()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A checkpoint `id` of namespace `ns` with no channels yet.
fn checkpoint(ns: &str, id: &str, parent: Option<&str>) -> SaverPut {
    SaverPut {
        checkpoint_ns: ns.into(),
        checkpoint_id: id.into(),
        parent_checkpoint_id: parent.map(Into::into),
        checkpoint: typed("json", format!("{{\"id\":\"{id}\"}}").as_bytes()),
        channel_versions: Map::new(),
        metadata: object(json!({"source": "loop", "step": 1})),
        metadata_typed: typed("msgpack", format!("meta of {id}").as_bytes()),
        blobs: Vec::new(),
    }
}

/// `put` with `channel` at `version`, carrying its new value.
fn with_blob(mut put: SaverPut, channel: &str, version: &str, text: &str) -> SaverPut {
    put.channel_versions.insert(channel.into(), json!(version));
    put.blobs.push(BlobIn {
        channel: channel.into(),
        version: json!(version),
        value: typed("json", text.as_bytes()),
        list: None,
    });
    put
}

/// `put` reading `channel` at a version an earlier put stored (no blob sent).
fn reading(mut put: SaverPut, channel: &str, version: &str) -> SaverPut {
    put.channel_versions.insert(channel.into(), json!(version));
    put
}

/// `put` with message list `channel` at `version`: `ops` on `base`, or whole.
fn with_list(
    mut put: SaverPut,
    channel: &str,
    version: &str,
    base: Option<&str>,
    ops: Vec<ListOp>,
) -> SaverPut {
    put.channel_versions.insert(channel.into(), json!(version));
    put.blobs.push(BlobIn {
        channel: channel.into(),
        version: json!(version),
        value: typed(super::MESSAGE_LIST_TYPE, b""),
        list: Some(MessageListIn {
            base_version: base.map(|b| json!(b)),
            ops,
        }),
    });
    put
}

fn digest(text: &str) -> String {
    format!("d{}-{}", text.len(), BASE64.encode(text))
}

fn append(id: &str, text: &str) -> ListOp {
    ListOp::Append {
        id: id.into(),
        digest: digest(text),
        value: typed("json", text.as_bytes()),
    }
}

fn replace(id: &str, text: &str) -> ListOp {
    ListOp::Replace {
        id: id.into(),
        digest: digest(text),
        value: typed("json", text.as_bytes()),
    }
}

fn remove(id: &str) -> ListOp {
    ListOp::Remove { id: id.into() }
}

fn write(idx: i64, channel: &str, text: &str) -> WriteIn {
    WriteIn {
        idx,
        channel: channel.into(),
        value: typed("json", text.as_bytes()),
    }
}

fn writes(ns: &str, checkpoint_id: &str, task: (&str, &str), w: Vec<WriteIn>) -> SaverPutWrites {
    SaverPutWrites {
        checkpoint_ns: ns.into(),
        checkpoint_id: checkpoint_id.into(),
        task_id: task.0.into(),
        task_path: task.1.into(),
        writes: w,
    }
}

/// Stores a task's writes against checkpoint `checkpoint_id` of `ns`.
fn add_writes<S: SaverStore>(
    store: &S,
    thread: &ThreadId,
    ns: &str,
    checkpoint_id: &str,
    task: (&str, &str),
    w: Vec<WriteIn>,
) -> Result<()> {
    store.saver_put_writes(thread, &writes(ns, checkpoint_id, task, w), now())
}

/// A fresh thread holding `puts`, stored in order.
fn thread_with<S: SaverStore>(
    store: &S,
    puts: &[SaverPut],
) -> std::result::Result<ThreadId, Failure> {
    let t = fresh_thread();
    for put in puts {
        store.saver_put(&t, put, now())?;
    }
    Ok(t)
}

/// The checkpoint, which must exist.
fn get<S: SaverStore>(
    store: &S,
    thread: &ThreadId,
    ns: &str,
    id: Option<&str>,
) -> std::result::Result<SaverTuple, Failure> {
    store
        .saver_get(thread, ns, id)?
        .ok_or_else(|| Failure(format!("checkpoint {ns:?}/{id:?} is missing")))
}

/// `channel`'s plain value in `tuple`, as text.
fn value(tuple: &SaverTuple, channel: &str) -> Option<String> {
    tuple
        .blobs
        .iter()
        .find(|b| b.channel == channel)
        .map(|b| text_of(&b.value))
}

/// `channel`'s message list in `tuple` as `id=text` entries.
fn messages(tuple: &SaverTuple, channel: &str) -> Vec<String> {
    let blob = tuple.blobs.iter().find(|b| b.channel == channel);
    blob.and_then(|b| b.items.as_ref())
        .map(|items| {
            items
                .iter()
                .map(|i| format!("{}={}", i.id, text_of(&i.value)))
                .collect()
        })
        .unwrap_or_default()
}

fn ids(tuples: &[SaverTuple]) -> Vec<String> {
    tuples.iter().map(|t| t.checkpoint_id.clone()).collect()
}

fn pending(tuple: &SaverTuple) -> Vec<String> {
    let show = |w: &WriteOut| format!("{}:{}={}", w.task_id, w.channel, text_of(&w.value));
    tuple.pending_writes.iter().map(show).collect()
}

/// The kind of error a call failed with (the conflict's code for a conflict), or a
/// failure if there was none. Statuses are the API's ([`crate::api::ApiError`]).
fn error_of(result: Result<()>) -> std::result::Result<&'static str, Failure> {
    match result {
        Ok(()) => Err(Failure("expected an error, the call succeeded".into())),
        Err(Error::InvalidInput { .. }) => Ok("invalid_input"),
        Err(Error::TooLarge { .. }) => Ok("too_large"),
        Err(Error::Conflict { kind, .. }) => Ok(kind.code()),
        Err(other) => Err(Failure(format!("an unexpected error: {other}"))),
    }
}

fn list_all<S: SaverStore>(store: &S, thread: &ThreadId) -> Result<Vec<SaverTuple>> {
    store.saver_list(thread, &SaverList::default())
}
