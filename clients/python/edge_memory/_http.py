"""HTTP to the worker: one reused client, bounded retries of idempotent calls only,
errors raised, never swallowed."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any
from urllib.parse import quote

import httpx

from edge_memory.hints import HINT_HEADER, HintLog

# Idempotent calls are retried this many times on network errors and 502/503/504.
DEFAULT_RETRIES = 3
RETRY_BACKOFF_S = 0.2
# Answers that say "try again": the request may not have been served.
RETRYABLE_STATUSES = frozenset({502, 503, 504})
# Errors raised before a request reached the server: safe to retry any call.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class EdgeMemoryError(Exception):
    """The worker refused a request (4xx), failed (5xx) or could not be reached.

    ``status`` is the HTTP status (``None`` when unreachable), ``code`` the worker's
    stable machine-readable error code (``thread_not_found``, ``memory_mismatch``, ...),
    ``detail`` its explanation.
    """

    def __init__(
        self, status: int | None, detail: str, *, code: str | None = None, method: str = "", path: str = ""
    ):
        self.status = status
        self.detail = detail
        self.code = code
        where = f" ({method} {path})" if method else ""
        prefix = f"edge-memory answered {status}" if status else "edge-memory unreachable"
        super().__init__(f"{prefix}{where}: {detail}")


def thread_path(thread_id: str, suffix: str = "") -> str:
    return f"/threads/{quote(str(thread_id), safe='')}{suffix}"


def _error(response: httpx.Response, method: str, path: str) -> EdgeMemoryError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail, code = str(body["detail"]), body.get("code")
    else:
        detail, code = (str(body) if body is not None else response.text)[:500], None
    return EdgeMemoryError(response.status_code, detail, code=code, method=method, path=path)


def _backoff(attempt: int) -> float:
    """Full jitter: many clients retrying at once do not retry in step."""
    return random.uniform(0, RETRY_BACKOFF_S * 2**attempt)


class Transport:
    """Sync and async requests to one worker, each over one reused connection pool.

    Only idempotent calls are retried (on network errors and 502/503/504); any call is
    retried when it never reached the server. A 500 is a bug, not a blip: raised at once.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        retries: int = DEFAULT_RETRIES,
    ):
        self.url = url.rstrip("/")
        self.headers: dict[str, str] = {}
        if api_key:
            self.headers["x-api-key"] = api_key
        if token:
            self.headers["authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self.retries = retries
        self._client: httpx.Client | None = None
        # The memory doctor's hints already warned about (once each).
        self.hints = HintLog()
        # An AsyncClient belongs to the event loop it was made on: one, for the current loop.
        self._aclient: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout)
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient[0] is not loop:
            client = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=self.timeout)
            self._aclient = (loop, client)
        return self._aclient[1]

    def close(self) -> None:
        """Closes the sync connection pool (the async one closes with ``aclose``)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        self.close()
        if self._aclient is not None:
            loop, client = self._aclient
            self._aclient = None
            if loop is asyncio.get_running_loop():
                await client.aclose()

    def _answer(self, response: httpx.Response, method: str, path: str, *, allow_404: bool) -> Any:
        self.hints.note(response.headers.get(HINT_HEADER))
        if response.status_code >= 400:
            error = _error(response, method, path)
            # An unknown (or another user's) thread reads as empty; a missing route does not.
            if allow_404 and response.status_code == 404 and error.code in (None, "thread_not_found"):
                return None
            raise error
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _retry(self, attempt: int, idempotent: bool, failure: Exception | httpx.Response) -> bool:
        if attempt >= self.retries:
            return False
        if isinstance(failure, httpx.Response):
            return idempotent and failure.status_code in RETRYABLE_STATUSES
        return idempotent or isinstance(failure, _NOT_SENT)

    def request(
        self, method: str, path: str, body: Any = None, *, allow_404: bool = False, idempotent: bool = False
    ) -> Any:
        attempt = 0
        while True:
            try:
                response = self._sync_client().request(method, path, json=body)
            except httpx.TransportError as err:
                if not self._retry(attempt, idempotent, err):
                    raise _unreachable(err, method, path) from err
            else:
                if not self._retry(attempt, idempotent, response):
                    return self._answer(response, method, path, allow_404=allow_404)
            time.sleep(_backoff(attempt))
            attempt += 1

    async def arequest(
        self, method: str, path: str, body: Any = None, *, allow_404: bool = False, idempotent: bool = False
    ) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._async_client().request(method, path, json=body)
            except httpx.TransportError as err:
                if not self._retry(attempt, idempotent, err):
                    raise _unreachable(err, method, path) from err
            else:
                if not self._retry(attempt, idempotent, response):
                    return self._answer(response, method, path, allow_404=allow_404)
            await asyncio.sleep(_backoff(attempt))
            attempt += 1


def _unreachable(err: Exception, method: str, path: str) -> EdgeMemoryError:
    return EdgeMemoryError(None, f"{type(err).__name__}: {err}", method=method, path=path)
