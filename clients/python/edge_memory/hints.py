"""The memory doctor's hints: the symptom map of "memory does not persist", as the
worker names them in its ``x-edge-memory-hint`` response header and ``GET /diagnostics``.

Each hint is logged once per client object (standard ``logging``, logger ``edge_memory``)
the first time the worker returns it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

HINT_HEADER = "x-edge-memory-hint"

logger = logging.getLogger("edge_memory")


@dataclass(frozen=True)
class Hint:
    """One row of the symptom map: its stable code, the symptom, what the server saw, the fix."""

    code: str
    symptom: str
    cause: str
    fix: str


HINTS: dict[str, Hint] = {
    hint.code: hint
    for hint in (
        Hint(
            "ephemeral_memory",
            "Works locally only",
            "memory kept in the process (MEMORY_BACKEND=memory), or a checkpoint the client saw is gone",
            "set MEMORY_BACKEND=durable_object (the default) and keep the thread ids and checkpoint ids the server returned",
        ),
        Hint(
            "thread_id_not_stable",
            "First message persists, second doesn't",
            "a missing or changing thread_id",
            "generate the thread_id once per conversation (user, session or case id), store it, and pass the same one on every request",
        ),
        Hint(
            "new_thread_per_request",
            "A new conversation starts on every request",
            "a new thread made for each message",
            "create a thread once per conversation and reuse its thread_id for the next messages instead of creating one per request",
        ),
        Hint(
            "checkpoints_unread",
            "Checkpoints exist but aren't used",
            "checkpoints written under one thread identity and read under another",
            "pass the same config on every call: {'configurable': {'thread_id': <stable id>}} (and the same checkpoint_ns), not a new id per invocation",
        ),
    )
}


def describe(code: str) -> str:
    """One line for a hint code (an unknown code is named as it is)."""
    hint = HINTS.get(code)
    if hint is None:
        return f"edge-memory hint {code}: see GET /diagnostics on the worker"
    return f"edge-memory hint {code} ({hint.symptom}: {hint.cause}). Fix: {hint.fix}"


class HintLog:
    """Warns (``logging``) the first time each hint code comes back from the worker."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def note(self, header: str | None) -> None:
        if not header:
            return
        for code in (c.strip() for c in header.split(",")):
            if code and code not in self.seen:
                self.seen.add(code)
                logger.warning(describe(code))
