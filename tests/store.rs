//! The store's SQL layer on real SQLite (rusqlite): CRUD, filters and operators,
//! namespaces, pagination, TTL with a test clock, vector ranking against brute force.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(not(target_arch = "wasm32"))]

mod support;

use edge_memory::store::embed::{cosine, LocalEmbedder};
use edge_memory::store::filter::Filter;
use edge_memory::store::sql::SqlStore;
use edge_memory::store::{Item, Namespace, NamespaceQuery, PutItem, SearchQuery};
use serde_json::{json, Map, Value};
use support::RusqliteExec;

const T0: i64 = 1_800_000_000_000;

fn store() -> SqlStore<RusqliteExec> {
    SqlStore::new(RusqliteExec::in_memory())
}

fn ns(labels: &[&str]) -> Namespace {
    Namespace::new(
        labels.iter().map(|s| s.to_string()).collect(),
        "namespace",
        true,
    )
    .unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn put(labels: &[&str], key: &str, value: Value) -> PutItem {
    PutItem {
        namespace: ns(labels),
        key: key.into(),
        value: Some(obj(value)),
        vectors: Vec::new(),
        ttl_minutes: None,
    }
}

fn search(prefix: &[&str]) -> SearchQuery {
    SearchQuery {
        prefix: ns(prefix),
        filter: None,
        limit: 10,
        offset: 0,
        vector: None,
        refresh_ttl: false,
    }
}

fn keys(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| format!("{}/{}", i.namespace.path(), i.key))
        .collect()
}

fn namespaces(query: NamespaceQuery, store: &SqlStore<RusqliteExec>) -> Vec<String> {
    store
        .list_namespaces(&query, T0)
        .unwrap()
        .iter()
        .map(Namespace::path)
        .collect()
}

fn ns_query() -> NamespaceQuery {
    NamespaceQuery {
        prefix: vec![],
        suffix: vec![],
        max_depth: None,
        limit: 100,
        offset: 0,
    }
}

#[test]
fn put_get_update_delete() {
    let s = store();
    s.put(&[put(&["users", "u1"], "k", json!({"a": 1}))], T0)
        .unwrap();
    let item = s
        .get(&ns(&["users", "u1"]), "k", false, T0)
        .unwrap()
        .unwrap();
    assert_eq!(item.value, obj(json!({"a": 1})));
    assert_eq!((item.created_at_ms, item.updated_at_ms), (T0, T0));
    // An update keeps created_at, moves updated_at.
    s.put(&[put(&["users", "u1"], "k", json!({"a": 2}))], T0 + 5)
        .unwrap();
    let item = s
        .get(&ns(&["users", "u1"]), "k", false, T0 + 5)
        .unwrap()
        .unwrap();
    assert_eq!(item.value, obj(json!({"a": 2})));
    assert_eq!((item.created_at_ms, item.updated_at_ms), (T0, T0 + 5));
    // Another namespace, another key: not found.
    assert!(s.get(&ns(&["users"]), "k", false, T0).unwrap().is_none());
    assert!(s
        .get(&ns(&["users", "u1"]), "x", false, T0)
        .unwrap()
        .is_none());
    let mut delete = put(&["users", "u1"], "k", json!({}));
    delete.value = None;
    s.put(&[delete], T0 + 6).unwrap();
    assert!(s
        .get(&ns(&["users", "u1"]), "k", false, T0 + 6)
        .unwrap()
        .is_none());
    assert!(
        namespaces(ns_query(), &s).is_empty(),
        "an emptied namespace is not listed"
    );
}

#[test]
fn namespaces_are_checked() {
    for labels in [vec!["a.b"], vec![""], vec!["ok", ""]] {
        let labels: Vec<String> = labels.into_iter().map(String::from).collect();
        let err = Namespace::new(labels.clone(), "namespace", false).unwrap_err();
        assert!(
            matches!(err, edge_memory::Error::InvalidInput { .. }),
            "{labels:?}"
        );
        assert!(err.to_string().contains("without periods"), "{err}");
    }
    assert!(Namespace::new(vec![], "namespace", false).is_err());
    assert!(Namespace::new(vec!["x".repeat(2000)], "namespace", false).is_err());
}

