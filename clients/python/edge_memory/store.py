"""``EdgeMemoryStore``: LangGraph's long-term memory (``BaseStore``) kept by edge-memory.

Items, namespaces, filters, semantic search and TTL live in the worker's store shards
(Durable Object SQLite); this class speaks the worker's ``/store/*`` API (LangGraph's
shapes)::

    from edge_memory import EdgeMemorySaver, EdgeMemoryStore

    graph = builder.compile(checkpointer=EdgeMemorySaver(url), store=EdgeMemoryStore(url))

Items are embedded by the worker (``STORE_EMBEDDINGS``: the built-in local embedder by
default), so ``search(..., query=...)`` ranks by similarity with no embedding model in
the graph's process.

Where we differ from ``InMemoryStore`` (on purpose, see the README): a search without
``query`` returns items ordered by namespace path, then key (``InMemoryStore``: insertion
order; LangGraph's SQL stores: ``updated_at`` descending); a put over an existing key
keeps its ``created_at`` (as LangGraph's Postgres store does); namespaces with no items
left are not listed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from edge_memory._http import DEFAULT_RETRIES, Transport

__all__ = ["EdgeMemoryStore", "user_root"]

USER_ROOT_PREFIX = "user:"


def user_root(sub: str) -> str:
    """The first label by which a service (``api_key``) names a user's items: the service's
    ``(user_root(sub), "memories")`` is that user's own ``("memories",)``. ``%`` and ``.`` of
    ``sub`` are written ``%25`` and ``%2E`` (a label has no periods)."""
    return USER_ROOT_PREFIX + sub.replace("%", "%25").replace(".", "%2E")



class EdgeMemoryStore(BaseStore):
    """A LangGraph ``BaseStore`` on an edge-memory worker.

    ``url`` is the worker's base URL; ``api_key`` is sent as ``x-api-key``, ``token`` (a
    JWT) as ``Authorization: Bearer``: with a token, every item lives under that user's
    own root, invisible to other users; with an API key, that root is reached by
    namespaces starting with ``user_root(sub)``. ``index`` (a list of paths, or ``False``) and
    ``ttl`` (minutes) of ``put`` are passed through to the worker.

    The API has one request per operation, so ``batch`` sends one request per op, in
    order (reads after writes of the same batch see them); ``abatch`` runs the reads of a
    batch concurrently between its writes.
    """

    supports_ttl = True

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self._http = Transport(url, api_key=api_key, token=token, timeout=timeout, retries=retries)

    def close(self) -> None:
        """Closes the sync connection pool."""
        self._http.close()

    async def aclose(self) -> None:
        """Closes both connection pools."""
        await self._http.aclose()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Carries out ``ops`` in order, one request each."""
        results: list[Result] = []
        for op in ops:
            method, path, body = _request(op)
            results.append(_result(op, self._http.request(method, path, body, idempotent=True)))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Carries out ``ops``: consecutive reads concurrently, writes in order."""
        ops = list(ops)
        results: list[Result] = [None] * len(ops)
        reads: list[int] = []

        async def flush() -> None:
            answers = await asyncio.gather(*(self._send(ops[i]) for i in reads))
            for i, answer in zip(reads, answers):
                results[i] = answer
            reads.clear()

        for i, op in enumerate(ops):
            if isinstance(op, PutOp):
                await flush()
                results[i] = await self._send(op)
            else:
                reads.append(i)
        await flush()
        return results

    async def _send(self, op: Op) -> Result:
        method, path, body = _request(op)
        return _result(op, await self._http.arequest(method, path, body, idempotent=True))


def _request(op: Op) -> tuple[str, str, Any]:
    """The worker request that carries out ``op``."""
    if isinstance(op, GetOp):
        params = {"namespace": ".".join(op.namespace), "key": op.key}
        params["refresh_ttl"] = "true" if op.refresh_ttl else "false"
        return "GET", f"/store/items?{urlencode(params)}", None
    if isinstance(op, PutOp):
        if op.value is None:
            return "DELETE", "/store/items", {"namespace": list(op.namespace), "key": op.key}
        body: dict[str, Any] = {"namespace": list(op.namespace), "key": op.key, "value": op.value}
        if op.index is not None:
            body["index"] = op.index if op.index is False else list(op.index)
        if op.ttl is not None:
            body["ttl"] = op.ttl
        return "PUT", "/store/items", body
    if isinstance(op, SearchOp):
        return "POST", "/store/items/search", {
            "namespace_prefix": list(op.namespace_prefix),
            "filter": op.filter,
            "limit": op.limit,
            "offset": op.offset,
            "query": op.query,
            "refresh_ttl": op.refresh_ttl,
        }
    if isinstance(op, ListNamespacesOp):
        body = {"limit": op.limit, "offset": op.offset, "max_depth": op.max_depth}
        for condition in op.match_conditions or ():
            body[condition.match_type] = list(condition.path)
        return "POST", "/store/namespaces", body
    raise ValueError(f"Unknown operation type: {type(op)}")


def _result(op: Op, answer: Any) -> Result:
    if isinstance(op, GetOp):
        return _item(answer, Item) if answer else None
    if isinstance(op, SearchOp):
        return [_item(raw, SearchItem) for raw in answer["items"]]
    if isinstance(op, ListNamespacesOp):
        return [tuple(ns) for ns in answer["namespaces"]]
    return None


def _item(raw: dict[str, Any], cls: type) -> Any:
    fields = {
        "namespace": tuple(raw["namespace"]),
        "key": raw["key"],
        "value": raw["value"],
        "created_at": datetime.fromisoformat(raw["created_at"]),
        "updated_at": datetime.fromisoformat(raw["updated_at"]),
    }
    if cls is SearchItem:
        fields["score"] = raw.get("score")
    return cls(**fields)
