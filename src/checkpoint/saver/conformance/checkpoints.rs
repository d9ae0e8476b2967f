//! Saver conformance cases for checkpoints, blobs, writes and `list`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::{
    add_writes, append, checkpoint, error_of, fresh_thread, get, ids, list_all, messages, now,
    object, pending, reading, thread_with, typed, value, with_blob, with_list, write, writes,
};
use crate::checkpoint::conformance::{check, check_eq, Failure, Outcome};
use crate::checkpoint::saver::{BlobIn, ListOp, SaverList, SaverStore, SAVER_BLOB_MAX_BYTES};
use crate::thread::ThreadId;

/// A put reads back exactly: the typed checkpoint and metadata bytes (not UTF-8 ones
/// too), the parent id, every blob (an `empty` one kept), and no pending writes.
pub fn put_then_get_round_trips<S: SaverStore>(store: &S) -> Outcome {
    let t = fresh_thread();
    let mut put = with_blob(checkpoint("", "cp-1", Some("cp-0")), "answer", "1", "42");
    put.checkpoint = typed("msgpack", &[0, 159, 146, 150, 255]);
    put.channel_versions.insert("gone".into(), json!("1"));
    put.blobs.push(BlobIn {
        channel: "gone".into(),
        version: json!("1"),
        value: typed("empty", b""),
        list: None,
    });
    store.saver_put(&t, &put, now())?;
    let got = get(store, &t, "", None)?;
    check_eq!(got.checkpoint_ns, "", "namespace");
    check_eq!(got.checkpoint_id, "cp-1", "id");
    check_eq!(got.parent_checkpoint_id.as_deref(), Some("cp-0"), "parent");
    check_eq!(got.checkpoint, put.checkpoint, "checkpoint bytes");
    check_eq!(got.metadata_typed, put.metadata_typed, "metadata bytes");
    check_eq!(value(&got, "answer"), Some("42".to_string()), "answer");
    let gone = got.blobs.iter().find(|b| b.channel == "gone");
    check_eq!(
        gone.map(|b| (b.value.kind.as_str(), b.value.data.as_str())),
        Some(("empty", "")),
        "empty blob"
    );
    check!(
        got.blobs.iter().all(|b| b.items.is_none()),
        "plain blobs have no items"
    );
    check!(
        got.pending_writes.is_empty(),
        "no writes yet: {:?}",
        got.pending_writes
    );
    check_eq!(
        get(store, &t, "", Some("cp-1"))?,
        got,
        "by id reads the same"
    );
    Ok(())
}

/// A put sends only the channels that changed; each checkpoint reads every channel at
/// the version its `channel_versions` names, whichever put stored it (non-string
/// versions too). A channel with no stored blob is left out.
pub fn channels_are_read_at_their_versions<S: SaverStore>(store: &S) -> Outcome {
    let first = with_blob(
        with_blob(checkpoint("", "cp-1", None), "a", "1", "a one"),
        "b",
        "1",
        "b one",
    );
    let mut second = reading(
        with_blob(checkpoint("", "cp-2", Some("cp-1")), "a", "2", "a two"),
        "b",
        "1",
    );
    second.channel_versions.insert("n".into(), json!(7));
    second.blobs.push(BlobIn {
        channel: "n".into(),
        version: json!(7),
        value: typed("json", b"seven"),
        list: None,
    });
    let third = reading(checkpoint("", "cp-3", Some("cp-2")), "never", "1");
    let t = thread_with(store, &[first, second, third])?;
    let one = get(store, &t, "", Some("cp-1"))?;
    check_eq!(
        (value(&one, "a"), value(&one, "b")),
        (Some("a one".into()), Some("b one".into())),
        "cp-1"
    );
    let two = get(store, &t, "", Some("cp-2"))?;
    check_eq!(
        (value(&two, "a"), value(&two, "b")),
        (Some("a two".into()), Some("b one".into())),
        "cp-2"
    );
    check_eq!(
        value(&two, "n"),
        Some("seven".to_string()),
        "a numeric version"
    );
    let three = get(store, &t, "", Some("cp-3"))?;
    check!(
        three.blobs.is_empty(),
        "cp-3 reads no stored blob: {:?}",
        three.blobs
    );
    Ok(())
}

