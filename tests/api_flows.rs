//! HTTP flows on the pure API layer, natively, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(not(target_arch = "wasm32"))]

mod support;

use edge_memory::api::{handle, Body, HttpRequest, HttpResponse, RunGate, ServerInfo};
use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::Engine;
use edge_memory::checkpoint::memory::MemoryCheckpointer;
use edge_memory::checkpoint::saver::SaverStore;
use edge_memory::checkpoint::{Checkpointer, ThreadIndex};
use edge_memory::runtime::{Clock, SystemClock, SystemEntropy};
use serde_json::{json, Value};

fn info() -> ServerInfo {
    ServerInfo {
        backend: "test".into(),
        model: "memory-demo".into(),
        dev_mode: false,
        ..Default::default()
    }
}

struct Api<C> {
    store: C,
}

impl<C: Checkpointer + ThreadIndex + SaverStore> Api<C> {
    fn call(&self, req: HttpRequest) -> HttpResponse {
        support::serve_demo(&self.store, &info(), &RunGate::new(), &req)
    }

    fn post(&self, path: &str, body: Value) -> HttpResponse {
        self.call(HttpRequest::json("POST", path, &body))
    }

    fn get(&self, path: &str) -> HttpResponse {
        self.call(HttpRequest::empty("GET", path))
    }

    fn body(&self, resp: &HttpResponse) -> Value {
        resp.json().cloned().unwrap_or(Value::Null)
    }
}

fn say(text: &str) -> Value {
    json!({"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": text}]}})
}

