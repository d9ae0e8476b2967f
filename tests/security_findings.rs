//! Findings of the security review (issue 20), each guarded by a test named after it
//! that failed before its fix. (Others live where their machinery is: the run queue in
//! `run_gate.rs`, closed by default and bodies in `api_door.rs` and workerd.)

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use edge_memory::api::directory::Shard;
use edge_memory::api::{
    self, Backend, HttpRequest, HttpResponse, IndexUpdate, RunGate, RunRequest, ServerInfo,
    ThreadCall,
};
use edge_memory::auth::OWNER_KEY;
use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::Engine;
use edge_memory::checkpoint::directory::SqlDirectory;
use edge_memory::checkpoint::{ThreadIndex, ThreadSearch};
use edge_memory::runtime::{Clock, SystemClock, SystemEntropy};
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

/// Threads in their own storage, the directory apart in shards (as on the worker, where
/// each shard is another object), so copies can go stale; `index_writes` can be
/// switched off to lose updates.
struct SplitBackend<'a> {
    engine: Engine<'a, support::Store, MemoryDemoResponder>,
    gate: RunGate,
    shards: RefCell<HashMap<Shard, Rc<SqlDirectory<support::RusqliteExec>>>>,
    index_writes: Cell<bool>,
}

impl<'a> SplitBackend<'a> {
    fn on(store: &'a support::Store) -> Self {
        SplitBackend {
            engine: Engine::new(store, &MemoryDemoResponder, &SystemClock, &SystemEntropy),
            gate: RunGate::new(),
            shards: RefCell::new(HashMap::new()),
            index_writes: Cell::new(true),
        }
    }

    fn shard(&self, shard: &Shard) -> Rc<SqlDirectory<support::RusqliteExec>> {
        let mut shards = self.shards.borrow_mut();
        let entry = shards
            .entry(shard.clone())
            .or_insert_with(|| Rc::new(SqlDirectory::new(support::RusqliteExec::in_memory())));
        Rc::clone(entry)
    }
}

impl Backend for SplitBackend<'_> {
    async fn call(&self, call: ThreadCall) -> HttpResponse {
        let mut response = self.gate.execute(call, &self.engine).await;
        if let Some(update) = response.index.take() {
            if self.index_writes.get() {
                let shard = Shard::of_update(&update);
                self.index_apply(&shard, &update).await.unwrap();
            }
        }
        response
    }
    async fn call_stateless(&self, run: RunRequest) -> HttpResponse {
        api::execute_stateless(run, &self.engine).await
    }
    async fn index_apply(&self, shard: &Shard, update: &IndexUpdate) -> Result<()> {
        let directory = self.shard(shard);
        match update {
            IndexUpdate::Upsert { record } => directory.index_upsert(record).await,
            IndexUpdate::Remove { thread_id, .. } => directory.index_remove(thread_id).await,
            IndexUpdate::Run {
                run_id, thread_id, ..
            } => directory.index_run(run_id, thread_id).await,
        }
    }
    async fn run_threads(&self, shard: &Shard, run_ids: &[String]) -> Result<Vec<ThreadId>> {
        self.shard(shard).threads_of_runs(run_ids).await
    }
    async fn index_search(&self, shard: &Shard, query: &ThreadSearch) -> Result<Vec<ThreadRecord>> {
        self.shard(shard).search_threads(query).await
    }
    async fn index_count(&self, shard: &Shard, query: &ThreadSearch) -> Result<usize> {
        self.shard(shard).count_threads(query).await
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
    let backend = SplitBackend::on(&store);
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
    let bobs_shard = backend.shard(&Shard::Owner("bob".into()));
    pollster::block_on(bobs_shard.index_upsert(&forged)).unwrap();
    assert_eq!(search("bob"), ["bobs"], "the thread's own record decides");
    let left_in_bobs = pollster::block_on(bobs_shard.count_threads(&ThreadSearch::default()));
    assert_eq!(left_in_bobs.unwrap(), 1, "the stale copy was repaired away");
    assert_eq!(search("alice"), ["alices"], "her own shard still has it");
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

/// Finding "the idempotency window is shorter than the queue and not bound to the request
/// body", its second half: a key was found only among the thread's newest 160
/// checkpoints, so a retry after more turns than that ran again. A key is now kept for
/// `IDEMPOTENCY_TTL_MS` (a day) however many turns follow: a retry after 170 turns is
/// the same run, another body with the key is 422 with the thread unchanged, and only
/// after a day does the key start a new run.
#[test]
fn idempotency_keys_are_kept_for_a_day_not_a_number_of_turns() {
    use edge_memory::checkpoint::keys::SqlKeys;
    use edge_memory::runtime::ManualClock;
    let store = support::sqlite_store();
    let keys = SqlKeys::new(support::RusqliteExec::in_memory());
    let clock = ManualClock::new(1_800_000_000_000);
    let mut engine = Engine::new(&store, &MemoryDemoResponder, &clock, &SystemEntropy);
    engine.keys = Some(&keys);
    let (info, gate) = (ServerInfo::default(), RunGate::new());
    let send = |text: &str, key: Option<&str>| {
        let body = json!({"input": {"messages": [{"role": "user", "content": text}]}, "if_not_exists": "create"});
        let mut req = HttpRequest::json("POST", "/threads/kept/runs/wait", &body);
        if let Some(key) = key {
            req = req.with_header("idempotency-key", key);
        }
        pollster::block_on(api::handle(&req, &info, &engine, &gate))
    };
    let history = || {
        let req = HttpRequest::empty("GET", "/threads/kept/state");
        let resp = pollster::block_on(api::handle(&req, &info, &engine, &gate));
        resp.json().unwrap()["values"]["messages"]
            .as_array()
            .unwrap()
            .len()
    };
    let first = send("My name is Sam", Some("day-key"));
    assert_eq!(first.status, 200);
    let turns = 170;
    assert!(
        2 * turns > api::IDEMPOTENCY_WINDOW,
        "past the newest-checkpoints window"
    );
    for i in 0..turns {
        clock.advance(60_000);
        assert_eq!(send(&format!("turn {i}"), None).status, 200);
    }
    let stored = history();
    assert_eq!(stored, 2 + 2 * turns);

    // The retry, hours later and 170 turns on: the original answer, nothing appended.
    let retry = send("My name is Sam", Some("day-key"));
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json(), first.json());
    assert_eq!(history(), stored);

    // Another body with the same key: 422 {detail, code}, the thread unchanged.
    let reused = send("Transfer everything", Some("day-key"));
    assert_eq!(reused.status, 422);
    let problem = reused.json().unwrap();
    assert_eq!(problem["code"], "invalid_input");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("different request body"));
    assert_eq!(history(), stored);

    // A day after the key was used, it names nothing: the same request is a new turn.
    clock.advance(api::IDEMPOTENCY_TTL_MS);
    assert_eq!(send("My name is Sam", Some("day-key")).status, 200);
    assert_eq!(history(), stored + 2);
}

