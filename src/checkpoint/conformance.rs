//! The conformance suite: one set of cases every [`Checkpointer`] must pass.
//!
//! Each case is `pub async fn case(store) -> Result<(), Failure>` and documents the
//! property it checks. Cases use a fresh random thread id, so they never need a wiped
//! store and can run against a shared database (or a live Durable Object).
//!
//! Backends stamp one named test per case with [`conformance_tests!`](crate::conformance_tests):
//! ```ignore
//! edge_memory::conformance_tests!(edge_memory::checkpoint::memory::MemoryCheckpointer::new());
//! ```
//! [`run_all`] runs every case and returns a [`Report`], for runtimes without a test
//! harness (the worker inside workerd).

use std::fmt;

use serde_json::{json, Map, Value};

use super::{CheckpointId, CheckpointRecord, Checkpointer, ListQuery, NewCheckpoint, Window};
use crate::error::Error;
use crate::message::{Message, MessageOp, MessageType};
use crate::runtime::{Clock, SystemClock, SystemEntropy};
use crate::thread::{ThreadId, ThreadRecord, ThreadStatus};

/// Why a case failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure(format!("unexpected error: {e:?}"))
    }
}

/// What a case returns.
pub type Outcome = Result<(), Failure>;

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Failure(format!($($msg)+)));
        }
    };
}

macro_rules! check_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (left, right) = (&$left, &$right);
        if left != right {
            return Err(Failure(format!("{}: {:?} != {:?}", format!($($msg)+), left, right)));
        }
    }};
}

// The saver store's suite (`saver::conformance`) checks with the same macros.
pub(crate) use {check, check_eq};

/// The result of one case in a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case's name.
    pub name: &'static str,
    /// `None` when it passed.
    pub failure: Option<String>,
}

/// The results of [`run_all`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One entry per case, in suite order.
    pub cases: Vec<CaseResult>,
}

impl Report {
    /// How many cases passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_none()).count()
    }

    /// Whether every case passed.
    pub fn all_passed(&self) -> bool {
        self.passed() == self.cases.len()
    }
}

/// Stamps one test per conformance case for a backend. The argument is an expression
/// that makes a fresh store. Native tests need `pollster` as a dev-dependency; with
/// `wasm,` first, the tests are `wasm_bindgen_test`s.
#[macro_export]
macro_rules! conformance_tests {
    (wasm, $make:expr) => {
        $crate::__conformance_cases!(@wasm $make);
    };
    ($make:expr) => {
        $crate::__conformance_cases!(@native $make);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    (@$mode:ident $make:expr) => {
        $crate::__conformance_cases!(@$mode $make;
            empty_thread_has_no_checkpoint
            thread_record_round_trips
            creating_a_thread_twice_conflicts
            roundtrip
            latest_vs_by_id
            list_order_before_limit
            threads_are_isolated
            delete_removes_everything
            parent_chain_intact
            forks_keep_both_branches
            failed_put_is_atomic
            replace_and_remove_semantics
            unknown_thread_is_not_found
            unknown_checkpoint_is_not_found
            export_copies_exactly
            window_matches_the_state
            a_message_larger_than_a_row_round_trips
        );
    };
    (@native $make:expr; $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                let store = $make;
                if let Err(failure) = ::pollster::block_on($crate::checkpoint::conformance::$case(&store)) {
                    panic!("{}: {}", stringify!($case), failure);
                }
            }
        )*
    };
    (@wasm $make:expr; $($case:ident)*) => {
        $(
            #[::wasm_bindgen_test::wasm_bindgen_test]
            async fn $case() {
                let store = $make;
                if let Err(failure) = $crate::checkpoint::conformance::$case(&store).await {
                    panic!("{}: {}", stringify!($case), failure);
                }
            }
        )*
    };
    (@report $store:ident, $report:ident; $($case:ident)*) => {
        $(
            $report.cases.push(CaseResult {
                name: stringify!($case),
                failure: $case($store).await.err().map(|f| f.0),
            });
        )*
    };
}

