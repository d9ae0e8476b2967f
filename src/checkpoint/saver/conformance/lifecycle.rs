//! Saver conformance cases for a thread's life: pruning, isolation, `copy_thread`.

use super::lists::{check_lists, list_step};
use super::{
    add_writes, append, checkpoint, error_of, fresh_thread, get, ids, list_all, messages, now,
    pending, reading, replace, text_of, thread_with, value, with_blob, with_list, write,
};
use crate::checkpoint::conformance::{check, check_eq, Failure, Outcome};
use crate::checkpoint::saver::{SaverExport, SaverPut, SaverStore};
use crate::thread::ThreadId;

/// `prune(keep_latest)` keeps the newest checkpoint of each namespace, its writes and
/// every blob it reads (older puts' too), and drops the rest.
pub fn prune_keep_latest_keeps_the_newest_of_each_namespace<S: SaverStore>(store: &S) -> Outcome {
    let puts = [
        with_blob(
            with_blob(checkpoint("", "cp-1", None), "a", "1", "a1"),
            "b",
            "1",
            "b1",
        ),
        reading(
            with_blob(checkpoint("", "cp-2", Some("cp-1")), "a", "2", "a2"),
            "b",
            "1",
        ),
        reading(
            with_blob(checkpoint("", "cp-3", Some("cp-2")), "a", "3", "a3"),
            "b",
            "1",
        ),
        with_blob(checkpoint("sub", "cp-1s", None), "x", "1", "x1"),
        with_blob(checkpoint("sub", "cp-2s", Some("cp-1s")), "x", "2", "x2"),
    ];
    let t = thread_with(store, &puts)?;
    add_writes(store, &t, "", "cp-1", ("t", ""), vec![write(0, "a", "old")])?;
    add_writes(store, &t, "", "cp-3", ("t", ""), vec![write(0, "a", "new")])?;
    store.saver_prune(&t, true)?;
    store.saver_prune(&t, true)?; // twice: nothing more goes
    check_eq!(ids(&list_all(store, &t)?), ["cp-3", "cp-2s"], "kept");
    let head = get(store, &t, "", None)?;
    check_eq!(
        (value(&head, "a"), value(&head, "b")),
        (Some("a3".into()), Some("b1".into())),
        "cp-3 reads"
    );
    check_eq!(pending(&head), ["t:a=new"], "cp-3's writes");
    check!(
        store.saver_get(&t, "", Some("cp-1"))?.is_none(),
        "cp-1 is gone"
    );
    let mut kept: Vec<(String, String)> = store
        .saver_export(&t)?
        .puts
        .iter()
        .flat_map(|p| {
            p.blobs
                .iter()
                .map(|b| (b.channel.clone(), text_of(&b.value)))
        })
        .collect();
    kept.sort();
    let expected =
        [("a", "a3"), ("b", "b1"), ("x", "x2")].map(|(c, v)| (c.to_string(), v.to_string()));
    check_eq!(kept, expected, "the blobs left");
    check!(
        store.saver_export(&t)?.writes.len() == 1,
        "only cp-3's writes are left"
    );
    store.saver_prune(&fresh_thread(), true)?; // an unknown thread: nothing to do
    Ok(())
}

/// `prune(delete)` removes every checkpoint, write, blob and message list: a delta on
/// a list version from before is then a missing base, and the thread takes new puts.
pub fn prune_delete_removes_everything<S: SaverStore>(store: &S) -> Outcome {
    let t = fresh_thread();
    let first = with_list(
        checkpoint("", "cp-1", None),
        "messages",
        "1",
        None,
        vec![append("m1", "hi")],
    );
    store.saver_put(&t, &first, now())?;
    add_writes(store, &t, "", "cp-1", ("t", ""), vec![write(0, "a", "w")])?;
    store.saver_prune(&t, false)?;
    check!(list_all(store, &t)?.is_empty(), "no checkpoint is left");
    let export = store.saver_export(&t)?;
    check!(
        export.puts.is_empty() && export.writes.is_empty(),
        "nothing exports: {export:?}"
    );
    check!(
        export.list_tables.iter().all(|(_, rows)| rows.is_empty()),
        "no list rows: {export:?}"
    );
    let delta = with_list(
        checkpoint("", "cp-2", Some("cp-1")),
        "messages",
        "2",
        Some("1"),
        vec![append("m2", "yo")],
    );
    check_eq!(
        error_of(store.saver_put(&t, &delta, now()))?,
        "base_version_missing",
        "stale delta"
    );
    store.saver_put(&t, &first, now())?;
    check_eq!(
        messages(&get(store, &t, "", None)?, "messages"),
        ["m1=hi"],
        "a new put after delete"
    );
    Ok(())
}

