//! At the door: what a new user's frontend meets before its first turn. Bodies read as
//! JSON whatever their content-type, CORS for local origins in dev mode only, a
//! deployment without auth closed by default, and the run options agent-chat-ui sends.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use edge_memory::api::{Body, HttpRequest, HttpResponse, RunGate, ServerInfo};
use edge_memory::config;
use serde_json::{json, Value};

/// A server configured from these environment variables, as the worker would be.
fn server(vars: &[(&str, &str)]) -> ServerInfo {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let settings = config::from_env(lookup, |_| None).unwrap();
    ServerInfo {
        backend: settings.backend.name().into(),
        model: settings.model.name(),
        dev_mode: settings.dev_mode,
        auth: settings.auth,
        cors: settings.cors,
    }
}

struct Door {
    store: edge_memory::checkpoint::sql::SqlCheckpointer<support::RusqliteExec>,
    gate: RunGate,
    info: ServerInfo,
}

impl Door {
    fn new(vars: &[(&str, &str)]) -> Self {
        Door {
            store: support::sqlite_store(),
            gate: RunGate::new(),
            info: server(vars),
        }
    }

    fn call(&self, req: HttpRequest) -> HttpResponse {
        support::serve_demo(&self.store, &self.info, &self.gate, &req)
    }

    /// A POST whose body is `body` sent as is, with `content_type` if given.
    fn post_raw(&self, path: &str, body: &str, content_type: Option<&str>) -> HttpResponse {
        let mut req = HttpRequest::empty("POST", path);
        req.body = body.as_bytes().to_vec();
        if let Some(t) = content_type {
            req = req.with_header("content-type", t);
        }
        self.call(req)
    }
}

fn json_of(resp: &HttpResponse) -> Value {
    resp.json().cloned().unwrap_or(Value::Null)
}

