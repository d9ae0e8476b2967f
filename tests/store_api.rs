//! The Store API natively: requests planned as the worker plans them, carried out on
//! shards that are separate SQLite databases (as each shard is its own object on the
//! worker), so fan-out, merge and paging across shards and owner isolation are real.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use edge_memory::api::store::{self, execute_shard, ShardCommand, StoreShard, StoreShards};
use edge_memory::api::{self, HttpRequest, HttpResponse, Plan, ServerInfo};
use edge_memory::runtime::{Clock, SystemClock, SystemEntropy};
use edge_memory::store::embed::LocalEmbedder;
use edge_memory::store::sql::SqlStore;
use edge_memory::Result;
use serde_json::{json, Value};

const SECRET: &[u8] = b"store-api-secret-0123456789abcdef";
const KEY: &str = "service-key";

#[derive(Default)]
struct Shards {
    shards: RefCell<HashMap<String, Rc<SqlStore<support::RusqliteExec>>>>,
}

impl StoreShards for Shards {
    async fn shard(&self, shard: &StoreShard, command: &ShardCommand) -> Result<Value> {
        let store = self
            .shards
            .borrow_mut()
            .entry(shard.object_name())
            .or_insert_with(|| Rc::new(SqlStore::new(support::RusqliteExec::in_memory())))
            .clone();
        Ok(execute_shard(&store, command.clone(), SystemClock.now_ms())?.0)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| LocalEmbedder.embed(t)).collect())
    }
}

fn info() -> ServerInfo {
    let mut info = support::jwt_server(SECRET);
    info.auth.api_keys = vec![KEY.to_string()];
    info
}

struct Api {
    shards: Shards,
    info: ServerInfo,
}

impl Api {
    fn new() -> Self {
        Api {
            shards: Shards::default(),
            info: info(),
        }
    }

    fn send(&self, req: HttpRequest, user: Option<&str>) -> HttpResponse {
        let req = match user {
            Some(sub) => req.with_header("authorization", &support::bearer(sub, SECRET)),
            None => req.with_header("x-api-key", KEY),
        };
        match api::plan(&req, &self.info, SystemClock.now_ms(), &SystemEntropy) {
            Plan::Store(plan) => pollster::block_on(store::carry_out(plan, &self.shards)),
            Plan::Respond(response) => response,
            other => panic!("not a store plan: {other:?}"),
        }
    }

    fn put(&self, ns: &[&str], key: &str, value: Value, user: Option<&str>) -> HttpResponse {
        let body = json!({"namespace": ns, "key": key, "value": value});
        self.send(HttpRequest::json("PUT", "/store/items", &body), user)
    }

    fn json(&self, method: &str, path: &str, body: Value, user: Option<&str>) -> Value {
        let response = self.send(HttpRequest::json(method, path, &body), user);
        assert_eq!(response.status, 200, "{path} {body}: {:?}", response.body);
        response.json().cloned().unwrap()
    }

    fn get(&self, query: &str, user: Option<&str>) -> HttpResponse {
        self.send(
            HttpRequest::empty("GET", "/store/items").with_query(query),
            user,
        )
    }
}

fn keys(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let ns: Vec<&str> = i["namespace"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            format!("{}/{}", ns.join("."), i["key"].as_str().unwrap())
        })
        .collect()
}

