//! Fuzzing (proptest): random requests (methods, paths with tricks, JSON bodies built
//! from the API's own keys, raw bytes, headers) through the whole pure API on an
//! in-memory store, random message lists through the normalizer and the reducer, and
//! random credentials through authentication. None may panic: a panic in the worker
//! kills the isolate.
//!
//! `make test` runs it for `FUZZ_SECONDS` (default 30, at most 60):
//! `cargo test --test fuzz -- --ignored`.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::time::{Duration, Instant};

use edge_memory::api::{handle, HttpRequest, RunGate, ServerInfo};
use edge_memory::auth::{authenticate, sign_hs256, AuthSettings, JwtSettings};
use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::Engine;
use edge_memory::checkpoint::memory::MemoryCheckpointer;
use edge_memory::message::{add_messages, parse_messages};
use edge_memory::runtime::{SystemClock, SystemEntropy};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "input",
    "messages",
    "role",
    "content",
    "type",
    "id",
    "thread_id",
    "metadata",
    "stream_mode",
    "checkpoint_id",
    "checkpoint",
    "values",
    "limit",
    "offset",
    "before",
    "as_node",
    "assistant_id",
    "if_not_exists",
    "if_exists",
    "multitask_strategy",
    "expected_head",
    "expected_turns",
    "tool_calls",
    "tool_call_id",
    "name",
    "sort_by",
    "status",
    "ids",
    "config",
    "configurable",
    "text",
    "checkpoint_ns",
    "parts",
    "message",
    "trigger",
    "messageId",
];
const WORDS: &[&str] = &[
    "threads",
    "runs",
    "wait",
    "stream",
    "state",
    "history",
    "copy",
    "search",
    "count",
    "saver",
    "assistants",
    "agent",
    "info",
    "ok",
    "__dev",
    "conformance",
    "storage",
    "t1",
    "..",
    ".",
    "%2F",
    "%00",
    "index%2Fthreads",
    "put",
    "get",
    "list",
    "prune",
    "export",
    "api",
    "chat",
];
const STRINGS: &[&str] = &[
    "user",
    "human",
    "ai",
    "assistant",
    "system",
    "tool",
    "remove",
    "__remove_all__",
    "values",
    "messages-tuple",
    "updates",
    "enqueue",
    "reject",
    "create",
    "t1",
    "01a20b00-0000-7000-8000-000000000000",
    "",
    "é✓日本",
    "\u{0}",
    "text",
    "file",
    "step-start",
    "submit-message",
    "regenerate-message",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(STRINGS).prop_map(|s| json!(s)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_string),
                        "\\PC{0,6}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn request() -> impl Strategy<Value = HttpRequest> {
    let method = prop_oneof![
        prop::sample::select(&["GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS"][..])
            .prop_map(str::to_string),
        "[A-Z]{0,8}",
    ];
    let segment = prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_string),
        1 => "\\PC{0,10}",
    ];
    let path = prop::collection::vec(segment, 0..6).prop_map(|s| format!("/{}", s.join("/")));
    let body = prop_oneof![
        3 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
    ];
    let header = prop_oneof![
        Just(None),
        (
            prop::sample::select(
                &[
                    "if-match",
                    "idempotency-key",
                    "content-type",
                    "x-expected-turns",
                    "origin"
                ][..]
            ),
            "\\PC{0,20}"
        )
            .prop_map(|(n, v)| Some((n.to_string(), v))),
    ];
    (method, path, body, header).prop_map(|(method, path, body, header)| HttpRequest {
        method,
        path,
        query: String::new(),
        body,
        headers: header.into_iter().collect(),
        verified_token: None,
    })
}

fn fuzz_seconds() -> Duration {
    let secs = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(30)
        .min(60);
    Duration::from_secs(secs)
}

#[test]
#[ignore = "bounded-time fuzzing; make test runs it (cargo test --test fuzz -- --ignored)"]
fn requests_messages_and_credentials_never_panic() {
    let deadline = Instant::now() + fuzz_seconds();
    let store = MemoryCheckpointer::new();
    let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    let gate = RunGate::new();
    let info = ServerInfo::default();
    // A thread with a history, so thread routes reach real state.
    let seed = HttpRequest::json("POST", "/threads", &json!({"thread_id": "t1"}));
    pollster::block_on(handle(&seed, &info, &engine, &gate));
    let secret = b"fuzz-secret".to_vec();
    let auth = AuthSettings {
        api_keys: vec!["key".into()],
        jwt: Some(JwtSettings {
            secret: secret.clone(),
            ..Default::default()
        }),
        not_configured: None,
    };
    let valid = sign_hs256(&json!({"sub": "u", "exp": 4_000_000_000u64}), &secret).unwrap();
    let (requests, messages, tokens) = (Cell::new(0u64), Cell::new(0u64), Cell::new(0u64));
    // A runner counts its successes across runs: a fresh one (new random seed) per batch.
    let fresh = || {
        TestRunner::new(Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        })
    };
    let (requests_strategy, values_strategy) = (request(), json_value());
    let token_strategy = ("\\PC{0,300}", any::<bool>());
    while Instant::now() < deadline {
        fresh()
            .run(&requests_strategy, |req| {
                let resp = pollster::block_on(handle(&req, &info, &engine, &gate));
                // Never a 5xx for whatever a client sends (the demo model cannot fail).
                prop_assert!(
                    (200..500).contains(&resp.status),
                    "{} {} → {} {:?}",
                    req.method,
                    req.path,
                    resp.status,
                    resp.internal_error
                );
                requests.set(requests.get() + 1);
                Ok(())
            })
            .unwrap();
        fresh()
            .run(&values_strategy, |value| {
                if let Ok(ops) = parse_messages(&value, "input.messages", &SystemEntropy) {
                    let _ = add_messages(Vec::new(), &ops);
                }
                messages.set(messages.get() + 1);
                Ok(())
            })
            .unwrap();
        fresh()
            .run(&token_strategy, |(token, mutate)| {
                let header = if mutate {
                    let mut t = valid.clone();
                    t.push_str(&token);
                    format!("Bearer {t}")
                } else {
                    format!("Bearer {token}")
                };
                let caller = authenticate(&auth, (None, Some(&header)), 1_800_000_000_000, None);
                prop_assert!(caller.is_err() || token.trim_matches([' ', '\t']).is_empty());
                tokens.set(tokens.get() + 1);
                Ok(())
            })
            .unwrap();
    }
    println!(
        "fuzz: {} requests, {} message lists, {} tokens, no panic",
        requests.get(),
        messages.get(),
        tokens.get()
    );
}
