//! Assistants on real SQLite: versions, search, sort and paging, owner scoping (the SQL
//! layer); and the API's assistant routes through a backend that keeps them, as the
//! worker's assistants objects do (system assistant merged, `delete_threads`, JWT
//! isolation, runs resolving their assistant's settings).

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;

use edge_memory::api::assistants::{self, AssistantCall, RunAssistant};
use edge_memory::api::directory::Shard;
use edge_memory::api::{
    self, HttpRequest, HttpResponse, IndexUpdate, LocalBackend, RunGate, RunRequest, ServerInfo,
    ThreadCall, ThreadCommand,
};
use edge_memory::chat::demo::MemoryDemoResponder;
use edge_memory::chat::Engine;
use edge_memory::checkpoint::assistants::{
    Assistant, AssistantPatch, AssistantSearch, AssistantSortKey, Created, SqlAssistants,
};
use edge_memory::checkpoint::ThreadSearch;
use edge_memory::runtime::{SystemClock, SystemEntropy};
use edge_memory::thread::{ThreadId, ThreadRecord};
use edge_memory::Result;
use serde_json::{json, Map, Value};

type Store = SqlAssistants<support::RusqliteExec>;

fn store() -> Store {
    SqlAssistants::new(support::RusqliteExec::in_memory())
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn assistant(id: &str, name: &str, created: i64, metadata: Value) -> Assistant {
    let config = obj(json!({"configurable": {"system_prompt": format!("I am {name}")}}));
    Assistant {
        assistant_id: id.to_string(),
        graph_id: "agent".into(),
        context: edge_memory::checkpoint::assistants::context_of(&config),
        config,
        metadata: obj(metadata),
        name: name.into(),
        description: None,
        version: 1,
        created_at_ms: created,
        updated_at_ms: created,
    }
}

fn ids(found: &[Assistant]) -> Vec<&str> {
    found.iter().map(|a| a.assistant_id.as_str()).collect()
}

#[test]
fn each_update_is_a_new_version_and_latest_restores_one() {
    let s = store();
    let a = assistant("a", "first", 10, json!({"team": "x", "v": 1}));
    assert_eq!(s.create("", &a).unwrap(), Created::New(a.clone()));
    let mut other = a.clone();
    other.name = "changed".into();
    assert_eq!(s.create("", &other).unwrap(), Created::Existing(a.clone()));

    let patch = AssistantPatch {
        name: Some("renamed".into()),
        metadata: Some(obj(json!({"v": 2, "extra": true}))),
        ..AssistantPatch::default()
    };
    let v2 = s.update("", "a", &patch, 20).unwrap();
    assert_eq!((v2.version, v2.name.as_str()), (2, "renamed"));
    assert_eq!(
        Value::Object(v2.metadata.clone()),
        json!({"team": "x", "v": 2, "extra": true})
    );
    assert_eq!((v2.created_at_ms, v2.updated_at_ms), (10, 20));
    let config = obj(json!({"configurable": {"model": "m-2"}}));
    let v3 = s
        .update(
            "",
            "a",
            &AssistantPatch {
                config: Some(config.clone()),
                ..AssistantPatch::default()
            },
            30,
        )
        .unwrap();
    assert_eq!(v3.config, config, "a config is replaced whole");
    assert_eq!(Value::Object(v3.context), json!({"model": "m-2"}));

    let versions = s.versions("", "a", &Map::new(), (10, 0)).unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert_eq!(versions[2].created_at_ms, 10);
    assert_eq!(versions[0].created_at_ms, 30);
    let page = s.versions("", "a", &Map::new(), (1, 1)).unwrap();
    assert_eq!(page[0].version, 2);
    let v1_only = s.versions("", "a", &obj(json!({"v": 1})), (10, 0)).unwrap();
    assert_eq!(v1_only.iter().map(|v| v.version).collect::<Vec<_>>(), [1]);

    let back = s.set_latest("", "a", 1, 40).unwrap();
    assert_eq!((back.version, back.name.as_str()), (1, "first"));
    assert_eq!((back.created_at_ms, back.updated_at_ms), (10, 40));
    assert_eq!(s.get("", "a").unwrap(), back);
    let err = s.set_latest("", "a", 99, 50).unwrap_err();
    assert!(not_found(&err), "{err:?}");
    let v4 = s.update("", "a", &AssistantPatch::default(), 60).unwrap();
    assert_eq!(
        v4.version, 4,
        "the next version follows the highest, not the current"
    );
    assert_eq!(v4.name, "first");

    s.delete("", "a").unwrap();
    assert!(not_found(&s.get("", "a").unwrap_err()));
    assert!(not_found(&s.delete("", "a").unwrap_err()));
    assert!(not_found(
        &s.versions("", "a", &Map::new(), (10, 0)).unwrap_err()
    ));
}

fn seeded() -> Store {
    let s = store();
    for (id, name, created, metadata) in [
        ("a1", "alpha", 10, json!({"team": "red", "score": 1.5})),
        ("a2", "beta", 30, json!({"team": "blue"})),
        ("a3", "alphabet", 20, json!({"team": "red", "score": 2.5})),
        ("a4", "gamma", 40, json!({})),
    ] {
        s.create("", &assistant(id, name, created, metadata))
            .unwrap();
    }
    s
}

fn search(sort_by: AssistantSortKey, ascending: bool) -> AssistantSearch {
    AssistantSearch {
        sort_by,
        ascending,
        limit: 10,
        ..AssistantSearch::default()
    }
}

#[test]
fn search_filters_sorts_and_pages_in_sql() {
    let s = seeded();
    let newest = search(AssistantSortKey::CreatedAt, false);
    assert_eq!(
        ids(&s.search("", &newest).unwrap()),
        ["a4", "a2", "a3", "a1"]
    );
    let by_name = search(AssistantSortKey::Name, true);
    assert_eq!(
        ids(&s.search("", &by_name).unwrap()),
        ["a1", "a3", "a2", "a4"]
    );
    let by_id = search(AssistantSortKey::AssistantId, false);
    assert_eq!(
        ids(&s.search("", &by_id).unwrap()),
        ["a4", "a3", "a2", "a1"]
    );
    let page = AssistantSearch {
        limit: 2,
        offset: 1,
        ..newest.clone()
    };
    assert_eq!(ids(&s.search("", &page).unwrap()), ["a2", "a3"]);

    let named = AssistantSearch {
        name: Some("alpha".into()),
        ..newest.clone()
    };
    assert_eq!(ids(&s.search("", &named).unwrap()), ["a3", "a1"]);
    assert_eq!(s.count("", &named).unwrap(), 2);
    let red = AssistantSearch {
        metadata: obj(json!({"team": "red"})),
        ..newest.clone()
    };
    assert_eq!(ids(&s.search("", &red).unwrap()), ["a3", "a1"]);
    // A float is not decided by SQL: filtered again in Rust, exactly.
    let score = AssistantSearch {
        metadata: obj(json!({"score": 2.5})),
        ..newest.clone()
    };
    assert_eq!(ids(&s.search("", &score).unwrap()), ["a3"]);
    assert_eq!(s.count("", &score).unwrap(), 1);
    let other_graph = AssistantSearch {
        graph_id: Some("other".into()),
        ..newest.clone()
    };
    assert_eq!(s.count("", &other_graph).unwrap(), 0);
    assert_eq!(s.count("", &newest).unwrap(), 4);
    // The Rust order is SQL's order.
    for key in [
        AssistantSortKey::AssistantId,
        AssistantSortKey::Name,
        AssistantSortKey::CreatedAt,
        AssistantSortKey::UpdatedAt,
    ] {
        for ascending in [true, false] {
            let query = search(key, ascending);
            let found = s.search("", &query).unwrap();
            let mut sorted = found.clone();
            sorted.sort_by(|a, b| query.compare(a, b));
            assert_eq!(found, sorted, "{key:?} ascending={ascending}");
        }
    }
}

#[test]
fn owners_never_see_each_others_assistants() {
    let s = store();
    s.create("ann", &assistant("same-id", "ann's", 10, json!({})))
        .unwrap();
    let bobs = assistant("same-id", "bob's", 20, json!({}));
    assert_eq!(s.create("bob", &bobs).unwrap(), Created::New(bobs));
    assert_eq!(s.get("ann", "same-id").unwrap().name, "ann's");
    assert_eq!(s.get("bob", "same-id").unwrap().name, "bob's");
    assert!(not_found(&s.get("", "same-id").unwrap_err()));
    let all = search(AssistantSortKey::CreatedAt, false);
    assert_eq!(s.count("ann", &all).unwrap(), 1);
    assert_eq!(s.count("", &all).unwrap(), 0);
    s.update("bob", "same-id", &AssistantPatch::default(), 30)
        .unwrap();
    assert_eq!(s.get("ann", "same-id").unwrap().version, 1);
    s.delete("ann", "same-id").unwrap();
    assert_eq!(s.get("bob", "same-id").unwrap().version, 2);
}

/// The threads of the engine's store, and assistants apart, as the worker keeps them
/// (runs record the assistant they were resolved with).
struct AssistantsBackend<'a> {
    local: LocalBackend<'a, support::Store, MemoryDemoResponder>,
    assistants: Store,
    runs: RefCell<Vec<RunAssistant>>,
}

