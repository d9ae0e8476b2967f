//! Conformance cases for message states: replacement and removal, messages larger than
//! a row, and the context window.

use super::support::{ai, human, is_not_found, new_thread, texts, Chain};
use super::{check, check_eq, Failure, Outcome};
use crate::checkpoint::{CheckpointId, Checkpointer, ListQuery, Window};
use crate::message::{Message, MessageOp, MessageType};
use crate::thread::ThreadId;

/// Upserting an existing id replaces it in place; removal drops it; remove-all clears;
/// older checkpoints keep their state.
pub async fn replace_and_remove_semantics<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let mut chain = Chain::new(&t);
    let c1 = chain
        .push(
            store,
            vec![human("m1", "a"), ai("m2", "b"), human("m3", "c")],
        )
        .await?;
    let c2 = chain
        .push(
            store,
            vec![ai("m2", "B"), MessageOp::Remove { id: "m1".into() }],
        )
        .await?;
    check_eq!(
        texts(&store.get(&t, &c2).await?.messages),
        ["B", "c"],
        "after replace + remove"
    );
    check_eq!(
        texts(&store.get(&t, &c1).await?.messages),
        ["a", "b", "c"],
        "older state intact"
    );
    chain
        .push(store, vec![MessageOp::RemoveAll, human("m4", "fresh")])
        .await?;
    let latest = store
        .latest(&t)
        .await?
        .ok_or_else(|| Failure("no head".into()))?;
    check_eq!(texts(&latest.messages), ["fresh"], "after remove-all");
    Ok(())
}

/// A message larger than a Durable Object row (2 MB), with multi-byte characters where
/// parts would be cut, reads back byte-identical from `latest`, `get`, `window` and
/// `export`, and is replaced and deleted like any other.
pub async fn a_message_larger_than_a_row_round_trips<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let mut chain = Chain::new(&t);
    // 2.6 MB: two whole parts and a piece; "é✓" straddles every 1 MiB cut.
    let text: String = "aé✓".repeat(2_600_000 / 6);
    let big = Message::new(MessageType::Human, "big", text.clone());
    let first = chain
        .push(
            store,
            vec![
                human("before", "small"),
                MessageOp::Upsert {
                    message: big.clone(),
                },
            ],
        )
        .await?;
    let second = chain.push(store, vec![ai("after", "noted")]).await?;
    let head = store
        .latest(&t)
        .await?
        .ok_or_else(|| Failure("no head".into()))?;
    check_eq!(head.messages.len(), 3, "message count");
    check_eq!(head.messages[1], big, "the big message from latest");
    check_eq!(store.get(&t, &first).await?.messages[1], big, "from get");
    let window = store.window(&t, Some(&second), 10, &["big"]).await?;
    check_eq!(window.messages[1].text(), text, "from window");
    check!(window.existing.contains("big"), "its id is found");
    let exported = store.export_thread(&t).await?;
    let again = match &exported[0].ops[1] {
        MessageOp::Upsert { message } => message.clone(),
        other => return Err(Failure(format!("exported op {other:?}"))),
    };
    check_eq!(again, big, "from export");
    // Replaced by a small one, then the thread deleted: nothing left behind.
    chain.push(store, vec![human("big", "small now")]).await?;
    let head = store
        .latest(&t)
        .await?
        .ok_or_else(|| Failure("no head".into()))?;
    check_eq!(head.messages[1].text(), "small now", "replaced in place");
    store.delete_thread(&t).await?;
    check!(is_not_found(&store.latest(&t).await, "thread"), "deleted");
    Ok(())
}

/// Checks `window` against the tail of the state `get`/`latest` return.
async fn expect<C: Checkpointer>(
    store: &C,
    t: &ThreadId,
    from: Option<&CheckpointId>,
    max: usize,
    ids: &[&str],
    label: &str,
) -> Outcome {
    let got = store.window(t, from, max, ids).await?;
    let newest = store.latest(t).await?.map(|s| s.checkpoint.checkpoint_id);
    let base = match from {
        Some(id) => Some(store.get(t, id).await?),
        None => store.latest(t).await?,
    };
    let want = match base {
        Some(s) => Window::from_state(Some(s.checkpoint), newest, s.messages, max, ids),
        None => Window::from_state(None, newest, Vec::new(), max, ids),
    };
    check_eq!(got, want, "{label}");
    Ok(())
}

/// `window` is the tail of the state `get`/`latest` return, with the right existing ids
/// and checkpoints, through replacements, removals, forks and remove-all.
pub async fn window_matches_the_state<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let ids = ["h1", "a1", "h2", "h3", "h4", "zz"];
    expect(store, &t, None, 3, &ids, "empty thread").await?;
    let mut chain = Chain::new(&t);
    let c1 = chain
        .push(
            store,
            vec![human("h1", "a"), ai("a1", "b"), human("h2", "c")],
        )
        .await?;
    expect(store, &t, None, 2, &ids, "after c1").await?;
    chain
        .push(
            store,
            vec![
                ai("a1", "B"),
                MessageOp::Remove { id: "h1".into() },
                human("h3", "d"),
            ],
        )
        .await?;
    expect(store, &t, None, 2, &ids, "after replace + remove").await?;
    expect(store, &t, None, 100, &ids, "whole state").await?;
    expect(store, &t, Some(&c1), 10, &ids, "an older checkpoint").await?;
    // Fork from c1, then continue the fork, then go back to the old branch.
    let fork = chain.next(Some(&c1), vec![human("h4", "fork")]);
    store.put(&fork).await?;
    chain.head = Some(fork.record.checkpoint_id.clone());
    expect(store, &t, None, 10, &ids, "after a fork").await?;
    chain.push(store, vec![ai("a1", "again")]).await?;
    expect(store, &t, None, 10, &ids, "continuing the fork").await?;
    let c2 = store
        .list(
            &t,
            &ListQuery {
                before: Some(fork.record.checkpoint_id.clone()),
                limit: 1,
            },
        )
        .await?;
    let old = chain.next(
        Some(&c2[0].checkpoint_id),
        vec![human("h2", "replaced on the old branch")],
    );
    store.put(&old).await?;
    chain.head = Some(old.record.checkpoint_id.clone());
    expect(store, &t, None, 10, &ids, "back on the old branch").await?;
    chain
        .push(store, vec![MessageOp::RemoveAll, human("h4", "fresh")])
        .await?;
    expect(store, &t, None, 10, &ids, "after remove-all").await?;
    expect(
        store,
        &t,
        None,
        0,
        &ids,
        "an empty window still reports ids",
    )
    .await?;
    Ok(())
}
