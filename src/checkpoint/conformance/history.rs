//! Conformance cases for checkpoints and their history: round trips, `latest` and
//! `get`, `list`, parent chains, forks, atomic puts, export.

use serde_json::json;

use super::support::{ai, fresh_thread_id, human, is_not_found, new_thread, texts, Chain};
use super::{check, check_eq, Failure, Outcome};
use crate::checkpoint::{CheckpointId, CheckpointRecord, Checkpointer, ListQuery};
use crate::error::Error;
use crate::message::{Message, MessageOp, MessageType};
use crate::runtime::SystemEntropy;

/// A checkpoint reads back with its record, messages (ids, types, content, extra
/// fields) and order exactly as put.
pub async fn roundtrip<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let mut chain = Chain::new(&t);
    let mut rich = Message::new(MessageType::Ai, "m2", "");
    rich.content = json!([{"type": "text", "text": "héllo ✓"}]);
    rich.name = Some("bot".into());
    rich.extra.insert(
        "tool_calls".into(),
        json!([{"id": "c1", "name": "f", "args": {"x": 1}}]),
    );
    let ops = vec![
        human("m1", "My name is Sam"),
        MessageOp::Upsert {
            message: rich.clone(),
        },
    ];
    let cp = chain.next(None, ops);
    store.put(&cp).await?;
    let snap = store.get(&t, &cp.record.checkpoint_id).await?;
    check_eq!(snap.checkpoint, cp.record, "record");
    check_eq!(snap.messages.len(), 2, "message count");
    check_eq!(
        snap.messages[0],
        Message::new(MessageType::Human, "m1", "My name is Sam"),
        "first message"
    );
    check_eq!(snap.messages[1], rich, "second message with extras");
    let thread = store.get_thread(&t).await?;
    check_eq!(
        thread.updated_at_ms,
        cp.record.created_at_ms,
        "put moves updated_at"
    );
    Ok(())
}

/// `latest` is the newest checkpoint; `get` by an older id returns the state at that
/// point, not the newest.
pub async fn latest_vs_by_id<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let mut chain = Chain::new(&t);
    let first = chain
        .push(store, vec![human("h1", "one"), ai("a1", "uno")])
        .await?;
    let second = chain
        .push(store, vec![human("h2", "two"), ai("a2", "dos")])
        .await?;
    let latest = store
        .latest(&t)
        .await?
        .ok_or_else(|| Failure("latest is None".into()))?;
    check_eq!(latest.checkpoint.checkpoint_id, second, "latest id");
    check_eq!(
        texts(&latest.messages),
        ["one", "uno", "two", "dos"],
        "latest state"
    );
    let old = store.get(&t, &first).await?;
    check_eq!(
        texts(&old.messages),
        ["one", "uno"],
        "state at the first checkpoint"
    );
    Ok(())
}

/// `list` returns newest first; `before` excludes that id and newer; `limit` caps.
pub async fn list_order_before_limit<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let mut chain = Chain::new(&t);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            chain
                .push(store, vec![human(&format!("h{i}"), "x")])
                .await?,
        );
    }
    let newest_first: Vec<CheckpointId> = ids.iter().rev().cloned().collect();
    let ids_of = |records: Vec<CheckpointRecord>| -> Vec<CheckpointId> {
        records.into_iter().map(|r| r.checkpoint_id).collect()
    };
    let all = ids_of(
        store
            .list(
                &t,
                &ListQuery {
                    before: None,
                    limit: 10,
                },
            )
            .await?,
    );
    check_eq!(all, newest_first, "list order");
    let two = ids_of(
        store
            .list(
                &t,
                &ListQuery {
                    before: None,
                    limit: 2,
                },
            )
            .await?,
    );
    check_eq!(two, newest_first[..2].to_vec(), "limit 2");
    let before = ids_of(
        store
            .list(
                &t,
                &ListQuery {
                    before: Some(ids[3].clone()),
                    limit: 10,
                },
            )
            .await?,
    );
    check_eq!(
        before,
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()],
        "before the 4th"
    );
    let before_limited = ids_of(
        store
            .list(
                &t,
                &ListQuery {
                    before: Some(ids[3].clone()),
                    limit: 1,
                },
            )
            .await?,
    );
    check_eq!(before_limited, vec![ids[2].clone()], "before + limit");
    let none = store
        .list(
            &t,
            &ListQuery {
                before: None,
                limit: 0,
            },
        )
        .await?;
    check!(none.is_empty(), "limit 0 returns nothing");
    Ok(())
}

/// Every checkpoint names its parent; walking parents from the head reaches the root
/// through every checkpoint of a linear thread.
pub async fn parent_chain_intact<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let mut chain = Chain::new(&t);
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            chain
                .push(store, vec![human(&format!("h{i}"), &i.to_string())])
                .await?,
        );
    }
    let records = store.list(&t, &ListQuery::default()).await?;
    let mut walked = Vec::new();
    let mut cursor = records.first().map(|r| r.checkpoint_id.clone());
    while let Some(id) = cursor {
        let record = records
            .iter()
            .find(|r| r.checkpoint_id == id)
            .ok_or_else(|| Failure(format!("parent {id} not listed")))?;
        walked.push(id);
        cursor = record.parent_id.clone();
    }
    walked.reverse();
    check_eq!(walked, ids, "parent chain from head to root");
    Ok(())
}