impl api::Backend for AssistantsBackend<'_> {
    async fn call(&self, call: ThreadCall) -> HttpResponse {
        if let ThreadCommand::Run(run) = &call.command {
            self.runs.borrow_mut().push(run.assistant.clone());
        }
        self.local.call(call).await
    }

    async fn call_stateless(&self, run: RunRequest) -> HttpResponse {
        self.runs.borrow_mut().push(run.assistant.clone());
        self.local.call_stateless(run).await
    }

    fn search_shards(&self, query: &ThreadSearch) -> Vec<Shard> {
        self.local.search_shards(query)
    }

    fn run_shard(&self, run_id: &str, owner: Option<&str>) -> Shard {
        self.local.run_shard(run_id, owner)
    }

    async fn index_apply(&self, shard: &Shard, update: &IndexUpdate) -> Result<()> {
        self.local.index_apply(shard, update).await
    }

    async fn index_search(&self, shard: &Shard, query: &ThreadSearch) -> Result<Vec<ThreadRecord>> {
        self.local.index_search(shard, query).await
    }

    async fn index_count(&self, shard: &Shard, query: &ThreadSearch) -> Result<usize> {
        self.local.index_count(shard, query).await
    }

    async fn run_threads(&self, shard: &Shard, run_ids: &[String]) -> Result<Vec<ThreadId>> {
        self.local.run_threads(shard, run_ids).await
    }

    async fn assistant_call(&self, call: AssistantCall) -> HttpResponse {
        use edge_memory::runtime::Clock;
        assistants::execute(&self.assistants, call, SystemClock.now_ms())
    }
}

