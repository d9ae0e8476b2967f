"""The memory doctor from Python against the worker in workerd: ``python -m edge_memory
doctor`` on a healthy worker (every row ✓, exit 0), on a MEMORY_BACKEND=memory worker
restarted between two runs (exit 1, ephemeral_memory), on a JWT worker with ``--token``;
and the saver's warnings: ``checkpoints_unread`` the first time the worker returns it (a
new thread id per invocation) and never for a stable one, and the missing thread_id."""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from edge_memory import EdgeMemorySaver
from edge_memory.doctor import main as doctor
from edge_memory.doctor import probe_graph

from conftest import ROOT, Worker, sign_hs256

JWT_SECRET = "py-doctor-secret-0123456789-abcdefghij"
# The worker judges a client's last 8 saver reads (src/api/diagnostics/detect.rs).
SAVER_WINDOW = 8
# Each saver test is a client of its own: an API key each.
SAVER_KEYS = ("saver-new-id-per-call", "saver-stable")


def token_for(sub: str) -> str:
    return sign_hs256(sub, JWT_SECRET)


@pytest.fixture(scope="module")
def jwt_worker():
    persist_dir = Path(tempfile.mkdtemp(prefix="py-doctor-"))
    w = Worker(persist_dir, vars={"AUTH_MODE": "jwt", "JWT_SECRET": JWT_SECRET, "API_KEYS": ",".join(SAVER_KEYS)}).start()
    try:
        yield w
    finally:
        w.kill()
        shutil.rmtree(persist_dir, ignore_errors=True)


def run_doctor(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = doctor(["doctor", *args], out=out)
    return status, out.getvalue()


def test_doctor_on_a_healthy_worker_with_a_token(jwt_worker):
    status, out = run_doctor(jwt_worker.url, "--token", token_for("doctor-user"))
    print(out)
    assert status == 0, out
    rows = [line for line in out.splitlines() if line.strip().startswith(("✓", "✗"))]
    assert len(rows) == 5 and all(line.strip().startswith("✓") for line in rows), out
    assert "all 5 rows passed" in out
    # Without the token the worker refuses: the doctor says it cannot check (exit 2).
    status, out = run_doctor(jwt_worker.url)
    assert status == 2 and "401" in out, out


def test_doctor_as_a_module_on_an_open_worker(worker):
    done = subprocess.run([sys.executable, "-m", "edge_memory", "doctor", worker.url], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✗" not in done.stdout


def test_doctor_on_memory_that_does_not_survive_a_restart(tmp_path):
    persist_dir = Path(tempfile.mkdtemp(prefix="py-doctor-memory-"))
    w = Worker(persist_dir, vars={"MEMORY_BACKEND": "memory"}).start()
    state = tmp_path / "doctor-state.json"
    try:
        status, out = run_doctor(w.url, "--state", str(state))
        print(out)
        assert status == 1, out
        assert "✗  Works locally only" in out and "ephemeral_memory" in out
        assert "storage_backend is memory" in out
        assert state.exists()
        w.restart()
        status, out = run_doctor(w.url, "--state", str(state))
        print(out)
        assert status == 1, out
        assert "ephemeral_memory" in out
        assert "is gone: memory did not survive" in out
    finally:
        w.kill()
        shutil.rmtree(persist_dir, ignore_errors=True)


def test_doctor_state_survives_a_restart_of_durable_storage(jwt_worker, tmp_path):
    state = tmp_path / "doctor-state.json"
    token = token_for("doctor-restart")
    assert run_doctor(jwt_worker.url, "--token", token, "--state", str(state))[0] == 0
    jwt_worker.restart()
    status, out = run_doctor(jwt_worker.url, "--token", token, "--state", str(state))
    assert status == 0, out
    assert "is still there" in out


def test_saver_warns_once_when_checkpoints_are_never_read_back(jwt_worker, caplog):
    caplog.set_level(logging.WARNING, logger="edge_memory")
    with EdgeMemorySaver(jwt_worker.url, api_key=SAVER_KEYS[0]) as saver:
        graph = probe_graph(saver)
        for i in range(SAVER_WINDOW + 2):
            graph.invoke({"messages": [("user", f"call {i}")]}, {"configurable": {"thread_id": str(uuid.uuid4())}})
    warnings = [r.getMessage() for r in caplog.records if "checkpoints_unread" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "Checkpoints exist but aren't used" in warnings[0] and "Fix:" in warnings[0]


def test_saver_is_silent_on_a_stable_thread(jwt_worker, caplog):
    caplog.set_level(logging.WARNING, logger="edge_memory")
    with EdgeMemorySaver(jwt_worker.url, api_key=SAVER_KEYS[1]) as saver:
        graph = probe_graph(saver)
        thread = str(uuid.uuid4())
        for i in range(SAVER_WINDOW + 2):
            result = graph.invoke({"messages": [("user", f"call {i}")]}, {"configurable": {"thread_id": thread}})
        assert len(result["messages"]) == 2 * (SAVER_WINDOW + 2)
    assert [r.getMessage() for r in caplog.records if "edge-memory hint" in r.getMessage()] == []


def test_a_graph_call_without_thread_id_raises_and_warns_with_the_symptom(worker, caplog):
    caplog.set_level(logging.WARNING, logger="edge_memory")
    with EdgeMemorySaver(worker.url) as saver:
        graph = probe_graph(saver)
        # configurable without thread_id (a user id instead): LangGraph lets it through.
        with pytest.raises(ValueError, match="first message persists, second doesn't"):
            graph.invoke({"messages": [("user", "hi")]}, {"configurable": {"user_id": "sam"}})
        # thread_id at the top level of a config handed to the saver itself.
        with pytest.raises(ValueError, match="not under 'configurable'"):
            saver.get_tuple({"thread_id": "t1"})
    assert sum("missing or changing thread_id" in r.getMessage() for r in caplog.records) == 2


def test_a_users_first_writes_before_its_first_put_make_the_thread_theirs(jwt_worker):
    """LangGraph sends a new thread's first writes beside its first put, in either
    order: writes first must not be a 404 for a JWT user (the doctor found this)."""
    thread = f"writes-first-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": "1f0a0000-0000-6000-8000-000000000001"}}
    with EdgeMemorySaver(jwt_worker.url, token=token_for("writer")) as owner:
        owner.put_writes(config, [("messages", "hi")], task_id="task-1")
    with EdgeMemorySaver(jwt_worker.url, token=token_for("intruder")) as intruder:
        assert intruder.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}}) is None
        with pytest.raises(Exception, match="404"):
            intruder.put_writes(config, [("messages", "mine now")], task_id="task-2")
