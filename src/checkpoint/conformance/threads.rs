//! Conformance cases for thread records, isolation, deletion, and what unknown threads
//! and checkpoints answer.

use serde_json::{json, Map, Value};

use super::support::{fresh_thread_id, human, is_not_found, new_thread, texts, Chain};
use super::{check, check_eq, Failure, Outcome};
use crate::checkpoint::{CheckpointId, Checkpointer, ListQuery};
use crate::error::Error;
use crate::runtime::{Clock, SystemClock, SystemEntropy};
use crate::thread::{ThreadRecord, ThreadStatus};

/// A new thread has a record and no checkpoint; its history is empty.
pub async fn empty_thread_has_no_checkpoint<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    check!(
        store.latest(&t).await?.is_none(),
        "latest of an empty thread must be None"
    );
    check!(
        store.list(&t, &ListQuery::default()).await?.is_empty(),
        "list of an empty thread must be empty"
    );
    Ok(())
}

/// A thread record reads back as written, and updates replace metadata and status.
pub async fn thread_record_round_trips<C: Checkpointer>(store: &C) -> Outcome {
    let t = fresh_thread_id();
    let mut metadata = Map::new();
    metadata.insert("graph_id".into(), json!("agent"));
    metadata.insert("nested".into(), json!({"a": [1, 2, "x"]}));
    let record = ThreadRecord::new(t.clone(), metadata, 1_700_000_000_123);
    store.create_thread(&record).await?;
    check_eq!(store.get_thread(&t).await?, record, "thread record");
    let mut updated = record.clone();
    updated.metadata.insert("user".into(), json!("u1"));
    updated.status = ThreadStatus::Busy;
    updated.updated_at_ms += 5;
    store.update_thread(&updated).await?;
    check_eq!(
        store.get_thread(&t).await?,
        updated,
        "updated thread record"
    );
    Ok(())
}

/// Creating a thread whose id exists fails with `Conflict` and keeps the original.
pub async fn creating_a_thread_twice_conflicts<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let before = store.get_thread(&t).await?;
    let again = store
        .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 1))
        .await;
    check!(
        matches!(again, Err(Error::Conflict { .. })),
        "second create must conflict, got {again:?}"
    );
    check_eq!(store.get_thread(&t).await?, before, "original record kept");
    Ok(())
}

/// Two threads with the same message ids do not see each other's checkpoints.
pub async fn threads_are_isolated<C: Checkpointer>(store: &C) -> Outcome {
    let a = new_thread(store).await?;
    let b = new_thread(store).await?;
    Chain::new(&a)
        .push(store, vec![human("same-id", "from A")])
        .await?;
    Chain::new(&b)
        .push(store, vec![human("same-id", "from B")])
        .await?;
    let sa = store
        .latest(&a)
        .await?
        .ok_or_else(|| Failure("A has no state".into()))?;
    let sb = store
        .latest(&b)
        .await?
        .ok_or_else(|| Failure("B has no state".into()))?;
    check_eq!(texts(&sa.messages), ["from A"], "thread A");
    check_eq!(texts(&sb.messages), ["from B"], "thread B");
    check_eq!(
        store.list(&a, &ListQuery::default()).await?.len(),
        1,
        "A's list"
    );
    Ok(())
}

/// Deleting a thread removes record, checkpoints and messages; the same id created
/// again starts empty.
pub async fn delete_removes_everything<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let mut chain = Chain::new(&t);
    let cp = chain.push(store, vec![human("h", "secret")]).await?;
    store.delete_thread(&t).await?;
    check!(
        is_not_found(&store.get_thread(&t).await, "thread"),
        "record gone"
    );
    check!(
        is_not_found(&store.latest(&t).await, "thread"),
        "latest gone"
    );
    check!(
        is_not_found(&store.get(&t, &cp).await, "thread"),
        "checkpoint gone"
    );
    check!(
        is_not_found(&store.delete_thread(&t).await, "thread"),
        "second delete is NotFound"
    );
    store
        .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 1))
        .await?;
    check!(
        store.latest(&t).await?.is_none(),
        "recreated thread starts empty"
    );
    // An eventually consistent store cannot tell a deleted id newer than its (empty)
    // head from one not visible yet: "not visible yet" is its honest answer.
    let old = store.get(&t, &cp).await;
    let not_visible = !store.strongly_consistent() && matches!(old, Err(Error::Conflict { .. }));
    check!(
        is_not_found(&old, "checkpoint") || not_visible,
        "old checkpoint not resurrected: {old:?}"
    );
    Ok(())
}

/// Every operation on an unknown thread fails with `NotFound { what: "thread" }`.
pub async fn unknown_thread_is_not_found<C: Checkpointer>(store: &C) -> Outcome {
    let t = fresh_thread_id();
    let cp = CheckpointId::next(None, SystemClock.now_ms(), &SystemEntropy);
    check!(
        is_not_found(&store.get_thread(&t).await, "thread"),
        "get_thread"
    );
    check!(is_not_found(&store.latest(&t).await, "thread"), "latest");
    check!(is_not_found(&store.get(&t, &cp).await, "thread"), "get");
    check!(
        is_not_found(&store.list(&t, &ListQuery::default()).await, "thread"),
        "list"
    );
    check!(
        is_not_found(&store.delete_thread(&t).await, "thread"),
        "delete_thread"
    );
    let record = ThreadRecord::new(t.clone(), Map::new(), 1);
    check!(
        is_not_found(&store.update_thread(&record).await, "thread"),
        "update_thread"
    );
    let put = Chain::new(&t).next(None, vec![human("x", "y")]);
    check!(is_not_found(&store.put(&put).await, "thread"), "put");
    check!(
        is_not_found(&store.get_thread(&t).await, "thread"),
        "put did not create the thread"
    );
    Ok(())
}

/// An unknown checkpoint id on an existing thread is `NotFound { what: "checkpoint" }`.
pub async fn unknown_checkpoint_is_not_found<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    Chain::new(&t).push(store, vec![human("x", "y")]).await?;
    let unknown = CheckpointId::next(None, 1, &SystemEntropy);
    let r = store.get(&t, &unknown).await;
    check!(
        is_not_found(&r, "checkpoint"),
        "unknown checkpoint, got {r:?}"
    );
    let metadata_kept = store.get_thread(&t).await?.metadata.get("suite").cloned();
    check_eq!(
        metadata_kept,
        Some(Value::from("conformance")),
        "thread untouched"
    );
    Ok(())
}
