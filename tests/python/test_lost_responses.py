"""Lost responses (issue 20's nemesis, client side): a proxy between the Python clients and
the worker in workerd forwards a request, lets the worker commit it, then drops the
response. Idempotent calls are retried and happen exactly once; a call that is not
idempotent is not retried (its error is raised) and still happened once. Also: a JWT
deployment admits a client with `token=` and sees only that user's threads."""

from __future__ import annotations

import json
import shutil
import socketserver
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from conftest import Worker, free_port, sign_hs256
from edge_memory import EdgeMemoryChatMessageHistory, EdgeMemoryError, EdgeMemorySaver


class LossyProxy:
    """Forwards to `upstream`; the first `drops` requests whose path ends with `suffix`
    are committed upstream, then answered by a closed connection."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.drops: dict[str, int] = {}
        self.seen: list[tuple[str, str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                response = httpx.request(self.command, proxy.upstream + self.path, content=body, headers=headers)
                for suffix, left in proxy.drops.items():
                    if self.path.endswith(suffix) and left > 0:
                        proxy.drops[suffix] = left - 1
                        proxy.seen.append((self.command, self.path, "dropped"))
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                proxy.seen.append((self.command, self.path, str(response.status_code)))
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = do_POST = do_DELETE = do_PATCH = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def lossy(worker):
    proxy = LossyProxy(worker.url)
    try:
        yield proxy
    finally:
        proxy.close()


def test_history_add_messages_once_when_the_response_is_lost(lossy, worker):
    history = EdgeMemoryChatMessageHistory(lossy.url, "lost-response-history")
    lossy.drops["/state"] = 1
    history.add_messages([HumanMessage("My name is Sam"), AIMessage("Nice to meet you, Sam!")])
    assert [s for s in lossy.seen if s[2] == "dropped"], "the first response was dropped"
    direct = EdgeMemoryChatMessageHistory(worker.url, "lost-response-history")
    assert [m.content for m in direct.messages] == ["My name is Sam", "Nice to meet you, Sam!"]
    lossy.drops["/state"] = 2
    history.add_messages([HumanMessage("What's my name?")])
    assert [m.content for m in direct.messages][-1] == "What's my name?"
    assert len(direct.messages) == 3, "each message once"
    history.close()


def test_saver_put_once_and_copy_not_retried_when_responses_are_lost(lossy, worker):
    from langgraph.checkpoint.base import empty_checkpoint

    with EdgeMemorySaver.from_url(lossy.url) as saver:
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": ["hello"]}
        checkpoint["channel_versions"] = {"messages": saver.get_next_version(None, None)}
        config = {"configurable": {"thread_id": "lost-put", "checkpoint_ns": ""}}
        lossy.drops["/saver/put"] = 1
        saver.put(config, checkpoint, {"source": "input", "step": -1}, dict(checkpoint["channel_versions"]))
        listed = list(saver.list({"configurable": {"thread_id": "lost-put"}}))
        assert len(listed) == 1 and listed[0].checkpoint["channel_values"] == {"messages": ["hello"]}

        # put_writes whose answer is lost: retried, stored once.
        lossy.drops["/saver/put_writes"] = 1
        saver.put_writes(listed[0].config, [("messages", "pending"), ("extra", 1)], "task-1")
        assert [s[2] for s in lossy.seen if s[1].endswith("/saver/put_writes")] == ["dropped", "204"]
        pending = saver.get_tuple(listed[0].config).pending_writes
        assert [(task, channel, value) for task, channel, value in pending] == \
            [("task-1", "messages", "pending"), ("task-1", "extra", 1)]

        # Copy is not idempotent (a second copy onto the now non-empty target is 409):
        # not retried, its error raised, and it happened once.
        lossy.drops["/saver/copy"] = 1
        with pytest.raises(EdgeMemoryError) as err:
            saver.copy_thread("lost-put", "lost-copy")
        assert err.value.status is None
        assert sum(1 for s in lossy.seen if s[1].endswith("/saver/copy")) == 1, "not retried"
        copied = list(saver.list({"configurable": {"thread_id": "lost-copy"}}))
        assert [t.checkpoint["channel_values"] for t in copied] == [{"messages": ["hello"]}]


def test_delete_for_runs_once_when_its_response_is_lost(lossy, worker):
    """A rollback's `delete_for_runs` whose answer is lost is retried (it is idempotent)
    and ends as if it ran once: the run's checkpoints gone on both threads it wrote to,
    the other run's kept."""
    from langgraph.checkpoint.base import empty_checkpoint

    def put(saver: EdgeMemorySaver, thread: str, run_id: str) -> None:
        checkpoint = empty_checkpoint()
        config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
        saver.put(config, checkpoint, {"source": "loop", "step": 1, "run_id": run_id}, {})

    with EdgeMemorySaver.from_url(lossy.url) as saver:
        put(saver, "rollback-a", "run-rolled-back")
        put(saver, "rollback-a", "run-kept")
        put(saver, "rollback-b", "run-rolled-back")
        lossy.drops["/saver/delete_for_runs"] = 1
        saver.delete_for_runs(["run-rolled-back"])
        calls = [s for s in lossy.seen if s[1].endswith("/saver/delete_for_runs")]
        assert [s[2] for s in calls] == ["dropped", "204"], calls
        runs = lambda thread: [t.metadata.get("run_id") for t in saver.list({"configurable": {"thread_id": thread}})]
        assert runs("rollback-a") == ["run-kept"]
        assert runs("rollback-b") == []