fn two_turns_remember<C: Checkpointer + ThreadIndex + SaverStore>(api: Api<C>) {
    let created = api.post("/threads", json!({"metadata": {"user": "u1"}}));
    assert_eq!(created.status, 200);
    let thread = api.body(&created);
    let tid = thread["thread_id"].as_str().unwrap().to_string();
    assert_eq!(tid.len(), 36);
    assert_eq!(thread["status"], "idle");
    assert_eq!(thread["values"], Value::Null);
    assert_eq!(thread["metadata"]["user"], "u1");

    let first = api.post(&format!("/threads/{tid}/runs/wait"), say("My name is Sam"));
    assert_eq!(first.status, 200, "{:?}", first.body);
    let msgs = api.body(&first)["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["type"], "human");
    assert_eq!(msgs[1]["type"], "ai");

    let second = api.post(&format!("/threads/{tid}/runs/wait"), say("What's my name?"));
    let msgs = api.body(&second)["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[3]["content"], "Your name is Sam.");

    let state = api.body(&api.get(&format!("/threads/{tid}/state")));
    assert_eq!(state["values"]["messages"].as_array().unwrap().len(), 4);
    assert_eq!(state["checkpoint"]["thread_id"], tid.as_str());
    assert_eq!(state["checkpoint"]["checkpoint_ns"], "");
    assert!(state["parent_checkpoint"]["checkpoint_id"].is_string());
    assert_eq!(state["metadata"]["source"], "loop");
    // Each turn stores its input, then its reply: two checkpoints.
    assert_eq!(state["metadata"]["step"], 4);
    // The run is named by its input's checkpoint, which the reply follows.
    let history = api.body(&api.post(&format!("/threads/{tid}/history"), json!({})));
    assert_eq!(
        state["metadata"]["run_id"],
        history[1]["checkpoint"]["checkpoint_id"]
    );
    assert_eq!(
        history[1]["metadata"]["run_id"],
        history[1]["checkpoint"]["checkpoint_id"]
    );
    assert_ne!(
        history[1]["metadata"]["run_id"],
        history[3]["metadata"]["run_id"]
    );

    let thread = api.body(&api.get(&format!("/threads/{tid}")));
    assert_eq!(thread["metadata"]["graph_id"], "agent");
    assert_eq!(thread["metadata"]["user"], "u1");

    // A second thread knows nothing of Sam.
    let other = api.body(&api.post("/threads", json!({})))["thread_id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = api.body(&api.post(
        &format!("/threads/{other}/runs/wait"),
        say("What's my name?"),
    ));
    assert!(reply["messages"][1]["content"]
        .as_str()
        .unwrap()
        .contains("don't know"));
}

#[test]
fn two_turns_remember_on_memory() {
    two_turns_remember(Api {
        store: MemoryCheckpointer::new(),
    });
}

#[test]
fn two_turns_remember_on_sqlite() {
    two_turns_remember(Api {
        store: support::sqlite_store(),
    });
}

#[test]
fn empty_thread_state_has_null_checkpoint() {
    let api = Api {
        store: support::sqlite_store(),
    };
    let tid =
        api.body(&api.post("/threads", json!({"thread_id": "user-123"})))["thread_id"].clone();
    assert_eq!(tid, "user-123");
    let state = api.get("/threads/user-123/state");
    assert_eq!(state.status, 200);
    assert_eq!(api.body(&state)["checkpoint"], Value::Null);
    // if_exists
    assert_eq!(
        api.post("/threads", json!({"thread_id": "user-123"}))
            .status,
        409
    );
    assert_eq!(
        api.post(
            "/threads",
            json!({"thread_id": "user-123", "if_exists": "do_nothing"})
        )
        .status,
        200
    );
}

#[test]
fn unknown_thread_is_404_unless_create() {
    let api = Api {
        store: support::sqlite_store(),
    };
    let r = api.post("/threads/nope/runs/wait", say("hi"));
    assert_eq!(r.status, 404);
    let detail = api.body(&r)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(detail.starts_with("Thread 'nope' not found. This usually means"));
    assert!(detail.contains("if_not_exists"), "{detail}");
    assert_eq!(api.get("/threads/nope/state").status, 404);
    let mut body = say("hi");
    body["if_not_exists"] = json!("create");
    let r = api.post("/threads/nope/runs/wait", body);
    assert_eq!(r.status, 200);
    assert_eq!(
        api.body(&api.get("/threads/nope/state"))["values"]["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn delete_then_404() {
    let api = Api {
        store: support::sqlite_store(),
    };
    api.post("/threads", json!({"thread_id": "gone"}));
    api.post("/threads/gone/runs/wait", say("hi"));
    assert_eq!(
        api.call(HttpRequest::empty("DELETE", "/threads/gone"))
            .status,
        204
    );
    assert_eq!(api.get("/threads/gone").status, 404);
}

/// Every bad request gets a 4xx JSON detail naming the problem, and the thread's state
/// is unchanged.
#[test]
fn bad_input_is_4xx_and_changes_nothing() {
    let api = Api {
        store: support::sqlite_store(),
    };
    api.post("/threads", json!({"thread_id": "t"}));
    api.post("/threads/t/runs/wait", say("My name is Sam"));
    let before = api.body(&api.get("/threads/t/state"));
    let raw = |body: &[u8]| HttpRequest {
        method: "POST".into(),
        path: "/threads/t/runs/wait".into(),
        query: String::new(),
        body: body.to_vec(),
        headers: Vec::new(),
        verified_token: None,
    };
    let cases: Vec<(HttpRequest, u16, &str)> = vec![
        (raw(b"{not json"), 400, "invalid JSON"),
        (raw(b"[1,2]"), 400, "expected a JSON object"),
        (raw(&[0xff, 0xfe]), 400, "UTF-8"),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"assistant_id": "agent", "input": {}}),
            ),
            422,
            "`input.messages`",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"input": {"question": "hi"}}),
            ),
            422,
            "missing input key `messages`; expected {\"messages\": [...]}, got keys `question`",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"input": {"messages": 5}}),
            ),
            422,
            "input.messages",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"input": {"messages": []}}),
            ),
            422,
            "at least one",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"input": {"messages": [{"role": "user"}]}}),
            ),
            422,
            "input.messages[0].content",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"input": {"messages": [{"type": "remove", "id": "ghost"}]}}),
            ),
            422,
            "ghost",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"assistant_id": "other", "input": {"messages": "hi"}}),
            ),
            404,
            "No assistant found for \"other\"",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"input": {"messages": "hi"}, "if_not_exists": "maybe"}),
            ),
            422,
            "if_not_exists",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"input": {"messages": [{"role": "user", "content": "x".repeat(edge_memory::limits::MESSAGE_MAX_BYTES + 1)}]}}),
            ),
            413,
            "too large",
        ),
        (
            HttpRequest::json("POST", "/threads/a%2Fb/runs/wait", &say("hi")),
            422,
            "thread_id",
        ),
        (
            HttpRequest::json("POST", "/threads/../runs/wait", &say("hi")),
            422,
            "thread_id",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"input": {"messages": "hi"}, "checkpoint_id": "no/pe"}),
            ),
            422,
            "checkpoint_id",
        ),
        (
            HttpRequest::json(
                "POST",
                "/threads/t/runs/wait",
                &json!({"input": {"messages": "hi"}, "checkpoint_id": "01a20af1-f420-7b44-a08e-2674a2e1f4d9"}),
            ),
            404,
            "Checkpoint",
        ),
        (
            HttpRequest::json("POST", "/threads", &json!({"thread_id": 123})),
            422,
            "thread_id",
        ),
        (
            HttpRequest::json("POST", "/threads", &json!({"metadata": [1]})),
            422,
            "metadata",
        ),
        (
            HttpRequest::json("PUT", "/threads/t/runs/wait", &say("hi")),
            405,
            "PUT",
        ),
        (HttpRequest::empty("GET", "/nowhere"), 404, "GET /nowhere"),
    ];
    for (req, status, needle) in cases {
        let label = format!(
            "{} {} {:?}",
            req.method,
            req.path,
            String::from_utf8_lossy(&req.body)
                .chars()
                .take(80)
                .collect::<String>()
        );
        let resp = api.call(req);
        assert_eq!(resp.status, status, "{label}: {:?}", resp.body);
        let detail = api.body(&resp)["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            detail.contains(needle),
            "{label}: detail {detail:?} should contain {needle:?}"
        );
    }
    assert_eq!(
        api.body(&api.get("/threads/t/state")),
        before,
        "state unchanged"
    );
}

