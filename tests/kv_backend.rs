//! The KV backend under eventual consistency: a turn never continues from a stale head
//! when the client names the newer checkpoint it saw.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;

use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::{Engine, Turn};
use edge_memory::checkpoint::kv::{KvCheckpointer, KvPage, KvPort, KvRegister, MemoryKv};
use edge_memory::checkpoint::Checkpointer;
use edge_memory::message::parse_messages;
use edge_memory::runtime::{SystemClock, SystemEntropy};
use edge_memory::thread::{ThreadId, ThreadRecord};
use edge_memory::{Error, Result};
use serde_json::{json, Map};

/// Checkpoint and head-index writes become visible only after `delay` more reads, as
/// writes made at another KV location do.
struct DelayedKv {
    inner: MemoryKv,
    delay: usize,
    pending: RefCell<Vec<(String, String, usize)>>,
}

impl DelayedKv {
    fn new(delay: usize) -> Self {
        DelayedKv {
            inner: MemoryKv::new(),
            delay,
            pending: RefCell::new(Vec::new()),
        }
    }

    async fn tick(&self) {
        let ready: Vec<(String, String)> = {
            let mut pending = self.pending.borrow_mut();
            for p in pending.iter_mut() {
                p.2 = p.2.saturating_sub(1);
            }
            let (ready, waiting): (Vec<_>, Vec<_>) = pending.drain(..).partition(|p| p.2 == 0);
            *pending = waiting;
            ready.into_iter().map(|(k, v, _)| (k, v)).collect()
        };
        for (k, v) in ready {
            self.inner.put(&k, &v).await.unwrap();
        }
    }

    fn settle(&self) {
        for p in self.pending.borrow_mut().iter_mut() {
            p.2 = 1;
        }
    }
}

impl KvPort for DelayedKv {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.tick().await;
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: &str) -> Result<()> {
        if key.contains("/c/") || key.contains("/h/") {
            self.pending
                .borrow_mut()
                .push((key.to_string(), value.to_string(), self.delay));
            Ok(())
        } else {
            self.inner.put(key, value).await
        }
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KvPage> {
        self.tick().await;
        self.inner.list(prefix, cursor, limit).await
    }
}

/// Only the head index lags: a checkpoint can be read by id before the listing shows it.
struct LaggingIndex(DelayedKv);

impl KvPort for LaggingIndex {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.0.inner.get(key).await
    }
    async fn put(&self, key: &str, value: &str) -> Result<()> {
        if key.contains("/h/") {
            self.0.put(key, value).await
        } else {
            self.0.inner.put(key, value).await
        }
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.inner.delete(key).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KvPage> {
        self.0.list(prefix, cursor, limit).await
    }
}

/// One KV namespace seen by two checkpointers: the writer, and a fresh instance (the
/// thread's object after a cold start) that knows only what KV shows.
struct Shared<K>(std::rc::Rc<K>);

impl<K: KvPort> KvPort for Shared<K> {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.0.get(key).await
    }
    async fn put(&self, key: &str, value: &str) -> Result<()> {
        self.0.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KvPage> {
        self.0.list(prefix, cursor, limit).await
    }
}

/// The thread object's own storage, seen by the writer and by its next instance.
impl KvRegister for Shared<MemoryKv> {
    async fn read(&self, key: &str) -> Result<Option<String>> {
        self.0.read(key).await
    }
    async fn write(&self, key: &str, value: &str) -> Result<()> {
        self.0.write(key, value).await
    }
    async fn remove(&self, key: &str) -> Result<()> {
        self.0.remove(key).await
    }
}

fn turn(
    thread: &ThreadId,
    text: &str,
    from: Option<edge_memory::checkpoint::CheckpointId>,
) -> Turn {
    Turn {
        thread_id: thread.clone(),
        input: parse_messages(&json!(text), "input.messages", &SystemEntropy).unwrap(),
        from_checkpoint: from,
        metadata: Map::new(),
    }
}

#[test]
fn a_named_checkpoint_not_visible_yet_is_409_never_a_stale_continuation() {
    pollster::block_on(async {
        let kv = std::rc::Rc::new(DelayedKv::new(1_000));
        let writer = KvCheckpointer::new(Shared(kv.clone()));
        let t = ThreadId::parse("kv-thread").unwrap();
        writer
            .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))
            .await
            .unwrap();
        // The writer reads its own writes: the reply is stored on top of the input.
        let first = Engine::new(&writer, &MemoryDemoResponder, &SystemClock, &SystemEntropy)
            .run_turn(turn(&t, "My name is Sam", None))
            .await
            .unwrap();
        let seen = first.checkpoint.checkpoint_id.clone();

        // After a cold start the object knows only what KV shows.
        let store = KvCheckpointer::new(Shared(kv));
        let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);

        // The client names the checkpoint it saw; KV does not show it yet.
        let err = engine
            .run_turn(turn(&t, "What's my name?", Some(seen.clone())))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Conflict { reason, .. } if reason.contains("not visible yet")),
            "{err:?}"
        );
        let err = store.get(&t, &seen).await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");

        // Once visible, the same request continues from it, not from an older state.
        store.kv().0.settle();
        let second = engine
            .run_turn(turn(&t, "What's my name?", Some(seen.clone())))
            .await
            .unwrap();
        assert_eq!(second.reply.text(), "Your name is Sam.");
        let input = second.input_checkpoint.unwrap();
        assert_eq!(input.parent_id, Some(seen));
        assert_eq!(
            input.metadata["source"], "input",
            "a continuation, not a fork"
        );
    });
}

