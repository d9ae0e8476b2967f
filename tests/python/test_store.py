"""EdgeMemoryStore against the built worker in workerd: agreement with LangGraph's
InMemoryStore on a randomized sequence of operations, the Python langgraph-sdk store
client, and a StateGraph that remembers across threads, processes and a restart."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from langgraph.store.memory import InMemoryStore
from langgraph_sdk import get_sync_client

from conftest import Worker, sign_hs256
from edge_memory import EdgeMemoryError, EdgeMemoryStore, user_root

LABELS = ["a", "b", "c"]
KEYS = [f"k{i}" for i in range(5)]
TAGS = ["red", "green", "blue"]


def random_namespace(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.choice(LABELS) for _ in range(rng.randint(1, 3)))


def random_value(rng: random.Random) -> dict:
    return {"n": rng.randint(0, 9), "tag": rng.choice(TAGS), "nested": {"x": rng.randint(0, 2)}}


def random_filter(rng: random.Random) -> dict | None:
    return rng.choice([
        None,
        {"tag": rng.choice(TAGS)},
        {"n": {"$gt": rng.randint(0, 9)}},
        {"n": {"$lte": rng.randint(0, 9)}, "tag": {"$ne": rng.choice(TAGS)}},
        {"nested": {"x": rng.randint(0, 2)}},
        {"n": {"$eq": rng.randint(0, 9)}},
    ])


def path_key(item) -> tuple[str, str]:
    """Our documented order of a search without a query: namespace path, then key."""
    return ".".join(item.namespace), item.key


def rows(items) -> list:
    return [(tuple(i.namespace), i.key, i.value) for i in items]


def expected_namespaces(ref: InMemoryStore, **kwargs):
    # InMemoryStore keeps a namespace in its table once touched (a get of a missing
    # namespace, or deleting its last item, leaves an empty entry that it keeps listing);
    # LangGraph's SQL stores and ours list namespaces that hold items. Compare on those.
    for namespace in [ns for ns, items in ref._data.items() if not items]:
        del ref._data[namespace]
    return ref.list_namespaces(**kwargs)


def test_agrees_with_in_memory_store_on_random_operations(worker):
    rng = random.Random(1515)
    ours = EdgeMemoryStore(worker.url)
    ref = InMemoryStore()
    checked = {"get": 0, "search": 0, "list": 0}
    for step in range(300):
        kind = rng.choices(["put", "delete", "get", "search", "list"], weights=[5, 1, 2, 3, 2])[0]
        namespace, key = random_namespace(rng), rng.choice(KEYS)
        where = f"step {step}: {kind}"
        if kind == "put":
            value = random_value(rng)
            ours.put(namespace, key, value, index=False)
            ref.put(namespace, key, value)
        elif kind == "delete":
            ours.delete(namespace, key)
            ref.delete(namespace, key)
        elif kind == "get":
            got, want = ours.get(namespace, key), ref.get(namespace, key)
            assert (got and got.value) == (want and want.value), where
            checked["get"] += 1
        elif kind == "search":
            prefix = namespace[: rng.randint(0, len(namespace))]
            flt, limit, offset = random_filter(rng), rng.randint(1, 8), rng.randint(0, 6)
            got = ours.search(prefix, filter=flt, limit=limit, offset=offset)
            every = sorted(ref.search(prefix, filter=flt, limit=10_000), key=path_key)
            assert rows(got) == rows(every[offset: offset + limit]), f"{where} {prefix} {flt} {limit} {offset}"
            checked["search"] += 1
        else:
            kwargs = {
                "prefix": rng.choice([None, namespace[:1], ("*", rng.choice(LABELS))]),
                "suffix": rng.choice([None, None, namespace[-1:]]),
                "max_depth": rng.choice([None, 1, 2]),
                "limit": rng.randint(1, 10),
                "offset": rng.randint(0, 3),
            }
            assert ours.list_namespaces(**kwargs) == expected_namespaces(ref, **kwargs), f"{where} {kwargs}"
            checked["list"] += 1
    assert min(checked.values()) > 20, checked


def test_async_batch_and_ttl_pass_through(worker):
    store = EdgeMemoryStore(worker.url)

    async def run():
        await store.aput(("async", "x"), "a", {"v": 1}, ttl=60)
        await store.aput(("async", "x"), "b", {"v": 2}, index=["v"])
        got = await store.aget(("async", "x"), "a")
        found = await store.asearch(("async",), filter={"v": 2})
        listed = await store.alist_namespaces(prefix=("async",))
        await store.adelete(("async", "x"), "a")
        gone = await store.aget(("async", "x"), "a")
        await store.aclose()
        return got, found, listed, gone

    got, found, listed, gone = asyncio.run(run())
    assert got.value == {"v": 1}
    assert [i.key for i in found] == ["b"]
    assert listed == [("async", "x")]
    assert gone is None


def test_bad_input_raises_with_the_workers_detail(worker):
    store = EdgeMemoryStore(worker.url)
    with pytest.raises(EdgeMemoryError) as err:
        store.search(("x",), filter={"n": {"$regex": "a"}})
    assert err.value.status == 422
    assert "unknown operator" in err.value.detail
    with pytest.raises(ValueError):  # BaseStore checks labels before any request
        store.put(("a.b",), "k", {"v": 1})


def test_a_service_reaches_a_users_items_through_user_root():
    secret, key = "python-store-jwt-secret-0123456789", "python-store-key"
    persist_dir = Path(tempfile.mkdtemp(prefix="py-store-jwt-"))
    worker = Worker(persist_dir, vars={"JWT_SECRET": secret, "API_KEYS": key}).start()
    try:
        sub = "ada.l@example.com"  # periods are escaped in the root label
        ada = EdgeMemoryStore(worker.url, token=sign_hs256(sub, secret))
        service = EdgeMemoryStore(worker.url, api_key=key)
        bob = EdgeMemoryStore(worker.url, token=sign_hs256("bob", secret))
        ada.put(("memories",), "tea", {"text": "Ada prefers green tea"})
        root = user_root(sub)
        assert root == "user:ada%2El@example%2Ecom"
        assert service.get((root, "memories"), "tea").value == {"text": "Ada prefers green tea"}
        service.put((root, "memories"), "city", {"text": "Ada lives in Lyon"})
        assert [i.key for i in ada.search(("memories",))] == ["city", "tea"]
        assert service.list_namespaces(prefix=(root,)) == [(root, "memories")]
        assert bob.get(("memories",), "city") is None
        assert bob.search(()) == []
        assert service.search(()) == []  # without the root: the service's own items only
    finally:
        worker.kill()
        shutil.rmtree(persist_dir, ignore_errors=True)


def test_python_langgraph_sdk_store_client(worker):
    client = get_sync_client(url=worker.url, api_key=None)
    client.store.put_item(["sdk", "py"], "fact", {"text": "Ada prefers tea over coffee"})
    client.store.put_item(["sdk", "py"], "other", {"text": "The build runs on Fridays"})
    item = client.store.get_item(["sdk", "py"], "fact")
    assert item["value"] == {"text": "Ada prefers tea over coffee"}
    found = client.store.search_items(["sdk"], query="what does Ada drink, tea or coffee?", limit=1)
    assert [i["key"] for i in found["items"]] == ["fact"]
    assert isinstance(found["items"][0]["score"], float)
    filtered = client.store.search_items(["sdk"], filter={"text": "The build runs on Fridays"})
    assert [i["key"] for i in filtered["items"]] == ["other"]
    assert client.store.list_namespaces(prefix=["sdk"])["namespaces"] == [["sdk", "py"]]
    client.store.delete_item(["sdk", "py"], "other")
    assert client.store.get_item(["sdk", "py"], "other") is None


GRAPH = r'''
import json, sys
from typing import TypedDict
from langgraph.graph import StateGraph, START, END
from langgraph.store.base import BaseStore
from langchain_core.runnables import RunnableConfig
from edge_memory import EdgeMemorySaver, EdgeMemoryStore

class State(TypedDict):
    text: str
    answer: str

def node(state: State, config: RunnableConfig, *, store: BaseStore):
    user = config["configurable"]["user_id"]
    if state["text"].startswith("remember: "):
        store.put(("memories", user), "fact", {"text": state["text"][len("remember: "):]})
        return {"answer": "stored"}
    found = store.search(("memories", user), query=state["text"], limit=1)
    return {"answer": found[0].value["text"] if found else "nothing"}

url, thread, text = sys.argv[1:4]
builder = StateGraph(State)
builder.add_node("node", node)
builder.add_edge(START, "node")
builder.add_edge("node", END)
graph = builder.compile(checkpointer=EdgeMemorySaver(url), store=EdgeMemoryStore(url))
out = graph.invoke({"text": text, "answer": ""},
                   {"configurable": {"thread_id": thread, "user_id": "u-42"}})
print(json.dumps(out))
'''


def run_graph(url: str, thread: str, text: str) -> dict:
    done = subprocess.run([sys.executable, "-c", GRAPH, url, thread, text],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_graph_remembers_across_threads_processes_and_a_restart():
    persist = Path(tempfile.mkdtemp(prefix="py-store-"))
    w = Worker(persist).start()
    try:
        first = run_graph(w.url, "thread-one", "remember: my favourite colour is teal")
        assert first["answer"] == "stored"
        w.restart()
        second = run_graph(w.url, "thread-two", "what is my favourite colour?")
        assert second["answer"] == "my favourite colour is teal"
    finally:
        w.kill()
        shutil.rmtree(persist, ignore_errors=True)