#[test]
fn ok_and_info() {
    let api = Api {
        store: MemoryCheckpointer::new(),
    };
    assert_eq!(api.body(&api.get("/ok")), json!({"ok": true}));
    let info = api.body(&api.get("/info"));
    assert_eq!(info["storage_backend"], "test");
    assert_eq!(info["model"], "memory-demo");
}

#[test]
fn streamed_run_events_follow_langgraph_order() {
    let api = Api {
        store: support::sqlite_store(),
    };
    api.post("/threads", json!({"thread_id": "s"}));
    let mut body = say("My name is Sam");
    body["stream_mode"] = json!(["values", "messages-tuple", "updates", "events"]);
    let resp = api.post("/threads/s/runs/stream", body);
    assert_eq!(resp.status, 200);
    let Body::EventStream(events) = resp.body else {
        panic!("not a stream: {resp:?}")
    };
    // `events` (LangChain's astream_events v2): the graph, its node and the model.
    let told: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "events")
        .map(|e| e.data["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        told[..3],
        ["on_chain_start", "on_chain_start", "on_chat_model_start"]
    );
    assert!(
        told.iter()
            .filter(|e| **e == "on_chat_model_stream")
            .count()
            >= 2
    );
    assert_eq!(
        told[told.len() - 4..],
        [
            "on_chat_model_end",
            "on_chain_stream",
            "on_chain_end",
            "on_chain_end"
        ]
    );
    assert_eq!(
        events[1].event, "events",
        "the graph starts before the input's values"
    );
    let events: Vec<_> = events.into_iter().filter(|e| e.event != "events").collect();
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names.first(), Some(&"metadata"));
    assert_eq!(names[1], "values");
    assert_eq!(names.last(), Some(&"values"));
    assert!(names.contains(&"updates"));
    let final_reply = events.last().unwrap().data["messages"][1].clone();
    let chunks: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "messages")
        .map(|e| &e.data)
        .collect();
    assert!(chunks.len() > 1);
    let text: String = chunks
        .iter()
        .map(|c| c[0]["content"].as_str().unwrap())
        .collect();
    assert_eq!(text, final_reply["content"].as_str().unwrap());
    assert!(chunks.iter().all(|c| c[0]["id"] == final_reply["id"]));
    // A plain string mode works too, and unknown modes are ignored.
    let mut body = say("again");
    body["stream_mode"] = json!("debug");
    let resp = api.post("/threads/s/runs/stream", body);
    let Body::EventStream(events) = resp.body else {
        panic!("not a stream")
    };
    assert_eq!(events.len(), 1, "only metadata for modes we do not produce");
}

