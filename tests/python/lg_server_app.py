"""The app `test_langgraph_server.py` serves with `langgraph dev`: copied beside its
langgraph.json as `agent.py`, as a user's project would have it.

Two graphs over `MessagesState`, offline and deterministic:
- `agent`: one node that answers from the earlier messages ("Your name is Sam."), as
  `apps.py`'s graph does.
- `slow`: the same answer, then a node that waits `SLOW_SECONDS` before adding "done"
  (asynchronously, so a cancelled run stops at once): a run in progress to double-text.
"""

from __future__ import annotations

import asyncio
from typing import Any

from apps import answer  # copied beside it: the deterministic replies the other tests use
from langgraph.graph import END, START, MessagesState, StateGraph

SLOW_SECONDS = 30


def chat(state: MessagesState) -> dict[str, Any]:
    return {"messages": [{"role": "assistant", "content": answer(state["messages"])}]}


async def pause(state: MessagesState) -> dict[str, Any]:
    await asyncio.sleep(SLOW_SECONDS)
    return {"messages": [{"role": "assistant", "content": "done"}]}


graph = StateGraph(MessagesState).add_node("chat", chat).add_edge(START, "chat").add_edge("chat", END).compile()

slow_graph = (
    StateGraph(MessagesState)
    .add_node("chat", chat)
    .add_node("pause", pause)
    .add_edge(START, "chat")
    .add_edge("chat", "pause")
    .add_edge("pause", END)
    .compile()
)