def test_a_user_token_is_sent_as_bearer_and_scopes_the_saver():
    secret = "python-clients-jwt-secret-0123456789"
    persist_dir = Path(tempfile.mkdtemp(prefix="py-jwt-"))
    worker = Worker(persist_dir, vars={"JWT_SECRET": secret}).start()
    try:
        alice = EdgeMemoryChatMessageHistory(worker.url, "alices-history", token=sign_hs256("alice", secret))
        alice.add_messages([HumanMessage("secret plans")])
        assert [m.content for m in alice.messages] == ["secret plans"]
        mallory = EdgeMemoryChatMessageHistory(worker.url, "alices-history", token=sign_hs256("mallory", secret))
        assert mallory.messages == [], "another user's thread reads as unknown"
        with pytest.raises(EdgeMemoryError) as err:
            EdgeMemoryChatMessageHistory(worker.url, "alices-history").add_messages([HumanMessage("x")])
        assert err.value.status == 401 and err.value.code == "unauthorized"
        with EdgeMemorySaver.from_url(worker.url, token=sign_hs256("mallory", secret)) as saver:
            assert saver.get_tuple({"configurable": {"thread_id": "alices-history"}}) is None
    finally:
        worker.kill()
        shutil.rmtree(persist_dir, ignore_errors=True)


def test_kill_mid_saver_copy_leaves_the_target_absent_or_complete():
    """SIGKILL of the runtime at a random moment during `copy_thread`, then a restart on
    the same storage: the target is empty or a complete copy, never half; a retry of an
    interrupted copy completes it, and one of a completed copy is refused (409)."""
    import random

    from langgraph.checkpoint.base import empty_checkpoint

    persist_dir = Path(tempfile.mkdtemp(prefix="py-copy-kill-"))
    worker = Worker(persist_dir).start()
    try:
        saver = EdgeMemorySaver(worker.url, retries=0)
        config = {"configurable": {"thread_id": "copy-kill-source", "checkpoint_ns": ""}}
        checkpoint = empty_checkpoint()
        version = None
        for i in range(60):
            checkpoint = {**checkpoint, "id": empty_checkpoint()["id"]}
            version = saver.get_next_version(version, None)
            checkpoint["channel_values"] = {"messages": [f"message {j}" for j in range(i + 1)], "step": i}
            checkpoint["channel_versions"] = {"messages": version, "step": version}
            config = saver.put(config, checkpoint, {"source": "loop", "step": i}, dict(checkpoint["channel_versions"]))

        def snapshot(thread_id: str) -> list:
            tuples = saver.list({"configurable": {"thread_id": thread_id}}, limit=1000)
            return [(t.checkpoint["id"], t.checkpoint["channel_values"], t.metadata.get("step")) for t in tuples]

        source = snapshot("copy-kill-source")
        assert len(source) == 60
        outcomes = []
        for round_ in range(4):
            target = f"copy-kill-target-{round_}"
            copier = threading.Thread(target=lambda t=target: _try(lambda: saver.copy_thread("copy-kill-source", t)))
            copier.start()
            time.sleep(random.uniform(0.0, 0.12))
            worker.restart()
            copier.join()
            got = snapshot(target)
            assert got in ([], source), f"round {round_}: {len(got)} of {len(source)} checkpoints"
            outcomes.append(len(got))
            if got:
                with pytest.raises(EdgeMemoryError) as err:
                    saver.copy_thread("copy-kill-source", target)
                assert err.value.status == 409
            else:
                saver.copy_thread("copy-kill-source", target)
            assert snapshot(target) == source, "a retry completes the copy"
        assert snapshot("copy-kill-source") == source, "the source is untouched"
        print(f"copies seen after the kill (checkpoints): {outcomes}")
    finally:
        worker.kill()
        shutil.rmtree(persist_dir, ignore_errors=True)


def _try(call) -> None:
    try:
        call()
    except EdgeMemoryError:
        pass  # the runtime was killed under it


def test_python_client_retries_non_idempotent_writes():
    """Finding "Python client retries non-idempotent writes" (and deterministic 500s four
    times): against a server that always fails, a 500 is raised after one request; an
    idempotent call on 503 is retried `retries` times; `copy_thread` (not idempotent) is
    sent once even on 503."""
    requests: list[str] = []
    status = {"code": 500}

    class Failing(BaseHTTPRequestHandler):
        def _fail(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            requests.append(self.path)
            body = json.dumps({"detail": "failing on purpose", "code": "internal"}).encode()
            self.send_response(status["code"])
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _fail

        def log_message(self, *args) -> None:
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with EdgeMemorySaver(url, retries=3) as saver:
            config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
            with pytest.raises(EdgeMemoryError):
                saver.get_tuple(config)
            assert len(requests) == 1, "a deterministic 500 is not retried"
            status["code"] = 503
            requests.clear()
            with pytest.raises(EdgeMemoryError):
                saver.get_tuple(config)
            assert len(requests) == 4, "an idempotent call is retried on 503"
            requests.clear()
            with pytest.raises(EdgeMemoryError):
                saver.copy_thread("t", "u")
            assert len(requests) == 1, "copy_thread is not idempotent: sent once"
    finally:
        server.shutdown()
        server.server_close()