/// A checkpoint whose parent is older than the head starts a branch: its state is the
/// parent's plus its own ops, and the other branch stays readable.
pub async fn forks_keep_both_branches<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let mut chain = Chain::new(&t);
    let root = chain.push(store, vec![human("h1", "one")]).await?;
    let main = chain.push(store, vec![human("h2", "two")]).await?;
    let fork = chain.next(Some(&root), vec![human("h3", "branch")]);
    store.put(&fork).await?;
    let forked = store.get(&t, &fork.record.checkpoint_id).await?;
    check_eq!(texts(&forked.messages), ["one", "branch"], "fork state");
    check_eq!(
        forked.checkpoint.parent_id,
        Some(root.clone()),
        "fork parent"
    );
    let main_state = store.get(&t, &main).await?;
    check_eq!(
        texts(&main_state.messages),
        ["one", "two"],
        "main branch unchanged"
    );
    let head = store
        .latest(&t)
        .await?
        .ok_or_else(|| Failure("no head".into()))?;
    check_eq!(
        head.checkpoint.checkpoint_id,
        fork.record.checkpoint_id,
        "newest is the fork"
    );
    // A history page across both branches: each state as its own `get` has it.
    let page = [
        fork.record.checkpoint_id.clone(),
        main.clone(),
        root.clone(),
    ];
    let states = store.states(&t, &page).await?;
    check_eq!(
        states
            .iter()
            .map(|s| texts(&s.messages))
            .collect::<Vec<_>>(),
        [vec!["one", "branch"], vec!["one", "two"], vec!["one"]],
        "states of a page across a fork"
    );
    Ok(())
}

/// A put that fails (stale id, unknown parent) leaves nothing behind: no checkpoint,
/// and none of its messages in later states.
pub async fn failed_put_is_atomic<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let mut chain = Chain::new(&t);
    let first = chain.push(store, vec![human("h1", "kept")]).await?;
    let updated_before = store.get_thread(&t).await?.updated_at_ms;

    // Same id again: conflict.
    let mut dup = chain.next(Some(&first), vec![human("leak1", "must not appear")]);
    dup.record.checkpoint_id = first.clone();
    let r = store.put(&dup).await;
    check!(
        matches!(r, Err(Error::Conflict { .. })),
        "duplicate id must conflict, got {r:?}"
    );

    // Unknown parent: not found.
    let mut orphan = chain.next(None, vec![human("leak2", "must not appear")]);
    orphan.record.parent_id = Some(CheckpointId::next(None, 1, &SystemEntropy));
    let r = store.put(&orphan).await;
    check!(
        is_not_found(&r, "checkpoint"),
        "unknown parent must be NotFound, got {r:?}"
    );

    // An id older than the head: conflict.
    let head = chain.push(store, vec![human("h2", "also kept")]).await?;
    let mut stale = chain.next(Some(&head), vec![human("leak3", "must not appear")]);
    stale.record.checkpoint_id = first.clone();
    let r = store.put(&stale).await;
    check!(
        matches!(r, Err(Error::Conflict { .. })),
        "stale id must conflict, got {r:?}"
    );

    let records = store.list(&t, &ListQuery::default()).await?;
    check_eq!(records.len(), 2, "only the two good checkpoints exist");
    let latest = store
        .latest(&t)
        .await?
        .ok_or_else(|| Failure("no head".into()))?;
    check_eq!(
        texts(&latest.messages),
        ["kept", "also kept"],
        "no leaked messages"
    );
    check!(
        store.get_thread(&t).await?.updated_at_ms >= updated_before,
        "updated_at never goes back"
    );
    Ok(())
}

/// `export_thread` lists every checkpoint with its ops, oldest first; putting them on a
/// new thread reproduces every state, forks included.
pub async fn export_copies_exactly<C: Checkpointer>(store: &C) -> Outcome {
    let source = new_thread(store).await?;
    let mut chain = Chain::new(&source);
    let root = chain
        .push(store, vec![human("h1", "one"), ai("a1", "uno")])
        .await?;
    chain
        .push(
            store,
            vec![human("h2", "two"), MessageOp::Remove { id: "a1".into() }],
        )
        .await?;
    let fork = chain.next(Some(&root), vec![human("h3", "branch")]);
    store.put(&fork).await?;
    let exported = store.export_thread(&source).await?;
    check_eq!(exported.len(), 3, "exported checkpoints");
    check!(
        exported
            .windows(2)
            .all(|w| w[0].record.checkpoint_id < w[1].record.checkpoint_id),
        "oldest first"
    );
    let target = new_thread(store).await?;
    for checkpoint in &exported {
        let mut copy = checkpoint.clone();
        copy.record.thread_id = target.clone();
        store.put(&copy).await?;
    }
    for checkpoint in &exported {
        let id = &checkpoint.record.checkpoint_id;
        let original = store.get(&source, id).await?;
        let copied = store.get(&target, id).await?;
        check_eq!(copied.messages, original.messages, "state at {id}");
        check_eq!(
            copied.checkpoint.parent_id,
            original.checkpoint.parent_id,
            "parent of {id}"
        );
    }
    check!(
        store.export_thread(&fresh_thread_id()).await.is_err(),
        "unknown thread"
    );
    Ok(())
}
