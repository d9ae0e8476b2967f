//! Saver conformance cases for message lists and `copy_thread` (export and import).

use super::{
    append, checkpoint, error_of, fresh_thread, get, messages, now, remove, replace, thread_with,
    with_list,
};
use crate::checkpoint::conformance::{check, check_eq, Failure, Outcome};
use crate::checkpoint::saver::{ListOp, SaverPut, SaverStore, MESSAGE_LIST_TYPE};
use crate::thread::ThreadId;

/// A put continuing `parent` with message list version `version` of `messages`.
pub(super) fn list_step(
    id: &str,
    parent: Option<&str>,
    version: &str,
    base: Option<&str>,
    ops: Vec<ListOp>,
) -> SaverPut {
    with_list(checkpoint("", id, parent), "messages", version, base, ops)
}

/// Every checkpoint's message list, `(id, messages)`, from `want`'s ids.
pub(super) fn check_lists<S: SaverStore>(
    store: &S,
    t: &ThreadId,
    want: &[(&str, &[&str])],
) -> Outcome {
    for (id, expected) in want {
        let got = messages(&get(store, t, "", Some(id))?, "messages");
        check_eq!(got, *expected, "messages at {id}");
    }
    Ok(())
}

/// Message-list deltas: append at the end, replace in place, remove; an id removed
/// can come back at the end; within one put an appended message can be removed again
/// and a replaced one replaced twice. Every older version still reads as it was, and
/// the list blob reads back as the marker type with each item's digest.
pub fn message_list_deltas_append_replace_and_remove<S: SaverStore>(store: &S) -> Outcome {
    let steps = [
        list_step(
            "cp-1",
            None,
            "1",
            None,
            vec![append("m1", "hello"), append("m2", "hi")],
        ),
        list_step(
            "cp-2",
            Some("cp-1"),
            "2",
            Some("1"),
            vec![append("m3", "how are you")],
        ),
        list_step(
            "cp-3",
            Some("cp-2"),
            "3",
            Some("2"),
            vec![replace("m2", "hi!"), remove("m1")],
        ),
        list_step(
            "cp-4",
            Some("cp-3"),
            "4",
            Some("3"),
            vec![append("m1", "back")],
        ),
        list_step(
            "cp-5",
            Some("cp-4"),
            "5",
            Some("4"),
            vec![
                append("m5", "oops"),
                remove("m5"),
                replace("m3", "x"),
                replace("m3", "y"),
            ],
        ),
    ];
    let t = thread_with(store, &steps)?;
    check_lists(
        store,
        &t,
        &[
            ("cp-1", &["m1=hello", "m2=hi"]),
            ("cp-2", &["m1=hello", "m2=hi", "m3=how are you"]),
            ("cp-3", &["m2=hi!", "m3=how are you"]),
            ("cp-4", &["m2=hi!", "m3=how are you", "m1=back"]),
            ("cp-5", &["m2=hi!", "m3=y", "m1=back"]),
        ],
    )?;
    let head = get(store, &t, "", None)?;
    let blob = head.blobs.iter().find(|b| b.channel == "messages");
    let marker = blob.map(|b| (b.value.kind.as_str(), b.value.data.as_str()));
    check_eq!(
        marker,
        Some((MESSAGE_LIST_TYPE, "")),
        "the list blob is the marker"
    );
    let digests: Vec<String> = blob
        .and_then(|b| b.items.as_ref())
        .map(|items| items.iter().map(|i| i.digest.clone()).collect())
        .unwrap_or_default();
    let want = [
        super::digest("hi!"),
        super::digest("y"),
        super::digest("back"),
    ];
    check_eq!(digests, want, "digests");
    Ok(())
}

