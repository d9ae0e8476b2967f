"""The app `test_langgraph_server.py` serves with `langgraph dev`: copied beside its
langgraph.json as `agent.py`, as a user's project would have it.

Two graphs over `MessagesState`, offline and deterministic:
- `agent`: one node that answers from the earlier messages ("Your name is Sam."), as
  `apps.py`'s graph does.
- `slow`: the same answer, then a node that waits `SLOW_SECONDS` before adding "done"
  (asynchronously, so a cancelled run stops at once): a run in progress to double-text.
- `brief`: the same with a `BRIEF_SECONDS` wait, for double texts that let it finish
  (`reject`, `enqueue`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from apps import answer  # copied beside it: the deterministic replies the other tests use
from langgraph.graph import END, START, MessagesState, StateGraph

SLOW_SECONDS = 30
BRIEF_SECONDS = 3


def chat(state: MessagesState) -> dict[str, Any]:
    return {"messages": [{"role": "assistant", "content": answer(state["messages"])}]}


async def pause(state: MessagesState) -> dict[str, Any]:
    await asyncio.sleep(SLOW_SECONDS)
    return {"messages": [{"role": "assistant", "content": "done"}]}


async def brief_pause(state: MessagesState) -> dict[str, Any]:
    await asyncio.sleep(BRIEF_SECONDS)
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

brief_graph = (
    StateGraph(MessagesState)
    .add_node("chat", chat)
    .add_node("pause", brief_pause)
    .add_edge(START, "chat")
    .add_edge("chat", "pause")
    .add_edge("pause", END)
    .compile()
)
