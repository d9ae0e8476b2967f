"""Assistants with the pinned Python SDK (langgraph-sdk) against the worker in workerd:
create, get, update (a version each), versions, latest, search, count, graph, schemas,
subgraphs, runs on an assistant, and delete with its threads."""

from __future__ import annotations

import time

import httpx
import pytest
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError

SYSTEM_UUID = "fe096781-5601-53d2-b2f6-0d3403f7e9ca"


def human(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def test_assistant_lifecycle_with_the_python_sdk(worker):
    client = get_sync_client(url=worker.url, api_key=None)
    a = client.assistants.create(
        graph_id="agent",
        name="py-assistant",
        config={"configurable": {"system_prompt": "Be brief.", "level": 1}},
        metadata={"team": "py"},
    )
    aid = a["assistant_id"]
    assert a["version"] == 1
    assert a["context"] == {"system_prompt": "Be brief.", "level": 1}
    assert client.assistants.get(aid) == a
    assert client.assistants.create(graph_id="agent", assistant_id=aid, if_exists="do_nothing", name="x")["name"] == "py-assistant"
    with pytest.raises(ConflictError):
        client.assistants.create(graph_id="agent", assistant_id=aid)

    assert client.assistants.update(aid, name="renamed")["version"] == 2
    v3 = client.assistants.update(aid, config={"configurable": {"system_prompt": "Be long."}}, metadata={"v": 3})
    assert (v3["version"], v3["context"], v3["metadata"]) == (3, {"system_prompt": "Be long."}, {"team": "py", "v": 3})
    assert [v["version"] for v in client.assistants.get_versions(aid)] == [3, 2, 1]
    assert [v["version"] for v in client.assistants.get_versions(aid, limit=1, offset=1)] == [2]
    latest = client.assistants.set_latest(aid, 1)
    assert (latest["version"], latest["name"]) == (1, "py-assistant")
    with pytest.raises(NotFoundError):
        client.assistants.set_latest(aid, 42)

    found = client.assistants.search(metadata={"team": "py"})
    assert [x["assistant_id"] for x in found] == [aid]
    everyone = client.assistants.search(limit=100, select=["assistant_id", "name"])
    assert {"assistant_id": SYSTEM_UUID, "name": "agent"} in everyone
    assert client.assistants.count(metadata={"team": "py"}) == 1
    assert client.assistants.count(graph_id="agent") == len(everyone)

    graph = client.assistants.get_graph(aid)
    assert [n["id"] for n in graph["nodes"]] == ["__start__", "agent", "__end__"]
    schemas = client.assistants.get_schemas(aid)
    assert schemas["graph_id"] == "agent" and "messages" in schemas["state_schema"]["properties"]
    assert client.assistants.get_subgraphs(aid) == {}

    thread = client.threads.create()
    result = client.runs.wait(thread["thread_id"], aid, input=human("My name is Sam"))
    assert result["messages"][-1]["type"] == "ai"
    assert client.threads.get(thread["thread_id"])["metadata"]["assistant_id"] == aid
    other = client.threads.create()
    client.runs.wait(other["thread_id"], "agent", input=human("hello"))

    # The thread directory learns the stamped assistant in the background.
    deadline = time.monotonic() + 5
    while not client.threads.search(metadata={"assistant_id": aid}) and time.monotonic() < deadline:
        time.sleep(0.1)
    client.assistants.delete(aid, delete_threads=True)
    with pytest.raises(NotFoundError):
        client.assistants.get(aid)
    with pytest.raises(NotFoundError):
        client.threads.get(thread["thread_id"])
    assert client.threads.get(other["thread_id"])["thread_id"] == other["thread_id"]
    # runs.wait surfaces the 404 as httpx's own error, not the SDK's NotFoundError.
    with pytest.raises(httpx.HTTPStatusError) as gone:
        client.runs.wait(other["thread_id"], aid, input=human("again"))
    assert gone.value.response.status_code == 404