const SECRET: &[u8] = b"assistants-secret-0123456789abcd";

struct Server<'a> {
    backend: AssistantsBackend<'a>,
    info: ServerInfo,
}

impl Server<'_> {
    fn send(&self, req: HttpRequest, user: Option<&str>) -> HttpResponse {
        let req = match user {
            Some(sub) => req.with_header("authorization", &support::bearer(sub, SECRET)),
            None => req,
        };
        pollster::block_on(api::serve(
            &req,
            &self.info,
            &SystemClock,
            &SystemEntropy,
            &self.backend,
        ))
    }

    fn post(&self, path: &str, body: Value, user: Option<&str>) -> HttpResponse {
        self.send(HttpRequest::json("POST", path, &body), user)
    }

    fn json(&self, response: HttpResponse) -> Value {
        response.json().cloned().expect("a JSON body")
    }
}

fn with_server(info: ServerInfo, test: impl FnOnce(&Server<'_>)) {
    let threads = support::sqlite_store();
    let gate = RunGate::new();
    let engine = Engine::new(&threads, &MemoryDemoResponder, &SystemClock, &SystemEntropy);
    let server = Server {
        backend: AssistantsBackend {
            local: LocalBackend {
                engine,
                gate: &gate,
            },
            assistants: store(),
            runs: RefCell::new(Vec::new()),
        },
        info,
    };
    test(&server);
}

fn open_info() -> ServerInfo {
    let mut info = ServerInfo::default();
    info.auth.not_configured = None;
    info
}

fn say(assistant_id: &str, text: &str) -> Value {
    json!({"assistant_id": assistant_id, "input": {"messages": [{"role": "user", "content": text}]}})
}

#[test]
fn the_api_creates_versions_searches_and_runs_assistants() {
    with_server(open_info(), |s| {
        let created = s.json(s.post(
            "/assistants",
            json!({"graph_id": "agent", "name": "pirate", "metadata": {"team": "ref"},
                "config": {"configurable": {"system_prompt": "Talk like a pirate.", "temperature": 0.3}}}),
            None,
        ));
        let id = created["assistant_id"].as_str().unwrap().to_string();
        assert_eq!(created["version"], 1);
        assert_eq!(
            created["context"],
            json!({"system_prompt": "Talk like a pirate.", "temperature": 0.3})
        );
        let again = s.post(
            "/assistants",
            json!({"graph_id": "agent", "assistant_id": id}),
            None,
        );
        assert_eq!(again.status, 409);
        let kept = s.post(
            "/assistants",
            json!({"graph_id": "agent", "assistant_id": id, "if_exists": "do_nothing", "name": "other"}),
            None,
        );
        assert_eq!(s.json(kept)["name"], "pirate");
        let patched = s.send(
            HttpRequest::json(
                "PATCH",
                &format!("/assistants/{id}"),
                &json!({"name": "corsair"}),
            ),
            None,
        );
        assert_eq!(s.json(patched)["version"], 2);

        // The system assistant is listed (last: it is the oldest), and counted.
        let all = s.json(s.post("/assistants/search", json!({}), None));
        let names: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["corsair", "agent"]);
        assert_eq!(
            s.json(s.post("/assistants/count", json!({}), None)),
            json!(2)
        );
        let mine = s.post(
            "/assistants/count",
            json!({"metadata": {"team": "ref"}}),
            None,
        );
        assert_eq!(s.json(mine), json!(1));
        let picked = s.json(s.post(
            "/assistants/search",
            json!({"select": ["assistant_id", "name"], "limit": 1}),
            None,
        ));
        assert_eq!(picked, json!([{"assistant_id": id, "name": "corsair"}]));
        let versions = s.json(s.post(&format!("/assistants/{id}/versions"), json!({}), None));
        assert_eq!(versions.as_array().unwrap().len(), 2);
        assert!(versions[0].get("updated_at").is_none());
        let schemas = s.json(s.send(
            HttpRequest::empty("GET", &format!("/assistants/{id}/schemas")),
            None,
        ));
        assert_eq!(schemas["input_schema"]["required"], json!(["messages"]));

        // A run on it carries its settings to the thread; the thread names it.
        let run = s.post("/threads/t1/runs/wait", json!({"if_not_exists": "create", "assistant_id": id, "input": {"messages": [{"role": "user", "content": "hi"}]}}), None);
        assert_eq!(run.status, 200);
        let resolved = s.backend.runs.borrow().last().cloned().unwrap();
        assert_eq!(
            resolved.overrides.system_prompt.as_deref(),
            Some("Talk like a pirate.")
        );
        assert_eq!(
            resolved.overrides.temperature,
            serde_json::Number::from_f64(0.3)
        );
        let thread = s.json(s.send(HttpRequest::empty("GET", "/threads/t1"), None));
        assert_eq!(thread["metadata"]["assistant_id"], json!(id));
        let system_run = s.post("/runs/wait", say("agent", "hello"), None);
        assert_eq!(system_run.status, 200);
        assert!(s.backend.runs.borrow().last().unwrap().overrides.is_empty());
    });
}