/// LangGraph retries: a put of the same checkpoint again leaves one checkpoint that
/// reads the same, message list included.
pub fn retried_put_changes_nothing<S: SaverStore>(store: &S) -> Outcome {
    let t = fresh_thread();
    let put = with_list(
        with_blob(checkpoint("", "cp-1", None), "a", "1", "one"),
        "messages",
        "1",
        None,
        vec![append("m1", "hello"), append("m2", "hi")],
    );
    store.saver_put(&t, &put, now())?;
    let before = get(store, &t, "", None)?;
    store.saver_put(&t, &put, now())?;
    check_eq!(
        list_all(store, &t)?.len(),
        1,
        "one checkpoint after a retry"
    );
    let after = get(store, &t, "", None)?;
    check_eq!(after, before, "the retry changed the checkpoint");
    check_eq!(
        messages(&after, "messages"),
        ["m1=hello", "m2=hi"],
        "messages"
    );
    Ok(())
}

/// `get_tuple` without an id reads the newest checkpoint of that namespace; with one,
/// that checkpoint. An unknown id, namespace or thread reads as `None`.
pub fn get_reads_the_newest_or_the_named_checkpoint<S: SaverStore>(store: &S) -> Outcome {
    let t = fresh_thread();
    for (ns, id) in [("", "cp-1"), ("", "cp-2"), ("sub", "cp-3"), ("", "cp-0")] {
        store.saver_put(&t, &with_blob(checkpoint(ns, id, None), "v", id, id), now())?;
    }
    check_eq!(
        get(store, &t, "", None)?.checkpoint_id,
        "cp-2",
        "newest of the root namespace"
    );
    check_eq!(
        get(store, &t, "sub", None)?.checkpoint_id,
        "cp-3",
        "newest of sub"
    );
    let one = get(store, &t, "", Some("cp-1"))?;
    check_eq!(
        (one.checkpoint_id.as_str(), value(&one, "v")),
        ("cp-1", Some("cp-1".into())),
        "by id"
    );
    check!(
        store.saver_get(&t, "", Some("cp-3"))?.is_none(),
        "cp-3 is in another namespace"
    );
    check!(
        store.saver_get(&t, "", Some("nope"))?.is_none(),
        "an unknown id is None"
    );
    check!(
        store.saver_get(&t, "other", None)?.is_none(),
        "an empty namespace is None"
    );
    check!(
        store.saver_get(&fresh_thread(), "", None)?.is_none(),
        "an unknown thread is None"
    );
    Ok(())
}

/// `put_writes`: a retried regular write keeps the first value; a special write
/// (negative idx) is replaced. Pending writes read in (task path, task, idx) order and
/// belong to their own checkpoint and namespace only.
pub fn put_writes_retries_keep_regular_and_replace_special_writes<S: SaverStore>(
    store: &S,
) -> Outcome {
    let t = fresh_thread();
    store.saver_put(&t, &checkpoint("", "cp-1", None), now())?;
    store.saver_put(&t, &checkpoint("", "cp-2", Some("cp-1")), now())?;
    let t1 = ("task-1", "p1");
    // In order: a task's writes, its retry with other values, a special write and its
    // retry, another task's, and writes to another checkpoint and namespace.
    let sent = [
        (
            "",
            "cp-1",
            t1,
            vec![write(0, "a", "one"), write(1, "b", "two")],
        ),
        (
            "",
            "cp-1",
            t1,
            vec![write(0, "a", "ONE"), write(1, "b", "TWO")],
        ),
        ("", "cp-1", t1, vec![write(-1, "__error__", "first")]),
        ("", "cp-1", t1, vec![write(-1, "__error__", "second")]),
        ("", "cp-1", ("task-0", "p0"), vec![write(0, "c", "zero")]),
        ("", "cp-2", t1, vec![write(0, "a", "later")]),
        ("sub", "cp-1", t1, vec![write(0, "a", "sub")]),
    ];
    for (ns, checkpoint_id, task, w) in sent {
        add_writes(store, &t, ns, checkpoint_id, task, w)?;
    }
    let expected = [
        "task-0:c=zero",
        "task-1:__error__=second",
        "task-1:a=one",
        "task-1:b=two",
    ];
    check_eq!(
        pending(&get(store, &t, "", Some("cp-1"))?),
        expected,
        "cp-1's writes"
    );
    check_eq!(
        pending(&get(store, &t, "", Some("cp-2"))?),
        ["task-1:a=later"],
        "cp-2's writes"
    );
    Ok(())
}