/// Threads never see each other: same ids, namespaces and list versions on two
/// threads read their own values, and pruning one leaves the other.
pub fn threads_are_isolated<S: SaverStore>(store: &S) -> Outcome {
    let (a, b) = (fresh_thread(), fresh_thread());
    for (t, text) in [(&a, "from a"), (&b, "from b")] {
        let put = with_list(
            checkpoint("", "cp-1", None),
            "messages",
            "1",
            None,
            vec![append("m1", text)],
        );
        store.saver_put(t, &put, now())?;
    }
    let delta = with_list(
        checkpoint("", "cp-2", Some("cp-1")),
        "messages",
        "2",
        Some("1"),
        vec![append("m2", "a2")],
    );
    store.saver_put(&a, &delta, now())?;
    check_eq!(
        messages(&get(store, &a, "", None)?, "messages"),
        ["m1=from a", "m2=a2"],
        "thread a"
    );
    check_eq!(
        messages(&get(store, &b, "", None)?, "messages"),
        ["m1=from b"],
        "thread b"
    );
    let on_b = with_list(
        checkpoint("", "cp-3", None),
        "messages",
        "3",
        Some("2"),
        vec![append("m3", "b3")],
    );
    check_eq!(
        error_of(store.saver_put(&b, &on_b, now()))?,
        "base_version_missing",
        "a's version on b"
    );
    store.saver_prune(&a, false)?;
    check_eq!(
        ids(&list_all(store, &b)?),
        ["cp-1"],
        "b after a was deleted"
    );
    Ok(())
}

/// A source thread with two namespaces, writes, a message list and a fork of it.
fn copy_source<S: SaverStore>(store: &S) -> Result<ThreadId, Failure> {
    let puts = [
        with_blob(
            list_step("cp-1", None, "1", None, vec![append("m1", "hi")]),
            "a",
            "1",
            "a1",
        ),
        list_step(
            "cp-2",
            Some("cp-1"),
            "2",
            Some("1"),
            vec![append("m2", "yo")],
        ),
        list_step(
            "cp-3",
            Some("cp-1"),
            "3",
            Some("1"),
            vec![replace("m1", "hey")],
        ),
        with_blob(checkpoint("sub", "cp-1s", None), "x", "1", "x1"),
    ];
    let t = thread_with(store, &puts)?;
    let task = ("task", "path");
    add_writes(
        store,
        &t,
        "",
        "cp-2",
        task,
        vec![write(0, "a", "w0"), write(-1, "__error__", "e")],
    )?;
    add_writes(store, &t, "sub", "cp-1s", task, vec![write(0, "x", "ws")])?;
    Ok(t)
}

/// `copy_thread`: importing an export into a new thread reads back exactly the same
/// checkpoints, values, writes and message lists, and the copy's lists take deltas
/// on the source's versions (its rows were copied, not only its blobs). The source is
/// unchanged by writes to the copy; an unknown thread exports nothing.
pub fn export_import_copies_exactly<S: SaverStore>(store: &S) -> Outcome {
    let source = copy_source(store)?;
    let export = store.saver_export(&source)?;
    check_eq!(
        ids_of(&export.puts),
        ["cp-1", "cp-1s", "cp-2", "cp-3"],
        "exported puts, oldest first"
    );
    check_eq!(export.writes.len(), 2, "exported write groups");
    check!(
        export.list_tables.iter().all(|(_, rows)| !rows.is_empty()),
        "list rows travel"
    );
    let copy = fresh_thread();
    store.saver_import(&copy, &export, now())?;
    check_eq!(
        list_all(store, &copy)?,
        list_all(store, &source)?,
        "the copy lists the same"
    );
    check_eq!(
        pending(&get(store, &copy, "", Some("cp-2"))?),
        ["task:__error__=e", "task:a=w0"],
        "writes"
    );
    let again = store.saver_export(&copy)?;
    check_eq!(
        (&again.puts, &again.writes),
        (&export.puts, &export.writes),
        "the copy exports the same"
    );
    let next = list_step(
        "cp-4",
        Some("cp-2"),
        "4",
        Some("2"),
        vec![append("m3", "new")],
    );
    store.saver_put(&copy, &next, now())?;
    check_lists(
        store,
        &copy,
        &[
            ("cp-4", &["m1=hi", "m2=yo", "m3=new"]),
            ("cp-3", &["m1=hey"]),
        ],
    )?;
    check_eq!(
        ids(&list_all(store, &source)?),
        ["cp-3", "cp-2", "cp-1s", "cp-1"],
        "the source"
    );
    check_eq!(
        store.saver_export(&fresh_thread())?,
        SaverExport::default(),
        "an unknown thread"
    );
    Ok(())
}

fn ids_of(puts: &[SaverPut]) -> Vec<String> {
    puts.iter().map(|p| p.checkpoint_id.clone()).collect()
}

/// Importing into a thread that has checkpoints is refused (409 `target_not_empty`)
/// and leaves it as it was; a thread with only writes (no checkpoint yet) takes it.
pub fn import_into_a_thread_with_checkpoints_conflicts<S: SaverStore>(store: &S) -> Outcome {
    let source = copy_source(store)?;
    let export = store.saver_export(&source)?;
    let target = fresh_thread();
    store.saver_put(
        &target,
        &list_step("cp-9", None, "1", None, vec![append("own", "mine")]),
        now(),
    )?;
    let before = list_all(store, &target)?;
    let refused = store.saver_import(&target, &export, now());
    check!(
        matches!(&refused, Err(e) if e.to_string().contains("already has checkpoints")),
        "says why: {refused:?}"
    );
    check_eq!(
        error_of(refused)?,
        "target_not_empty",
        "into a non-empty thread"
    );
    check_eq!(list_all(store, &target)?, before, "the target is unchanged");
    let writes_only = fresh_thread();
    add_writes(
        store,
        &writes_only,
        "",
        "cp-1",
        ("t", ""),
        vec![write(0, "a", "w")],
    )?;
    store.saver_import(&writes_only, &export, now())?;
    check_eq!(
        ids(&list_all(store, &writes_only)?),
        ["cp-3", "cp-2", "cp-1s", "cp-1"],
        "copied"
    );
    Ok(())
}
