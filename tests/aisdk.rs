//! The Vercel AI SDK's chat routes on the pure API layer, natively, on SQLite: a chat
//! is a thread, its turns are runs, and what the client echoes back is stored once.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(not(target_arch = "wasm32"))]

mod support;

use edge_memory::api::{Body, HttpRequest, HttpResponse, RunGate, ServerInfo};
use edge_memory::checkpoint::sql::SqlCheckpointer;
use serde_json::{json, Value};
use support::RusqliteExec;

struct Chat {
    store: SqlCheckpointer<RusqliteExec>,
    gate: RunGate,
}

impl Chat {
    fn new() -> Self {
        Chat {
            store: SqlCheckpointer::new(RusqliteExec::in_memory()),
            gate: RunGate::new(),
        }
    }

    fn call(&self, req: HttpRequest) -> HttpResponse {
        let info = ServerInfo {
            backend: "test".into(),
            ..Default::default()
        };
        support::serve_demo(&self.store, &info, &self.gate, &req)
    }

    fn send(&self, body: Value) -> HttpResponse {
        self.call(HttpRequest::json("POST", "/api/chat", &body))
    }

    fn get(&self, path: &str) -> Value {
        let response = self.call(HttpRequest::empty("GET", path));
        assert_eq!(response.status, 200, "{path}: {:?}", response.body);
        response.json().cloned().unwrap()
    }
}

fn user(id: &str, text: &str) -> Value {
    json!({"id": id, "role": "user", "parts": [{"type": "text", "text": text}]})
}

/// The chunks of a UI message stream, and the assistant message they build.
fn reply(response: &HttpResponse) -> (Vec<Value>, Value) {
    let Body::UiMessageStream(chunks) = &response.body else {
        panic!(
            "not a UI message stream: {} {:?}",
            response.status, response.body
        );
    };
    let start = chunks.iter().find(|c| c["type"] == "start").unwrap();
    let text: String = chunks
        .iter()
        .filter(|c| c["type"] == "text-delta")
        .map(|c| c["delta"].as_str().unwrap())
        .collect();
    let message = json!({
        "id": start["messageId"],
        "role": "assistant",
        "parts": [{"type": "step-start"}, {"type": "text", "text": text, "state": "done"}],
    });
    (chunks.clone(), message)
}

#[test]
fn two_turns_remember_and_the_echoed_transcript_is_stored_once() {
    let chat = Chat::new();
    let first = user("u1", "My name is Sam");
    let (chunks, answer) = reply(
        &chat.send(json!({"id": "chat-1", "messages": [first], "trigger": "submit-message"})),
    );
    let mut types: Vec<&str> = chunks.iter().map(|c| c["type"].as_str().unwrap()).collect();
    types.dedup();
    assert_eq!(
        types,
        [
            "start",
            "start-step",
            "text-start",
            "text-delta",
            "text-end",
            "finish-step",
            "message-metadata",
            "finish"
        ]
    );
    let second = user("u2", "What's my name?");
    let (chunks, named) =
        reply(&chat.send(json!({"id": "chat-1", "messages": [first, answer, second]})));
    assert_eq!(named["parts"][1]["text"], "Your name is Sam.");
    let metadata = &chunks
        .iter()
        .find(|c| c["type"] == "message-metadata")
        .unwrap()["messageMetadata"];
    assert_eq!(metadata["turns"], 2);
    assert!(metadata["checkpointId"].is_string());
    assert!(
        metadata.get("transcript").is_none(),
        "an agreeing transcript reports nothing"
    );
    // The same messages, same ids, once each; the same thread for LangGraph clients.
    let stored = chat.get("/api/chat/chat-1/messages");
    assert_eq!(stored, json!([first, answer, second, named]));
    let state = chat.get("/threads/chat-1/state");
    let ids: Vec<&str> = state["values"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "u1",
            answer["id"].as_str().unwrap(),
            "u2",
            named["id"].as_str().unwrap()
        ]
    );
    // Another chat id knows nothing.
    let (_, other) =
        reply(&chat.send(json!({"id": "chat-2", "message": user("v1", "What's my name?")})));
    assert!(other["parts"][1]["text"]
        .as_str()
        .unwrap()
        .contains("don't know"));
}