#[test]
fn a_checkpoint_readable_before_the_listing_shows_it_is_the_head() {
    pollster::block_on(async {
        let kv = std::rc::Rc::new(LaggingIndex(DelayedKv::new(1_000)));
        let writer = KvCheckpointer::new(Shared(kv.clone()));
        let t = ThreadId::parse("kv-lag").unwrap();
        writer
            .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))
            .await
            .unwrap();
        let first = Engine::new(&writer, &MemoryDemoResponder, &SystemClock, &SystemEntropy)
            .run_turn(turn(&t, "My name is Sam", None))
            .await
            .unwrap();
        // A fresh instance (after a cold start) sees only what KV lists.
        let store = KvCheckpointer::new(Shared(kv));
        let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
        assert!(
            store.latest(&t).await.unwrap().is_none(),
            "the listing lags"
        );
        let second = engine
            .run_turn(turn(
                &t,
                "What's my name?",
                Some(first.checkpoint.checkpoint_id.clone()),
            ))
            .await
            .unwrap();
        assert_eq!(second.reply.text(), "Your name is Sam.");
        let input = second.input_checkpoint.unwrap();
        assert_eq!(input.parent_id, Some(first.checkpoint.checkpoint_id));
        assert_eq!(input.metadata["source"], "input");
    });
}

#[test]
fn long_threads_read_a_bounded_number_of_keys_and_big_values_split_losslessly() {
    pollster::block_on(async {
        let store = KvCheckpointer::new(CountingKv::default());
        let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
        let t = ThreadId::parse("kv-long").unwrap();
        store
            .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))
            .await
            .unwrap();
        for i in 0..100 {
            engine
                .run_turn(turn(&t, &format!("turn {i}"), None))
                .await
                .unwrap();
        }
        let reads_before = store.kv().reads.get();
        let state = store.latest(&t).await.unwrap().unwrap();
        let reads = store.kv().reads.get() - reads_before;
        assert!(
            reads <= edge_memory::checkpoint::kv::SNAPSHOT_EVERY as usize + 3,
            "reading a 200-checkpoint state took {reads} reads"
        );
        assert_eq!(state.messages.len(), 200);
        assert_eq!(state.messages[0].text(), "turn 0");
        let exported = store.export_thread(&t).await.unwrap();
        assert_eq!(exported.len(), 200, "input and reply per turn");
        store.delete_thread(&t).await.unwrap();
        assert!(store.kv().inner.is_empty(), "delete removes every key");

        // A checkpoint above the 25 MiB value limit is split across keys and read back whole.
        let t = ThreadId::parse("kv-big").unwrap();
        store
            .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))
            .await
            .unwrap();
        let big: Vec<serde_json::Value> = (0..28)
            .map(|i| json!({"role": "user", "content": format!("{i}:{}", "é".repeat(500_000))}))
            .collect();
        let input = parse_messages(&json!(big), "input.messages", &SystemEntropy).unwrap();
        let outcome = engine
            .run_turn(Turn {
                thread_id: t.clone(),
                input,
                from_checkpoint: None,
                metadata: Map::new(),
            })
            .await
            .unwrap();
        let back = store
            .get(&t, &outcome.checkpoint.checkpoint_id)
            .await
            .unwrap();
        assert_eq!(back.messages.len(), 29);
        assert_eq!(
            back.messages[25].text(),
            format!("25:{}", "é".repeat(500_000))
        );
        assert!(store.kv().inner.len() > 4, "the value was split into parts");
    });
}

#[derive(Default)]
struct CountingKv {
    inner: MemoryKv,
    reads: std::cell::Cell<usize>,
}