/// The four checkpoints of the `list` case: three in the root namespace, one in `sub`
/// whose id sorts between two of them.
fn list_fixture<S: SaverStore>(store: &S) -> Result<ThreadId, Failure> {
    let t = fresh_thread();
    let metadata = [
        ("", "cp-01", json!({"source": "input", "step": -1})),
        ("", "cp-02", json!({"source": "loop", "step": 0})),
        ("sub", "cp-025", json!({"source": "loop", "step": 0})),
        (
            "",
            "cp-03",
            json!({"source": "loop", "step": 1, "user": "ann"}),
        ),
    ];
    for (ns, id, meta) in metadata {
        let mut put = with_blob(checkpoint(ns, id, None), "v", id, id);
        put.metadata = object(meta);
        store.saver_put(&t, &put, now())?;
    }
    Ok(t)
}

/// A `list` query: namespace, metadata filter, `before` and `limit`.
fn query(ns: Option<&str>, filter: Value, before: Option<&str>, limit: Option<usize>) -> SaverList {
    SaverList {
        checkpoint_ns: ns.map(Into::into),
        checkpoint_id: None,
        filter: object(filter),
        before: before.map(Into::into),
        limit,
    }
}

/// `list`: newest (greatest id) first across namespaces, filtered by namespace, id,
/// metadata (every key equal, numbers too) and `before`; `limit` counts what the
/// filters let through. Listed tuples carry their values. An unknown thread lists
/// nothing.
pub fn list_filters_pages_and_orders_newest_first<S: SaverStore>(store: &S) -> Outcome {
    let t = list_fixture(store)?;
    let all = ["cp-03", "cp-025", "cp-02", "cp-01"];
    let loop_ = json!({"source": "loop"});
    let none = json!({});
    let cases: [(&str, SaverList, &[&str]); 11] = [
        ("all", SaverList::default(), &all),
        (
            "root namespace",
            query(Some(""), none.clone(), None, None),
            &["cp-03", "cp-02", "cp-01"],
        ),
        (
            "sub namespace",
            query(Some("sub"), none.clone(), None, None),
            &["cp-025"],
        ),
        (
            "one key",
            query(None, loop_.clone(), None, None),
            &["cp-03", "cp-025", "cp-02"],
        ),
        (
            "two keys",
            query(None, json!({"source": "loop", "user": "ann"}), None, None),
            &["cp-03"],
        ),
        (
            "a number",
            query(None, json!({"step": -1}), None, None),
            &["cp-01"],
        ),
        (
            "no match",
            query(None, json!({"user": "bob"}), None, None),
            &[],
        ),
        (
            "before",
            query(None, none.clone(), Some("cp-03"), None),
            &all[1..],
        ),
        (
            "ns, before, limit",
            query(Some(""), none.clone(), Some("cp-03"), Some(1)),
            &["cp-02"],
        ),
        (
            "limit after the filter",
            query(None, loop_, None, Some(2)),
            &all[..2],
        ),
        ("limit 0", query(None, none, None, Some(0)), &[]),
    ];
    for (what, q, want) in cases {
        check_eq!(ids(&store.saver_list(&t, &q)?), want, "{what}");
    }
    let by_id = SaverList {
        checkpoint_id: Some("cp-02".into()),
        ..SaverList::default()
    };
    check_eq!(ids(&store.saver_list(&t, &by_id)?), ["cp-02"], "by id");
    let newest = list_all(store, &t)?;
    check_eq!(
        newest.first().and_then(|n| value(n, "v")),
        Some("cp-03".to_string()),
        "values"
    );
    check!(
        list_all(store, &fresh_thread())?.is_empty(),
        "an unknown thread"
    );
    Ok(())
}