#[test]
fn put_get_delete_in_langgraph_shapes() {
    let api = Api::new();
    assert_eq!(
        api.put(&["ref", "users"], "u1", json!({"name": "Ada"}), None)
            .status,
        204
    );
    let got = api.get("namespace=ref.users&key=u1", None);
    assert_eq!(got.status, 200);
    let item = got.json().unwrap();
    assert_eq!(item["namespace"], json!(["ref", "users"]));
    assert_eq!(item["value"], json!({"name": "Ada"}));
    assert!(item["created_at"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(
        api.get("namespace=ref.users&key=nope", None).json(),
        Some(&Value::Null)
    );
    let delete = json!({"namespace": ["ref", "users"], "key": "u1"});
    let deleted = api.send(HttpRequest::json("DELETE", "/store/items", &delete), None);
    assert_eq!(deleted.status, 204);
    assert_eq!(
        api.get("namespace=ref.users&key=u1", None).json(),
        Some(&Value::Null)
    );
}

#[test]
fn a_short_prefix_fans_out_merges_and_pages_across_shards() {
    let api = Api::new();
    let mut expected = Vec::new();
    for user in 0..12 {
        for key in ["a", "b"] {
            let ns = ["memories", &format!("user{user:02}")];
            api.put(&ns, key, json!({"user": user, "k": key}), None);
            expected.push(format!("memories.user{user:02}/{key}"));
        }
    }
    let objects = api.shards.shards.borrow().len();
    assert!(
        objects > 4,
        "the users' namespaces spread over shards: {objects}"
    );
    expected.sort();
    let mut pages = Vec::new();
    for offset in (0..24).step_by(5) {
        let body = json!({"namespace_prefix": ["memories"], "limit": 5, "offset": offset});
        pages.extend(keys(&api.json("POST", "/store/items/search", body, None)));
    }
    assert_eq!(pages, expected);
    // A two-label prefix reads one shard.
    let body = json!({"namespace_prefix": ["memories", "user03"]});
    assert_eq!(
        keys(&api.json("POST", "/store/items/search", body, None)),
        ["memories.user03/a", "memories.user03/b"]
    );
    let body = json!({"prefix": ["memories"], "max_depth": 1});
    let listed = api.json("POST", "/store/namespaces", body, None);
    assert_eq!(
        listed["namespaces"],
        json!([["memories"]]),
        "deduplicated across shards"
    );
    let body = json!({"limit": 3, "offset": 2});
    let listed = api.json("POST", "/store/namespaces", body, None);
    assert_eq!(
        listed["namespaces"],
        json!([
            ["memories", "user02"],
            ["memories", "user03"],
            ["memories", "user04"]
        ])
    );
}

#[test]
fn semantic_search_across_shards_with_a_filter() {
    let api = Api::new();
    let facts = [
        (
            "alice",
            "Alice's favourite programming language is Rust",
            "pref",
        ),
        ("bob", "Bob paid invoice 4411 by bank transfer", "billing"),
        ("carol", "Carol prefers dark mode in the editor", "pref"),
        ("dave", "Dave's meeting moved to Thursday", "calendar"),
    ];
    for (user, text, kind) in facts {
        api.put(
            &["facts", user],
            "f",
            json!({"text": text, "kind": kind}),
            None,
        );
    }
    let body = json!({"namespace_prefix": ["facts"], "query": "which programming language?"});
    let found = api.json("POST", "/store/items/search", body, None);
    assert_eq!(keys(&found)[0], "facts.alice/f");
    let scores: Vec<f64> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let body = json!({"namespace_prefix": ["facts"], "query": "dark mode editor",
                      "filter": {"kind": "pref"}, "limit": 1});
    let found = api.json("POST", "/store/items/search", body, None);
    assert_eq!(keys(&found), ["facts.carol/f"]);
}

#[test]
fn users_see_only_their_own_root() {
    let api = Api::new();
    api.put(&["prefs"], "theme", json!({"dark": true}), Some("alice"));
    api.put(&["prefs"], "theme", json!({"dark": false}), Some("bob"));
    let alice = api.get("namespace=prefs&key=theme", Some("alice"));
    assert_eq!(alice.json().unwrap()["value"], json!({"dark": true}));
    let bob = api.get("namespace=prefs&key=theme", Some("bob"));
    assert_eq!(bob.json().unwrap()["value"], json!({"dark": false}));
    assert_eq!(
        api.get("namespace=prefs&key=theme", Some("eve")).json(),
        Some(&Value::Null)
    );
    let all = api.json("POST", "/store/items/search", json!({}), Some("eve"));
    assert_eq!(all["items"], json!([]));
    let listed = api.json("POST", "/store/namespaces", json!({}), Some("eve"));
    assert_eq!(listed["namespaces"], json!([]));
    // A service's shared space is apart from the users' roots.
    assert_eq!(
        api.get("namespace=prefs&key=theme", None).json(),
        Some(&Value::Null)
    );
    let mine = api.json("POST", "/store/items/search", json!({}), Some("alice"));
    assert_eq!(keys(&mine), ["prefs/theme"]);
}

#[test]
fn a_service_reaches_a_user_through_the_root_label_and_no_further() {
    let api = Api::new();
    api.put(&["prefs"], "theme", json!({"dark": true}), Some("alice"));
    api.put(&["prefs", "ui"], "font", json!({"size": 14}), Some("alice"));
    api.put(
        &["prefs"],
        "theme",
        json!({"dark": false}),
        Some("a.b@x.io"),
    );
    // The service names alice's `["prefs"]` as `["user:alice", "prefs"]`.
    let item = api.get("namespace=user:alice.prefs&key=theme", None);
    let item = item.json().unwrap();
    assert_eq!(item["value"], json!({"dark": true}));
    assert_eq!(item["namespace"], json!(["user:alice", "prefs"]));
    let found = api.json(
        "POST",
        "/store/items/search",
        json!({"namespace_prefix": ["user:alice"]}),
        None,
    );
    assert_eq!(
        keys(&found),
        ["user:alice.prefs/theme", "user:alice.prefs.ui/font"]
    );
    let listed = api.json(
        "POST",
        "/store/namespaces",
        json!({"prefix": ["user:alice"], "max_depth": 2}),
        None,
    );
    assert_eq!(listed["namespaces"], json!([["user:alice", "prefs"]]));
    let root = api.json(
        "POST",
        "/store/namespaces",
        json!({"prefix": ["user:alice"], "max_depth": 1}),
        None,
    );
    assert_eq!(root["namespaces"], json!([["user:alice"]]));
    // A sub with a period: escaped in its label.
    let dotted = api.get("namespace=user:a%252Eb@x%252Eio.prefs&key=theme", None);
    assert_eq!(dotted.json().unwrap()["value"], json!({"dark": false}));
    // What the service writes into alice's root, alice reads as her own; bob does not.
    let body = json!({"namespace": ["user:alice", "facts"], "key": "f", "value": {"t": 1}});
    let put = api.send(HttpRequest::json("PUT", "/store/items", &body), None);
    assert_eq!(put.status, 204);
    let mine = api.get("namespace=facts&key=f", Some("alice"));
    assert_eq!(mine.json().unwrap()["value"], json!({"t": 1}));
    assert_eq!(
        api.get("namespace=facts&key=f", Some("bob")).json(),
        Some(&Value::Null)
    );
    // A service search without a root covers the shared shards only.
    let shared = api.json("POST", "/store/items/search", json!({}), None);
    assert_eq!(shared["items"], json!([]));
    let names = api.json("POST", "/store/namespaces", json!({}), None);
    assert_eq!(names["namespaces"], json!([]));
    // A root with nothing after it is no item's namespace.
    let body = json!({"namespace": ["user:alice"], "key": "k", "value": {}});
    let refused = api.send(HttpRequest::json("PUT", "/store/items", &body), None);
    assert_eq!(refused.status, 422);
    let bad = json!({"namespace": ["user:al%ice", "x"], "key": "k", "value": {}});
    let refused = api.send(HttpRequest::json("PUT", "/store/items", &bad), None);
    assert_eq!(refused.status, 422);
}

#[test]
fn bad_input_is_a_4xx_naming_it_and_stores_nothing() {
    let api = Api::new();
    let big = "x".repeat(1024 * 1024 + 1);
    for (body, field) in [
        (
            json!({"namespace": "ref", "key": "k", "value": {}}),
            "namespace",
        ),
        (
            json!({"namespace": ["ref.x"], "key": "k", "value": {}}),
            "namespace",
        ),
        (
            json!({"namespace": ["ref", ""], "key": "k", "value": {}}),
            "namespace",
        ),
        (
            json!({"namespace": ["ref", 1], "key": "k", "value": {}}),
            "namespace[1]",
        ),
        (
            json!({"namespace": [], "key": "k", "value": {}}),
            "namespace",
        ),
        (
            json!({"namespace": ["ref"], "key": "k", "value": "text"}),
            "value",
        ),
        (
            json!({"namespace": ["ref"], "key": "k", "value": [1]}),
            "value",
        ),
        (json!({"namespace": ["ref"], "key": 5, "value": {}}), "key"),
        (json!({"namespace": ["ref"], "value": {}}), "key"),
        (
            json!({"namespace": ["ref"], "key": "k", "value": {}, "ttl": -1}),
            "ttl",
        ),
        (
            json!({"namespace": ["ref"], "key": "k", "value": {}, "index": true}),
            "index",
        ),
        (
            json!({"namespace": ["ref"], "key": "k", "value": {"a": big}}),
            "value",
        ),
    ] {
        let response = api.send(HttpRequest::json("PUT", "/store/items", &body), None);
        assert!(
            (400..500).contains(&response.status),
            "{body}: {}",
            response.status
        );
        let detail = response.json().unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(detail.contains(field), "{field}: {detail}");
    }
    for (path, body) in [
        ("/store/items/search", json!({"namespace_prefix": "ref"})),
        ("/store/items/search", json!({"namespace_prefix": ["a.b"]})),
        (
            "/store/items/search",
            json!({"filter": {"a": {"$in": [1]}}}),
        ),
        (
            "/store/items/search",
            json!({"filter": {"a": {"$gt": "x"}}}),
        ),
        ("/store/items/search", json!({"offset": 100_000})),
        ("/store/namespaces", json!({"prefix": ["a.b"]})),
        ("/store/namespaces", json!({"max_depth": 0})),
    ] {
        let response = api.send(HttpRequest::json("POST", path, &body), None);
        assert!(
            (400..500).contains(&response.status),
            "{body}: {}",
            response.status
        );
    }
    for query in ["namespace=ref.users", "key=k", "namespace=ref..users&key=k"] {
        let response = api.get(query, None);
        assert_eq!(response.status, 422, "{query}");
    }
    let listed = api.json("POST", "/store/namespaces", json!({}), None);
    assert_eq!(listed["namespaces"], json!([]), "nothing was stored");
}
