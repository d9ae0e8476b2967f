"""`EdgeMemoryChatMessageHistory`: a LangChain chat history stored in edge-memory.

Drop-in for `InMemoryChatMessageHistory()`. The session id is the thread id; messages are
stored in the chat API's thread format, so the same conversation shows at
`GET /threads/{id}/state` and in the demo.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, convert_to_messages

from edge_memory._http import Transport, thread_path

# The id that, removed, clears a thread's messages (LangGraph's REMOVE_ALL_MESSAGES).
_REMOVE_ALL = "__remove_all__"


def _to_wire(message: BaseMessage) -> dict[str, Any]:
    data = message.model_dump(exclude_none=True)
    data["type"] = message.type
    # A client-made id makes the write idempotent: a retry after a lost response
    # replaces the stored message instead of adding it twice (add_messages semantics).
    if not data.get("id"):
        data["id"] = str(uuid.uuid4())
    return data


class EdgeMemoryChatMessageHistory(BaseChatMessageHistory):
    """Chat history for one session, kept in that session's Durable Object.

    Args:
        url: The worker's base URL.
        session_id: The conversation's id (a thread id: 1–128 of ``[A-Za-z0-9._:-]``).
        api_key: Sent as ``x-api-key`` when given.
        token: A user's JWT, sent as ``Authorization: Bearer`` when given.
        timeout: Seconds per request.
        retries: Every call is idempotent (messages carry ids made here), so each is
            retried this many times on network errors and 502/503/504.
    """

    def __init__(
        self,
        url: str,
        session_id: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        if not session_id:
            raise ValueError("EdgeMemoryChatMessageHistory needs a session_id: without one every call starts over")
        self.session_id = str(session_id)
        self._http = Transport(url, api_key=api_key, token=token, timeout=timeout, retries=retries)

    def close(self) -> None:
        """Closes the connection pool (a later call opens a new one)."""
        self._http.close()

    def __enter__(self) -> "EdgeMemoryChatMessageHistory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def aclose(self) -> None:
        """Closes both connection pools (call it on the event loop that used the history)."""
        await self._http.aclose()

    async def __aenter__(self) -> "EdgeMemoryChatMessageHistory":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @staticmethod
    def _from_state(state: Any) -> list[BaseMessage]:
        if not state:
            return []
        return convert_to_messages((state.get("values") or {}).get("messages", []))

    def _update(self, messages: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        return thread_path(self.session_id, "/state"), {
            "values": {"messages": messages},
            "as_node": "history",
            "if_not_exists": "create",
        }

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The conversation, oldest first (empty for a session never written)."""
        state = self._http.request("GET", thread_path(self.session_id, "/state"), allow_404=True, idempotent=True)
        return self._from_state(state)

    async def aget_messages(self) -> list[BaseMessage]:
        """Async ``messages``."""
        state = await self._http.arequest("GET", thread_path(self.session_id, "/state"), allow_404=True, idempotent=True)
        return self._from_state(state)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Adds all the messages in one request."""
        path, body = self._update([_to_wire(m) for m in messages])
        self._http.request("POST", path, body, idempotent=True)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async ``add_messages``: all the messages in one request."""
        path, body = self._update([_to_wire(m) for m in messages])
        await self._http.arequest("POST", path, body, idempotent=True)

    def clear(self) -> None:
        """Empties the conversation (its earlier checkpoints stay in the thread's history)."""
        path, body = self._update([{"type": "remove", "id": _REMOVE_ALL}])
        self._http.request("POST", path, body, idempotent=True)

    async def aclear(self) -> None:
        """Async ``clear``."""
        path, body = self._update([{"type": "remove", "id": _REMOVE_ALL}])
        await self._http.arequest("POST", path, body, idempotent=True)
