"""`EdgeMemorySaver`: a LangGraph checkpointer whose checkpoints live in edge-memory.

Drop-in for `MemorySaver()`: `builder.compile(checkpointer=EdgeMemorySaver(url))`. Each
thread's checkpoints are kept in that thread's Durable Object, so a restart, a redeploy,
another worker process or another pod sees the same conversation.

Channel values go through the saver's `serde` (`dumps_typed`) and are stored as the
opaque `(type, bytes)` it produced, so any LangGraph state round-trips. A put sends only
the channels in `new_versions`; one request per saver call.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

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

from edge_memory._http import Transport, thread_path


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


def _thread_id(config: RunnableConfig | None, what: str) -> str:
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or thread_id == "":
        raise ValueError(
            f"EdgeMemorySaver.{what} needs config['configurable']['thread_id']: without a stable "
            "thread id every call starts a new conversation. Pass "
            "config={'configurable': {'thread_id': '<user or session id>'}}."
        )
    return str(thread_id)


class EdgeMemorySaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer backed by an edge-memory worker.

    Args:
        url: The worker's base URL, e.g. ``https://edge-memory.example.workers.dev``.
        api_key: Sent as ``x-api-key`` (the header the LangGraph SDKs send) when given.
        timeout: Seconds per request.
        retries: Network errors and 5xx are retried this many times, then raised.
        serde: The serializer (LangGraph's default ``JsonPlusSerializer`` if omitted).

    Errors are raised, never swallowed: a 4xx is an ``EdgeMemoryError`` naming the
    problem; a missing ``thread_id`` raises ``ValueError`` before any request is sent.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._http = Transport(url, api_key=api_key, timeout=timeout, retries=retries)

    # -- request bodies and responses ------------------------------------------------

    def _put_body(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[str, str, dict[str, Any]]:
        thread_id = _thread_id(config, "put")
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        stripped = dict(checkpoint)
        values: dict[str, Any] = stripped.pop("channel_values", {})  # type: ignore[misc]
        blobs = [
            {
                "channel": channel,
                "version": version,
                **(_typed(self.serde.dumps_typed(values[channel])) if channel in values else {"type": "empty", "data": ""}),
            }
            for channel, version in new_versions.items()
        ]
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
        return thread_id, checkpoint_ns, body

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

    def _tuple(self, thread_id: str, raw: dict[str, Any]) -> CheckpointTuple:
        checkpoint = self.serde.loads_typed(_untyped(raw["checkpoint"]))
        checkpoint["channel_values"] = {
            blob["channel"]: self.serde.loads_typed(_untyped(blob))
            for blob in raw["blobs"]
            if blob["type"] != "empty"
        }
        ns = raw["checkpoint_ns"]
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
        thread_id, body = self._get_body(config)
        raw = self._http.request("POST", thread_path(thread_id, "/saver/get"), body)
        return self._tuple(thread_id, raw) if raw else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        thread_id, body = self._list_body(config, filter, before, limit)
        for raw in self._http.request("POST", thread_path(thread_id, "/saver/list"), body) or []:
            yield self._tuple(thread_id, raw)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id, ns, body = self._put_body(config, checkpoint, metadata, new_versions)
        self._http.request("POST", thread_path(thread_id, "/saver/put"), body)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        thread_id, body = self._writes_body(config, writes, task_id, task_path)
        self._http.request("POST", thread_path(thread_id, "/saver/put_writes"), body)

    def delete_thread(self, thread_id: str) -> None:
        self._http.request("DELETE", thread_path(thread_id), allow_404=True)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._http.request(
            "POST", thread_path(source_thread_id, "/saver/copy"), {"target_thread_id": target_thread_id},
            allow_404=True,
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        for thread_id in thread_ids:
            self._http.request("POST", thread_path(thread_id, "/saver/prune"), {"strategy": strategy})

    # -- async -----------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, body = self._get_body(config)
        raw = await self._http.arequest("POST", thread_path(thread_id, "/saver/get"), body)
        return self._tuple(thread_id, raw) if raw else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        thread_id, body = self._list_body(config, filter, before, limit)
        for raw in await self._http.arequest("POST", thread_path(thread_id, "/saver/list"), body) or []:
            yield self._tuple(thread_id, raw)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id, ns, body = self._put_body(config, checkpoint, metadata, new_versions)
        await self._http.arequest("POST", thread_path(thread_id, "/saver/put"), body)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        thread_id, body = self._writes_body(config, writes, task_id, task_path)
        await self._http.arequest("POST", thread_path(thread_id, "/saver/put_writes"), body)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._http.arequest("DELETE", thread_path(thread_id), allow_404=True)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._http.arequest(
            "POST", thread_path(source_thread_id, "/saver/copy"), {"target_thread_id": target_thread_id},
            allow_404=True,
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        for thread_id in thread_ids:
            await self._http.arequest("POST", thread_path(thread_id, "/saver/prune"), {"strategy": strategy})

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Monotonic, sortable string versions, as LangGraph's own savers make them."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"