#[test]
fn search_prefix_order_and_pages() {
    let s = store();
    let puts = [
        put(&["ref", "users"], "u2", json!({"n": 2})),
        put(&["ref", "users"], "u1", json!({"n": 1})),
        put(&["ref"], "root", json!({"n": 0})),
        put(&["ref-x"], "other", json!({"n": 9})),
        put(&["reference"], "other", json!({"n": 9})),
        put(&["ref", "a", "b"], "deep", json!({"n": 3})),
    ];
    s.put(&puts, T0).unwrap();
    let all = s.search(&search(&["ref"]), T0).unwrap();
    assert_eq!(
        keys(&all),
        ["ref/root", "ref.a.b/deep", "ref.users/u1", "ref.users/u2"],
        "the prefix is label by label: ref-x and reference are not under ref"
    );
    let mut q = search(&["ref"]);
    q.limit = 2;
    q.offset = 1;
    assert_eq!(
        keys(&s.search(&q, T0).unwrap()),
        ["ref.a.b/deep", "ref.users/u1"]
    );
    assert_eq!(s.search(&search(&[]), T0).unwrap().len(), 6);
    assert!(s.search(&search(&["zzz"]), T0).unwrap().is_empty());
}

#[test]
fn filters_and_operators() {
    let s = store();
    s.put(
        &[
            put(
                &["p"],
                "ada",
                json!({"lang": "en", "age": 36, "prefs": {"theme": "dark"}}),
            ),
            put(&["p"], "bob", json!({"lang": "fr", "age": 20})),
            put(
                &["p"],
                "cy",
                json!({"lang": "en", "prefs": {"theme": "light"}}),
            ),
            put(&["p"], "dee", json!({"lang": "en", "age": true})),
        ],
        T0,
    )
    .unwrap();
    let run = |f: Value| {
        let mut q = search(&["p"]);
        q.filter = Some(Filter::parse(obj(f)).unwrap());
        keys(&s.search(&q, T0).unwrap())
    };
    assert_eq!(run(json!({"lang": "en"})), ["p/ada", "p/cy", "p/dee"]);
    assert_eq!(run(json!({"prefs": {"theme": "dark"}})), ["p/ada"]);
    assert_eq!(run(json!({"age": {"$gt": 25}})), ["p/ada"]);
    assert_eq!(
        run(json!({"age": {"$lte": 36, "$gte": 20}})),
        ["p/ada", "p/bob"]
    );
    assert_eq!(run(json!({"age": {"$ne": 20}})), ["p/ada", "p/cy", "p/dee"]);
    assert_eq!(
        run(json!({"age": 1})),
        Vec::<String>::new(),
        "true is not 1"
    );
    assert_eq!(run(json!({"lang": {"$eq": "fr"}, "age": 20})), ["p/bob"]);
    assert_eq!(run(json!({"nope": 1})), Vec::<String>::new());
    // Filtered pages count matches only.
    let mut q = search(&["p"]);
    q.filter = Some(Filter::parse(obj(json!({"lang": "en"}))).unwrap());
    q.offset = 1;
    q.limit = 1;
    assert_eq!(keys(&s.search(&q, T0).unwrap()), ["p/cy"]);
}

#[test]
fn list_namespaces_prefix_suffix_depth_pages() {
    let s = store();
    for labels in [
        &["ref", "users"][..],
        &["ref", "prefs", "ui"],
        &["ref", "a", "b", "c"],
        &["other"],
        &["nums"],
    ] {
        s.put(&[put(labels, "k", json!({}))], T0).unwrap();
    }
    assert_eq!(
        namespaces(ns_query(), &s),
        ["nums", "other", "ref.a.b.c", "ref.prefs.ui", "ref.users"]
    );
    let q = |f: &dyn Fn(&mut NamespaceQuery)| {
        let mut q = ns_query();
        f(&mut q);
        namespaces(q, &s)
    };
    assert_eq!(
        q(&|q| q.prefix = vec!["ref".into()]),
        ["ref.a.b.c", "ref.prefs.ui", "ref.users"]
    );
    assert_eq!(q(&|q| q.suffix = vec!["ui".into()]), ["ref.prefs.ui"]);
    assert_eq!(
        q(&|q| q.max_depth = Some(1)),
        ["nums", "other", "ref"],
        "cut and deduplicated"
    );
    assert_eq!(
        q(&|q| {
            q.prefix = vec!["ref".into()];
            q.max_depth = Some(2);
        }),
        ["ref.a", "ref.prefs", "ref.users"]
    );
    assert_eq!(
        q(&|q| q.prefix = vec!["*".into(), "prefs".into()]),
        ["ref.prefs.ui"]
    );
    assert_eq!(
        q(&|q| {
            q.limit = 2;
            q.offset = 1;
        }),
        ["other", "ref.a.b.c"]
    );
}