#[test]
fn search_copy_patch_and_history() {
    let api = Api {
        store: support::sqlite_store(),
    };
    for (id, owner) in [("a", "x"), ("b", "x"), ("c", "y")] {
        api.post(
            "/threads",
            json!({"thread_id": id, "metadata": {"owner": owner}}),
        );
    }
    api.post("/threads/b/runs/wait", say("hello"));
    let found = api.body(&api.post("/threads/search", json!({"metadata": {"owner": "x"}})));
    let ids: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["thread_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b", "a"], "newest updated_at first");
    assert_eq!(found[0]["values"]["messages"].as_array().unwrap().len(), 2);
    assert_eq!(
        api.body(&api.post("/threads/count", json!({"metadata": {"owner": "x"}}))),
        json!(2)
    );
    let paged = api.body(&api.post(
        "/threads/search",
        json!({"limit": 1, "offset": 1, "sort_by": "thread_id", "sort_order": "asc"}),
    ));
    assert_eq!(paged[0]["thread_id"], "b");

    let patched = api.call(HttpRequest::json(
        "PATCH",
        "/threads/a",
        &json!({"metadata": {"tag": 1}}),
    ));
    assert_eq!(
        api.body(&patched)["metadata"],
        json!({"owner": "x", "tag": 1})
    );

    let copy = api.body(&api.post("/threads/b/copy", json!({})));
    let copy_id = copy["thread_id"].as_str().unwrap().to_string();
    assert_ne!(copy_id, "b");
    assert_eq!(copy["values"]["messages"].as_array().unwrap().len(), 2);
    assert_eq!(api.post("/threads/nope/copy", json!({})).status, 404);

    api.post("/threads/b/runs/wait", say("two"));
    let history = api.body(&api.post("/threads/b/history", json!({"limit": 10})));
    assert_eq!(
        history.as_array().unwrap().len(),
        4,
        "two turns: input and reply each"
    );
    let head = history[0]["checkpoint"]["checkpoint_id"].clone();
    let before = api.body(&api.post(
        "/threads/b/history",
        json!({"before": {"checkpoint_id": head}}),
    ));
    assert_eq!(before.as_array().unwrap().len(), 3);
    let by_meta = api.body(&api.post("/threads/b/history", json!({"metadata": {"step": 1}})));
    assert_eq!(by_meta.as_array().unwrap().len(), 1);
    let copy_history = api.body(&api.post(&format!("/threads/{copy_id}/history"), json!({})));
    assert_eq!(
        copy_history.as_array().unwrap().len(),
        2,
        "the copy does not see later turns"
    );
}

