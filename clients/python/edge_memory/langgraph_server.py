"""LangGraph's own server (``langgraph dev``, self-hosted Agent Server) on edge-memory.

LangGraph's server takes a custom checkpointer from ``langgraph.json``: an import path to
an async context manager that yields a ``BaseCheckpointSaver``; the server enters it once
at startup and exits it at shutdown. This module is that factory, configured from the
environment, so the whole setup is::

    # checkpointer.py, beside langgraph.json
    from edge_memory.langgraph_server import make_checkpointer

    # langgraph.json
    "checkpointer": {"path": "./checkpointer.py:make_checkpointer"}

or, with the package installed where the server runs, without the file::

    "checkpointer": {"path": "edge_memory.langgraph_server.make_checkpointer"}

(the server splits a module path at its last dot: write it with dots only, not ``:``).

Environment variables (read when the server enters the factory):

``EDGE_MEMORY_URL``
    The worker's base URL (required).
``EDGE_MEMORY_API_KEY``
    Sent as ``x-api-key`` (``AUTH_MODE=api_key`` deployments).
``EDGE_MEMORY_TOKEN``
    A JWT sent as ``Authorization: Bearer`` (``AUTH_MODE=jwt``: every thread the server
    stores then belongs to that token's user).
``EDGE_MEMORY_TIMEOUT``
    Seconds per request (default 10).
``EDGE_MEMORY_RETRIES``
    Retries of idempotent calls on network errors and 502/503/504 (default 3).

The store (long-term memory, ``get_store()`` in nodes) is set the same way, with the
same variables::

    "store": {"path": "edge_memory.langgraph_server.make_store"}

The saver implements every method the server probes at startup (``adelete_thread``,
``adelete_for_runs``, ``acopy_thread``, ``aprune``), so the server runs with none of its
"missing method" warnings: thread deletion, ``multitask_strategy="rollback"``, thread
copies and pruning go to the worker in one request each.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from edge_memory.saver import EdgeMemorySaver
from edge_memory.store import EdgeMemoryStore

__all__ = ["make_checkpointer", "make_store", "saver_settings_from_env"]

ENV_URL = "EDGE_MEMORY_URL"
ENV_API_KEY = "EDGE_MEMORY_API_KEY"
ENV_TOKEN = "EDGE_MEMORY_TOKEN"
ENV_TIMEOUT = "EDGE_MEMORY_TIMEOUT"
ENV_RETRIES = "EDGE_MEMORY_RETRIES"


def saver_settings_from_env(environ: Mapping[str, str] | None = None, *, require_url: bool = True) -> dict[str, Any]:
    """``EdgeMemorySaver`` keyword arguments from the ``EDGE_MEMORY_*`` variables.

    Raises ``ValueError`` naming the variable when ``EDGE_MEMORY_URL`` is missing (unless
    ``require_url`` is false) or a number does not parse: the server then fails at
    startup, not at the first run.
    """
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    if url := (env.get(ENV_URL) or "").strip():
        settings["url"] = url
    elif require_url:
        raise ValueError(
            f"edge-memory checkpointer: set {ENV_URL} to the worker's base URL "
            "(e.g. https://edge-memory.example.workers.dev), in the environment or in "
            'langgraph.json\'s "env"'
        )
    if api_key := (env.get(ENV_API_KEY) or "").strip():
        settings["api_key"] = api_key
    if token := (env.get(ENV_TOKEN) or "").strip():
        settings["token"] = token
    for name, key, cast in ((ENV_TIMEOUT, "timeout", float), (ENV_RETRIES, "retries", int)):
        if raw := (env.get(name) or "").strip():
            try:
                settings[key] = cast(raw)
            except ValueError:
                raise ValueError(f"edge-memory checkpointer: {name}={raw!r} is not a number") from None
    return settings


def _settings(overrides: dict[str, Any]) -> dict[str, Any]:
    """The environment's settings, under the caller's ``overrides``."""
    return {**saver_settings_from_env(require_url="url" not in overrides), **overrides}


@asynccontextmanager
async def make_checkpointer(**overrides: Any) -> AsyncIterator[EdgeMemorySaver]:
    """An ``EdgeMemorySaver`` for LangGraph's server, configured from ``EDGE_MEMORY_*``.

    The server calls it with no arguments; ``overrides`` (any ``EdgeMemorySaver`` keyword,
    ``url`` included) take precedence over the environment, for a wrapper of your own.
    The saver's connection pools are closed when the server shuts down.
    """
    saver = EdgeMemorySaver(**_settings(overrides))
    try:
        yield saver
    finally:
        await saver.aclose()



@asynccontextmanager
async def make_store(**overrides: Any) -> AsyncIterator[EdgeMemoryStore]:
    """An ``EdgeMemoryStore`` for LangGraph's server, configured from ``EDGE_MEMORY_*``
    (the checkpointer's variables), for ``langgraph.json``'s ``"store": {"path": ...}``.

    ``overrides`` (any ``EdgeMemoryStore`` keyword) take precedence over the environment.
    The store's connection pools are closed when the server shuts down.
    """
    store = EdgeMemoryStore(**_settings(overrides))
    try:
        yield store
    finally:
        await store.aclose()
