"""HTTP to the worker: one request per call, bounded retries, errors raised, never swallowed."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import quote

import httpx

# Network errors and 5xx are retried this many times (puts are idempotent by checkpoint id).
DEFAULT_RETRIES = 3
RETRY_BACKOFF_S = 0.2


class EdgeMemoryError(Exception):
    """The worker refused a request (4xx) or kept failing (5xx, network) after retries."""

    def __init__(self, status: int | None, detail: str, *, method: str = "", path: str = ""):
        self.status = status
        self.detail = detail
        where = f" ({method} {path})" if method else ""
        prefix = f"edge-memory answered {status}" if status else "edge-memory unreachable"
        super().__init__(f"{prefix}{where}: {detail}")


def thread_path(thread_id: str, suffix: str = "") -> str:
    return f"/threads/{quote(str(thread_id), safe='')}{suffix}"


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:500]


class Transport:
    """Sync and async requests to one worker."""

    def __init__(self, url: str, *, api_key: str | None, timeout: float, retries: int = DEFAULT_RETRIES):
        self.url = url.rstrip("/")
        self.headers = {"x-api-key": api_key} if api_key else {}
        self.timeout = timeout
        self.retries = retries
        self._client: httpx.Client | None = None

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout)
        return self._client

    def _check(self, response: httpx.Response, method: str, path: str, *, allow_404: bool) -> Any:
        if response.status_code == 404 and allow_404:
            return None
        if response.status_code >= 400:
            raise EdgeMemoryError(response.status_code, _detail(response), method=method, path=path)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def request(self, method: str, path: str, body: Any = None, *, allow_404: bool = False) -> Any:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                response = self._sync_client().request(method, path, json=body)
            except httpx.TransportError as err:
                last = err
            else:
                if response.status_code < 500:
                    return self._check(response, method, path, allow_404=allow_404)
                last = EdgeMemoryError(response.status_code, _detail(response), method=method, path=path)
            if attempt < self.retries:
                time.sleep(RETRY_BACKOFF_S * 2**attempt)
        raise _final(last, method, path)

    async def arequest(self, method: str, path: str, body: Any = None, *, allow_404: bool = False) -> Any:
        last: Exception | None = None
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=self.timeout) as client:
            for attempt in range(self.retries + 1):
                try:
                    response = await client.request(method, path, json=body)
                except httpx.TransportError as err:
                    last = err
                else:
                    if response.status_code < 500:
                        return self._check(response, method, path, allow_404=allow_404)
                    last = EdgeMemoryError(response.status_code, _detail(response), method=method, path=path)
                if attempt < self.retries:
                    await asyncio.sleep(RETRY_BACKOFF_S * 2**attempt)
        raise _final(last, method, path)


def _final(last: Exception | None, method: str, path: str) -> EdgeMemoryError:
    if isinstance(last, EdgeMemoryError):
        return last
    return EdgeMemoryError(None, f"{type(last).__name__}: {last}", method=method, path=path)
