"""Small apps the tests run as separate Python processes, the way users' servers run.

    python apps.py graph  edge|memory URL THREAD TEXT   # LangGraph StateGraph(MessagesState)
    python apps.py history URL SESSION TEXT             # LangChain RunnableWithMessageHistory

Each prints the reply as JSON. A new process per call: nothing survives in Python memory.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from langchain_core.language_models import SimpleChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from edge_memory import EdgeMemoryChatMessageHistory, EdgeMemorySaver

NAME = re.compile(r"my name is\s+([A-Za-z][\w-]*)", re.I)


def answer(messages: list[BaseMessage]) -> str:
    """Deterministic, offline: recalls a name said earlier in `messages`."""
    humans = [m.content for m in messages if isinstance(m, HumanMessage) or m.type == "human"]
    last = humans[-1] if humans else ""
    if "what's my name" in last.lower() or "what is my name" in last.lower():
        for text in reversed(humans[:-1]):
            if found := NAME.search(text):
                return f"Your name is {found.group(1)}."
        return "I don't know your name."
    return f"You said: {last}"


def chat_node(state: MessagesState) -> dict[str, Any]:
    return {"messages": [{"role": "assistant", "content": answer(state["messages"])}]}


class NameRecallChatModel(SimpleChatModel):
    """A fake chat model (langchain-core's SimpleChatModel) that answers from the history."""

    @property
    def _llm_type(self) -> str:
        return "name-recall-fake"

    def _call(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any) -> str:
        return answer(messages)


def run_graph(kind: str, url: str, thread: str, text: str) -> dict[str, Any]:
    saver = EdgeMemorySaver(url) if kind == "edge" else MemorySaver()
    graph = (
        StateGraph(MessagesState).add_node("chat", chat_node).add_edge(START, "chat").add_edge("chat", END)
    ).compile(checkpointer=saver)
    out = graph.invoke({"messages": [{"role": "user", "content": text}]}, {"configurable": {"thread_id": thread}})
    return {"reply": out["messages"][-1].content, "messages": len(out["messages"])}


def run_history(url: str, session: str, text: str) -> dict[str, Any]:
    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{input}")])
    chain = RunnableWithMessageHistory(
        prompt | NameRecallChatModel(),
        lambda session_id: EdgeMemoryChatMessageHistory(url, session_id),
        input_messages_key="input",
        history_messages_key="history",
    )
    reply = chain.invoke({"input": text}, config={"configurable": {"session_id": session}})
    return {"reply": reply.content}


if __name__ == "__main__":
    if sys.argv[1] == "graph":
        print(json.dumps(run_graph(*sys.argv[2:6])))
    else:
        print(json.dumps(run_history(*sys.argv[2:5])))
