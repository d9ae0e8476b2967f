"""``python -m edge_memory doctor URL [--api-key K | --token T] [--state FILE]``

The articles' integration test, run against a live deployment: two invocations of a
LangGraph graph on one fresh thread with a stable id (the second must see the first),
the checkpoint read back directly over a fresh connection, a second thread isolated from
the first, the amnesia guard (a head the server never had is refused), and the server's
own ``GET /diagnostics`` for this client. Prints the symptom map with ✓/✗ per row and the
fix for each ✗; exits 1 on any ✗ (2 when the worker cannot be asked at all).

``--state FILE`` keeps the probe thread between runs: the next run checks it is still
there, so running the doctor before and after a restart or a deploy tells whether
memory survived it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from edge_memory._http import EdgeMemoryError
from edge_memory.hints import HINT_HEADER, HINTS
from edge_memory.saver import EdgeMemorySaver

# The articles' symptom map, in their order: (symptom, likely cause, hint code).
ROWS = (
    ("Works locally only", "memory kept in the process, lost on restart", "ephemeral_memory"),
    ("First message persists, second doesn't", "missing or changing thread_id", "thread_id_not_stable"),
    ("Random behavior across requests", "several workers, each with its own memory", None),
    ("Checkpoints exist but aren't used", "wrong config path or thread identity", "checkpoints_unread"),
    ("A new conversation on every request", "a new thread made per message", "new_thread_per_request"),
)
ISOLATION_FIX = (
    "keep conversation state in one shared store: every worker must talk to the same "
    "edge-memory URL (never a per-process MemorySaver)"
)


@dataclass
class Row:
    """One row of the symptom map and what the checks found about it."""

    symptom: str
    cause: str
    code: str | None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, ok: bool, good: str, bad: str) -> None:
        (self.notes if ok else self.problems).append(good if ok else bad)

    @property
    def fix(self) -> str:
        return HINTS[self.code].fix if self.code else ISOLATION_FIX


class Doctor:
    """The checks against one deployment, as one client (its API key or token)."""

    def __init__(self, url: str, *, api_key: str | None = None, token: str | None = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.credentials = {"api_key": api_key, "token": token, "timeout": timeout}
        headers = {"x-api-key": api_key} if api_key else {}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.rows = {code or symptom: Row(symptom, cause, code) for symptom, cause, code in ROWS}
        self.hints_seen: set[str] = set()

    def row(self, key: str) -> Row:
        return self.rows[key]

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        response = self.http.request(method, path, json=body)
        self.note_hints(response.headers.get(HINT_HEADER))
        return response

    def note_hints(self, header: str | None) -> None:
        self.hints_seen.update(c.strip() for c in (header or "").split(",") if c.strip())

    def saver(self) -> EdgeMemorySaver:
        return EdgeMemorySaver(self.url, **self.credentials)

    def run(self, state_file: Path | None) -> dict[str, Any]:
        """Runs every check; what `/info` said."""
        info = self.call("GET", "/info")
        if info.status_code != 200:
            raise EdgeMemoryError(info.status_code, info.text[:300], method="GET", path="/info")
        info_json = info.json()
        self.check_backend(info_json)
        if state_file is not None:
            self.check_previous_probe(state_file)
        probe = self.check_conversation()
        self.check_guard()
        self.check_diagnostics()
        if state_file is not None and probe is not None:
            state_file.write_text(json.dumps({**probe, "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
        for code in sorted(self.hints_seen):
            if code in self.rows:
                self.row(code).check(False, "", f"the server returned hint {code} (x-edge-memory-hint)")
        return info_json

    def check_backend(self, info: dict[str, Any]) -> None:
        backend = info.get("storage_backend")
        ephemeral = backend == "memory" and not info.get("dev_mode")
        self.row("ephemeral_memory").check(
            not ephemeral,
            f"storage_backend is {backend}",
            f"storage_backend is {backend}: every thread is lost when the worker restarts",
        )

    def check_previous_probe(self, state_file: Path) -> None:
        """The probe thread of the doctor's last run, if any, must still be there."""
        if not state_file.exists():
            return
        previous = json.loads(state_file.read_text())
        thread, head = previous["thread_id"], previous["checkpoint_id"]
        if previous.get("api") == "runs":
            found = self.call("GET", f"/threads/{thread}/state/{head}").status_code == 200
            if found:
                self.call("DELETE", f"/threads/{thread}")
        else:
            config = {"configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": head}}
            with self.saver() as saver:
                try:
                    found = saver.get_tuple(config) is not None
                except EdgeMemoryError:
                    found = False
                self.note_hints(",".join(saver._http.hints.seen))
                if found:
                    saver.delete_thread(thread)
        self.row("ephemeral_memory").check(
            found,
            f"the probe thread of the last run ({previous.get('written_at')}) is still there",
            f"the probe thread {previous['thread_id']} written by the last run ({previous.get('written_at')}) is gone: memory did not survive",
        )

    def check_conversation(self) -> dict[str, str] | None:
        """Two invocations on one stable thread, read back over a fresh connection; a
        second thread isolated. The probe thread's id and head, for ``--state``."""
        thread, other = f"doctor-{uuid.uuid4()}", f"doctor-{uuid.uuid4()}"
        config = {"configurable": {"thread_id": thread}}
        try:
            with self.saver() as saver:
                graph = probe_graph(saver)
                graph.invoke({"messages": [("user", "My name is Sam")]}, config)
                second = graph.invoke({"messages": [("user", "What's my name?")]}, config)
                head = graph.get_state(config).config["configurable"]["checkpoint_id"]
                lone = graph.invoke({"messages": [("user", "Hello")]}, {"configurable": {"thread_id": other}})
                saver.delete_thread(other)
                self.note_hints(",".join(saver._http.hints.seen))
            with self.saver() as fresh:
                read = fresh.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
                self.note_hints(",".join(fresh._http.hints.seen))
        except EdgeMemoryError as err:
            if err.code == "unsupported":
                # No checkpointer storage on this backend: the same test through runs.
                return self.conversation_via_runs()
            for key in ("thread_id_not_stable", ROWS[2][0], "checkpoints_unread"):
                self.row(key).check(False, "", f"the saver failed: {err}")
            return None
        humans = [m.content for m in second["messages"] if m.type == "human"]
        read_id = read.config["configurable"]["checkpoint_id"] if read else None
        self.judge(humans, (head, read_id), [m.content for m in lone["messages"] if m.type == "human"])
        read_messages = len(read.checkpoint["channel_values"].get("messages", [])) if read else 0
        if read_messages != 4:
            self.row("checkpoints_unread").check(False, "", f"get_tuple read back {read_messages} messages, not the 4 written")
        return {"api": "saver", "thread_id": thread, "checkpoint_id": head}

    def conversation_via_runs(self) -> dict[str, str] | None:
        """The conversation checks through the runs API, on the deployment's own model."""
        thread, other = f"doctor-{uuid.uuid4()}", f"doctor-{uuid.uuid4()}"

        def run(thread_id: str, text: str) -> httpx.Response:
            return self.call("POST", f"/threads/{thread_id}/runs/wait", {
                "assistant_id": "agent", "if_not_exists": "create",
                "input": {"messages": [{"role": "user", "content": text}]},
            })

        def humans(values: dict[str, Any]) -> list[str]:
            return [m["content"] for m in values.get("messages", []) if m.get("type") == "human"]

        answers = [run(thread, "My name is Sam"), run(thread, "What's my name?"), run(other, "Hello")]
        failed = [a for a in answers if a.status_code != 200]
        if failed:
            for row in (self.row("thread_id_not_stable"), self.row(ROWS[2][0]), self.row("checkpoints_unread")):
                row.check(False, "", f"a run answered {failed[0].status_code}: {failed[0].text[:200]}")
            return None
        head = answers[1].headers.get("x-thread-head")
        with httpx.Client(base_url=self.url, headers=self.http.headers, timeout=self.http.timeout) as fresh:
            state = fresh.get(f"/threads/{thread}/state")
        read_id = state.json().get("checkpoint", {}).get("checkpoint_id") if state.status_code == 200 else None
        self.call("DELETE", f"/threads/{other}")
        self.judge(humans(answers[1].json()), (head, read_id), humans(answers[2].json()))
        return {"api": "runs", "thread_id": thread, "checkpoint_id": head or ""}

    def judge(self, humans: list[str], heads: tuple[str | None, str | None], lone: list[str]) -> None:
        """The conversation's rows: what the second invocation saw, what a fresh
        connection read back (`heads`: the graph's head, the one read), what a second
        thread saw."""
        thread_head, read_id = heads
        self.row("thread_id_not_stable").check(
            humans == ["My name is Sam", "What's my name?"],
            "two invocations on one thread id: the second saw the first",
            f"the second invocation on one thread id saw {humans}, not both messages",
        )
        self.row("checkpoints_unread").check(
            read_id is not None and read_id == thread_head,
            "the checkpoint read back directly is the conversation's head",
            f"reading the thread back directly gave {read_id}, not the conversation's head {thread_head}",
        )
        self.row(ROWS[2][0]).check(
            read_id is not None and read_id == thread_head and lone == ["Hello"],
            "a fresh connection reads the same head; a second thread sees nothing of the first",
            f"a fresh connection read {read_id} (head {thread_head}); a second thread saw {lone}",
        )

    def check_guard(self) -> None:
        """A client that remembers a head the server never had is refused (409
        `memory_mismatch`) instead of silently getting an empty thread."""
        created = self.call("POST", "/threads", {"metadata": {"edge_memory_doctor": True}})
        row = self.row("ephemeral_memory")
        if created.status_code != 200:
            row.check(False, "", f"POST /threads answered {created.status_code}: {created.text[:200]}")
            return
        thread = created.json()["thread_id"]
        # Not through `call`: the refusal carries the hint it exists for (ephemeral_memory),
        # which says nothing about this deployment.
        answer = self.http.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "agent",
            "input": {"messages": [{"role": "user", "content": "Do you remember me?"}]},
            "expected_head": "doctor-a-head-this-server-never-had",
        })
        code = answer.json().get("code") if answer.headers.get("content-type", "").startswith("application/json") else None
        self.call("DELETE", f"/threads/{thread}")
        row.check(
            answer.status_code == 409 and code == "memory_mismatch",
            "the amnesia guard refuses a head the server never had",
            f"a run expecting a head the server never had answered {answer.status_code} {code}, not 409 memory_mismatch",
        )

    def check_diagnostics(self) -> None:
        """The server's own diagnosis of this client (its API key, token or browser id)."""
        answer = self.call("GET", "/diagnostics")
        if answer.status_code != 200:
            self.row("ephemeral_memory").check(False, "", f"GET /diagnostics answered {answer.status_code}")
            return
        for hint in answer.json().get("hints", []):
            code = hint.get("code")
            seen = f"GET /diagnostics: {code} given {hint.get('count')} times, last {hint.get('last_seen')}"
            if code == "ephemeral_memory":
                # Refusals of the amnesia guard count here, the doctor's own check among
                # them: the checks above decide this row.
                self.row(code).notes.append(seen + " (amnesia guard refusals included)")
            elif code in self.rows:
                self.row(code).check(False, "", seen)

    def report(self, out: TextIO, info: dict[str, Any]) -> int:
        """Prints the table; the number of rows with a ✗."""
        auth = (info.get("auth") or {}).get("mode")
        out.write(f"edge-memory doctor: {self.url} (storage: {info.get('storage_backend')}, auth: {auth})\n\n")
        failed = 0
        for row in self.rows.values():
            ok = not row.problems
            failed += not ok
            out.write(f"  {'✓' if ok else '✗'}  {row.symptom:<42} {row.code or '-':<24} {row.cause}\n")
            for line in row.problems or row.notes:
                out.write(f"       {line}\n")
            if not ok:
                out.write(f"       fix: {row.fix}\n")
        out.write(f"\n{failed} of {len(self.rows)} rows failed.\n" if failed else f"\nall {len(self.rows)} rows passed.\n")
        return failed