#[test]
fn update_state_and_state_at_checkpoint() {
    let api = Api {
        store: support::sqlite_store(),
    };
    api.post("/threads", json!({"thread_id": "u"}));
    let first = api.body(&api.post("/threads/u/runs/wait", say("My name is Sam")));
    let resp = api.post(
        "/threads/u/state",
        json!({"values": {"messages": [{"type": "remove", "id": first["messages"][0]["id"]}]}}),
    );
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    let cp = api.body(&resp)["checkpoint"]["checkpoint_id"]
        .as_str()
        .unwrap()
        .to_string();
    let at = api.body(&api.get(&format!("/threads/u/state/{cp}")));
    assert_eq!(at["values"]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(at["metadata"]["source"], "update");
    let by_post = api.body(&api.post(
        "/threads/u/state/checkpoint",
        json!({"checkpoint": {"checkpoint_id": cp}}),
    ));
    assert_eq!(by_post["checkpoint"]["checkpoint_id"], cp.as_str());
    let bad = api.post("/threads/u/state", json!({"values": {"todos": []}}));
    assert_eq!(bad.status, 422);
    assert!(api.body(&bad)["detail"]
        .as_str()
        .unwrap()
        .contains("values.todos"));
}

#[test]
fn stateless_runs_keep_nothing_and_assistants_exist() {
    let api = Api {
        store: support::sqlite_store(),
    };
    let out = api.body(&api.post("/runs/wait", say("My name is Sam")));
    assert_eq!(out["messages"].as_array().unwrap().len(), 2);
    assert_eq!(api.body(&api.post("/threads/search", json!({}))), json!([]));
    let agent = api.body(&api.get("/assistants/agent"));
    assert_eq!(agent["graph_id"], "agent");
    assert_eq!(
        api.get(&format!(
            "/assistants/{}",
            agent["assistant_id"].as_str().unwrap()
        ))
        .status,
        200
    );
    assert_eq!(api.get("/assistants/other").status, 404);
    assert_eq!(
        api.body(&api.post("/assistants/search", json!({})))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.body(&api.post("/assistants/search", json!({"graph_id": "x"}))),
        json!([])
    );
}

#[test]
fn api_keys_guard_everything_but_ok() {
    let store = support::sqlite_store();
    let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    let info = ServerInfo {
        auth: edge_memory::auth::AuthSettings {
            api_keys: vec!["k1".into(), "k2".into()],
            ..Default::default()
        },
        ..info()
    };
    let call = |req: HttpRequest| pollster::block_on(handle(&req, &info, &engine, &RunGate::new()));
    let with_key = |req: HttpRequest, key: &str| req.with_header("x-api-key", key);
    let denied = call(HttpRequest::json(
        "POST",
        "/threads",
        &json!({"thread_id": "secret-thread"}),
    ));
    assert_eq!(denied.status, 401);
    let detail = denied.json().unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains("x-api-key") && !detail.contains("secret-thread"),
        "{detail}"
    );
    assert_eq!(
        call(with_key(
            HttpRequest::empty("GET", "/threads/secret-thread"),
            "k3"
        ))
        .status,
        401
    );
    assert_eq!(
        call(with_key(
            HttpRequest::empty("GET", "/threads/secret-thread"),
            "k"
        ))
        .status,
        401
    );
    assert_eq!(
        call(HttpRequest::empty("GET", "/ok")).status,
        200,
        "health checks need no key"
    );
    let created = call(with_key(
        HttpRequest::json("POST", "/threads", &json!({"thread_id": "secret-thread"})),
        "k2",
    ));
    assert_eq!(created.status, 200);
    assert_eq!(
        call(with_key(
            HttpRequest::empty("GET", "/threads/secret-thread"),
            "k1"
        ))
        .status,
        200
    );
    // A refused request changed nothing.
    assert_eq!(
        call(with_key(
            HttpRequest::json("POST", "/threads", &json!({"thread_id": "secret-thread"})),
            "k1"
        ))
        .status,
        409
    );
}

/// A model that says `prefix`, then fails with `error` (if any).
struct FailingModel {
    prefix: &'static str,
    error: Option<edge_memory::Error>,
}

impl edge_memory::chat::ChatModel for FailingModel {
    fn name(&self) -> &str {
        "failing"
    }

    async fn stream(
        &self,
        _context: &[edge_memory::message::Message],
        sink: &dyn edge_memory::chat::DeltaSink,
    ) -> edge_memory::Result<edge_memory::chat::ReplyEnd> {
        sink.delta(self.prefix);
        match &self.error {
            Some(err) => Err(err.clone()),
            None => Ok(Default::default()),
        }
    }
}