impl KvPort for CountingKv {
    async fn get(&self, key: &str) -> Result<Option<String>> {
        self.reads.set(self.reads.get() + 1);
        self.inner.get(key).await
    }
    async fn put(&self, key: &str, value: &str) -> Result<()> {
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<KvPage> {
        self.reads.set(self.reads.get() + 1);
        self.inner.list(prefix, cursor, limit).await
    }
}

/// Finding "amnesia guard bypass on KV": a run that sends `expected_head` (and no
/// `checkpoint_id`) right after a cold start, while KV's listing lags, continued from
/// the stale listing (here: from nothing). It continues from the head the client saw, or
/// is 409 while that checkpoint is not visible yet.
#[test]
fn amnesia_guard_bypass_on_kv_expected_head_resolves_or_409s() {
    use edge_memory::api::{self, HttpRequest, Plan, ServerInfo, ThreadCommand};
    let guarded_run = |thread: &str, seen: &str| {
        let body = json!({"input": {"messages": "What's my name?"}, "expected_head": seen});
        let req = HttpRequest::json("POST", &format!("/threads/{thread}/runs/wait"), &body);
        match api::plan(&req, &ServerInfo::default(), 0, &SystemEntropy) {
            Plan::Thread(call) => match call.command {
                ThreadCommand::Run(run) => run,
                other => panic!("not a run: {other:?}"),
            },
            other => panic!("not a thread call: {other:?}"),
        }
    };
    pollster::block_on(async {
        for (lag_everything, thread) in [(false, "kv-guard-index"), (true, "kv-guard-all")] {
            let t = ThreadId::parse(thread).unwrap();
            let (seen, response) = if lag_everything {
                let kv = std::rc::Rc::new(DelayedKv::new(1_000));
                let seen = first_turn(&KvCheckpointer::new(Shared(kv.clone())), &t).await;
                let store = KvCheckpointer::new(Shared(kv));
                let engine =
                    Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
                let run = guarded_run(thread, &seen);
                (
                    seen,
                    api::run_collected(&engine, t.clone(), run, None).await,
                )
            } else {
                let kv = std::rc::Rc::new(LaggingIndex(DelayedKv::new(1_000)));
                let seen = first_turn(&KvCheckpointer::new(Shared(kv.clone())), &t).await;
                let store = KvCheckpointer::new(Shared(kv));
                assert!(
                    store.latest(&t).await.unwrap().is_none(),
                    "the listing lags"
                );
                let engine =
                    Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
                let run = guarded_run(thread, &seen);
                (
                    seen,
                    api::run_collected(&engine, t.clone(), run, None).await,
                )
            };
            let body = response.json().cloned().unwrap_or_default();
            if lag_everything {
                assert_eq!(response.status, 409, "not visible yet: {body}");
            } else {
                assert_eq!(response.status, 200, "{body}");
                let messages = body["messages"].as_array().unwrap();
                assert_eq!(messages.len(), 4, "continued from {seen}, not from nothing");
                assert_eq!(messages[3]["content"], "Your name is Sam.");
            }
        }
    });
}

/// Creates `t` and runs "My name is Sam" on it; returns the reply's checkpoint id.
async fn first_turn<K: KvPort, R: KvRegister>(
    writer: &KvCheckpointer<K, R>,
    t: &ThreadId,
) -> String {
    writer
        .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))
        .await
        .unwrap();
    let first = Engine::new(writer, &MemoryDemoResponder, &SystemClock, &SystemEntropy)
        .run_turn(turn(t, "My name is Sam", None))
        .await
        .unwrap();
    first.checkpoint.checkpoint_id.to_string()
}

/// KV-lag nemesis, natively: after a cold start, an unguarded turn (no `checkpoint_id`,
/// no `expected_head`) continues from the head last written, which the object's register
/// keeps, or is 409 while KV does not show it; never from the lagging listing's older
/// head. Without the register (the control), the same turn starts from nothing.
#[test]
fn kv_lag_after_a_cold_start_an_unguarded_turn_continues_from_the_written_head_or_409s() {
    pollster::block_on(async {
        for (lag_everything, with_register) in [(false, true), (true, true), (false, false)] {
            let t = ThreadId::parse("kv-unguarded").unwrap();
            let register = std::rc::Rc::new(MemoryKv::new());
            let kv = std::rc::Rc::new(LaggingIndex(DelayedKv::new(1_000)));
            let all = std::rc::Rc::new(DelayedKv::new(1_000));
            let ask = "What's my name?";
            let outcome = if lag_everything {
                let writer =
                    KvCheckpointer::with_register(Shared(all.clone()), Shared(register.clone()));
                first_turn(&writer, &t).await;
                let store = KvCheckpointer::with_register(Shared(all), Shared(register));
                let engine =
                    Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
                engine.run_turn(turn(&t, ask, None)).await
            } else if with_register {
                let writer =
                    KvCheckpointer::with_register(Shared(kv.clone()), Shared(register.clone()));
                first_turn(&writer, &t).await;
                let store = KvCheckpointer::with_register(Shared(kv), Shared(register));
                let engine =
                    Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
                engine.run_turn(turn(&t, ask, None)).await
            } else {
                first_turn(&KvCheckpointer::new(Shared(kv.clone())), &t).await;
                let store = KvCheckpointer::new(Shared(kv));
                let engine =
                    Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
                engine.run_turn(turn(&t, ask, None)).await
            };
            match (lag_everything, with_register) {
                (true, _) => assert!(
                    matches!(outcome, Err(Error::Conflict { .. })),
                    "not visible yet"
                ),
                (false, true) => assert_eq!(outcome.unwrap().reply.text(), "Your name is Sam."),
                (false, false) => assert_ne!(
                    outcome.unwrap().reply.text(),
                    "Your name is Sam.",
                    "the control: KV alone continues from its lagging listing"
                ),
            }
        }
    });
}
