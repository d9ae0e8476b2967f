"""The client package as installed: both import paths, typed, closable in every form."""

from __future__ import annotations

import asyncio
from importlib.metadata import distribution
from importlib.resources import files

import edge_memory
from edge_memory import EdgeMemoryChatMessageHistory, EdgeMemorySaver


def test_family_import_path_is_the_same_objects():
    from langgraph.checkpoint import edge_memory as family

    assert family.EdgeMemorySaver is EdgeMemorySaver
    assert family.EdgeMemoryChatMessageHistory is EdgeMemoryChatMessageHistory
    assert family.EdgeMemoryError is edge_memory.EdgeMemoryError


def test_distribution_name_and_py_typed():
    assert distribution("langgraph-checkpoint-edge-memory").version == "0.1.0"
    assert files("edge_memory").joinpath("py.typed").is_file()
    assert files("langgraph.checkpoint.edge_memory").joinpath("py.typed").is_file()


def test_saver_and_history_close_in_sync_and_async_forms(worker):
    with EdgeMemorySaver.from_url(worker.url) as saver:
        assert saver.get_tuple({"configurable": {"thread_id": "package-never-written"}}) is None
    with EdgeMemoryChatMessageHistory(worker.url, "package-never-written") as history:
        assert history.messages == []

    async def scenario() -> None:
        async with EdgeMemorySaver.from_url(worker.url) as saver:
            assert await saver.aget_tuple({"configurable": {"thread_id": "package-never-written"}}) is None
        async with EdgeMemoryChatMessageHistory(worker.url, "package-never-written") as history:
            assert await history.aget_messages() == []

    asyncio.run(scenario())
