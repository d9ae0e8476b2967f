//! The KV backend under eventual consistency: a turn never continues from a stale head
//! when the client names the newer checkpoint it saw.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;

use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::{Engine, Turn};
use edge_memory::checkpoint::kv::{KvCheckpointer, KvPage, KvPort, MemoryKv};
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
            matches!(&err, Error::Conflict { reason } if reason.contains("not visible yet")),
            "{err:?}"
        );
        assert_eq!(err.status(), 409);
        let err = store.get(&t, &seen).await.unwrap_err();
        assert_eq!(err.status(), 409);

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
        // Only the head index lags: the checkpoint itself can be read by id.
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
            async fn list(
                &self,
                prefix: &str,
                cursor: Option<&str>,
                limit: usize,
            ) -> Result<KvPage> {
                self.0.list(prefix, cursor, limit).await
            }
        }
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
