"""`EdgeMemorySaver`: a LangGraph checkpointer whose checkpoints live in edge-memory.

Drop-in for `MemorySaver()`: `builder.compile(checkpointer=EdgeMemorySaver(url))`. Each
thread's checkpoints are kept in that thread's Durable Object, so a restart, a redeploy,
another worker process or another pod sees the same conversation.

Channel values go through the saver's `serde` (`dumps_typed`) and are stored as the
opaque `(type, bytes)` it produced, so any LangGraph state round-trips. A put sends only
the channels in `new_versions`; one request per saver call.

A channel holding a list of messages (`MessagesState`'s `messages`) is sent as a message
list: each message serialized on its own, and, in the steady state, only what changed
since the version this saver last stored or read for the thread (appended, replaced,
removed ids). The worker stores each message once, so bytes per turn stay flat. If the
worker does not have that version (another process wrote since, or it was pruned), the
put is sent again with the whole list, which the worker de-duplicates.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from edge_memory._http import EdgeMemoryError, Transport, thread_path
from edge_memory.hints import logger

MESSAGE_LIST_TYPE = "em:message_list"
# Message lists whose last version the saver remembers (per thread, namespace and
# channel): enough for every thread a process is working on at once, bounded memory.
LIST_CACHE_MAX = 1024

# What this saver last stored or read of a message list: (thread, ns, channel) ->
# (version, [(message id, digest), ...]).
_ListKey = tuple[str, str, str]
_ListState = tuple[Any, list[tuple[str, str]]]


def _is_message_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, BaseMessage) and m.id for m in value)


def _base_list_missing(err: EdgeMemoryError) -> bool:
    """The worker lacks the message-list version a delta was based on: resend whole."""
    if err.status != 409:
        return False
    # Servers before error codes said so only in the text.
    return err.code == "base_version_missing" or (err.code is None and "send the full list" in err.detail)


def _digest(kind: str, data: bytes) -> str:
    return hashlib.sha256(kind.encode() + b"\0" + data).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _typed(value: tuple[str, bytes]) -> dict[str, str]:
    kind, data = value
    return {"type": kind, "data": _b64(data)}


def _untyped(value: dict[str, str]) -> tuple[str, bytes]:
    return value["type"], base64.b64decode(value["data"])


def _json_safe(value: Any) -> Any:
    """Metadata as JSON for server-side filters; what JSON cannot hold is kept as text
    here (the exact value travels typed, beside it)."""
    return json.loads(json.dumps(value, default=str))


# The worker takes at most this many run ids per `delete_for_runs` request.
_DELETE_FOR_RUNS_MAX = 1000


def _chunks(run_ids: Sequence[str]) -> list[list[str]]:
    """Run ids in requests the worker accepts (none at all: no request)."""
    ids = [str(run_id) for run_id in run_ids]
    return [ids[i : i + _DELETE_FOR_RUNS_MAX] for i in range(0, len(ids), _DELETE_FOR_RUNS_MAX)]


def _thread_id(config: RunnableConfig | None, what: str) -> str:
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or thread_id == "":
        # LangChain moves a top-level `thread_id` into the metadata on its way here.
        misplaced = "thread_id" in (config or {}) or "thread_id" in ((config or {}).get("metadata") or {})
        where = " (it is at the top level of config, not under 'configurable')" if misplaced else ""
        message = (
            f"EdgeMemorySaver.{what} needs config['configurable']['thread_id']{where}. This is the "
            "symptom 'first message persists, second doesn't' (a missing or changing thread_id): "
            "without a stable thread id every call starts a new conversation and nothing is "
            "remembered. Pass graph.invoke(..., config={'configurable': {'thread_id': '<user or "
            "session id>'}}) with the same id on every call of the conversation."
        )
        logger.warning(message)
        raise ValueError(message)
    return str(thread_id)


class EdgeMemorySaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer backed by an edge-memory worker.

    Args:
        url: The worker's base URL, e.g. ``https://edge-memory.example.workers.dev``.
        api_key: Sent as ``x-api-key`` (the header the LangGraph SDKs send) when given.
        token: A user's JWT, sent as ``Authorization: Bearer`` when given (``AUTH_MODE=jwt``:
            the saver then sees only that user's threads).
        timeout: Seconds per request.
        retries: Idempotent calls (all but ``copy_thread``) are retried this many times on
            network errors and 502/503/504, then raised.
        serde: The serializer (LangGraph's default ``JsonPlusSerializer`` if omitted).

    Errors are raised, never swallowed: a 4xx is an ``EdgeMemoryError`` naming the
    problem; a missing ``thread_id`` raises ``ValueError`` before any request is sent.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._http = Transport(url, api_key=api_key, token=token, timeout=timeout, retries=retries)
        # The newest known version of each message list, for sending deltas; bounded (the
        # least recently written go first: a list not known here is simply sent whole).
        self._lists: OrderedDict[_ListKey, _ListState] = OrderedDict()
        self._lists_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "EdgeMemorySaver":
        """A saver for the worker at ``url``; use it as a context manager
        (``with EdgeMemorySaver.from_url(url) as saver:``) to close its connections."""
        return cls(url, **kwargs)

    def __enter__(self) -> "EdgeMemorySaver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "EdgeMemorySaver":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def close(self) -> None:
        """Closes the connection pool (a later call opens a new one)."""
        self._http.close()

    async def aclose(self) -> None:
        """Closes both connection pools (call it on the event loop that used the saver)."""
        await self._http.aclose()

    # -- request bodies and responses ------------------------------------------------

    def _list_blob(
        self, key: _ListKey, version: Any, messages: list[BaseMessage], *, full: bool
    ) -> tuple[dict[str, Any], _ListState]:
        """A message list as a change to what the worker has, or whole."""
        items = []
        for message in messages:
            kind, data = self.serde.dumps_typed(message)
            items.append((message.id, _digest(kind, data), {"type": kind, "data": _b64(data)}))
        entries = [(mid, digest) for mid, digest, _ in items]
        with self._lists_lock:
            known = None if full else self._lists.get(key)
        ops: list[dict[str, Any]] | None = None
        base_version = None
        if known is not None:
            base_version, base_entries = known
            ids = {mid for mid, _ in entries}
            kept = [(mid, digest) for mid, digest in base_entries if mid in ids]
            # Only "remove some, change some in place, append at the end" is a delta.
            if [mid for mid, _ in kept] == [mid for mid, _ in entries[: len(kept)]]:
                ops = [{"op": "remove", "id": mid} for mid, _ in base_entries if mid not in ids]
                for (mid, old), (_, new, value) in zip(kept, items[: len(kept)]):
                    if old != new:
                        ops.append({"op": "replace", "id": mid, "digest": new, **value})
                ops += [{"op": "append", "id": mid, "digest": d, **value} for mid, d, value in items[len(kept) :]]
        if ops is None:
            base_version = None
            ops = [{"op": "append", "id": mid, "digest": d, **value} for mid, d, value in items]
        blob = {"type": MESSAGE_LIST_TYPE, "data": "", "list": {"base_version": base_version, "ops": ops}}
        return blob, (version, entries)

    def _remember_lists(self, states: dict[_ListKey, _ListState]) -> None:
        with self._lists_lock:
            for key, state in states.items():
                self._lists[key] = state
                self._lists.move_to_end(key)
            while len(self._lists) > LIST_CACHE_MAX:
                self._lists.popitem(last=False)

    def _put_body(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        *,
        full_lists: bool = False,
    ) -> tuple[str, str, dict[str, Any], dict[_ListKey, _ListState]]:
        thread_id = _thread_id(config, "put")
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        stripped = dict(checkpoint)
        values: dict[str, Any] = stripped.pop("channel_values", {})  # type: ignore[misc]
        blobs = []
        lists: dict[_ListKey, _ListState] = {}
        for channel, version in new_versions.items():
            value = values.get(channel)
            if channel not in values:
                typed: dict[str, Any] = {"type": "empty", "data": ""}
            elif _is_message_list(value):
                key = (thread_id, checkpoint_ns, channel)
                typed, lists[key] = self._list_blob(key, version, value, full=full_lists)
            else:
                typed = _typed(self.serde.dumps_typed(value))
            blobs.append({"channel": channel, "version": version, **typed})
        full_metadata = get_checkpoint_metadata(config, metadata)
        body = {
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint["id"],
            "parent_checkpoint_id": config["configurable"].get("checkpoint_id"),
            "checkpoint": _typed(self.serde.dumps_typed(stripped)),
            "channel_versions": dict(checkpoint["channel_versions"]),
            "metadata": _json_safe(full_metadata),
            "metadata_typed": _typed(self.serde.dumps_typed(full_metadata)),
            "blobs": blobs,
        }
        return thread_id, checkpoint_ns, body, lists

    def _writes_body(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> tuple[str, dict[str, Any]]:
        thread_id = _thread_id(config, "put_writes")
        checkpoint_id = config["configurable"].get("checkpoint_id")
        if not checkpoint_id:
            raise ValueError("EdgeMemorySaver.put_writes needs config['configurable']['checkpoint_id']")
        body = {
            "checkpoint_ns": config["configurable"].get("checkpoint_ns", ""),
            "checkpoint_id": checkpoint_id,
            "task_id": task_id,
            "task_path": task_path,
            "writes": [
                {"idx": WRITES_IDX_MAP.get(channel, idx), "channel": channel, **_typed(self.serde.dumps_typed(value))}
                for idx, (channel, value) in enumerate(writes)
            ],
        }
        return thread_id, body

    def _tuple(self, thread_id: str, raw: dict[str, Any], *, remember: bool = False) -> CheckpointTuple:
        checkpoint = self.serde.loads_typed(_untyped(raw["checkpoint"]))
        ns = raw["checkpoint_ns"]
        values: dict[str, Any] = {}
        for blob in raw["blobs"]:
            if blob["type"] == MESSAGE_LIST_TYPE:
                items = blob.get("items") or []
                values[blob["channel"]] = [self.serde.loads_typed(_untyped(item)) for item in items]
                if remember:
                    version = checkpoint["channel_versions"].get(blob["channel"])
                    entries = [(item["id"], item["digest"]) for item in items]
                    self._remember_lists({(thread_id, ns, blob["channel"]): (version, entries)})
            elif blob["type"] != "empty":
                values[blob["channel"]] = self.serde.loads_typed(_untyped(blob))
        checkpoint["channel_values"] = values
        parent = raw.get("parent_checkpoint_id")
        return CheckpointTuple(
            config={"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": raw["checkpoint_id"]}},
            checkpoint=checkpoint,
            metadata=self.serde.loads_typed(_untyped(raw["metadata_typed"])),
            parent_config=(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent}}
                if parent
                else None
            ),
            pending_writes=[
                (w["task_id"], w["channel"], self.serde.loads_typed(_untyped(w))) for w in raw["pending_writes"]
            ],
        )

    @staticmethod
    def _get_body(config: RunnableConfig) -> tuple[str, dict[str, Any]]:
        thread_id = _thread_id(config, "get_tuple")
        return thread_id, {
            "checkpoint_ns": config["configurable"].get("checkpoint_ns", ""),
            "checkpoint_id": get_checkpoint_id(config),
        }

    @staticmethod
    def _list_body(
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> tuple[str, dict[str, Any]]:
        thread_id = _thread_id(config, "list")
        configurable = config["configurable"]  # type: ignore[index]
        return thread_id, {
            "checkpoint_ns": configurable.get("checkpoint_ns"),
            "checkpoint_id": get_checkpoint_id(config),  # type: ignore[arg-type]
            "filter": _json_safe(filter or {}),
            "before": get_checkpoint_id(before) if before else None,
            "limit": limit,
        }

    # -- sync ------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config`` (its ``checkpoint_id``, else the newest in its
        ``checkpoint_ns``) with its pending writes; ``None`` for an unknown thread."""
        thread_id, body = self._get_body(config)
        raw = self._http.request("POST", thread_path(thread_id, "/saver/get"), body, allow_404=True, idempotent=True)
        # The newest checkpoint's lists are what the next put will most likely extend.
        return self._tuple(thread_id, raw, remember=body["checkpoint_id"] is None) if raw else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """The thread's checkpoints, newest first: every namespace unless ``config`` names
        one; ``filter`` matches metadata keys, ``before`` and ``limit`` page (in one request)."""
        thread_id, body = self._list_body(config, filter, before, limit)
        for raw in self._http.request("POST", thread_path(thread_id, "/saver/list"), body, allow_404=True, idempotent=True) or []:
            yield self._tuple(thread_id, raw)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Stores a checkpoint with the channel values in ``new_versions`` (message lists as
        their changes since the last version this saver saw); returns its config."""
        thread_id, ns, body, lists = self._put_body(config, checkpoint, metadata, new_versions)
        path = thread_path(thread_id, "/saver/put")
        try:
            self._http.request("POST", path, body, idempotent=True)
        except EdgeMemoryError as err:
            if not _base_list_missing(err):
                raise
            thread_id, ns, body, lists = self._put_body(config, checkpoint, metadata, new_versions, full_lists=True)
            self._http.request("POST", path, body, idempotent=True)
        self._remember_lists(lists)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Stores a task's pending writes for the checkpoint in ``config`` (a retried call
        stores them once)."""
        thread_id, body = self._writes_body(config, writes, task_id, task_path)
        self._http.request("POST", thread_path(thread_id, "/saver/put_writes"), body, idempotent=True)

    def delete_thread(self, thread_id: str) -> None:
        """Deletes the thread (``DELETE /threads/{id}``) with its checkpoints and writes;
        a no-op for an unknown thread."""
        self._http.request("DELETE", thread_path(thread_id), allow_404=True, idempotent=True)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copies every checkpoint and write of a thread into a thread without checkpoints
        (``EdgeMemoryError`` 409 otherwise). One atomic request; not retried."""
        self._http.request(
            "POST", thread_path(source_thread_id, "/saver/copy"), {"target_thread_id": target_thread_id},
            allow_404=True,
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prunes each thread's history as LangGraph defines it: ``keep_latest`` keeps each
        namespace's newest checkpoint, ``delete`` deletes them all. One request per thread."""
        for thread_id in thread_ids:
            self._http.request("POST", thread_path(thread_id, "/saver/prune"), {"strategy": strategy}, idempotent=True)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their pending writes) made by these runs, on every
        thread they wrote to (LangGraph's server calls it for `multitask_strategy="rollback"`).
        The worker finds the threads in its run directory; one atomic batch per thread."""
        for chunk in _chunks(run_ids):
            self._http.request("POST", "/saver/delete_for_runs", {"run_ids": chunk}, idempotent=True)

    # -- async -----------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async ``get_tuple``."""
        thread_id, body = self._get_body(config)
        raw = await self._http.arequest("POST", thread_path(thread_id, "/saver/get"), body, allow_404=True, idempotent=True)
        return self._tuple(thread_id, raw, remember=body["checkpoint_id"] is None) if raw else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async ``list`` (one request; the tuples are then yielded)."""
        thread_id, body = self._list_body(config, filter, before, limit)
        for raw in await self._http.arequest("POST", thread_path(thread_id, "/saver/list"), body, allow_404=True, idempotent=True) or []:
            yield self._tuple(thread_id, raw)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async ``put``."""
        thread_id, ns, body, lists = self._put_body(config, checkpoint, metadata, new_versions)
        path = thread_path(thread_id, "/saver/put")
        try:
            await self._http.arequest("POST", path, body, idempotent=True)
        except EdgeMemoryError as err:
            if not _base_list_missing(err):
                raise
            thread_id, ns, body, lists = self._put_body(config, checkpoint, metadata, new_versions, full_lists=True)
            await self._http.arequest("POST", path, body, idempotent=True)
        self._remember_lists(lists)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Async ``put_writes``."""
        thread_id, body = self._writes_body(config, writes, task_id, task_path)
        await self._http.arequest("POST", thread_path(thread_id, "/saver/put_writes"), body, idempotent=True)

    async def adelete_thread(self, thread_id: str) -> None:
        """Async ``delete_thread``."""
        await self._http.arequest("DELETE", thread_path(thread_id), allow_404=True, idempotent=True)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async ``copy_thread``."""
        await self._http.arequest(
            "POST", thread_path(source_thread_id, "/saver/copy"), {"target_thread_id": target_thread_id},
            allow_404=True,
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async ``prune``."""
        for thread_id in thread_ids:
            await self._http.arequest("POST", thread_path(thread_id, "/saver/prune"), {"strategy": strategy}, idempotent=True)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async `delete_for_runs`."""
        for chunk in _chunks(run_ids):
            await self._http.arequest("POST", "/saver/delete_for_runs", {"run_ids": chunk}, idempotent=True)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Monotonic, sortable string versions, as LangGraph's own savers make them."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"