#[test]
fn a_model_failure_keeps_the_input_and_the_thread_usable() {
    let store = support::sqlite_store();
    let gate = RunGate::new();
    let run = |model: &FailingModel, path: &str, body: Value| {
        let engine = Engine::new(&store, model, &SystemClock, &SystemEntropy);
        pollster::block_on(handle(
            &HttpRequest::json("POST", path, &body),
            &info(),
            &engine,
            &gate,
        ))
    };
    let ok = FailingModel {
        prefix: "fine",
        error: None,
    };
    run(&ok, "/threads", json!({"thread_id": "m"}));
    let timeout = FailingModel {
        prefix: "",
        error: Some(edge_memory::Error::UpstreamTimeout { waited_ms: 50 }),
    };
    // Before any text: the error's own status, for waits and streams alike.
    let failed = run(&timeout, "/threads/m/runs/wait", say("one"));
    assert_eq!(failed.status, 504);
    let mut streamed = say("two");
    streamed["stream_mode"] = json!(["messages-tuple"]);
    assert_eq!(
        run(&timeout, "/threads/m/runs/stream", streamed.clone()).status,
        504
    );
    // After some text: the stream ends with an error event; nothing partial is stored.
    let midway = FailingModel {
        prefix: "half a ",
        error: Some(edge_memory::Error::Upstream {
            reason: "overloaded".into(),
        }),
    };
    let resp = run(&midway, "/threads/m/runs/stream", streamed);
    assert_eq!(resp.status, 200);
    let Body::EventStream(events) = resp.body else {
        panic!("not a stream")
    };
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["metadata", "messages", "error"]);
    assert_eq!(events[2].data["error"], "UpstreamError");
    let state = |store: &_| {
        let engine = Engine::new(store, &ok, &SystemClock, &SystemEntropy);
        pollster::block_on(handle(
            &HttpRequest::empty("GET", "/threads/m/state"),
            &info(),
            &engine,
            &gate,
        ))
    };
    let texts: Vec<String> = state(&store).json().unwrap()["values"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts,
        ["one", "two", "two"],
        "inputs kept, no partial reply"
    );
    assert!(!gate.is_busy(&edge_memory::thread::ThreadId::parse("m").unwrap()));
    let next = run(&ok, "/threads/m/runs/wait", say("three"));
    assert_eq!(next.status, 200);
    assert_eq!(next.json().unwrap()["messages"][4]["content"], "fine");
}

