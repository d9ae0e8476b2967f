//! Runs on real SQLite: run records (pages, status filter, pruning, kept events), a
//! rolled-back run's checkpoints removed so the thread continues as if it never ran, and
//! a reply stopped midway (kept so far for an interrupt, nothing for a rollback).

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;

use edge_memory::api::runs::{RunRecord, RunStatus, SqlRuns, RUNS_KEPT_PER_THREAD};
use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::{
    ChatModel, DeltaSink, Engine, NoSink, Replied, ReplyEnd, StopAction, StopSignal, Turn,
};
use edge_memory::checkpoint::{Checkpointer, ListQuery};
use edge_memory::error::Result;
use edge_memory::message::{parse_messages, Message, MessageOp};
use edge_memory::runtime::{SystemClock, SystemEntropy};
use edge_memory::thread::{ThreadId, ThreadRecord};
use serde_json::{json, Map};

fn record(thread: &ThreadId, n: i64, status: RunStatus) -> RunRecord {
    RunRecord {
        run_id: format!("run-{n:05}"),
        thread_id: thread.clone(),
        assistant_id: "a".into(),
        status,
        metadata: Map::new(),
        multitask_strategy: "enqueue".into(),
        created_at_ms: n,
        updated_at_ms: n,
        run_at_ms: n,
        kwargs: json!({"input": null}),
        resumable: false,
        request: None,
    }
}

#[test]
fn run_records_page_newest_first_filter_by_status_and_stay_bounded() {
    let runs = SqlRuns::new(support::RusqliteExec::in_memory());
    let t = ThreadId::parse("t").unwrap();
    let other = ThreadId::parse("other").unwrap();
    runs.put(&record(&t, 1, RunStatus::Success)).unwrap();
    runs.put(&record(&t, 2, RunStatus::Pending)).unwrap();
    runs.put(&record(&other, 3, RunStatus::Running)).unwrap();
    let page = runs.list(&t, None, 10, 0).unwrap();
    let ids: Vec<&str> = page.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["run-00002", "run-00001"]);
    assert_eq!(
        runs.list(&t, Some(RunStatus::Pending), 10, 0)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(runs.list(&t, None, 1, 1).unwrap()[0].run_id, "run-00001");
    // A status update replaces the record; unfinished runs are found across threads.
    runs.put(&record(&t, 2, RunStatus::Success)).unwrap();
    let unfinished: Vec<String> = runs
        .unfinished()
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(unfinished, ["run-00003"]);
    assert!(runs.delete(&t, "run-00001").unwrap());
    assert!(!runs.delete(&t, "run-00001").unwrap());
    assert!(
        runs.get(&t, "run-00003").unwrap().is_none(),
        "another thread's run"
    );
    // Finished records beyond the bound are pruned, about one finished run in 64 doing it.
    for n in 10..(RUNS_KEPT_PER_THREAD + 200) {
        runs.put(&record(&t, n, RunStatus::Success)).unwrap();
    }
    let kept = runs.list(&t, None, 5_000, 0).unwrap().len() as i64;
    assert!(
        (RUNS_KEPT_PER_THREAD..RUNS_KEPT_PER_THREAD + 200).contains(&kept),
        "{kept} records kept"
    );
    runs.delete_thread(&t).unwrap();
    assert!(runs.list(&t, None, 10, 0).unwrap().is_empty());
}

#[test]
fn kept_events_expire() {
    let runs = SqlRuns::new(support::RusqliteExec::in_memory());
    let events = json!([{"event": "values", "data": {}, "id": "1"}]);
    runs.put_events("r", 1_000, &events).unwrap();
    assert_eq!(runs.events("r", 999).unwrap(), Some(events));
    assert_eq!(
        runs.events("r", 1_000).unwrap(),
        None,
        "expired, even before the sweep"
    );
    assert_eq!(runs.expire_events(500).unwrap(), Some(1_000));
    assert_eq!(runs.expire_events(1_000).unwrap(), None);
}

fn say(text: &str) -> Vec<MessageOp> {
    parse_messages(
        &json!([{"role": "user", "content": text}]),
        "input",
        &SystemEntropy,
    )
    .unwrap()
}

/// Thread `t`, created empty.
fn new_thread(store: &impl Checkpointer) -> ThreadId {
    let t = ThreadId::parse("t").unwrap();
    pollster::block_on(store.create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))).unwrap();
    t
}