#[test]
fn delete_threads_deletes_exactly_the_assistants_threads() {
    with_server(open_info(), |s| {
        let a = s.json(s.post("/assistants", json!({"graph_id": "agent"}), None));
        let id = a["assistant_id"].as_str().unwrap();
        for thread in ["mine-1", "mine-2"] {
            let body = json!({"if_not_exists": "create", "assistant_id": id, "input": {"messages": [{"role": "user", "content": "hi"}]}});
            assert_eq!(
                s.post(&format!("/threads/{thread}/runs/wait"), body, None)
                    .status,
                200
            );
        }
        let other = json!({"if_not_exists": "create", "assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "hi"}]}});
        assert_eq!(s.post("/threads/theirs/runs/wait", other, None).status, 200);
        let delete = HttpRequest::empty("DELETE", &format!("/assistants/{id}"))
            .with_query("delete_threads=true");
        assert_eq!(s.send(delete.clone(), None).status, 204);
        for (thread, status) in [("mine-1", 404), ("mine-2", 404), ("theirs", 200)] {
            let got = s.send(
                HttpRequest::empty("GET", &format!("/threads/{thread}")),
                None,
            );
            assert_eq!(got.status, status, "{thread}");
        }
        assert_eq!(s.send(delete, None).status, 404);
        let run = s.post("/threads/theirs/runs/wait", say(id, "again"), None);
        assert_eq!(run.status, 404, "a deleted assistant runs nothing");
    });
}

#[test]
fn jwt_users_see_only_their_assistants() {
    with_server(support::jwt_server(SECRET), |s| {
        let ann = s.json(s.post(
            "/assistants",
            json!({"graph_id": "agent", "name": "ann's"}),
            Some("ann"),
        ));
        let id = ann["assistant_id"].as_str().unwrap();
        let get = || HttpRequest::empty("GET", &format!("/assistants/{id}"));
        assert_eq!(s.send(get(), Some("ann")).status, 200);
        assert_eq!(s.send(get(), Some("bob")).status, 404);
        let patch = HttpRequest::json("PATCH", &format!("/assistants/{id}"), &json!({"name": "x"}));
        assert_eq!(s.send(patch, Some("bob")).status, 404);
        let delete = HttpRequest::empty("DELETE", &format!("/assistants/{id}"));
        assert_eq!(s.send(delete, Some("bob")).status, 404);
        assert_eq!(
            s.json(s.post("/assistants/count", json!({}), Some("bob"))),
            json!(1)
        );
        assert_eq!(
            s.json(s.post("/assistants/count", json!({}), Some("ann"))),
            json!(2)
        );
        let run = s.post("/runs/wait", say(id, "hi"), Some("bob"));
        assert_eq!(run.status, 404);
        assert_eq!(s.post("/runs/wait", say(id, "hi"), Some("ann")).status, 200);
        assert_eq!(s.send(get(), Some("ann")).status, 200);
        assert_eq!(s.send(get(), None).status, 401);
    });
}

#[test]
fn bad_assistant_requests_are_4xx_naming_the_problem() {
    with_server(open_info(), |s| {
        for (method, path, body, status, needle) in [
            ("POST", "/assistants", json!({}), 422, "graph_id"),
            (
                "POST",
                "/assistants",
                json!({"graph_id": "nope"}),
                404,
                "Graph 'nope'",
            ),
            (
                "POST",
                "/assistants",
                json!({"graph_id": "agent", "assistant_id": "x"}),
                422,
                "UUID",
            ),
            (
                "POST",
                "/assistants",
                json!({"graph_id": "agent", "config": []}),
                422,
                "config",
            ),
            (
                "POST",
                "/assistants",
                json!({"graph_id": "agent", "config": {"configurable": 1}}),
                422,
                "config.configurable",
            ),
            (
                "POST",
                "/assistants",
                json!({"graph_id": "agent", "context": {"temperature": "hot"}}),
                422,
                "context.temperature",
            ),
            (
                "POST",
                "/assistants",
                json!({"graph_id": "agent", "if_exists": "sometimes"}),
                422,
                "if_exists",
            ),
            (
                "POST",
                "/assistants/search",
                json!({"sort_by": "mood"}),
                422,
                "sort_by",
            ),
            (
                "POST",
                "/assistants/search",
                json!({"select": ["secrets"]}),
                422,
                "select",
            ),
            (
                "POST",
                "/assistants/search",
                json!({"limit": -1}),
                422,
                "limit",
            ),
            (
                "GET",
                "/assistants/00000000-0000-4000-8000-000000000000",
                Value::Null,
                404,
                "No assistant found",
            ),
            (
                "GET",
                "/assistants/nope",
                Value::Null,
                404,
                "No assistant found for \"nope\"",
            ),
            (
                "PATCH",
                "/assistants/agent",
                json!({"name": "x"}),
                422,
                "system assistant",
            ),
            (
                "DELETE",
                "/assistants/agent",
                Value::Null,
                422,
                "system assistant",
            ),
            (
                "POST",
                "/assistants/00000000-0000-4000-8000-000000000000/latest",
                json!({"version": 0}),
                422,
                "version",
            ),
            (
                "POST",
                "/threads/t/runs/wait",
                say("00000000-0000-4000-8000-000000000000", "hi"),
                404,
                "No assistant found",
            ),
            (
                "POST",
                "/runs/wait",
                say("other-graph", "hi"),
                404,
                "No assistant found",
            ),
        ] {
            let req = if body.is_null() {
                HttpRequest::empty(method, path)
            } else {
                HttpRequest::json(method, path, &body)
            };
            let got = s.send(req, None);
            let detail = s.json(got.clone())["detail"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert_eq!(got.status, status, "{method} {path} {body}: {detail}");
            assert!(
                detail.contains(needle),
                "{method} {path}: {detail:?} lacks {needle:?}"
            );
        }
        assert_eq!(
            s.json(s.post("/assistants/count", json!({}), None)),
            json!(1)
        );
    });
}

/// An assistant (or its version) that does not exist: answered 404.
fn not_found(err: &edge_memory::Error) -> bool {
    matches!(err, edge_memory::Error::NotFound { .. })
}