#[test]
fn jwt_users_see_only_their_own_threads() {
    use edge_memory::auth::{sign_hs256, AuthSettings, JwtSettings};
    let store = support::sqlite_store();
    let engine = Engine::new(&store, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    let secret = b"jwt-test-secret".to_vec();
    let info = ServerInfo {
        auth: AuthSettings {
            api_keys: vec!["service-key".into()],
            jwt: Some(JwtSettings {
                secret: secret.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..info()
    };
    let now_s = SystemClock.now_ms() / 1000;
    let bearer = |sub: &str| {
        let token = sign_hs256(&json!({"sub": sub, "exp": now_s + 600}), &secret).unwrap();
        format!("Bearer {token}")
    };
    let gate = RunGate::new();
    let call = |req: HttpRequest| pollster::block_on(handle(&req, &info, &engine, &gate));
    let as_user =
        |sub: &str, req: HttpRequest| call(req.with_header("authorization", &bearer(sub)));
    let body = |resp: &HttpResponse| resp.json().cloned().unwrap_or(Value::Null);

    let created = as_user("alice", HttpRequest::json("POST", "/threads", &json!({})));
    let a = body(&created)["thread_id"].as_str().unwrap().to_string();
    assert_eq!(body(&created)["metadata"]["owner"], "alice");
    let run = HttpRequest::json(
        "POST",
        &format!("/threads/{a}/runs/wait"),
        &say("My name is Sam"),
    );
    assert_eq!(as_user("alice", run).status, 200);
    let before = body(&as_user(
        "alice",
        HttpRequest::empty("GET", &format!("/threads/{a}/state")),
    ));

    // Bob cannot read, write, copy, fork, delete or find Alice's thread: all 404.
    let attempts = [
        HttpRequest::empty("GET", &format!("/threads/{a}")),
        HttpRequest::empty("GET", &format!("/threads/{a}/state")),
        HttpRequest::json("POST", &format!("/threads/{a}/history"), &json!({})),
        HttpRequest::json("POST", &format!("/threads/{a}/runs/wait"), &say("hi")),
        HttpRequest::json(
            "POST",
            &format!("/threads/{a}/runs/wait"),
            &json!({"input": {"messages": [{"role": "user", "content": "x"}]}, "if_not_exists": "create"}),
        ),
        HttpRequest::json(
            "POST",
            &format!("/threads/{a}/state"),
            &json!({"values": {"messages": [{"role": "user", "content": "x"}]}}),
        ),
        HttpRequest::json(
            "PATCH",
            &format!("/threads/{a}"),
            &json!({"metadata": {"x": 1}}),
        ),
        HttpRequest::json("POST", &format!("/threads/{a}/copy"), &json!({})),
        HttpRequest::empty("DELETE", &format!("/threads/{a}")),
    ];
    for req in attempts {
        let label = format!("{} {}", req.method, req.path);
        let resp = as_user("bob", req);
        assert_eq!(resp.status, 404, "{label}: {:?}", resp.body);
    }
    let found = body(&as_user(
        "bob",
        HttpRequest::json("POST", "/threads/search", &json!({})),
    ));
    assert_eq!(found, json!([]), "search shows only the caller's threads");
    let count = body(&as_user(
        "bob",
        HttpRequest::json("POST", "/threads/count", &json!({})),
    ));
    assert_eq!(count, json!(0));
    // Choosing or changing an owner is refused.
    let claim = HttpRequest::json("POST", "/threads", &json!({"metadata": {"owner": "alice"}}));
    assert_eq!(as_user("bob", claim).status, 422);
    // Alice still sees her thread, unchanged; the service key sees everything.
    let after = body(&as_user(
        "alice",
        HttpRequest::empty("GET", &format!("/threads/{a}/state")),
    ));
    assert_eq!(before, after);
    let mine = body(&as_user(
        "alice",
        HttpRequest::json("POST", "/threads/search", &json!({})),
    ));
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let service = call(
        HttpRequest::empty("GET", &format!("/threads/{a}")).with_header("x-api-key", "service-key"),
    );
    assert_eq!(service.status, 200);
    // Missing, expired and forged tokens: 401 without a word about threads.
    let expired = sign_hs256(&json!({"sub": "alice", "exp": now_s - 3600}), &secret).unwrap();
    let forged = sign_hs256(
        &json!({"sub": "alice", "exp": now_s + 600}),
        b"not-the-secret",
    )
    .unwrap();
    for header in [
        None,
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {forged}")),
    ] {
        let mut req = HttpRequest::empty("GET", &format!("/threads/{a}"));
        if let Some(h) = &header {
            req = req.with_header("authorization", h);
        }
        let resp = call(req);
        assert_eq!(resp.status, 401, "{header:?}");
        assert!(!body(&resp)["detail"].as_str().unwrap().contains(&a));
    }
}

#[test]
fn the_amnesia_guard_and_if_match_refuse_silent_fresh_starts() {
    let api = Api {
        store: support::sqlite_store(),
    };
    let header = |resp: &HttpResponse, name: &str| {
        resp.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let with_guard = |text: &str, guard: Value| {
        let mut body = say(text);
        body.as_object_mut()
            .unwrap()
            .extend(guard.as_object().unwrap().clone());
        body
    };
    // A client that remembers a conversation in a thread the server does not know.
    let lost = api.post(
        "/threads/forgotten/runs/wait",
        with_guard(
            "What's my name?",
            json!({"expected_head": "01a20b00-0000-7000-8000-000000000000", "if_not_exists": "create"}),
        ),
    );
    assert_eq!(lost.status, 409);
    assert_eq!(api.body(&lost)["code"], "memory_mismatch");
    assert_eq!(api.get("/threads/forgotten").status, 404, "no fresh thread");

    api.post("/threads", json!({"thread_id": "g"}));
    let first = api.post("/threads/g/runs/wait", say("My name is Sam"));
    let head = header(&first, "x-thread-head").unwrap();
    assert_eq!(header(&first, "x-thread-turns").as_deref(), Some("1"));
    let state = api.get("/threads/g/state");
    assert_eq!(header(&state, "x-thread-head"), Some(head.clone()));
    let before = api.body(&state);

    for guard in [
        json!({"expected_head": "01a20b00-0000-7000-8000-000000000000"}),
        json!({"expected_turns": 5}),
    ] {
        let resp = api.post("/threads/g/runs/wait", with_guard("hi", guard.clone()));
        assert_eq!(resp.status, 409, "{guard}");
        let body = api.body(&resp);
        assert_eq!(body["code"], "memory_mismatch", "{guard}");
        assert!(body["detail"].as_str().unwrap().contains(&head), "{body}");
    }
    // If-Match: only the head.
    let stale = api.call(
        HttpRequest::json("POST", "/threads/g/runs/wait", &say("hi"))
            .with_header("if-match", "01a20b00-0000-7000-8000-000000000000"),
    );
    assert_eq!(stale.status, 409);
    assert!(api.body(&stale)["detail"].as_str().unwrap().contains(&head));
    assert_eq!(
        api.body(&api.get("/threads/g/state")),
        before,
        "nothing stored"
    );

    let ok = api.call(
        HttpRequest::json(
            "POST",
            "/threads/g/runs/wait",
            &with_guard(
                "What's my name?",
                json!({"expected_head": head, "expected_turns": 1}),
            ),
        )
        .with_header("if-match", &format!("\"{head}\"")),
    );
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(header(&ok, "x-thread-turns").as_deref(), Some("2"));
    assert_ne!(header(&ok, "x-thread-head"), Some(head.clone()));
    // A client that is behind (an older checkpoint the thread has) is not amnesia.
    let behind = api.post(
        "/threads/g/runs/wait",
        with_guard("again", json!({"expected_head": head})),
    );
    assert_eq!(behind.status, 200);
}

#[test]
fn retries_never_append_twice() {
    let api = Api {
        store: support::sqlite_store(),
    };
    api.post("/threads", json!({"thread_id": "r"}));
    let keyed = |text: &str, key: &str| {
        api.call(
            HttpRequest::json("POST", "/threads/r/runs/wait", &say(text))
                .with_header("idempotency-key", key),
        )
    };
    // The same run three times with one key: one turn.
    let first = keyed("My name is Sam", "k-1");
    assert_eq!(first.status, 200);
    for _ in 0..2 {
        let again = keyed("My name is Sam", "k-1");
        assert_eq!(again.status, 200);
        assert_eq!(api.body(&again), api.body(&first), "the original result");
    }
    let history = api.body(&api.post("/threads/r/history", json!({})));
    assert_eq!(history.as_array().unwrap().len(), 2, "one turn stored");
    // A stream retried with the key replays the reply.
    let mut streamed = say("My name is Sam");
    streamed["stream_mode"] = json!(["messages-tuple"]);
    let replay = api.call(
        HttpRequest::json("POST", "/threads/r/runs/stream", &streamed)
            .with_header("idempotency-key", "k-1"),
    );
    let Body::EventStream(events) = replay.body else {
        panic!("not a stream")
    };
    let text: String = events
        .iter()
        .filter(|e| e.event == "messages")
        .map(|e| e.data[0]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        text,
        api.body(&first)["messages"][1]["content"].as_str().unwrap()
    );
    assert_eq!(
        api.body(&api.post("/threads/r/history", json!({})))
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A client-supplied message id retried: the original answer, nothing appended.
    let with_id = json!({"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "What's my name?", "id": "client-msg-7"}]}});
    let answer = api.post("/threads/r/runs/wait", with_id.clone());
    assert_eq!(answer.status, 200);
    let again = api.post("/threads/r/runs/wait", with_id);
    assert_eq!(api.body(&again), api.body(&answer));
    let state = api.body(&api.get("/threads/r/state"));
    assert_eq!(state["values"]["messages"].as_array().unwrap().len(), 4);
    assert_eq!(
        state["values"]["messages"][3]["content"],
        "Your name is Sam."
    );
}
