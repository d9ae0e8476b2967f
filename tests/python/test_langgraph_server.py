"""LangGraph's own server (`langgraph dev`, in-memory runtime) with edge-memory as its
checkpointer, driven by langgraph-sdk; and the same fresh-container scenario with the
server's built-in checkpointer, which forgets.

Versions: langgraph-cli[inmem] 0.4.40 (langgraph-api 0.16.7, langgraph-runtime-inmem
0.36.7), pinned in requirements.txt. The app is `lg_server_app.py`, copied beside a
langgraph.json as a user's project has it; the checkpointer file is the one line the
README shows. Offline: no LangSmith tracing, no version check, no CLI analytics.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port, port_is_free
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import ConflictError, NotFoundError

from edge_memory import EdgeMemorySaver

HERE = Path(__file__).resolve().parent
LANGGRAPH = Path(sys.executable).parent / "langgraph"
START_TIMEOUT_S = 60
# Longer than any step here takes, shorter than the slow graph's pause (30 s).
STEP_TIMEOUT_S = 20

OFFLINE_ENV = {
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_API_KEY": "",
    "LANGCHAIN_API_KEY": "",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
}


def human(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def last_reply(values: dict[str, Any]) -> str:
    return values["messages"][-1]["content"]


def write_app(app_dir: Path, *, edge_memory: bool) -> Path:
    """A user's project: agent.py (and apps.py, its replies), checkpointer.py (one import
    line), langgraph.json."""
    app_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "lg_server_app.py", app_dir / "agent.py")
    shutil.copy(HERE / "apps.py", app_dir / "apps.py")
    config: dict[str, Any] = {
        "dependencies": ["."],
        "graphs": {"agent": "./agent.py:graph", "slow": "./agent.py:slow_graph", "brief": "./agent.py:brief_graph"},
    }
    if edge_memory:
        (app_dir / "checkpointer.py").write_text("from edge_memory.langgraph_server import make_checkpointer\n")
        config["checkpointer"] = {"path": "./checkpointer.py:make_checkpointer"}
    (app_dir / "langgraph.json").write_text(json.dumps(config, indent=2))
    return app_dir


class LangGraphServer:
    """`langgraph dev` in its own process group (killed whole, as a container is)."""

    def __init__(self, app_dir: Path, env: dict[str, str] | None = None):
        self.app_dir = app_dir
        self.env = env or {}
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None

    def start(self) -> "LangGraphServer":
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.app_dir / f"langgraph-{time.time_ns()}.log"
        args = [str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
                "--port", str(self.port), "--config", str(self.app_dir / "langgraph.json")]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=self.app_dir, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, **OFFLINE_ENV, **self.env},
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._is_up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"langgraph dev exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"langgraph dev did not start in {START_TIMEOUT_S} s:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        return self

    def _is_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ok", timeout=1) as res:
                return res.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=15)
        deadline = time.monotonic() + 15
        while not port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.proc = None

    def fresh_container(self) -> "LangGraphServer":
        """Killed, its local state (`.langgraph_api/`) gone, started again."""
        self.kill()
        shutil.rmtree(self.app_dir / ".langgraph_api", ignore_errors=True)
        return self.start()

    def client(self):
        return get_sync_client(url=self.url, api_key=None, timeout=STEP_TIMEOUT_S)


def wait_until(what: str, check: Callable[[], Any], timeout: float = STEP_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if result := check():
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def checkpoints(saver: EdgeMemorySaver, thread_id: str, **filter: Any) -> list:
    """What edge-memory itself holds for the thread (every namespace), read directly."""
    return list(saver.list({"configurable": {"thread_id": thread_id}}, filter=filter or None))


def start_slow_run(
    client, saver: EdgeMemorySaver, thread_id: str, text: str, graph: str = "slow"
) -> dict[str, Any]:
    """A `slow` (or `brief`) run that has stored its first reply and is now in its pause."""
    run = client.runs.create(thread_id, graph, input=human(text))
    # Its input checkpoint and the one after `chat`: the run is now inside `pause`.
    wait_until("the slow run's checkpoints in edge-memory",
               lambda: len(checkpoints(saver, thread_id, run_id=run["run_id"])) >= 2)
    assert client.threads.get(thread_id)["status"] == "busy"
    return run


def test_pinned_versions():
    assert version("langgraph-cli") == "0.4.40"
    assert version("langgraph-api") == "0.16.7"
    assert version("langgraph-runtime-inmem") == "0.36.7"


def test_langgraph_server_on_edge_memory(worker, tmp_path):
    app_dir = write_app(tmp_path / "app", edge_memory=True)
    server = LangGraphServer(app_dir, env={"EDGE_MEMORY_URL": worker.url})
    saver = EdgeMemorySaver(worker.url)
    try:
        server.start()
        log = server.log()
        assert "Using custom checkpointer: EdgeMemorySaver" in log, log[-3000:]
        # Every method the server probes is there: none of its "missing ..." notices.
        assert "Custom checkpointer missing" not in log, log[-3000:]
        client = server.client()

        # Two turns remember; the history is the four checkpoints, newest first.
        sam = client.threads.create()["thread_id"]
        assert last_reply(client.runs.wait(sam, "agent", input=human("My name is Sam"))) == "You said: My name is Sam"
        assert last_reply(client.runs.wait(sam, "agent", input=human("What's my name?"))) == "Your name is Sam."
        history = client.threads.get_history(sam, limit=10)
        assert [h["metadata"]["source"] for h in history] == ["loop", "loop", "input"] * 2
        assert history[0]["parent_checkpoint"]["checkpoint_id"] == history[1]["checkpoint"]["checkpoint_id"]
        stored = checkpoints(saver, sam)
        assert [c.config["configurable"]["checkpoint_id"] for c in stored] == \
            [h["checkpoint"]["checkpoint_id"] for h in history]

        # A copy is a thread of its own with the same memory; deleting it deletes its
        # checkpoints in edge-memory and leaves the original alone.
        copy = client.threads.copy(sam)["thread_id"]
        assert len(checkpoints(saver, copy)) == len(stored)
        assert last_reply(client.runs.wait(copy, "agent", input=human("What is my name?"))) == "Your name is Sam."
        client.threads.delete(copy)
        with pytest.raises(NotFoundError):
            client.threads.get(copy)
        assert checkpoints(saver, copy) == []
        assert saver.get_tuple({"configurable": {"thread_id": copy}}) is None
        assert len(checkpoints(saver, sam)) == len(stored)

        # Rollback: a new run while a slow one is in progress. The old run and its
        # checkpoints are gone, the new run answers from the state before it.
        before = client.threads.get_state(sam)["checkpoint"]["checkpoint_id"]
        slow = start_slow_run(client, saver, sam, "Take your time")
        new = client.runs.create(sam, "agent", input=human("What's my name?"), multitask_strategy="rollback")
        client.runs.join(sam, new["run_id"])
        assert client.runs.get(sam, new["run_id"])["status"] == "success"
        with pytest.raises(NotFoundError):
            client.runs.get(sam, slow["run_id"])
        assert checkpoints(saver, sam, run_id=slow["run_id"]) == []
        state = client.threads.get_state(sam)
        assert [m["content"] for m in state["values"]["messages"][-3:]] == \
            ["Your name is Sam.", "What's my name?", "Your name is Sam."]
        assert "Take your time" not in json.dumps(state["values"])
        assert state["parent_checkpoint"] is not None
        assert any(h["checkpoint"]["checkpoint_id"] == before for h in client.threads.get_history(sam, limit=20))
        wait_until("the thread to be idle", lambda: client.threads.get(sam)["status"] == "idle")
        # The server still serves other threads (its one worker is not stuck).
        other = client.threads.create()["thread_id"]
        assert last_reply(client.runs.wait(other, "agent", input=human("hello"))) == "You said: hello"

        # Interrupt: the old run stops, what it stored stays, the new run goes on from it.
        ada = client.threads.create()["thread_id"]
        client.runs.wait(ada, "agent", input=human("My name is Ada"))
        slow = start_slow_run(client, saver, ada, "Take your time")
        new = client.runs.create(ada, "agent", input=human("What's my name?"), multitask_strategy="interrupt")
        client.runs.join(ada, new["run_id"])
        assert client.runs.get(ada, slow["run_id"])["status"] == "interrupted"
        assert len(checkpoints(saver, ada, run_id=slow["run_id"])) >= 2
        contents = [m["content"] for m in client.threads.get_state(ada)["values"]["messages"]]
        assert contents[-4:] == ["Take your time", "You said: Take your time", "What's my name?", "Your name is Ada."]
        assert "done" not in contents
        wait_until("the thread to be idle", lambda: client.threads.get(ada)["status"] == "idle")

        # Reject: the double text is refused, the run in progress finishes as it would.
        brief = start_slow_run(client, saver, ada, "Once more", graph="brief")
        with pytest.raises(ConflictError):
            client.runs.create(ada, "agent", input=human("Are you there?"), multitask_strategy="reject")
        client.runs.join(ada, brief["run_id"])
        assert client.runs.get(ada, brief["run_id"])["status"] == "success"
        # Enqueue: the double text waits its turn, then answers from the finished run.
        brief = start_slow_run(client, saver, ada, "And again", graph="brief")
        queued = client.runs.create(ada, "agent", input=human("What's my name?"), multitask_strategy="enqueue")
        client.runs.join(ada, queued["run_id"])
        assert [client.runs.get(ada, r["run_id"])["status"] for r in (brief, queued)] == ["success", "success"]
        contents = [m["content"] for m in client.threads.get_state(ada)["values"]["messages"]]
        assert contents[-8:] == [
            "Once more", "You said: Once more", "done",
            "And again", "You said: And again", "done",
            "What's my name?", "Your name is Ada.",
        ]
        assert "Are you there?" not in contents
        assert {len(checkpoints(saver, ada, run_id=r["run_id"])) > 0 for r in (brief, queued)} == {True}

        # A fresh container: the server's own files are gone, the memory is not.
        server.fresh_container()
        assert "Custom checkpointer missing" not in server.log()
        client = server.client()
        for thread_id, name in ((sam, "Sam"), (ada, "Ada")):
            with pytest.raises(NotFoundError):
                client.threads.get(thread_id)
            client.threads.create(thread_id=thread_id, if_exists="do_nothing")
            answer = client.runs.wait(thread_id, "agent", input=human("What is my name?"))
            assert last_reply(answer) == f"Your name is {name}."
    finally:
        server.kill()
        saver.close()


def test_builtin_checkpointer_forgets_in_a_fresh_container(tmp_path):
    """The negative control: the same scenario on the server's built-in checkpointer."""
    server = LangGraphServer(write_app(tmp_path / "app", edge_memory=False))
    try:
        server.start()
        assert "custom checkpointer" not in server.log().lower()
        client = server.client()
        thread_id = client.threads.create()["thread_id"]
        client.runs.wait(thread_id, "agent", input=human("My name is Sam"))
        assert last_reply(client.runs.wait(thread_id, "agent", input=human("What's my name?"))) == "Your name is Sam."

        server.fresh_container()
        client = server.client()
        client.threads.create(thread_id=thread_id, if_exists="do_nothing")
        answer = client.runs.wait(thread_id, "agent", input=human("What is my name?"))
        assert last_reply(answer) == "I don't know your name."
    finally:
        server.kill()