#[test]
fn namespaces_sort_label_by_label() {
    // "a-x" sorts before "a.b" as text, after ("a", "b") as labels (LangGraph sorts tuples).
    let s = store();
    s.put(
        &[
            put(&["a-x"], "k", json!({})),
            put(&["a", "b"], "k", json!({})),
        ],
        T0,
    )
    .unwrap();
    assert_eq!(namespaces(ns_query(), &s), ["a.b", "a-x"]);
}

#[test]
fn ttl_expires_refreshes_and_sweeps() {
    let s = store();
    let mut short = put(&["t"], "short", json!({"v": 1}));
    short.ttl_minutes = Some(1.0);
    let mut long = put(&["t"], "long", json!({"v": 2}));
    long.ttl_minutes = Some(10.0);
    let forever = put(&["t"], "forever", json!({"v": 3}));
    let earliest = s.put(&[short, long, forever], T0).unwrap();
    assert_eq!(earliest, Some(T0 + 60_000));
    let t = |ms: i64| keys(&s.search(&search(&["t"]), ms).unwrap());
    assert_eq!(t(T0 + 59_999), ["t/forever", "t/long", "t/short"]);
    // Expired: never returned, even before a sweep.
    assert_eq!(t(T0 + 60_000), ["t/forever", "t/long"]);
    assert!(s
        .get(&ns(&["t"]), "short", false, T0 + 60_000)
        .unwrap()
        .is_none());
    // A read with refresh restarts the TTL: 10 minutes from the read.
    let read_at = T0 + 9 * 60_000;
    assert!(s.get(&ns(&["t"]), "long", true, read_at).unwrap().is_some());
    assert_eq!(t(T0 + 10 * 60_000 + 1), ["t/forever", "t/long"]);
    assert_eq!(t(read_at + 10 * 60_000), ["t/forever"]);
    // The sweep deletes the expired rows and names the next expiry.
    assert_eq!(s.sweep(read_at).unwrap(), Some(read_at + 10 * 60_000));
    let rows: i64 = s
        .exec()
        .conn()
        .query_row("SELECT COUNT(*) FROM em_store_items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2);
    assert_eq!(
        s.row_counts().unwrap().0,
        2,
        "the dev statistics count the same rows"
    );
    assert_eq!(s.sweep(read_at + 10 * 60_000).unwrap(), None);
    // An expired namespace is not listed; an item put over an expired one is new.
    let mut again = put(&["t"], "long", json!({"v": 4}));
    again.ttl_minutes = Some(1.0);
    s.put(&[again], T0 + 100 * 60_000).unwrap();
    let item = s
        .get(&ns(&["t"]), "long", false, T0 + 100 * 60_000)
        .unwrap()
        .unwrap();
    assert_eq!(item.created_at_ms, T0 + 100 * 60_000);
}

fn indexed(labels: &[&str], key: &str, text: &str) -> PutItem {
    let mut item = put(labels, key, json!({ "text": text }));
    item.vectors = vec![("text".into(), LocalEmbedder.embed(text))];
    item
}

#[test]
fn semantic_search_ranks_the_stored_fact_first() {
    let s = store();
    let facts = [
        ("f1", "The user's favourite programming language is Rust"),
        ("f2", "Invoice 4411 was paid by bank transfer on Tuesday"),
        ("f3", "The weather in Lisbon is sunny this week"),
        ("f4", "Meeting with the design team moved to Thursday"),
        ("f5", "The user prefers dark mode in every editor"),
    ];
    let puts: Vec<PutItem> = facts.iter().map(|(k, t)| indexed(&["m"], k, t)).collect();
    s.put(&puts, T0).unwrap();
    for (question, want) in [
        ("which programming language does the user like?", "f1"),
        ("does the user prefer a dark editor mode?", "f5"),
        ("was the invoice paid?", "f2"),
    ] {
        let mut q = search(&["m"]);
        q.vector = Some(LocalEmbedder.embed(question));
        let found = s.search(&q, T0).unwrap();
        assert_eq!(found[0].key, want, "{question}");
        assert!(found[0].score.unwrap() > found[1].score.unwrap());
    }
}

#[test]
fn ranking_equals_brute_force() {
    let s = store();
    let words = [
        "alpha", "beta", "gamma", "delta", "memory", "edge", "store", "user",
    ];
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut all = Vec::new();
    for i in 0..200 {
        let text: Vec<&str> = (0..4).map(|_| words[next() % words.len()]).collect();
        let labels = if i % 3 == 0 {
            vec!["a", "x"]
        } else {
            vec!["a", "y"]
        };
        let key = format!("k{i:03}");
        let mut item = indexed(&labels, &key, &text.join(" "));
        if i % 10 == 0 {
            item.vectors.clear(); // not indexed: after the scored items
        } else if i % 7 == 0 {
            // Two texts: the best one counts.
            let extra = words[next() % words.len()];
            item.vectors
                .push(("more".into(), LocalEmbedder.embed(extra)));
        }
        all.push(item);
    }
    s.put(&all, T0).unwrap();
    let query = LocalEmbedder.embed("memory at the edge");
    // Brute force: every item's best cosine, sorted, ties by path then key.
    let mut expected: Vec<(String, Option<f64>)> = all
        .iter()
        .map(|p| {
            let best = p
                .vectors
                .iter()
                .map(|(_, v)| cosine(&query, v))
                .fold(None, |b: Option<f64>, x| Some(b.map_or(x, |b| b.max(x))));
            (format!("{}/{}", p.namespace.path(), p.key), best)
        })
        .collect();
    expected.sort_by(|a, b| match (a.1, b.1) {
        (Some(x), Some(y)) => y.total_cmp(&x).then(a.0.cmp(&b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    for (offset, limit) in [(0, 10), (5, 20), (150, 100), (195, 10)] {
        let mut q = search(&["a"]);
        q.vector = Some(query.clone());
        q.offset = offset;
        q.limit = limit;
        let got: Vec<(String, Option<f64>)> = s
            .search(&q, T0)
            .unwrap()
            .into_iter()
            .map(|i| (format!("{}/{}", i.namespace.path(), i.key), i.score))
            .collect();
        let want: Vec<_> = expected.iter().skip(offset).take(limit).cloned().collect();
        assert_eq!(got, want, "offset {offset} limit {limit}");
    }
    // With a filter: only matches are ranked.
    let mut q = search(&["a", "x"]);
    q.vector = Some(query);
    q.limit = 1000;
    assert!(s
        .search(&q, T0)
        .unwrap()
        .iter()
        .all(|i| i.namespace == ns(&["a", "x"])));
}

#[test]
fn a_plain_page_is_read_off_the_index() {
    // SQLite VM steps of one page deep into 100 and 2,000 items: flat, not a scan.
    let steps = |n: usize| {
        let s = store();
        let puts: Vec<PutItem> = (0..n)
            .map(|i| put(&["p", "q"], &format!("k{i:05}"), json!({"i": i})))
            .collect();
        s.put(&puts, T0).unwrap();
        s.put(&[put(&["p-x"], "other", json!({}))], T0).unwrap();
        let mut q = search(&["p"]);
        q.offset = 50;
        let before = s.exec().vm_steps.get();
        assert_eq!(s.search(&q, T0).unwrap().len(), 10);
        s.exec().vm_steps.get() - before
    };
    let (small, large) = (steps(100), steps(2000));
    assert!(
        large < small * 2,
        "{small} VM steps at 100 items, {large} at 2,000"
    );
}
