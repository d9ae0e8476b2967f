//! The saver store's conformance suite (`checkpoint::saver::conformance`) on real
//! SQLite, and the refusal every other backend answers with.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(not(target_arch = "wasm32"))]

mod support;

mod sqlite {
    edge_memory::saver_conformance_tests!(crate::support::sqlite_store());
}

use edge_memory::checkpoint::kv::{KvCheckpointer, MemoryKv};
use edge_memory::checkpoint::memory::MemoryCheckpointer;
use edge_memory::checkpoint::saver::conformance::run_all;
use edge_memory::checkpoint::saver::{
    SaverExport, SaverList, SaverPut, SaverPutWrites, SaverStore, Typed,
};
use edge_memory::thread::ThreadId;
use edge_memory::Error;

/// Every case passes on one shared store too (cases use their own threads), and the
/// report covers every case the macro stamps.
#[test]
fn run_all_reports_every_case_on_one_store() {
    let report = run_all(&support::sqlite_store());
    assert!(report.all_passed(), "{report:#?}");
    assert_eq!(report.cases.len(), 17);
}

/// Deleting a thread (`DELETE /threads/{id}`, the saver's `delete_thread`) removes its
/// checkpointer storage too: nothing reads back, and the id starts empty again.
#[test]
fn deleting_the_thread_removes_its_saver_storage() {
    use edge_memory::checkpoint::Checkpointer;
    let store = support::sqlite_store();
    let t = ThreadId::parse("saver-delete").unwrap();
    let typed = Typed {
        kind: "json".into(),
        data: "e30=".into(),
    };
    let put: SaverPut = serde_json::from_value(serde_json::json!({
        "checkpoint_id": "cp-1",
        "checkpoint": typed,
        "channel_versions": {"messages": "1"},
        "metadata": {},
        "metadata_typed": typed,
        "blobs": [{"channel": "messages", "version": "1", "type": "em:message_list", "data": "",
                   "list": {"ops": [{"op": "append", "id": "m1", "digest": "d1", "type": "json", "data": "e30="}]}}],
    }))
    .unwrap();
    store.saver_put(&t, &put, 1).unwrap();
    let writes: SaverPutWrites = serde_json::from_value(serde_json::json!({
        "checkpoint_id": "cp-1",
        "task_id": "task",
        "writes": [{"idx": 0, "channel": "a", "type": "json", "data": "e30="}],
    }))
    .unwrap();
    store.saver_put_writes(&t, &writes, 1).unwrap();
    let items = store.saver_get(&t, "", None).unwrap().unwrap().blobs[0]
        .items
        .clone();
    assert_eq!(items.unwrap()[0].id, "m1");
    assert_eq!(store.table_stats().unwrap()["em_saver_writes"]["rows"], 1);
    pollster::block_on(store.delete_thread(&t)).unwrap();
    assert_eq!(store.saver_get(&t, "", None).unwrap(), None);
    assert_eq!(store.saver_export(&t).unwrap(), SaverExport::default());
    let stats = store.table_stats().unwrap();
    for table in [
        "em_saver_checkpoints",
        "em_saver_writes",
        "em_saver_blobs",
        "em_saver_messages",
        "em_saver_list_versions",
        "em_saver_list_rows",
    ] {
        assert_eq!(stats[table]["rows"], 0, "{table}");
    }
    // The same put on the same id works again, from an empty thread.
    store.saver_put(&t, &put, 2).unwrap();
    assert_eq!(
        store.saver_list(&t, &SaverList::default()).unwrap().len(),
        1
    );
}

