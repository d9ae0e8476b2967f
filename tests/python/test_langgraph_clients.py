"""The real Python LangGraph clients against the worker in workerd.

Versions: langgraph-sdk 0.4.14, langgraph 1.2.22 (RemoteGraph), pinned in requirements.txt.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import pytest
from langgraph.pregel.remote import RemoteGraph
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.errors import NotFoundError


def human(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def test_pinned_versions():
    assert version("langgraph-sdk") == "0.4.14"
    assert version("langgraph") == "1.2.22"


def test_async_sdk_create_stream_wait_state_history_delete(worker):
    async def scenario():
        client = get_client(url=worker.url, api_key=None)
        thread = await client.threads.create(metadata={"user": "py"})
        tid = thread["thread_id"]
        events = [part async for part in client.runs.stream(
            tid, "agent", input=human("My name is Sam"), stream_mode=["values", "messages-tuple", "updates"])]
        kinds = [p.event for p in events]
        assert kinds[0] == "metadata"
        assert "messages" in kinds and "updates" in kinds
        final = [p for p in events if p.event == "values"][-1].data
        reply = final["messages"][-1]
        chunks = [p.data[0] for p in events if p.event == "messages"]
        assert all(c["id"] == reply["id"] for c in chunks)
        assert "".join(c["content"] for c in chunks) == reply["content"]

        result = await client.runs.wait(tid, "agent", input=human("What's my name?"))
        assert result["messages"][-1]["content"] == "Your name is Sam."

        state = await client.threads.get_state(tid)
        assert len(state["values"]["messages"]) == 4
        history = await client.threads.get_history(tid, limit=5)
        assert [h["checkpoint"]["checkpoint_id"] for h in history][0] == state["checkpoint"]["checkpoint_id"]
        assert history[0]["parent_checkpoint"]["checkpoint_id"] == history[1]["checkpoint"]["checkpoint_id"]
        # Two turns, each stored as its input and then its reply.
        assert [h["metadata"]["source"] for h in history] == ["loop", "input", "loop", "input"]
        older = await client.threads.get_history(tid, limit=5, before=history[0]["checkpoint"])
        assert len(older) == 3

        await client.threads.delete(tid)
        with pytest.raises(NotFoundError):
            await client.threads.get(tid)

    asyncio.run(scenario())


def test_sync_sdk_wait_remembers(worker):
    client = get_sync_client(url=worker.url, api_key=None)
    tid = client.threads.create()["thread_id"]
    client.runs.wait(tid, "agent", input=human("My name is Sam"))
    answer = client.runs.wait(tid, "agent", input=human("What is my name?"))
    assert answer["messages"][-1]["content"] == "Your name is Sam."


def test_remote_graph_invoke_twice_state_and_history(worker):
    graph = RemoteGraph("agent", url=worker.url, api_key=None)
    config = {"configurable": {"thread_id": "remote-graph-thread-1"}}
    first = graph.invoke(human("My name is Sam"), config=config)
    assert first["messages"][-1]["content"].startswith("Nice to meet you, Sam")
    second = graph.invoke(human("What's my name?"), config=config)
    assert second["messages"][-1]["content"] == "Your name is Sam."
    state = graph.get_state(config)
    assert len(state.values["messages"]) == 4
    history = list(graph.get_state_history(config))
    assert len(history) == 4, "input and reply per turn"
    assert history[0].parent_config["configurable"]["checkpoint_id"] == \
        history[1].config["configurable"]["checkpoint_id"]


def test_remote_graph_without_thread_is_stateless(worker):
    graph = RemoteGraph("agent", url=worker.url, api_key=None)
    out = graph.invoke(human("My name is Sam"))
    assert len(out["messages"]) == 2
    again = graph.invoke(human("What's my name?"))
    assert "don't know" in again["messages"][-1]["content"]