def test_make_checkpointer_settings_from_env(monkeypatch):
    from edge_memory.langgraph_server import make_checkpointer, saver_settings_from_env

    assert saver_settings_from_env({"EDGE_MEMORY_URL": " http://w ", "EDGE_MEMORY_TOKEN": "t",
                                    "EDGE_MEMORY_TIMEOUT": "2.5", "EDGE_MEMORY_RETRIES": "0"}) == \
        {"url": "http://w", "token": "t", "timeout": 2.5, "retries": 0}
    assert saver_settings_from_env({"EDGE_MEMORY_URL": "http://w", "EDGE_MEMORY_API_KEY": "k"}) == \
        {"url": "http://w", "api_key": "k"}
    with pytest.raises(ValueError, match="EDGE_MEMORY_URL"):
        saver_settings_from_env({})
    with pytest.raises(ValueError, match="EDGE_MEMORY_RETRIES"):
        saver_settings_from_env({"EDGE_MEMORY_URL": "http://w", "EDGE_MEMORY_RETRIES": "many"})

    async def enter(**overrides: Any) -> EdgeMemorySaver:
        async with make_checkpointer(**overrides) as saver:
            assert isinstance(saver, EdgeMemorySaver)
            return saver

    monkeypatch.delenv("EDGE_MEMORY_URL", raising=False)
    monkeypatch.setenv("EDGE_MEMORY_API_KEY", "k")
    saver = asyncio.run(enter(url="http://given/"))
    assert saver._http.url == "http://given" and saver._http.headers == {"x-api-key": "k"}
    with pytest.raises(ValueError, match="EDGE_MEMORY_URL"):
        asyncio.run(enter())