/// Finding "JWT accepts any secret length, and `iat`/maximum lifetime/`iss`/`aud` are
/// optional": a short HS256 secret is a configuration error (500 on every route, never
/// open); a token without `exp`, one living longer than the maximum lifetime, one with an
/// `iat` in the future, and, once `JWT_ISSUER`/`JWT_AUDIENCE` are set, one without them
/// are 401 and see nothing.
#[test]
fn jwt_accepts_any_secret_length_and_optional_claims() {
    use edge_memory::auth::sign_hs256;
    let configured = |secret: &'static str| {
        let vars = move |name: &str| match name {
            "AUTH_MODE" => Some("jwt".to_string()),
            "JWT_SECRET" => Some(secret.to_string()),
            "JWT_ISSUER" => Some("https://issuer.example".to_string()),
            "JWT_AUDIENCE" => Some("edge-memory".to_string()),
            _ => None,
        };
        edge_memory::config::from_env(vars, |_: &str| None)
    };
    let refused = configured("short-secret").unwrap_err();
    assert!(
        matches!(refused, edge_memory::Error::Backend { .. }),
        "{refused:?}"
    );
    let settings = configured("findings-secret-0123456789abcdef").unwrap();
    let info = ServerInfo {
        auth: settings.auth,
        ..Default::default()
    };
    let store = support::sqlite_store();
    let gate = RunGate::new();
    let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    let now = SystemClock.now_ms() / 1000;
    let status_with = |claims: Value| {
        let token = sign_hs256(&claims, SECRET).unwrap();
        let req = HttpRequest::json("POST", "/threads/search", &json!({}))
            .with_header("authorization", &format!("Bearer {token}"));
        pollster::block_on(api::handle(&req, &info, &engine, &gate)).status
    };
    let good = json!({"sub": "u", "iss": "https://issuer.example", "aud": "edge-memory", "iat": now, "exp": now + 600});
    assert_eq!(status_with(good.clone()), 200, "the control: a good token");
    let without = |key: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(key);
        claims
    };
    let mut forever = good.clone();
    forever["exp"] = json!(now + 10 * 365 * 24 * 3600);
    let mut future = good.clone();
    future["iat"] = json!(now + 3600);
    for (what, claims) in [
        ("no exp", without("exp")),
        ("a ten-year lifetime", forever),
        ("iat in the future", future),
        ("no iss", without("iss")),
        ("no aud", without("aud")),
    ] {
        assert_eq!(status_with(claims), 401, "{what}");
    }
}

