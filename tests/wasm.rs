//! The core compiled to wasm32 and run under Node by `wasm-pack test --node`: the
//! reducer, the turn engine and the conformance suite on the memory backend, and the
//! secure random source check with `crypto.getRandomValues` broken.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_arch = "wasm32")]

use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::{Engine, Turn};
use edge_memory::checkpoint::memory::MemoryCheckpointer;
use edge_memory::checkpoint::Checkpointer;
use edge_memory::message::{add_messages, parse_messages, MessageOp};
use edge_memory::runtime::{SystemClock, SystemEntropy};
use edge_memory::thread::{ThreadId, ThreadRecord};
use serde_json::{json, Map};
use wasm_bindgen_test::wasm_bindgen_test;

edge_memory::conformance_tests!(wasm, MemoryCheckpointer::new());

#[wasm_bindgen_test]
fn reducer_replaces_by_id_on_wasm() {
    let ops = parse_messages(
        &json!([{"role": "user", "content": "a", "id": "1"}, {"role": "user", "content": "b", "id": "1"}]),
        "input.messages",
        &SystemEntropy,
    )
    .unwrap();
    let state = add_messages(vec![], &ops).unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].text(), "b");
    let removed = add_messages(state, &[MessageOp::Remove { id: "1".into() }]).unwrap();
    assert!(removed.is_empty());
}

#[wasm_bindgen_test]
async fn turn_engine_remembers_on_wasm() {
    let store = MemoryCheckpointer::new();
    let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    let t = ThreadId::generate(&SystemEntropy);
    store
        .create_thread(&ThreadRecord::new(t.clone(), Map::new(), 0))
        .await
        .unwrap();
    for text in ["My name is Sam", "What's my name?"] {
        let input = parse_messages(&json!(text), "input.messages", &SystemEntropy).unwrap();
        engine
            .run_turn(Turn {
                thread_id: t.clone(),
                input,
                from_checkpoint: None,
                metadata: Map::new(),
            })
            .await
            .unwrap();
    }
    let state = store.latest(&t).await.unwrap().unwrap();
    assert_eq!(state.messages.len(), 4);
    assert_eq!(state.messages[3].text(), "Your name is Sam.");
}

/// Finding "entropy failure falls back to clock-seeded ids instead of failing": with
/// `crypto.getRandomValues` broken, the worker's check says the secure source is gone
/// (the fetch handler and each thread object then refuse to serve), and answers again
/// once it is back.
#[wasm_bindgen_test]
fn entropy_failure_falls_back_to_clock_seeded_ids_instead_of_failing() {
    use js_sys::{Function, Reflect};
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).unwrap();
    let working = Reflect::get(&crypto, &"getRandomValues".into()).unwrap();
    let broken = Function::new_no_args("throw new Error('no entropy')");
    Reflect::set(&crypto, &"getRandomValues".into(), &broken).unwrap();
    let while_broken = edge_memory::runtime::secure_random_available();
    Reflect::set(&crypto, &"getRandomValues".into(), &working).unwrap();
    assert!(
        !while_broken,
        "a broken source is reported, not papered over"
    );
    assert!(edge_memory::runtime::secure_random_available());
}
