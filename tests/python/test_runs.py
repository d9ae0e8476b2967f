"""Runs as records with the real Python LangGraph SDK (langgraph-sdk 0.4.14, pinned) against
the worker in workerd: background runs, get/list/join, cancel with interrupt and rollback,
join_stream with last_event_id after the client left, stateless and batch runs.

The model is the mock OpenAI-compatible server (tests/e2e/mock_openai.mjs run on its own): it
quotes the last user message, and answers `sleep N` with its last word N seconds late.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from conftest import NODE, ROOT, Worker, free_port, is_up


def human(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def contents(values: dict) -> list[str]:
    return [m["content"] for m in values["messages"]]


@pytest.fixture(scope="module")
def worker():
    port = free_port()
    mock = subprocess.Popen([str(NODE), "tests/e2e/mock_openai.mjs", str(port)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    assert mock.stdout is not None
    assert b"mock OpenAI-compatible server" in mock.stdout.readline()
    persist_dir = Path(tempfile.mkdtemp(prefix="py-runs-"))
    w = Worker(persist_dir, vars={
        "MODEL_PROVIDER": "openai",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "OPENAI_MODEL": "mock-model",
        "OPENAI_API_KEY": "sk-py-runs",
        "MODEL_DEADLINE_MS": "60000",
    }).start()
    try:
        yield w
    finally:
        w.kill()
        os.killpg(mock.pid, 9)
        mock.wait()
        shutil.rmtree(persist_dir, ignore_errors=True)


async def until(read, ok, seconds: float = 10):
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await read()
        if ok(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)


def test_background_run_create_get_list_join(worker):
    async def scenario():
        client = get_client(url=worker.url, api_key=None)
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "agent", input=human("sleep 1"))
        assert run["status"] in ("pending", "running")
        assert run["multitask_strategy"] == "enqueue"
        running = await until(lambda: client.runs.get(tid, run["run_id"]), lambda r: r["status"] == "running")
        assert running["status"] == "running"
        assert (await client.threads.get(tid))["status"] == "busy"
        assert [r["run_id"] for r in await client.runs.list(tid, status="running")] == [run["run_id"]]
        values = await client.runs.join(tid, run["run_id"])
        assert contents(values) == ["sleep 1", 'The mock model heard: "sleep 1".']
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "success"
        assert [r["status"] for r in await client.runs.list(tid)] == ["success"]
        assert await client.runs.list(tid, status="error") == []
        await client.runs.delete(tid, run["run_id"])
        with pytest.raises(NotFoundError):
            await client.runs.get(tid, run["run_id"])

    asyncio.run(scenario())


def test_cancel_interrupt_keeps_the_partial_reply_and_rollback_removes_the_run(worker):
    async def scenario():
        client = get_client(url=worker.url, api_key=None)
        tid = (await client.threads.create())["thread_id"]
        run = await client.runs.create(tid, "agent", input=human("sleep 3"))
        await until(lambda: client.runs.get(tid, run["run_id"]), lambda r: r["status"] == "running")
        await asyncio.sleep(0.5)
        await client.runs.cancel(tid, run["run_id"], wait=True, action="interrupt")
        assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
        assert (await client.threads.get(tid))["status"] == "interrupted"
        state = await client.threads.get_state(tid)
        assert contents(state["values"]) == ["sleep 3", 'The mock model heard: "sleep '], "all but the held last word"

        doomed = await client.runs.create(tid, "agent", input=human("sleep 3"))
        await until(lambda: client.runs.get(tid, doomed["run_id"]), lambda r: r["status"] == "running")
        await client.runs.cancel(tid, doomed["run_id"], wait=True, action="rollback")
        with pytest.raises(NotFoundError):
            await client.runs.get(tid, doomed["run_id"])
        after = await client.threads.get_state(tid)
        assert after["values"] == state["values"], "the rolled-back run left nothing"
        history = await client.threads.get_history(tid, limit=10)
        assert len(history) == 2

    asyncio.run(scenario())


def test_join_stream_with_last_event_id_after_the_client_left(worker):
    async def scenario():
        client = get_client(url=worker.url, api_key=None)
        tid = (await client.threads.create())["thread_id"]
        seen = []
        async for part in client.runs.stream(tid, "agent", input=human("sleep 2"),
                                             stream_mode=["values", "messages-tuple"], stream_resumable=True):
            seen.append(part)
            if part.event == "messages":
                break  # the client goes away mid-answer
        run_id = seen[0].data["run_id"]
        rest = [part async for part in client.runs.join_stream(tid, run_id, last_event_id=seen[-1].id)]
        ids = [int(p.id) for p in seen + rest]
        assert ids == list(range(1, len(ids) + 1)), "no event missed or repeated"
        reply = "".join(p.data[0]["content"] for p in seen + rest if p.event == "messages")
        assert reply == 'The mock model heard: "sleep 2".'
        state = await client.threads.get_state(tid)
        assert state["values"]["messages"][-1]["content"] == reply

    asyncio.run(scenario())


def test_stateless_and_batch_background_runs(worker):
    async def scenario():
        client = get_client(url=worker.url, api_key=None)
        kept = await client.runs.create(None, "agent", input=human("keep me"), on_completion="keep")
        values = await client.runs.join(kept["thread_id"], kept["run_id"])
        assert contents(values) == ["keep me", 'The mock model heard: "keep me".']
        assert (await client.threads.get(kept["thread_id"]))["status"] == "idle"
        gone = await client.runs.create(None, "agent", input=human("forget me"))
        # Its thread is deleted when it ends (on_completion "delete", the default).
        with pytest.raises(httpx.HTTPStatusError, match="404"):
            await until(lambda: client.runs.join(gone["thread_id"], gone["run_id"]), lambda _: False, seconds=5)
        batch = await client.runs.create_batch([
            {"assistant_id": "agent", "input": human("one"), "on_completion": "keep"},
            {"assistant_id": "agent", "input": human("two"), "on_completion": "keep"},
        ])
        assert len({r["thread_id"] for r in batch}) == 2
        for run, text in zip(batch, ["one", "two"]):
            values = await client.runs.join(run["thread_id"], run["run_id"])
            assert contents(values)[0] == text

    asyncio.run(scenario())


def test_worker_is_up(worker):
    assert is_up(worker.url)