fn contents(messages: &[Message]) -> Vec<String> {
    messages.iter().map(Message::text).collect()
}

#[test]
fn removing_a_rolled_back_turn_leaves_the_thread_as_before_it() {
    let store = support::sqlite_store();
    let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    let t = new_thread(&store);
    pollster::block_on(async {
        let turn = |text: &str| Turn {
            thread_id: t.clone(),
            input: say(text),
            from_checkpoint: None,
            metadata: Map::new(),
        };
        engine.run_turn(turn("My name is Sam")).await.unwrap();
        let before = store.latest(&t).await.unwrap().unwrap();
        let doomed = engine.run_turn(turn("doomed")).await.unwrap();
        let written = vec![
            doomed.input_checkpoint.unwrap().checkpoint_id,
            doomed.checkpoint.checkpoint_id,
        ];
        // Only the newest checkpoints can go: the first turn's input has a follower.
        let first = store.list(&t, &ListQuery::default()).await.unwrap();
        let oldest = first.last().unwrap().checkpoint_id.clone();
        let err = store.remove_newest(&t, &[oldest]).await.unwrap_err();
        assert!(
            matches!(err, edge_memory::Error::Conflict { .. }),
            "{err:?}"
        );
        store.remove_newest(&t, &written).await.unwrap();
        let after = store.latest(&t).await.unwrap().unwrap();
        assert_eq!(after, before);
        assert_eq!(
            store.list(&t, &ListQuery::default()).await.unwrap().len(),
            2
        );
        // The thread goes on from there (the live list is rebuilt once).
        let next = engine.run_turn(turn("What's my name?")).await.unwrap();
        let state = store.get(&t, &next.checkpoint.checkpoint_id).await.unwrap();
        assert_eq!(
            contents(&state.messages)[..3],
            [
                "My name is Sam",
                "Nice to meet you, Sam! I'll remember that.",
                "What's my name?"
            ]
        );
        assert_eq!(state.messages.len(), 4);
        assert_eq!(store.latest(&t).await.unwrap().unwrap(), state);
    });
}

/// A model that says its first words, then waits for ever (a slow model).
struct Slow;

impl ChatModel for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    async fn stream(&self, _: &[Message], sink: &dyn DeltaSink) -> Result<ReplyEnd> {
        sink.delta("So far ");
        std::future::pending::<()>().await;
        unreachable!()
    }
}

/// Fires once polled `after` times.
struct StopAfter {
    action: StopAction,
    polls: Cell<u32>,
}

impl StopSignal for StopAfter {
    fn stopped(&self) -> Pin<Box<dyn Future<Output = StopAction> + '_>> {
        Box::pin(std::future::poll_fn(move |cx| {
            self.polls.set(self.polls.get() + 1);
            if self.polls.get() > 1 {
                std::task::Poll::Ready(self.action)
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        }))
    }
}

#[test]
fn a_stopped_reply_keeps_what_was_said_for_an_interrupt_and_nothing_for_a_rollback() {
    let store = support::sqlite_store();
    let engine = Engine::new(&store, &Slow, &SystemClock, &SystemEntropy);
    let t = new_thread(&store);
    pollster::block_on(async {
        for (action, kept) in [
            (StopAction::Interrupt, Some("So far ")),
            (StopAction::Rollback, None),
        ] {
            let stored = engine
                .store_input(Turn {
                    thread_id: t.clone(),
                    input: say("question"),
                    from_checkpoint: None,
                    metadata: Map::new(),
                })
                .await
                .unwrap();
            let stop = StopAfter {
                action,
                polls: Cell::new(0),
            };
            let replied = engine.reply_until(stored, &NoSink, &stop).await.unwrap();
            let Replied::Stopped {
                action: got,
                partial,
            } = replied
            else {
                panic!("the reply was stopped");
            };
            assert_eq!(got, action);
            assert_eq!(
                partial.as_ref().map(|p| p.reply.text()),
                kept.map(str::to_string)
            );
            if let Some(partial) = partial {
                assert_eq!(partial.checkpoint.metadata["interrupted"], json!(true));
                let head = store.latest(&t).await.unwrap().unwrap();
                assert_eq!(
                    head.checkpoint.checkpoint_id,
                    partial.checkpoint.checkpoint_id
                );
            }
        }
    });
}