/// Runs every case against `store` and reports each result.
pub async fn run_all<C: Checkpointer>(store: &C) -> Report {
    let mut report = Report::default();
    crate::__conformance_cases!(@report store, report;
        empty_thread_has_no_checkpoint
        thread_record_round_trips
        creating_a_thread_twice_conflicts
        roundtrip
        latest_vs_by_id
        list_order_before_limit
        threads_are_isolated
        delete_removes_everything
        parent_chain_intact
        forks_keep_both_branches
        failed_put_is_atomic
        replace_and_remove_semantics
        unknown_thread_is_not_found
        unknown_checkpoint_is_not_found
        export_copies_exactly
        window_matches_the_state
        a_message_larger_than_a_row_round_trips
    );
    report
}

fn fresh_thread_id() -> ThreadId {
    // A random id per case: no wiping between cases, safe on shared stores.
    let id = ThreadId::generate(&SystemEntropy);
    ThreadId::parse(&format!("conformance-{id}")).unwrap_or(id)
}

async fn new_thread<C: Checkpointer>(store: &C) -> Result<ThreadId, Failure> {
    let id = fresh_thread_id();
    let mut metadata = Map::new();
    metadata.insert("suite".into(), json!("conformance"));
    store
        .create_thread(&ThreadRecord::new(
            id.clone(),
            metadata,
            SystemClock.now_ms(),
        ))
        .await?;
    Ok(id)
}

fn human(id: &str, text: &str) -> MessageOp {
    MessageOp::Upsert {
        message: Message::new(MessageType::Human, id, text),
    }
}

fn ai(id: &str, text: &str) -> MessageOp {
    MessageOp::Upsert {
        message: Message::new(MessageType::Ai, id, text),
    }
}

/// Builds checkpoints with increasing ids for one thread.
struct Chain {
    thread: ThreadId,
    /// The newest id handed out (stored or not), so ids keep increasing.
    last: Option<CheckpointId>,
    /// The newest checkpoint stored through `push`.
    head: Option<CheckpointId>,
}

impl Chain {
    fn new(thread: &ThreadId) -> Self {
        Chain {
            thread: thread.clone(),
            last: None,
            head: None,
        }
    }

    fn next(&mut self, parent: Option<&CheckpointId>, ops: Vec<MessageOp>) -> NewCheckpoint {
        let id = CheckpointId::next(self.last.as_ref(), SystemClock.now_ms(), &SystemEntropy);
        self.last = Some(id.clone());
        let mut metadata = Map::new();
        metadata.insert("source".into(), json!("loop"));
        metadata.insert("step".into(), json!(1));
        NewCheckpoint {
            record: CheckpointRecord {
                thread_id: self.thread.clone(),
                checkpoint_id: id,
                parent_id: parent.cloned(),
                created_at_ms: SystemClock.now_ms(),
                metadata,
            },
            ops,
        }
    }

    /// Puts a checkpoint continuing from the last one and returns its id.
    async fn push<C: Checkpointer>(
        &mut self,
        store: &C,
        ops: Vec<MessageOp>,
    ) -> Result<CheckpointId, Failure> {
        let parent = self.head.clone();
        let cp = self.next(parent.as_ref(), ops);
        store.put(&cp).await?;
        self.head = Some(cp.record.checkpoint_id.clone());
        Ok(cp.record.checkpoint_id)
    }
}

fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(Message::text).collect()
}

fn is_not_found(result: &Result<impl fmt::Debug, Error>, what: &str) -> bool {
    matches!(result, Err(Error::NotFound { what: w, .. }) if *w == what)
}

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
    check_eq!(forked.checkpoint.parent_id, Some(root), "fork parent");
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

/// `window` is the tail of the state `get`/`latest` return, with the right existing ids
/// and checkpoints, through replacements, removals, forks and remove-all.
pub async fn window_matches_the_state<C: Checkpointer>(store: &C) -> Outcome {
    let t = new_thread(store).await?;
    let ids = ["h1", "a1", "h2", "h3", "h4", "zz"];
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