/// A delta whose base version is not stored, or whose ops do not fit it (append an id
/// the list has, replace or remove one it lacks), is refused with
/// `base_version_missing` (409) and stores nothing; the same put sent whole (no base)
/// then succeeds: the client's fallback.
pub fn delta_on_a_missing_base_asks_for_the_full_list<S: SaverStore>(store: &S) -> Outcome {
    let t = fresh_thread();
    store.saver_put(
        &t,
        &list_step(
            "cp-1",
            None,
            "1",
            None,
            vec![append("m1", "a"), append("m2", "b")],
        ),
        now(),
    )?;
    let refused = [
        ("unknown base", Some("nope"), vec![append("m3", "c")]),
        (
            "append of an id it has",
            Some("1"),
            vec![append("m3", "c"), append("m1", "again")],
        ),
        (
            "replace of an id it lacks",
            Some("1"),
            vec![replace("ghost", "boo")],
        ),
        ("remove of an id it lacks", Some("1"), vec![remove("ghost")]),
    ];
    for (what, base, ops) in refused {
        let put = list_step("cp-2", Some("cp-1"), "2", base, ops);
        check_eq!(
            error_of(store.saver_put(&t, &put, now()))?,
            "base_version_missing",
            "{what}"
        );
        check!(
            store.saver_get(&t, "", Some("cp-2"))?.is_none(),
            "{what}: cp-2 was stored"
        );
    }
    let whole = vec![append("m1", "a"), append("m2", "b"), append("m3", "c")];
    store.saver_put(
        &t,
        &list_step("cp-2", Some("cp-1"), "2", None, whole),
        now(),
    )?;
    check_lists(
        store,
        &t,
        &[
            ("cp-1", &["m1=a", "m2=b"]),
            ("cp-2", &["m1=a", "m2=b", "m3=c"]),
        ],
    )?;
    // The whole list is a version like any other: deltas continue from it.
    store.saver_put(
        &t,
        &list_step("cp-3", Some("cp-2"), "3", Some("2"), vec![remove("m2")]),
        now(),
    )?;
    check_lists(store, &t, &[("cp-3", &["m1=a", "m3=c"])])
}

/// Forks: two children of one parent each keep their own list; continuing either
/// branch, or forking again from the middle of a fork, leaves every other version as
/// it was.
pub fn forks_keep_separate_message_lists<S: SaverStore>(store: &S) -> Outcome {
    let steps = [
        list_step(
            "cp-1",
            None,
            "1",
            None,
            vec![append("a", "A"), append("b", "B")],
        ),
        list_step("cp-2", Some("cp-1"), "2", Some("1"), vec![append("c", "C")]),
        list_step("cp-3", Some("cp-1"), "3", Some("1"), vec![append("d", "D")]),
        list_step(
            "cp-4",
            Some("cp-3"),
            "4",
            Some("3"),
            vec![append("e", "E"), remove("a")],
        ),
        list_step(
            "cp-5",
            Some("cp-2"),
            "5",
            Some("2"),
            vec![replace("b", "B2")],
        ),
        list_step(
            "cp-6",
            Some("cp-3"),
            "6",
            Some("3"),
            vec![remove("b"), replace("d", "D2")],
        ),
    ];
    let t = thread_with(store, &steps)?;
    check_lists(
        store,
        &t,
        &[
            ("cp-1", &["a=A", "b=B"]),
            ("cp-2", &["a=A", "b=B", "c=C"]),
            ("cp-3", &["a=A", "b=B", "d=D"]),
            ("cp-4", &["b=B", "d=D", "e=E"]),
            ("cp-5", &["a=A", "b=B2", "c=C"]),
            ("cp-6", &["a=A", "d=D2"]),
        ],
    )
}

/// A list of hundreds of messages keeps its order through appends, a removal in the
/// middle and a large message (1 MiB).
pub fn long_message_lists_keep_their_order<S: SaverStore>(store: &S) -> Outcome {
    let t = fresh_thread();
    let first: Vec<ListOp> = (0..300)
        .map(|i| append(&format!("m{i:03}"), &i.to_string()))
        .collect();
    store.saver_put(&t, &list_step("cp-1", None, "1", None, first), now())?;
    let big = "x".repeat(1024 * 1024);
    let ops = vec![remove("m150"), append("big", &big), append("m300", "300")];
    store.saver_put(
        &t,
        &list_step("cp-2", Some("cp-1"), "2", Some("1"), ops),
        now(),
    )?;
    let mut want: Vec<String> = (0..301)
        .filter(|i| *i != 150)
        .map(|i| format!("m{i:03}={i}"))
        .collect();
    want.insert(299, format!("big={big}"));
    let got = messages(&get(store, &t, "", None)?, "messages");
    check!(
        got == want,
        "the long list differs ({} vs {} messages)",
        got.len(),
        want.len()
    );
    check_eq!(
        messages(&get(store, &t, "", Some("cp-1"))?, "messages").len(),
        300,
        "cp-1"
    );
    Ok(())
}