#[test]
fn the_slim_body_continues_the_same_thread() {
    let chat = Chat::new();
    reply(&chat.send(json!({"id": "slim", "message": user("u1", "My name is Ada")})));
    let (_, named) =
        reply(&chat.send(json!({"id": "slim", "message": user("u2", "What's my name?")})));
    assert_eq!(named["parts"][1]["text"], "Your name is Ada.");
    assert_eq!(
        chat.get("/api/chat/slim/messages")
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[test]
fn regenerate_replaces_the_last_reply_and_history_keeps_the_old_one() {
    let chat = Chat::new();
    let first = user("u1", "My name is Sam");
    let (_, answer) = reply(&chat.send(json!({"id": "regen", "messages": [first]})));
    let (_, again) = reply(&chat.send(json!({
        "id": "regen", "messages": [first], "trigger": "regenerate-message",
        "messageId": answer["id"],
    })));
    assert_ne!(again["id"], answer["id"]);
    let stored = chat.get("/api/chat/regen/messages");
    assert_eq!(
        stored,
        json!([first, again]),
        "count unchanged, the reply replaced"
    );
    let history = chat.call(HttpRequest::json(
        "POST",
        "/threads/regen/history",
        &json!({"limit": 10}),
    ));
    let old_kept = history
        .json()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .any(|state| {
            state["values"]["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == answer["id"])
        });
    assert!(old_kept);
}

#[test]
fn a_contradicting_transcript_is_applied_and_reported() {
    let chat = Chat::new();
    let first = user("u1", "My name is Sam");
    let (_, answer) = reply(&chat.send(json!({"id": "edit", "messages": [first]})));
    let edited = user("u1", "My name is Tom");
    let (chunks, _) =
        reply(&chat.send(
            json!({"id": "edit", "messages": [edited, answer, user("u2", "What's my name?")]}),
        ));
    let metadata = &chunks
        .iter()
        .find(|c| c["type"] == "message-metadata")
        .unwrap()["messageMetadata"];
    assert_eq!(metadata["transcript"]["edited"], json!(["u1"]));
    let stored = chat.get("/api/chat/edit/messages");
    assert_eq!(stored[0], edited);
    assert_eq!(stored[3]["parts"][1]["text"], "Your name is Tom.");
}

#[test]
fn bad_bodies_are_refused_and_store_nothing() {
    let chat = Chat::new();
    for body in [
        json!({"messages": [user("u", "hi")]}),
        json!({"id": "bad", "messages": "hi"}),
        json!({"id": "bad", "messages": [{"id": "u", "role": "user", "parts": [{"text": "x"}]}]}),
        json!({"id": "bad", "messages": [user("u", "hi")], "trigger": "resume-stream"}),
    ] {
        let response = chat.send(body.clone());
        assert_eq!(response.status, 422, "{body}: {:?}", response.body);
        assert!(response.json().unwrap()["detail"].is_string());
    }
    let response = chat.call(HttpRequest::empty("GET", "/api/chat/bad/messages"));
    assert_eq!(response.status, 404, "nothing stored, not even the thread");
    // A regenerate of a message the chat does not have: refused, the chat unchanged.
    reply(&chat.send(json!({"id": "kept", "message": user("u1", "hi")})));
    let before = chat.get("/api/chat/kept/messages");
    let response = chat.send(json!({
        "id": "kept", "messages": [user("u1", "hi")], "trigger": "regenerate-message", "messageId": "nope",
    }));
    assert_eq!(response.status, 422, "{:?}", response.body);
    assert_eq!(chat.get("/api/chat/kept/messages"), before);
}

/// Rows read and SQLite VM steps of one chat turn.
fn turn_cost(chat: &Chat, body: Value) -> (u64, u64, Value) {
    let exec = chat.store.exec();
    let (rows, steps) = (exec.rows_returned.get(), exec.vm_steps.get());
    let (_, answer) = reply(&chat.send(body));
    (
        exec.rows_returned.get() - rows,
        exec.vm_steps.get() - steps,
        answer,
    )
}

#[test]
fn a_slim_turn_costs_the_same_at_turn_150_as_at_turn_60_and_a_whole_one_reads_each_id_once() {
    let (slim, whole) = (Chat::new(), Chat::new());
    let mut transcript: Vec<Value> = Vec::new();
    let mut slim_costs = Vec::new();
    let mut whole_costs = Vec::new();
    for turn in 1..=150 {
        let said = user(
            &format!("u{turn}"),
            &format!("Turn {turn}: {}", "x".repeat(100)),
        );
        let (rows, steps, _) = turn_cost(&slim, json!({"id": "long", "message": said}));
        slim_costs.push((rows, steps));
        transcript.push(said);
        let (rows, steps, answer) =
            turn_cost(&whole, json!({"id": "long", "messages": transcript}));
        whole_costs.push((rows, steps));
        transcript.push(answer);
    }
    let (at_60, at_150) = (slim_costs[59], slim_costs[149]);
    assert_eq!(at_60.0, at_150.0, "slim: rows read per turn at 60 vs 150");
    assert!(
        at_150.1 as f64 <= 1.1 * at_60.1 as f64,
        "slim: VM steps grew {at_60:?} → {at_150:?}"
    );
    // The whole transcript: an id is read at most once while the object stays up (the
    // remembered tail and the ids looked up before answer the rest), so a turn reads
    // the one or two ids that left the window since, not one row per message sent.
    let most = |turns: std::ops::Range<usize>| {
        whole_costs[turns]
            .iter()
            .fold((0, 0), |most, c| (most.0.max(c.0), most.1.max(c.1)))
    };
    let (around_60, around_150) = (most(55..65), most(140..150));
    assert!(
        around_60.0 <= 2 && around_150.0 <= around_60.0 && around_150.1 <= around_60.1,
        "whole: rows read and VM steps per turn, most of turns 56–65 {around_60:?}, of 141–150 {around_150:?}"
    );
    let (at_60, at_150) = (whole_costs[59], whole_costs[149]);
    eprintln!("chat turn cost (rows read, VM steps): slim {slim_costs_60:?} at 60, {slim_costs_150:?} at 150; whole {at_60:?} at 60, {at_150:?} at 150",
        slim_costs_60 = slim_costs[59], slim_costs_150 = slim_costs[149]);
    for chat in [&slim, &whole] {
        assert_eq!(
            chat.get("/api/chat/long/messages")
                .as_array()
                .unwrap()
                .len(),
            300
        );
    }
}

#[test]
fn jwt_users_see_only_their_own_chats() {
    let chat = Chat::new();
    let secret = b"aisdk-native-test-secret-32-bytes!";
    let info = support::jwt_server(secret);
    let call = |req: HttpRequest, who: &str| {
        let req = req.with_header("authorization", &support::bearer(who, secret));
        support::serve_demo(&chat.store, &info, &chat.gate, &req)
    };
    let turn = json!({"id": "mine", "message": user("u1", "My name is Sam")});
    let sam = call(HttpRequest::json("POST", "/api/chat", &turn), "sam");
    assert_eq!(sam.status, 200);
    let eve = call(HttpRequest::json("POST", "/api/chat", &turn), "eve");
    assert_eq!(eve.status, 404, "{:?}", eve.body);
    assert_eq!(
        call(HttpRequest::empty("GET", "/api/chat/mine/messages"), "eve").status,
        404
    );
    let own = call(HttpRequest::empty("GET", "/api/chat/mine/messages"), "sam");
    assert_eq!(own.json().unwrap().as_array().unwrap().len(), 2);
    let anonymous = support::serve_demo(
        &chat.store,
        &info,
        &chat.gate,
        &HttpRequest::json("POST", "/api/chat", &turn),
    );
    assert_eq!(anonymous.status, 401);
}
