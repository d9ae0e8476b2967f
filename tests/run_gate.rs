//! A second run on a thread that is mid-run gets 409 (`multitask_strategy: "reject"`),
//! and the thread is free again afterwards.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use edge_memory::api::{handle, HttpRequest, RunGate, ServerInfo};
use edge_memory::chat::{ChatModel, DeltaSink, Engine, ReplyEnd};
use edge_memory::message::Message;
use edge_memory::runtime::{SystemClock, SystemEntropy};
use serde_json::json;

/// Pending once, then ready: what a model awaiting the network looks like to the executor.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

struct SlowModel;

impl ChatModel for SlowModel {
    fn name(&self) -> &str {
        "slow"
    }
    async fn stream(
        &self,
        _context: &[Message],
        sink: &dyn DeltaSink,
    ) -> edge_memory::Result<ReplyEnd> {
        YieldOnce(false).await;
        sink.delta("done");
        Ok(ReplyEnd::default())
    }
}

#[test]
fn concurrent_runs_on_one_thread_reject_the_second() {
    let store = support::sqlite_store();
    let engine = Engine::new(&store, &SlowModel, &SystemClock, &SystemEntropy);
    let gate = RunGate::new();
    let info = ServerInfo {
        backend: "test".into(),
        model: "slow".into(),
        dev_mode: false,
        ..Default::default()
    };
    let run = |thread: &str| {
        HttpRequest::json(
            "POST",
            &format!("/threads/{thread}/runs/wait"),
            &json!({"input": {"messages": "hi"}, "if_not_exists": "create"}),
        )
    };
    let (a, b, other) = pollster::block_on(futures::future::join3(
        handle(&run("t"), &info, &engine, &gate),
        handle(&run("t"), &info, &engine, &gate),
        handle(&run("u"), &info, &engine, &gate),
    ));
    assert_eq!(a.status, 200);
    assert_eq!(b.status, 409, "{:?}", b.body);
    assert_eq!(b.json().unwrap()["code"], "thread_busy");
    assert!(b.json().unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("busy"));
    assert_eq!(other.status, 200, "another thread is not blocked");
    // The gate is released: the next run goes through, and only one turn was stored.
    let next = pollster::block_on(handle(&run("t"), &info, &engine, &gate));
    assert_eq!(next.status, 200);
    assert_eq!(
        next.json().unwrap()["messages"].as_array().unwrap().len(),
        4
    );
}

#[test]
fn enqueued_runs_all_apply_in_turn() {
    let store = support::sqlite_store();
    let engine = Engine::new(&store, &SlowModel, &SystemClock, &SystemEntropy);
    let gate = RunGate::new();
    let info = ServerInfo::default();
    let run = |text: &str| {
        HttpRequest::json(
            "POST",
            "/threads/q/runs/wait",
            &json!({"input": {"messages": text}, "if_not_exists": "create", "multitask_strategy": "enqueue"}),
        )
    };
    let (a, b, c) = pollster::block_on(futures::future::join3(
        handle(&run("one"), &info, &engine, &gate),
        handle(&run("two"), &info, &engine, &gate),
        handle(&run("three"), &info, &engine, &gate),
    ));
    for resp in [&a, &b, &c] {
        assert_eq!(resp.status, 200, "{:?}", resp.body);
    }
    let state = pollster::block_on(handle(
        &HttpRequest::empty("GET", "/threads/q/state"),
        &info,
        &engine,
        &gate,
    ));
    let messages = state.json().unwrap()["values"]["messages"]
        .as_array()
        .unwrap()
        .clone();
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["one", "done", "two", "done", "three", "done"]);
    assert!(!gate.is_busy(&edge_memory::thread::ThreadId::parse("q").unwrap()));
}

/// Finding "the run queue admits before it checks the owner": another user's runs on a
/// busy thread were queued (then 409 `busy`, confirming the thread exists) and could fill
/// the owner's line. They are 404 before the gate now, and the owner's next run is served.
#[test]
fn another_users_runs_never_enter_the_owners_queue() {
    let store = support::sqlite_store();
    let engine = Engine::new(&store, &SlowModel, &SystemClock, &SystemEntropy);
    let gate = RunGate::new();
    let secret = b"gate-test-secret";
    let info = support::jwt_server(secret);
    let bearer = |sub: &str| support::bearer(sub, secret);
    let run = |who: &str, text: &str| {
        HttpRequest::json(
            "POST",
            "/threads/owned/runs/wait",
            &json!({"input": {"messages": text}, "multitask_strategy": "enqueue"}),
        )
        .with_header("authorization", &bearer(who))
    };
    let create = HttpRequest::json("POST", "/threads", &json!({"thread_id": "owned"}))
        .with_header("authorization", &bearer("alice"));
    assert_eq!(
        pollster::block_on(handle(&create, &info, &engine, &gate)).status,
        200
    );
    let intruders = edge_memory::api::ENQUEUE_MAX_WAITING + 6;
    let spam: Vec<HttpRequest> = (0..intruders)
        .map(|i| run("mallory", &format!("spam {i}")))
        .collect();
    let (one, two) = (run("alice", "one"), run("alice", "two"));
    let (engine, gate, info) = (&engine, &gate, &info);
    let (first, others, second) = pollster::block_on(futures::future::join3(
        handle(&one, info, engine, gate),
        futures::future::join_all(spam.iter().map(|req| handle(req, info, engine, gate))),
        handle(&two, info, engine, gate),
    ));
    assert_eq!(first.status, 200);
    assert!(
        others.iter().all(|r| r.status == 404),
        "another user's runs are 404: {:?}",
        others.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(
        second.status, 200,
        "the owner's queued run is served: {:?}",
        second.body
    );
    assert_eq!(
        second.json().unwrap()["messages"].as_array().unwrap().len(),
        4
    );
}
