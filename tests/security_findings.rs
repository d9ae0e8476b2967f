//! Findings of the security review (issue 20), each guarded by a test named after it
//! that failed before its fix. (Others live where their machinery is: the run queue in
//! `run_gate.rs`, closed by default and bodies in `api_door.rs` and workerd.)

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::Cell;

use edge_memory::api::{
    self, Backend, HttpRequest, HttpResponse, IndexUpdate, RunGate, RunRequest, ServerInfo,
    ThreadCall,
};
use edge_memory::auth::OWNER_KEY;
use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::Engine;
use edge_memory::checkpoint::memory::MemoryCheckpointer;
use edge_memory::checkpoint::{ThreadIndex, ThreadSearch};
use edge_memory::runtime::{SystemClock, SystemEntropy};
use edge_memory::thread::{ThreadId, ThreadRecord};
use edge_memory::Result;
use serde_json::{json, Value};

const SECRET: &[u8] = b"findings-secret-0123456789abcdef";

fn jwt_info() -> ServerInfo {
    support::jwt_server(SECRET)
}

fn as_user(req: HttpRequest, sub: &str) -> HttpRequest {
    req.with_header("authorization", &support::bearer(sub, SECRET))
}

/// Threads in their own storage, the thread index apart (as on the worker, where it is
/// another object), so the index can go stale; `index_writes` can be switched off.
struct SplitBackend<'a> {
    engine: Engine<'a, support::Store, MemoryDemoResponder>,
    gate: RunGate,
    index: MemoryCheckpointer,
    index_writes: Cell<bool>,
}

impl Backend for SplitBackend<'_> {
    async fn call(&self, call: ThreadCall) -> HttpResponse {
        self.gate.execute(call, &self.engine).await
    }
    async fn call_stateless(&self, run: RunRequest) -> HttpResponse {
        api::execute_stateless(run, &self.engine).await
    }
    async fn index_apply(&self, update: &IndexUpdate) -> Result<()> {
        if !self.index_writes.get() {
            return Ok(());
        }
        match update {
            IndexUpdate::Upsert { record } => self.index.index_upsert(record).await,
            IndexUpdate::Remove { thread_id } => self.index.index_remove(thread_id).await,
        }
    }
    async fn index_search(&self, query: &ThreadSearch) -> Result<Vec<ThreadRecord>> {
        self.index.search_threads(query).await
    }
}

impl SplitBackend<'_> {
    fn serve(&self, info: &ServerInfo, req: HttpRequest) -> HttpResponse {
        pollster::block_on(api::serve(&req, info, &SystemClock, &SystemEntropy, self))
    }
}

fn ids(resp: &HttpResponse) -> Vec<String> {
    resp.json()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["thread_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn search_trusts_the_index_for_ownership() {
    let store = support::sqlite_store();
    let backend = SplitBackend {
        engine: Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy),
        gate: RunGate::new(),
        index: MemoryCheckpointer::new(),
        index_writes: Cell::new(true),
    };
    let info = jwt_info();
    let create = |sub: &str, id: &str| {
        let req = HttpRequest::json("POST", "/threads", &json!({"thread_id": id}));
        assert_eq!(backend.serve(&info, as_user(req, sub)).status, 200);
    };
    create("alice", "alices");
    create("bob", "bobs");
    let search = |sub: &str| {
        let req = HttpRequest::json("POST", "/threads/search", &json!({"limit": 100}));
        ids(&backend.serve(&info, as_user(req, sub)))
    };
    assert_eq!(search("bob"), ["bobs"]);
    // A stale or reordered index entry says alice's thread is bob's.
    let mut forged = pollster::block_on(store_record(&backend, "alices"));
    forged.metadata.insert(OWNER_KEY.into(), json!("bob"));
    pollster::block_on(backend.index.index_upsert(&forged)).unwrap();
    assert_eq!(search("bob"), ["bobs"], "the thread's own record decides");
    assert_eq!(
        search("alice"),
        Vec::<String>::new(),
        "the index misses it: no leak either way"
    );
    // Metadata renamed while index updates are lost: the old value finds nothing.
    create("alice", "renamed");
    backend.index_writes.set(false);
    let patch = HttpRequest::json(
        "PATCH",
        "/threads/renamed",
        &json!({"metadata": {"tag": "new"}}),
    );
    assert_eq!(backend.serve(&info, as_user(patch, "alice")).status, 200);
    let old_tag = HttpRequest::json(
        "POST",
        "/threads/search",
        &json!({"metadata": {"tag": "new"}}),
    );
    assert!(ids(&backend.serve(&info, as_user(old_tag, "alice"))).is_empty());
}

