"""The seeds' scenarios, across a runtime restart and separate Python processes, each with
its negative control: the same code with MemorySaver forgets."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

APPS = Path(__file__).with_name("apps.py")


def app(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(APPS), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_langgraph_app_remembers_across_restart_and_processes(worker):
    first = app("graph", "edge", worker.url, "user-123", "My name is Sam")
    assert first["messages"] == 2
    worker.restart()  # SIGKILL of the runtime's process group, new process, same storage
    second = app("graph", "edge", worker.url, "user-123", "What's my name?")
    assert second["reply"] == "Your name is Sam."
    assert second["messages"] == 4
    other = app("graph", "edge", worker.url, "user-456", "What's my name?")
    assert other["reply"] == "I don't know your name."


def test_negative_control_memory_saver_forgets(worker):
    app("graph", "memory", worker.url, "user-123-mem", "My name is Sam")
    second = app("graph", "memory", worker.url, "user-123-mem", "What's my name?")
    assert second["reply"] == "I don't know your name."
    assert second["messages"] == 2


def test_langchain_history_remembers_across_processes(worker):
    app("history", worker.url, "session-a", "My name is Sam")
    worker.restart()
    second = app("history", worker.url, "session-a", "What's my name?")
    assert second["reply"] == "Your name is Sam."
    other = app("history", worker.url, "session-b", "What's my name?")
    assert other["reply"] == "I don't know your name."
    # The same conversation, through the chat API.
    with urllib.request.urlopen(f"{worker.url}/threads/session-a/state") as res:
        state = json.load(res)
    contents = [m["content"] for m in state["values"]["messages"]]
    assert contents == ["My name is Sam", "You said: My name is Sam", "What's my name?", "Your name is Sam."]
