"""The same chat workload on LangGraph's own stack: StateGraph(MessagesState) + SqliteSaver.

A deterministic chat node (no network) answers like the worker's built-in responder, so
both sides store the same messages. Prints JSON: per-turn invoke time and storage bytes.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from langchain_core.messages import AIMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph


def chat(state: MessagesState):
    last = state["messages"][-1].content
    earlier = len(state["messages"]) - 1
    plural = "" if earlier == 1 else "s"
    return {"messages": [AIMessage(content=f"You said: {last}. (This thread holds {earlier} earlier message{plural}.)")]}


def stored_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of checkpoint data as LangGraph stores it: checkpoint and metadata blobs, writes."""
    cps = conn.execute(
        "SELECT coalesce(sum(length(checkpoint) + length(metadata) + length(thread_id) + length(checkpoint_id)), 0) FROM checkpoints"
    ).fetchone()[0]
    writes = conn.execute("SELECT coalesce(sum(length(value) + length(channel)), 0) FROM writes").fetchone()[0]
    return int(cps) + int(writes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--message-bytes", type=int, default=200)
    parser.add_argument("--sample", type=str, default="", help="comma-separated turns to sample storage at")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "checkpoints.sqlite"
        conn = sqlite3.connect(db, check_same_thread=False)
        saver = SqliteSaver(conn)
        graph = StateGraph(MessagesState).add_node("chat", chat).add_edge(START, "chat").add_edge("chat", END)
        app = graph.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "bench"}}
        sample = {int(x) for x in args.sample.split(",") if x}
        times_ms: list[float] = []
        bytes_at: dict[int, int] = {}
        for turn in range(1, args.turns + 1):
            text = f"Turn {turn}: " + "x" * max(0, args.message_bytes - len(f"Turn {turn}: "))
            started = time.perf_counter()
            app.invoke({"messages": [{"role": "user", "content": text}]}, config)
            times_ms.append((time.perf_counter() - started) * 1000)
            if turn in sample:
                bytes_at[turn] = stored_bytes(conn)
        total = stored_bytes(conn)
        conn.close()
        file_size = db.stat().st_size
    print(json.dumps({"turn_ms": times_ms, "bytes_at": bytes_at, "total_bytes": total, "file_bytes": file_size}))


if __name__ == "__main__":
    main()
