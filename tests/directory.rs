//! A directory shard on real SQLite: filters decided in SQL mean exactly what JSON
//! equality means, and late copies never replace newer ones.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use edge_memory::checkpoint::directory::SqlDirectory;
use edge_memory::checkpoint::{ThreadIndex, ThreadSearch, ThreadSortKey};
use edge_memory::thread::{ThreadId, ThreadRecord, ThreadStatus};
use serde_json::{json, Value};

fn record(id: &str, metadata: Value, updated: i64) -> ThreadRecord {
    let Value::Object(metadata) = metadata else {
        panic!("metadata is an object")
    };
    let mut record = ThreadRecord::new(ThreadId::parse(id).unwrap(), metadata, 1);
    record.updated_at_ms = updated;
    record
}

fn filter(metadata: Value) -> ThreadSearch {
    let Value::Object(metadata) = metadata else {
        panic!("filter is an object")
    };
    ThreadSearch {
        metadata,
        limit: 100,
        ..ThreadSearch::default()
    }
}

fn ids(records: Vec<ThreadRecord>) -> Vec<String> {
    records
        .into_iter()
        .map(|r| r.thread_id.as_str().to_string())
        .collect()
}

fn shard() -> SqlDirectory<support::RusqliteExec> {
    let directory = SqlDirectory::new(support::RusqliteExec::in_memory());
    let copies = [
        record("int", json!({"v": 1}), 10),
        record("text", json!({"v": "1"}), 20),
        record("yes", json!({"v": true}), 30),
        record("float", json!({"v": 1.5}), 40),
        record("obj", json!({"v": {"a": [1, 2]}}), 50),
        record("null", json!({"v": null}), 60),
        record("none", json!({}), 70),
    ];
    for copy in &copies {
        pollster::block_on(directory.index_upsert(copy)).unwrap();
    }
    directory
}

#[test]
fn filters_mean_json_equality() {
    let directory = shard();
    let find = |value: Value| {
        let query = filter(json!({ "v": value }));
        let found = ids(pollster::block_on(directory.search_threads(&query)).unwrap());
        let count = pollster::block_on(directory.count_threads(&query)).unwrap();
        assert_eq!(found.len(), count, "count agrees with search for {query:?}");
        found
    };
    assert_eq!(find(json!(1)), ["int"]);
    assert_eq!(find(json!("1")), ["text"]);
    assert_eq!(find(json!(true)), ["yes"]);
    assert_eq!(find(json!(false)), Vec::<String>::new());
    assert_eq!(find(json!(1.5)), ["float"]);
    assert_eq!(find(json!({"a": [1, 2]})), ["obj"]);
    assert_eq!(find(json!(null)), ["null"]);
}

#[test]
fn sorted_and_paged_in_sql() {
    let directory = shard();
    let mut query = filter(json!({}));
    query.limit = 3;
    query.offset = 1;
    let page = ids(pollster::block_on(directory.search_threads(&query)).unwrap());
    assert_eq!(page, ["null", "obj", "float"], "newest first, after one");
    query.ascending = true;
    query.sort_by = ThreadSortKey::ThreadId;
    let page = ids(pollster::block_on(directory.search_threads(&query)).unwrap());
    assert_eq!(page, ["int", "none", "null"]);
}

#[test]
fn late_copies_never_replace_newer_ones() {
    let directory = shard();
    let mut newer = record("int", json!({"v": 2}), 100);
    newer.status = ThreadStatus::Busy;
    pollster::block_on(directory.index_upsert(&newer)).unwrap();
    let late = record("int", json!({"v": 1}), 99);
    pollster::block_on(directory.index_upsert(&late)).unwrap();
    let found = pollster::block_on(directory.search_threads(&filter(json!({"v": 2})))).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].status, ThreadStatus::Busy);
    assert_eq!(found[0].updated_at_ms, 100);
    pollster::block_on(directory.index_remove(&newer.thread_id)).unwrap();
    let all = pollster::block_on(directory.count_threads(&filter(json!({})))).unwrap();
    assert_eq!(all, 6);
}

/// A later copy keeps the thread's `created_at` (the update leaves that indexed column
/// alone); a thread created again under its id, whose removal was lost, takes its new
/// one; a late copy of the old thread changes neither.
#[test]
fn created_at_follows_the_thread_created_again() {
    let directory = shard();
    let created = |directory: &SqlDirectory<support::RusqliteExec>| {
        let found = pollster::block_on(directory.search_threads(&filter(json!({"v": 1})))).unwrap();
        (found[0].created_at_ms, found[0].updated_at_ms)
    };
    pollster::block_on(directory.index_upsert(&record("int", json!({"v": 1}), 11))).unwrap();
    assert_eq!(created(&directory), (1, 11));
    let mut again = record("int", json!({"v": 1}), 500);
    again.created_at_ms = 400;
    pollster::block_on(directory.index_upsert(&again)).unwrap();
    assert_eq!(created(&directory), (400, 500));
    pollster::block_on(directory.index_upsert(&record("int", json!({"v": 1}), 12))).unwrap();
    assert_eq!(
        created(&directory),
        (400, 500),
        "a late copy of the old thread"
    );
    let mut by_created = filter(json!({}));
    by_created.sort_by = ThreadSortKey::CreatedAt;
    let newest = pollster::block_on(directory.search_threads(&by_created)).unwrap();
    assert_eq!(
        newest[0].thread_id.as_str(),
        "int",
        "the index follows the new created_at"
    );
}

/// A search page and a count read what they return, not the shard: the newest 10 of
/// 2,000 copies cost the same SQLite work as of 100 (VM steps), ordered by the index.
#[test]
fn a_search_page_is_flat_in_the_number_of_threads() {
    let directory = SqlDirectory::new(support::RusqliteExec::in_memory());
    let exec_steps = |directory: &SqlDirectory<support::RusqliteExec>, query: &ThreadSearch| {
        let before = directory.exec().vm_steps.get();
        let found = pollster::block_on(directory.search_threads(query)).unwrap();
        (found.len(), directory.exec().vm_steps.get() - before)
    };
    let page = ThreadSearch {
        limit: 10,
        ..ThreadSearch::default()
    };
    let mut by_owner = filter(json!({"owner": "alice"}));
    by_owner.limit = 10;
    let mut measured = Vec::new();
    for n in 0..2_000 {
        let owner = if n % 2 == 0 { "alice" } else { "bob" };
        let copy = record(&format!("t{n:05}"), json!({ "owner": owner }), 1_000 + n);
        pollster::block_on(directory.index_upsert(&copy)).unwrap();
        if n + 1 == 100 || n + 1 == 2_000 {
            measured.push((
                exec_steps(&directory, &page),
                exec_steps(&directory, &by_owner),
            ));
        }
    }
    let [((n_small, small), (_, owner_small)), ((n_large, large), (_, owner_large))] = measured[..]
    else {
        panic!("measured twice")
    };
    assert_eq!((n_small, n_large), (10, 10));
    assert!(
        large <= small + small / 10,
        "newest 10: {small} steps at 100 threads, {large} at 2,000"
    );
    assert!(
        owner_large <= 2 * owner_small,
        "one owner's newest 10: {owner_small} steps at 100 threads, {owner_large} at 2,000"
    );
}