async fn store_record(backend: &SplitBackend<'_>, id: &str) -> ThreadRecord {
    use edge_memory::checkpoint::Checkpointer;
    backend
        .engine
        .store
        .get_thread(&ThreadId::parse(id).unwrap())
        .await
        .unwrap()
}

#[test]
fn patch_metadata_merges_past_the_limit() {
    let store = support::sqlite_store();
    let info = ServerInfo::default();
    let gate = RunGate::new();
    let call = |req: HttpRequest| support::serve_demo(&store, &info, &gate, &req);
    let blob = |n: usize| Value::String("m".repeat(n));
    let created = call(HttpRequest::json(
        "POST",
        "/threads",
        &json!({"thread_id": "meta", "metadata": {"a": blob(40 * 1024)}}),
    ));
    assert_eq!(created.status, 200);
    let patched = call(HttpRequest::json(
        "PATCH",
        "/threads/meta",
        &json!({"metadata": {"b": blob(40 * 1024)}}),
    ));
    assert_eq!(patched.status, 413);
    assert_eq!(patched.json().unwrap()["code"], "too_large");
    let thread = call(HttpRequest::empty("GET", "/threads/meta"));
    let metadata = thread.json().unwrap()["metadata"].clone();
    assert!(metadata.get("b").is_none(), "nothing was merged");
    assert_eq!(metadata["a"].as_str().unwrap().len(), 40 * 1024);
    // Replacing a key within the limit still works.
    let replaced = call(HttpRequest::json(
        "PATCH",
        "/threads/meta",
        &json!({"metadata": {"a": blob(50 * 1024)}}),
    ));
    assert_eq!(replaced.status, 200);
}

#[test]
fn the_idempotency_window_is_not_bound_to_the_request_body() {
    use edge_memory::runtime::ManualClock;
    let store = support::sqlite_store();
    let clock = ManualClock::new(1_800_000_000_000);
    let engine = Engine::new(&store, &MemoryDemoResponder, &clock, &SystemEntropy);
    let (info, gate) = (ServerInfo::default(), RunGate::new());
    let run = |text: &str, key: &str| {
        let body = json!({"input": {"messages": [{"role": "user", "content": text}]}, "if_not_exists": "create"});
        let req = HttpRequest::json("POST", "/threads/keyed/runs/wait", &body)
            .with_header("idempotency-key", key);
        pollster::block_on(api::handle(&req, &info, &engine, &gate))
    };
    let messages = |resp: &HttpResponse| resp.json().unwrap()["messages"].as_array().unwrap().len();
    let first = run("My name is Sam", "key-1");
    assert_eq!(first.status, 200);
    // The same body again: the original result, nothing appended.
    assert_eq!(run("My name is Sam", "key-1").json(), first.json());
    // Another body with the same key: a client bug, refused, nothing stored.
    let reused = run("Transfer everything", "key-1");
    assert_eq!(reused.status, 422);
    assert_eq!(reused.json().unwrap()["code"], "invalid_input");
    assert!(reused.json().unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("different request body"));
    let state = pollster::block_on(api::handle(
        &HttpRequest::empty("GET", "/threads/keyed/state"),
        &info,
        &engine,
        &gate,
    ));
    assert_eq!(
        state.json().unwrap()["values"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // A day later the key names nothing: the same request is a new turn.
    clock.advance(api::IDEMPOTENCY_TTL_MS + 1);
    let later = run("My name is Sam", "key-1");
    assert_eq!(later.status, 200);
    assert_eq!(messages(&later), 4);
}
