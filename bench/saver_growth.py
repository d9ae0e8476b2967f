"""Storage growth of a LangGraph MessagesState conversation: EdgeMemorySaver (against the
worker at --url, in DEV_MODE for its storage stats) beside SqliteSaver, in one run.

Prints JSON: per turn, bytes stored (delta), bytes sent (request bodies; SqliteSaver sends
nothing, it writes locally), and HTTP requests per turn.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

from edge_memory import EdgeMemorySaver

SAVER_TABLES = [
    "em_saver_checkpoints", "em_saver_blobs", "em_saver_writes",
    "em_saver_messages", "em_saver_list_versions", "em_saver_list_rows",
]


def chat(state: MessagesState) -> dict[str, Any]:
    last = state["messages"][-1].content
    return {"messages": [AIMessage(content=f"You said: {last}. (This thread holds {len(state['messages']) - 1} earlier messages.)")]}


def graph_with(saver):
    return StateGraph(MessagesState).add_node("chat", chat).add_edge(START, "chat").add_edge("chat", END).compile(checkpointer=saver)


class MeteredSaver(EdgeMemorySaver):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.sent = 0
        self.requests = 0
        request = self._http.request

        def metered(method: str, path: str, body: Any = None, **kw: Any) -> Any:
            self.requests += 1
            self.sent += len(json.dumps(body)) if body is not None else 0
            return request(method, path, body, **kw)

        self._http.request = metered  # type: ignore[method-assign]


def stored_on_worker(url: str, thread: str) -> int:
    with urllib.request.urlopen(f"{url}/__dev/storage/{thread}") as res:
        tables = json.load(res)["tables"]
    return sum(tables[t]["bytes"] for t in SAVER_TABLES)


def sqlite_stored(conn: sqlite3.Connection) -> int:
    cps = conn.execute("SELECT coalesce(sum(length(checkpoint) + length(metadata) + length(thread_id) + length(checkpoint_id)), 0) FROM checkpoints").fetchone()[0]
    writes = conn.execute("SELECT coalesce(sum(length(value) + length(channel)), 0) FROM writes").fetchone()[0]
    return int(cps) + int(writes)


def text(turn: int) -> str:
    head = f"Turn {turn}: "
    return head + "x" * (200 - len(head))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--thread", default="saver-growth")
    args = parser.parse_args()

    ours = {"stored": [], "sent": [], "requests": []}
    saver = MeteredSaver(args.url)
    graph = graph_with(saver)
    config = {"configurable": {"thread_id": args.thread}}
    before = 0
    for turn in range(1, args.turns + 1):
        sent, requests = saver.sent, saver.requests
        graph.invoke({"messages": [HumanMessage(text(turn))]}, config)
        ours["sent"].append(saver.sent - sent)
        ours["requests"].append(saver.requests - requests)
        now = stored_on_worker(args.url, args.thread)
        ours["stored"].append(now - before)
        before = now
    check = graph_with(EdgeMemorySaver(args.url)).get_state(config)
    assert len(check.values["messages"]) == 2 * args.turns

    theirs = {"stored": []}
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "c.sqlite", check_same_thread=False)
        graph = graph_with(SqliteSaver(conn))
        before = 0
        for turn in range(1, args.turns + 1):
            graph.invoke({"messages": [HumanMessage(text(turn))]}, config)
            now = sqlite_stored(conn)
            theirs["stored"].append(now - before)
            before = now
        conn.close()
    print(json.dumps({"turns": args.turns, "ours": ours, "sqlite": theirs}))


if __name__ == "__main__":
    main()