#[test]
fn unscoped_search_merges_the_shared_shards_and_repairs_lost_deletes() {
    let store = support::sqlite_store();
    let backend = SplitBackend::on(&store);
    let info = ServerInfo::default(); // open: every thread is ownerless
    let call = |method: &str, path: &str, body: Value| {
        backend.serve(&info, HttpRequest::json(method, path, &body))
    };
    for i in 0..40 {
        let body = json!({"thread_id": format!("t{i:02}"), "metadata": {"n": i % 4}});
        assert_eq!(call("POST", "/threads", body).status, 200);
    }
    let used = backend.shards.borrow().len();
    assert!(used > 4, "40 ownerless threads spread over shards ({used})");
    let page = |offset: usize| {
        let body =
            json!({"limit": 7, "offset": offset, "sort_by": "thread_id", "sort_order": "asc"});
        ids(&call("POST", "/threads/search", body))
    };
    let mut all = Vec::new();
    for offset in (0..42).step_by(7) {
        all.extend(page(offset));
    }
    let expected: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
    assert_eq!(
        all, expected,
        "pages over every shard, in order, nothing twice"
    );
    let count = call("POST", "/threads/count", json!({"metadata": {"n": 1}}));
    assert_eq!(count.json().unwrap(), &json!(10));
    // A delete whose directory update is lost: search drops and repairs it.
    backend.index_writes.set(false);
    assert_eq!(call("DELETE", "/threads/t05", json!(null)).status, 204);
    backend.index_writes.set(true);
    let found = ids(&call("POST", "/threads/search", json!({"limit": 100})));
    assert_eq!(found.len(), 39);
    assert!(!found.contains(&"t05".to_string()));
    let count = call("POST", "/threads/count", json!({}));
    assert_eq!(count.json().unwrap(), &json!(39), "the stale copy is gone");
    let too_far = call(
        "POST",
        "/threads/search",
        json!({"offset": 9_990, "limit": 20}),
    );
    assert_eq!(too_far.status, 422);
}

/// `delete_for_runs` finds the threads through the runs' directory shards (the store's
/// own tables are not scanned), deletes those runs' checkpoints on each, and keeps the
/// rest; another user's runs are out of reach.
#[test]
fn delete_for_runs_reaches_every_thread_the_runs_wrote_to() {
    let store = support::sqlite_store();
    let backend = SplitBackend::on(&store);
    let info = jwt_info();
    let typed = json!({"type": "json", "data": "e30="});
    let put = |sub: &str, thread: &str, id: &str, run: &str| {
        let body = json!({
            "checkpoint_id": id, "checkpoint": typed, "channel_versions": {},
            "metadata": {"run_id": run}, "metadata_typed": typed,
        });
        let req = HttpRequest::json("POST", &format!("/threads/{thread}/saver/put"), &body);
        assert_eq!(backend.serve(&info, as_user(req, sub)).status, 200);
    };
    for (sub, thread) in [("alice", "a1"), ("alice", "a2"), ("bob", "b1")] {
        let req = HttpRequest::json("POST", "/threads", &json!({"thread_id": thread}));
        assert_eq!(backend.serve(&info, as_user(req, sub)).status, 200);
    }
    put("alice", "a1", "cp-1", "run-x");
    put("alice", "a1", "cp-2", "run-keep");
    put("alice", "a2", "cp-1", "run-x");
    put("bob", "b1", "cp-1", "run-x");
    let delete = |sub: &str, runs: Value| {
        let req = HttpRequest::json("POST", "/saver/delete_for_runs", &json!({"run_ids": runs}));
        backend.serve(&info, as_user(req, sub)).status
    };
    assert_eq!(delete("alice", json!(["run-x"])), 204);
    let ids = |sub: &str, thread: &str| {
        let req = HttpRequest::json("POST", &format!("/threads/{thread}/saver/list"), &json!({}));
        let listed = backend.serve(&info, as_user(req, sub));
        listed
            .json()
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["checkpoint_id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("alice", "a1"), ["cp-2"], "run-x gone, run-keep kept");
    assert!(ids("alice", "a2").is_empty());
    assert_eq!(
        ids("bob", "b1"),
        ["cp-1"],
        "bob's run of the same id is out of alice's reach"
    );
    assert_eq!(
        delete("alice", json!(["run-x"])),
        204,
        "a retry finds nothing more"
    );
    assert_eq!(delete("alice", json!([])), 204);
    assert_eq!(delete("alice", json!("run-x")), 422);
    assert_eq!(delete("alice", json!([7])), 422);
}

#[test]
fn a_users_first_checkpoint_makes_the_thread_theirs() {
    let store = support::sqlite_store();
    let backend = SplitBackend::on(&store);
    let info = jwt_info();
    let typed = json!({"type": "json", "data": "e30="});
    let call = |sub: &str, op: &str, body: Value| {
        let req = HttpRequest::json("POST", &format!("/threads/fresh/saver/{op}"), &body);
        backend.serve(&info, as_user(req, sub)).status
    };
    let put = json!({
        "checkpoint_id": "cp-1", "checkpoint": typed, "channel_versions": {},
        "metadata": {}, "metadata_typed": typed,
    });
    assert_eq!(
        call("alice", "put", put.clone()),
        200,
        "no thread yet: the put makes it"
    );
    assert_eq!(call("alice", "get", json!({})), 200);
    assert_eq!(
        call("bob", "get", json!({})),
        404,
        "alice's, unknown to bob"
    );
    assert_eq!(call("bob", "put", put), 404, "bob cannot write into it");
    let req = HttpRequest::empty("GET", "/threads/fresh");
    let thread = backend.serve(&info, as_user(req, "alice"));
    assert_eq!(thread.json().unwrap()["metadata"]["owner"], json!("alice"));
}
