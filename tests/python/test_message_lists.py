"""MessagesState through EdgeMemorySaver: each message stored and sent once, any version
read back exactly, through replacements, removals, forks and a second writer."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langgraph.graph import END, START, MessagesState, StateGraph

from edge_memory import EdgeMemorySaver


def echo(state: MessagesState) -> dict[str, Any]:
    return {"messages": [AIMessage(content=f"echo {len(state['messages'])}: {state['messages'][-1].content}")]}


def build(saver: EdgeMemorySaver):
    graph = StateGraph(MessagesState).add_node("chat", echo).add_edge(START, "chat").add_edge("chat", END)
    return graph.compile(checkpointer=saver)


class CountingSaver(EdgeMemorySaver):
    """Counts the bytes of every put request body."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.put_bytes: list[int] = []
        request = self._http.request

        def counting(method: str, path: str, body: Any = None, **kw: Any) -> Any:
            if path.endswith("/saver/put"):
                self.put_bytes.append(len(json.dumps(body)))
            return request(method, path, body, **kw)

        self._http.request = counting  # type: ignore[method-assign]


def say(graph, thread: str, text: str, **config: Any):
    return graph.invoke({"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": thread, **config}})


def test_bytes_sent_per_turn_stay_flat_and_state_is_exact(worker):
    saver = CountingSaver(worker.url)
    graph = build(saver)
    per_turn = []
    for turn in range(1, 41):
        before = len(saver.put_bytes)
        out = say(graph, "flat-thread", f"message number {turn:03d} " + "x" * 150)
        per_turn.append(sum(saver.put_bytes[before:]))
        assert len(out["messages"]) == 2 * turn
    early, late = sum(per_turn[1:6]), sum(per_turn[-5:])
    assert late <= 1.1 * early, f"bytes sent per turn grew: {per_turn[1:6]} → {per_turn[-5:]}"
    # A fresh saver (a new process) reads the whole list back exactly.
    fresh = build(EdgeMemorySaver(worker.url))
    state = fresh.get_state({"configurable": {"thread_id": "flat-thread"}})
    assert [m.content for m in state.values["messages"]][:2] == [
        "message number 001 " + "x" * 150,
        "echo 1: message number 001 " + "x" * 150,
    ]
    assert len(state.values["messages"]) == 80


def test_replace_remove_and_fork_read_back_exactly(worker):
    saver = EdgeMemorySaver(worker.url)
    graph = build(saver)
    config = {"configurable": {"thread_id": "edit-thread"}}
    for text in ["one", "two", "three"]:
        say(graph, "edit-thread", text)
    state = graph.get_state(config)
    messages = state.values["messages"]
    first, second_reply = messages[0], messages[3]
    # Replace the first message in place and remove a reply.
    graph.update_state(config, {"messages": [HumanMessage("ONE", id=first.id), RemoveMessage(id=second_reply.id)]})
    edited = graph.get_state(config).values["messages"]
    assert [m.content for m in edited] == ["ONE", "echo 1: one", "two", "three", "echo 5: three"]
    # Older checkpoints still read as they were.
    history = list(graph.get_state_history(config))
    assert [m.content for m in history[1].values["messages"]] == [m.content for m in messages]
    # Fork from the checkpoint after turn one: a new branch, the old one intact.
    after_one = next(h for h in history if len(h.values.get("messages", [])) == 2)
    forked = graph.invoke({"messages": [HumanMessage("branch")]}, after_one.config)
    assert [m.content for m in forked["messages"]] == ["one", "echo 1: one", "branch", "echo 3: branch"]
    assert [m.content for m in graph.get_state(config).values["messages"]][-1] == "echo 3: branch"
    assert [m.content for m in history[1].values["messages"]][-1] == "echo 5: three"
    again = [s for s in graph.get_state_history(config) if s.config == history[1].config][0]
    assert [m.content for m in again.values["messages"]] == [m.content for m in messages]


def test_a_second_writer_falls_back_to_the_full_list(worker):
    a, b = build(EdgeMemorySaver(worker.url)), build(EdgeMemorySaver(worker.url))
    say(a, "two-writers", "from a")
    say(b, "two-writers", "from b")   # b read a's head first: a delta on it
    say(a, "two-writers", "a again")  # a's remembered version is no longer the head
    state = build(EdgeMemorySaver(worker.url)).get_state({"configurable": {"thread_id": "two-writers"}})
    assert [m.content for m in state.values["messages"]] == [
        "from a", "echo 1: from a", "from b", "echo 3: from b", "a again", "echo 5: a again",
    ]


def test_the_saver_remembers_a_bounded_number_of_lists(worker, monkeypatch):
    """The delta cache is bounded: past LIST_CACHE_MAX lists the oldest are forgotten and
    simply sent whole next time; every checkpoint still reads back exactly."""
    from langgraph.checkpoint.base import empty_checkpoint

    import edge_memory.saver as saver_module

    monkeypatch.setattr(saver_module, "LIST_CACHE_MAX", 3)
    saver = EdgeMemorySaver(worker.url)
    for round_ in range(2):
        for i in range(5):
            thread = f"bounded-cache-{i}"
            latest = saver.get_tuple({"configurable": {"thread_id": thread}})
            checkpoint = empty_checkpoint()
            before = latest.checkpoint["channel_values"]["messages"] if latest else []
            version = saver.get_next_version(latest.checkpoint["channel_versions"]["messages"] if latest else None, None)
            checkpoint["channel_values"] = {"messages": before + [HumanMessage(f"{thread} round {round_}", id=f"{thread}-{round_}")]}
            checkpoint["channel_versions"] = {"messages": version}
            config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
            saver.put(config, checkpoint, {"source": "input", "step": round_}, {"messages": version})
            assert len(saver._lists) <= 3
    for i in range(5):
        stored = saver.get_tuple({"configurable": {"thread_id": f"bounded-cache-{i}"}})
        assert [m.content for m in stored.checkpoint["channel_values"]["messages"]] == [
            f"bounded-cache-{i} round 0",
            f"bounded-cache-{i} round 1",
        ]