/// Bad base64 is refused naming the field, before anything is stored.
pub fn bad_input_stores_nothing<S: SaverStore>(store: &S) -> Outcome {
    let t = fresh_thread();
    store.saver_put(
        &t,
        &with_blob(checkpoint("", "cp-1", None), "a", "1", "ok"),
        now(),
    )?;
    let mut bad = with_blob(checkpoint("", "cp-2", Some("cp-1")), "a", "2", "x");
    bad.blobs[0].value.data = "not base64!".into();
    check_eq!(
        error_of(store.saver_put(&t, &bad, now()))?,
        "invalid_input",
        "bad blob"
    );
    let mut bad_op = append("m1", "x");
    if let ListOp::Append { value, .. } = &mut bad_op {
        value.data = "%%%".into();
    }
    let bad_list = with_list(
        checkpoint("", "cp-2", Some("cp-1")),
        "messages",
        "1",
        None,
        vec![bad_op],
    );
    check_eq!(
        error_of(store.saver_put(&t, &bad_list, now()))?,
        "invalid_input",
        "bad message"
    );
    // The first write is good: it is not stored either.
    let mut bad_writes = writes(
        "",
        "cp-1",
        ("t", ""),
        vec![write(0, "a", "ok"), write(1, "b", "x")],
    );
    bad_writes.writes[1].value.data = "!!".into();
    check_eq!(
        error_of(store.saver_put_writes(&t, &bad_writes, now()))?,
        "invalid_input",
        "bad write"
    );
    check_eq!(
        ids(&list_all(store, &t)?),
        ["cp-1"],
        "only the good put is stored"
    );
    let head = get(store, &t, "", None)?;
    check!(
        head.pending_writes.is_empty(),
        "no write stored: {:?}",
        head.pending_writes
    );
    check!(
        store.saver_get(&fresh_thread(), "", None)?.is_none(),
        "untouched thread"
    );
    Ok(())
}

/// A blob of exactly [`SAVER_BLOB_MAX_BYTES`] round-trips byte for byte; one byte more
/// is refused as too large and stores nothing.
pub fn blobs_up_to_the_limit_round_trip<S: SaverStore>(store: &S) -> Outcome {
    let t = fresh_thread();
    let big: Vec<u8> = (0..SAVER_BLOB_MAX_BYTES).map(|i| (i % 251) as u8).collect();
    let mut put = checkpoint("", "cp-1", None);
    put.channel_versions.insert("big".into(), json!("1"));
    put.blobs.push(BlobIn {
        channel: "big".into(),
        version: json!("1"),
        value: typed("bytes", &big),
        list: None,
    });
    store.saver_put(&t, &put, now())?;
    let got = get(store, &t, "", None)?;
    let stored = got
        .blobs
        .first()
        .map(|b| BASE64.decode(&b.value.data).unwrap_or_default());
    check!(
        stored.as_deref() == Some(big.as_slice()),
        "the big blob changed ({:?} bytes)",
        stored.map(|s| s.len())
    );
    let mut over = checkpoint("", "cp-2", Some("cp-1"));
    over.checkpoint = typed("bytes", &vec![7; SAVER_BLOB_MAX_BYTES + 1]);
    check_eq!(
        error_of(store.saver_put(&t, &over, now()))?,
        "too_large",
        "over the limit"
    );
    check_eq!(
        ids(&list_all(store, &t)?),
        ["cp-1"],
        "nothing of the refused put"
    );
    Ok(())
}