fn header<'a>(resp: &'a HttpResponse, name: &str) -> Option<&'a str> {
    resp.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn json_bodies_are_read_whatever_their_content_type() {
    let door = Door::new(&[("DEV_MODE", "true")]);
    let types = [
        Some("text/plain;charset=UTF-8"),
        None,
        Some("application/json; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
    ];
    for (i, content_type) in types.into_iter().enumerate() {
        let id = format!("ct-{i}");
        let created = door.post_raw(
            "/threads",
            &json!({"thread_id": id}).to_string(),
            content_type,
        );
        assert_eq!(created.status, 200, "{content_type:?}: {created:?}");
        let turn = json!({"input": {"messages": [{"role": "user", "content": "My name is Sam"}]}});
        let run = door.post_raw(
            &format!("/threads/{id}/runs/wait"),
            &turn.to_string(),
            content_type,
        );
        assert_eq!(run.status, 200, "{content_type:?}");
        assert_eq!(json_of(&run)["messages"].as_array().unwrap().len(), 2);
    }
    for content_type in [Some("text/plain"), None, Some("application/json")] {
        let bad = door.post_raw("/threads/ct-0/runs/wait", "name=Sam", content_type);
        assert_eq!(bad.status, 400, "{content_type:?}");
        assert_eq!(json_of(&bad)["code"], "bad_request");
        assert!(json_of(&bad)["detail"].as_str().unwrap().contains("JSON"));
    }
    let history = door.post_raw("/threads/ct-0/history", "{}", Some("text/plain"));
    assert_eq!(
        json_of(&history).as_array().unwrap().len(),
        2,
        "state unchanged"
    );
}

#[test]
fn a_deployment_without_auth_refuses_thread_data() {
    let door = Door::new(&[]);
    for (method, path) in [
        ("POST", "/threads"),
        ("POST", "/threads/search"),
        ("GET", "/threads/x/state"),
        ("POST", "/runs/wait"),
        ("GET", "/assistants/agent"),
    ] {
        let mut req = HttpRequest::empty(method, path);
        if method == "POST" {
            req.body = b"{}".to_vec();
        }
        let resp = door.call(req);
        assert_eq!(resp.status, 503, "{method} {path}");
        assert_eq!(json_of(&resp)["code"], "auth_not_configured");
        assert!(json_of(&resp)["detail"]
            .as_str()
            .unwrap()
            .contains("AUTH_MODE=none"));
        assert_eq!(header(&resp, "x-edge-memory-auth"), None);
    }
    assert_eq!(door.call(HttpRequest::empty("GET", "/ok")).status, 200);
    let info = door.call(HttpRequest::empty("GET", "/info"));
    assert_eq!(info.status, 200);
    assert_eq!(json_of(&info)["auth"]["mode"], "not_configured");
    // Open on purpose: said in /info and on every response.
    let open = Door::new(&[("AUTH_MODE", "none")]);
    let created = open.post_raw("/threads", "{}", None);
    assert_eq!(created.status, 200);
    assert_eq!(header(&created, "x-edge-memory-auth"), Some("none"));
    let info = open.call(HttpRequest::empty("GET", "/info"));
    assert_eq!(json_of(&info)["auth"]["mode"], "none");
    let keyed = Door::new(&[("API_KEYS", "k")]);
    let info = keyed.call(HttpRequest::empty("GET", "/info").with_header("x-api-key", "k"));
    assert_eq!(json_of(&info)["auth"]["mode"], "api_key");
    assert_eq!(header(&info, "x-edge-memory-auth"), None);
}

#[test]
fn local_origins_are_allowed_in_dev_mode_only() {
    let preflight = |door: &Door, origin: &str| {
        door.call(
            HttpRequest::empty("OPTIONS", "/threads/search")
                .with_header("origin", origin)
                .with_header("access-control-request-method", "POST")
                .with_header("access-control-request-headers", "content-type,x-api-key"),
        )
    };
    let dev = Door::new(&[("DEV_MODE", "true")]);
    for origin in ["http://localhost:3000", "http://127.0.0.1:3077"] {
        let ok = preflight(&dev, origin);
        assert_eq!(ok.status, 204, "{origin}");
        assert_eq!(header(&ok, "access-control-allow-origin"), Some(origin));
        let info = dev.call(HttpRequest::empty("GET", "/info").with_header("origin", origin));
        assert_eq!(header(&info, "access-control-allow-origin"), Some(origin));
    }
    assert_eq!(preflight(&dev, "https://evil.example").status, 403);
    let deployed = Door::new(&[("AUTH_MODE", "none")]);
    assert_eq!(preflight(&deployed, "http://localhost:3000").status, 403);
    let listed = Door::new(&[
        ("API_KEYS", "k"),
        ("ALLOWED_ORIGINS", "https://app.example"),
    ]);
    assert_eq!(preflight(&listed, "https://app.example").status, 204);
    assert_eq!(preflight(&listed, "http://localhost:3000").status, 403);
}

#[test]
fn agent_chat_ui_run_options_are_accepted() {
    let door = Door::new(&[("DEV_MODE", "true")]);
    door.post_raw("/threads", r#"{"thread_id": "ui", "metadata": {}}"#, None);
    let body = json!({
        "input": {"messages": [{"id": "h1", "type": "human",
            "content": [{"type": "text", "text": "My name is Sam"}]}],
            // agent-chat-ui's artifact context: not a key of this graph's state, ignored
            // as LangGraph ignores it.
            "context": {"artifact": "notes"}},
        "stream_mode": ["values", "messages-tuple", "custom"],
        "stream_subgraphs": true,
        "stream_resumable": true,
        "on_disconnect": "continue",
        "assistant_id": "agent",
        "config": {"configurable": {}},
    });
    let resp = door.post_raw(
        "/threads/ui/runs/stream",
        &body.to_string(),
        Some("text/plain"),
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    let ignored = resp
        .headers
        .iter()
        .find(|(k, _)| k == "x-edge-memory-ignored-input-keys");
    assert_eq!(
        ignored.map(|(_, v)| v.as_str()),
        Some("context"),
        "the ignored key is named"
    );
    let Body::EventStream(events) = resp.body else {
        panic!("not a stream: {resp:?}")
    };
    assert!(events.iter().any(|e| e.event == "messages"));
    let last = &events.last().unwrap().data["messages"];
    assert_eq!(last[0]["content"][0]["text"], "My name is Sam");
    assert!(last[1]["content"].as_str().unwrap().contains("Sam"));
    let again = door.post_raw("/threads", r#"{"thread_id": "ui"}"#, None);
    assert_eq!(json_of(&again)["code"], "thread_exists");
    let search = door.post_raw(
        "/threads/search",
        r#"{"metadata": {"graph_id": "agent"}, "limit": 100}"#,
        None,
    );
    assert_eq!(json_of(&search)[0]["thread_id"], "ui");
}

/// agent-chat-ui's regenerate: `submit(undefined, {checkpoint: parent})` sends a run with
/// no input from the checkpoint before the reply. As on LangGraph's server, the state
/// there is continued: a new reply on a fork, the old one still in history. A run with no
/// input on a state the model already answered runs nothing and stores nothing.
#[test]
fn a_run_without_input_regenerates_from_a_checkpoint() {
    let door = Door::new(&[("DEV_MODE", "true")]);
    door.post_raw("/threads", r#"{"thread_id": "regen"}"#, None);
    let turn = json!({"input": {"messages": [{"role": "user", "content": "My name is Sam"}]}});
    let first = door.post_raw("/threads/regen/runs/wait", &turn.to_string(), None);
    let first_reply = json_of(&first)["messages"][1].clone();
    let history = json_of(&door.post_raw("/threads/regen/history", "{}", None));
    assert_eq!(history.as_array().unwrap().len(), 2);
    let (reply_cp, input_cp) = (history[0].clone(), history[1].clone());
    assert_eq!(reply_cp["parent_checkpoint"], input_cp["checkpoint"]);

    // Nothing to run at the head: the state as it is, nothing stored.
    let idle = door.post_raw(
        "/threads/regen/runs/wait",
        r#"{"assistant_id": "agent"}"#,
        None,
    );
    assert_eq!(idle.status, 200);
    assert_eq!(json_of(&idle)["messages"], json_of(&first)["messages"]);
    let after = json_of(&door.post_raw("/threads/regen/history", "{}", None));
    assert_eq!(after.as_array().unwrap().len(), 2, "nothing stored");

    // Regenerate from the input's checkpoint: a new reply on a fork.
    let regen = json!({"assistant_id": "agent", "checkpoint": input_cp["checkpoint"],
        "stream_mode": ["values", "messages-tuple", "custom"]});
    let resp = door.post_raw("/threads/regen/runs/stream", &regen.to_string(), None);
    assert_eq!(resp.status, 200);
    let Body::EventStream(events) = resp.body else {
        panic!("not a stream")
    };
    let last = &events.last().unwrap().data["messages"];
    assert_eq!(
        last.as_array().unwrap().len(),
        2,
        "the human message and a new reply"
    );
    assert_ne!(last[1]["id"], first_reply["id"], "a new reply");
    let state = json_of(&door.call(HttpRequest::empty("GET", "/threads/regen/state")));
    assert_eq!(
        state["parent_checkpoint"], input_cp["checkpoint"],
        "forked from the input"
    );
    assert_eq!(state["metadata"]["source"], "fork");
    let history = json_of(&door.post_raw("/threads/regen/history", "{}", None));
    assert_eq!(
        history.as_array().unwrap().len(),
        3,
        "the old reply stays in history"
    );

    // No input on an empty thread: nothing to continue from.
    door.post_raw("/threads", r#"{"thread_id": "empty"}"#, None);
    let empty = door.post_raw("/threads/empty/runs/wait", "{}", None);
    assert_eq!(empty.status, 422);
    assert!(json_of(&empty)["detail"]
        .as_str()
        .unwrap()
        .contains("no messages"));
}