def probe_graph(saver: EdgeMemorySaver) -> Any:
    """A one-node LangGraph graph whose reply counts the user's messages: no model."""
    try:
        from langchain_core.messages import AIMessage
        from langgraph.graph import END, START, MessagesState, StateGraph
    except ImportError as err:  # pragma: no cover - langgraph is what a saver serves
        raise SystemExit(f"edge-memory doctor needs langgraph (pip install langgraph): {err}") from err

    def reply(state: MessagesState) -> dict[str, Any]:
        seen = sum(1 for m in state["messages"] if m.type == "human")
        return {"messages": [AIMessage(content=f"I have seen {seen} of your messages")]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile(checkpointer=saver)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_memory")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="check a deployment against the symptom map of memory that does not persist")
    doctor.add_argument("url", help="the worker's base URL")
    who = doctor.add_mutually_exclusive_group()
    who.add_argument("--api-key", help="sent as x-api-key")
    who.add_argument("--token", help="a user's JWT, sent as Authorization: Bearer")
    doctor.add_argument("--state", type=Path, help="keep the probe thread here; the next run checks it survived")
    args = parser.parse_args(argv)
    checks = Doctor(args.url, api_key=args.api_key, token=args.token)
    try:
        info = checks.run(args.state)
    except (EdgeMemoryError, httpx.HTTPError) as err:
        out.write(f"edge-memory doctor: cannot check {args.url}: {err}\n")
        return 2
    finally:
        checks.http.close()
    return 1 if checks.report(out, info) else 0
