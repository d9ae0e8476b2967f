"""EdgeMemorySaver against the worker in workerd, through LangGraph's official
checkpointer conformance suite (langgraph-checkpoint-conformance, pinned)."""

from __future__ import annotations

import asyncio
import json

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from edge_memory import EdgeMemoryError, EdgeMemorySaver

# Every capability of the suite, with the number of its tests in 0.0.2 (81 in all).
EXPECTED_TESTS = {
    "put": 17, "put_writes": 10, "get_tuple": 10, "list": 16, "delete_thread": 5,
    "delete_for_runs": 7, "copy_thread": 8, "prune": 8,
}


def test_langgraph_conformance_suite(worker):
    @checkpointer_test(name="EdgeMemorySaver")
    async def edge_memory_saver():
        yield EdgeMemorySaver(worker.url)

    report = asyncio.run(validate(edge_memory_saver, progress=ProgressCallbacks.verbose()))
    report.print_report()
    summary = report.to_dict()
    print(json.dumps(summary, indent=2, default=str))
    assert report.passed_all_base(), "every base capability must pass"
    capabilities = summary["capabilities"] if "capabilities" in summary else summary["results"]
    base_tests = sum(capabilities[c]["tests_passed"] for c in ("put", "put_writes", "get_tuple", "list", "delete_thread"))
    assert base_tests == 58, f"langgraph-checkpoint-conformance 0.0.2 has 58 base tests, {base_tests} passed"
    counts = {c: capabilities[c]["tests_passed"] for c in EXPECTED_TESTS}
    failed = {c: capabilities[c]["tests_failed"] for c in EXPECTED_TESTS if capabilities[c]["tests_failed"]}
    assert failed == {}, f"failed per capability: {failed}"
    assert counts == EXPECTED_TESTS, f"passed per capability: {counts}"
    assert sum(counts.values()) == 81


def test_missing_thread_id_raises_before_any_request():
    saver = EdgeMemorySaver("http://127.0.0.1:9")  # nothing listens: a request would fail differently
    with pytest.raises(ValueError, match="thread_id"):
        saver.get_tuple({"configurable": {}})
    with pytest.raises(ValueError, match="thread_id"):
        list(saver.list({"configurable": {"checkpoint_ns": ""}}))


def test_server_errors_are_raised_not_swallowed(worker):
    saver = EdgeMemorySaver(worker.url)
    with pytest.raises(EdgeMemoryError) as err:
        saver.get_tuple({"configurable": {"thread_id": "bad id with spaces"}})
    assert err.value.status == 422
    assert "thread_id" in str(err.value)


def test_bad_input_is_refused_and_changes_nothing(worker):
    from langgraph.checkpoint.base import empty_checkpoint

    saver = EdgeMemorySaver(worker.url, retries=0)
    config = {"configurable": {"thread_id": "bad-input-thread", "checkpoint_ns": ""}}
    good = empty_checkpoint()
    good["channel_values"] = {"messages": ["hello"]}
    good["channel_versions"] = {"messages": saver.get_next_version(None, None)}
    stored = saver.put(config, good, {"source": "input", "step": -1}, dict(good["channel_versions"]))
    before = saver.get_tuple(stored)
    assert before.checkpoint["channel_values"] == {"messages": ["hello"]}

    # An oversized channel value: 413 with the limit, nothing stored.
    big = empty_checkpoint()
    big["channel_values"] = {"messages": ["x" * (3 * 1024 * 1024)]}
    big["channel_versions"] = {"messages": saver.get_next_version(good["channel_versions"]["messages"], None)}
    with pytest.raises(EdgeMemoryError) as err:
        saver.put(stored, big, {"source": "loop", "step": 0}, dict(big["channel_versions"]))
    assert err.value.status == 413 and "limit" in err.value.detail

    # Wrong types in the wire body: 422 naming the field.
    with pytest.raises(EdgeMemoryError) as err:
        saver._http.request("POST", "/threads/bad-input-thread/saver/put", {"checkpoint_id": 5})
    assert err.value.status == 422 and "put" in err.value.detail

    # An unknown checkpoint id reads as None (LangGraph's contract), not as the head.
    unknown = {"configurable": {"thread_id": "bad-input-thread", "checkpoint_ns": "", "checkpoint_id": "nope"}}
    assert saver.get_tuple(unknown) is None

    after = saver.get_tuple({"configurable": {"thread_id": "bad-input-thread", "checkpoint_ns": ""}})
    assert after.config == before.config
    assert after.checkpoint["channel_values"] == before.checkpoint["channel_values"]
    assert len(list(saver.list(config))) == 1


def test_saver_copy_onto_a_thread_that_has_data_is_refused(worker):
    """Finding "saver copy onto a thread that already has data mixes the two threads'
    message lists": refused (409), the target unchanged; a copy to a new id works."""
    from langgraph.checkpoint.base import empty_checkpoint

    saver = EdgeMemorySaver(worker.url, retries=0)

    def put(thread_id: str, text: str) -> None:
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"messages": [text]}
        checkpoint["channel_versions"] = {"messages": saver.get_next_version(None, None)}
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        saver.put(config, checkpoint, {"source": "input", "step": -1}, dict(checkpoint["channel_versions"]))

    def values(thread_id: str) -> list:
        return [t.checkpoint["channel_values"] for t in saver.list({"configurable": {"thread_id": thread_id}})]

    put("copy-source", "from the source")
    put("copy-target", "the target's own")
    with pytest.raises(EdgeMemoryError) as err:
        saver.copy_thread("copy-source", "copy-target")
    assert err.value.status == 409 and "already has checkpoints" in err.value.detail
    assert values("copy-target") == [{"messages": ["the target's own"]}]
    saver.copy_thread("copy-source", "copy-fresh")
    assert values("copy-fresh") == [{"messages": ["from the source"]}]
