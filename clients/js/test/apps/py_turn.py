"""The Python twin of graph.mjs (same nodes, same replies) on the Python EdgeMemorySaver:
`python py_turn.py <url> <thread> <text>` prints {"reply", "count", "messages"}, for the
cross-language test (a thread written by one language is continued by the other)."""

from __future__ import annotations

import json
import sys
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from edge_memory import EdgeMemorySaver


def _text(message: Any) -> str:
    return message.content if isinstance(message.content, str) else json.dumps(message.content)


def chat(state: MessagesState) -> dict[str, Any]:
    messages = state["messages"]
    last = messages[-1]
    if last.type == "tool":
        return {"messages": [AIMessage(content=f"I remember: {_text(last)}")]}
    said = _text(last)
    if said.startswith("recall"):
        call = {"id": f"call-{len(messages)}", "name": "recall", "args": {}, "type": "tool_call"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}
    return {"messages": [AIMessage(content=f"Noted ({len(messages)} messages so far): {said}")]}


def tools(state: MessagesState) -> dict[str, Any]:
    messages = state["messages"]
    call = messages[-1].tool_calls[0]
    facts = [_text(m)[len("remember "):] for m in messages if m.type == "human" and _text(m).startswith("remember ")]
    return {"messages": [ToolMessage(content=", ".join(facts) or "nothing", tool_call_id=call["id"], name=call["name"])]}


def route(state: MessagesState) -> str:
    return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END


def main() -> None:
    url, thread_id, said = sys.argv[1:4]
    graph = (
        StateGraph(MessagesState)
        .add_node("chat", chat)
        .add_node("tools", tools)
        .add_edge(START, "chat")
        .add_conditional_edges("chat", route, ["tools", END])
        .add_edge("tools", "chat")
        .compile(checkpointer=EdgeMemorySaver(url))
    )
    state = graph.invoke({"messages": [{"role": "user", "content": said}]}, {"configurable": {"thread_id": thread_id}})
    messages = state["messages"]
    print(json.dumps({
        "reply": _text(messages[-1]),
        "count": len(messages),
        "messages": [[m.type, _text(m), m.id] for m in messages],
    }))


if __name__ == "__main__":
    main()