/// The memory and KV backends keep the trait's defaults: every call is refused as
/// unsupported (422), naming the backend to use instead.
fn refuses_everything(store: &impl SaverStore) {
    let t = ThreadId::parse("saver-unsupported").unwrap();
    let typed = Typed {
        kind: "json".into(),
        data: String::new(),
    };
    let put: SaverPut = serde_json::from_value(serde_json::json!({
        "checkpoint_id": "cp-1",
        "checkpoint": typed,
        "channel_versions": {},
        "metadata": {},
        "metadata_typed": typed,
    }))
    .unwrap();
    let writes = SaverPutWrites {
        checkpoint_ns: String::new(),
        checkpoint_id: "cp-1".into(),
        task_id: "t".into(),
        task_path: String::new(),
        writes: Vec::new(),
    };
    let errors = [
        store.saver_put(&t, &put, 0).unwrap_err(),
        store.saver_put_writes(&t, &writes, 0).unwrap_err(),
        store.saver_get(&t, "", None).unwrap_err(),
        store.saver_list(&t, &SaverList::default()).unwrap_err(),
        store.saver_prune(&t, true).unwrap_err(),
        store.saver_export(&t).unwrap_err(),
        store
            .saver_import(&t, &SaverExport::default(), 0)
            .unwrap_err(),
    ];
    for e in errors {
        assert!(
            matches!(&e, Error::Unsupported { what } if what.contains("durable_object")),
            "{e:?}"
        );
        let answered = edge_memory::api::ApiError::from(e);
        assert_eq!((answered.code(), answered.status()), ("unsupported", 422));
    }
}

#[test]
fn memory_backend_has_no_saver_store() {
    refuses_everything(&MemoryCheckpointer::new());
}

#[test]
fn kv_backend_has_no_saver_store() {
    refuses_everything(&KvCheckpointer::new(MemoryKv::new()));
}

/// A saver `get` of the newest checkpoint and a `list` with a limit (and a metadata
/// filter) cost the same SQLite work at 200 checkpoints as at 20: they read the rows they
/// return, not the thread (VM steps, not time).
#[test]
fn get_and_list_work_is_flat_in_thread_length() {
    let store = support::sqlite_store();
    let t = ThreadId::parse("saver-flat").unwrap();
    let typed = Typed {
        kind: "json".into(),
        data: "e30=".into(),
    };
    let steps = |f: &dyn Fn()| {
        let before = store.exec().vm_steps.get();
        f();
        store.exec().vm_steps.get() - before
    };
    let mut measured = Vec::new();
    for n in 1..=200u32 {
        let put: SaverPut = serde_json::from_value(serde_json::json!({
            "checkpoint_id": format!("cp-{n:05}"),
            "parent_checkpoint_id": (n > 1).then(|| format!("cp-{:05}", n - 1)),
            "checkpoint": typed,
            "channel_versions": {},
            "metadata": {"source": if n % 2 == 0 { "loop" } else { "input" }, "step": n},
            "metadata_typed": typed,
        }))
        .unwrap();
        store.saver_put(&t, &put, i64::from(n)).unwrap();
        if n == 20 || n == 200 {
            let get = steps(&|| {
                let newest = store.saver_get(&t, "", None).unwrap().unwrap();
                assert_eq!(newest.checkpoint_id, format!("cp-{n:05}"));
            });
            let list = steps(&|| {
                let query: SaverList = serde_json::from_value(serde_json::json!({
                    "checkpoint_ns": "", "filter": {"source": "loop"}, "limit": 3,
                }))
                .unwrap();
                let page = store.saver_list(&t, &query).unwrap();
                assert_eq!(page.len(), 3);
                let ids: Vec<_> = page.iter().map(|c| c.checkpoint_id.clone()).collect();
                let even = |k: u32| format!("cp-{:05}", n - k);
                assert_eq!(
                    ids,
                    [even(0), even(2), even(4)],
                    "the newest three of source loop"
                );
            });
            measured.push((get, list));
        }
    }
    let [(get_20, list_20), (get_200, list_200)] = measured[..] else {
        panic!("measured twice")
    };
    assert_eq!(get_200, get_20, "get reads the newest checkpoint only");
    assert!(
        list_200 <= list_20 + list_20 / 10,
        "list with a limit: {list_20} steps at 20 checkpoints, {list_200} at 200"
    );
}
