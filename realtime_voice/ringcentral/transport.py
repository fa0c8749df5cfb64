"""One HTTP exchange with RingCentral, with deadlines, error translation and retries.

Every outbound request has an explicit `aiohttp.ClientTimeout` (never "none"), every
aiohttp or timeout exception becomes a `RingCentralConnectionError` (chained), and
`with_retries` retries only what `RingCentralError.retryable` allows: 429, 5xx and
connection failures, with exponential backoff, honouring ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from realtime_voice.ringcentral.errors import (
    RingCentralApiError,
    RingCentralConnectionError,
    RingCentralError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "RawResponse",
    "RetryPolicy",
    "api_error",
    "exchange",
    "with_retries",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=10.0, connect=3.0, sock_read=8.0)
"""Deadlines of one request: a Call Control action is worthless once the caller has waited
ten seconds."""

_MAX_RESPONSE = 4 * 1024 * 1024


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    Attributes:
        attempts: tries in all, the first included.
        initial_wait_s: the first backoff; it doubles each time.
        max_wait_s: the longest backoff.
        max_retry_after_s: the longest ``Retry-After`` honoured.
    """

    attempts: int = 3
    initial_wait_s: float = 0.25
    max_wait_s: float = 4.0
    max_retry_after_s: float = 10.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial_wait_s < 0 or self.max_wait_s < 0:
            raise ValueError("RetryPolicy: attempts >= 1 and non-negative waits")

    def wait(self, state: RetryCallState) -> float:
        """Seconds to wait before the next attempt (tenacity ``wait`` callback)."""
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, RingCentralApiError) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after_s)
        backoff = self.initial_wait_s * 2 ** (state.attempt_number - 1)
        return float(min(backoff, self.max_wait_s))


@dataclass(frozen=True)
class RawResponse:
    """An HTTP answer, read in full.

    Attributes:
        status: HTTP status.
        body: the body bytes.
        headers: response headers.
        reason: the reason phrase.
    """

    status: int
    body: bytes
    headers: Mapping[str, str]
    reason: str

    def json(self) -> Any:
        """The body as JSON (None when empty or not JSON)."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None


async def exchange(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    deadlines: aiohttp.ClientTimeout,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
) -> RawResponse:
    """Send one request and read the whole answer.

    Raises:
        RingCentralConnectionError: no answer (refused, reset, timeout, bad response).
    """
    try:
        async with http.request(
            method,
            url,
            headers=dict(headers or {}),
            json=json_body,
            data=form,
            timeout=deadlines,
            allow_redirects=False,
        ) as resp:
            body = await resp.content.read(_MAX_RESPONSE)
            return RawResponse(resp.status, body, resp.headers, resp.reason or "")
    except TimeoutError as exc:
        raise RingCentralConnectionError(f"{method} {url}: timed out") from exc
    except aiohttp.ClientError as exc:
        raise RingCentralConnectionError(f"{method} {url}: {exc}") from exc


def api_error(resp: RawResponse, method: str, path: str) -> RingCentralApiError:
    """Translate an error answer into `RingCentralApiError` (RingCentral's error body:
    ``errorCode``/``message``, or OAuth's ``error``/``error_description``)."""
    doc = resp.json()
    code, message = "", ""
    if isinstance(doc, dict):
        code = str(doc.get("errorCode") or doc.get("error") or "")
        message = str(doc.get("message") or doc.get("error_description") or "")
        errors = doc.get("errors")
        if not message and isinstance(errors, list) and errors and isinstance(errors[0], dict):
            message = str(errors[0].get("message", ""))
    return RingCentralApiError(
        resp.status,
        code or f"HTTP-{resp.status}",
        message or resp.reason or "error",
        method=method,
        path=path,
        retry_after=_retry_after(resp.headers.get("Retry-After")),
    )


async def with_retries(policy: RetryPolicy, operation: Callable[[], Awaitable[T]]) -> T:
    """Run ``operation``, retrying it while it raises a retryable `RingCentralError`.

    Raises:
        RingCentralError: the last error, once attempts run out or it is not retryable.
    """
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=policy.wait,
        retry=retry_if_exception(lambda e: isinstance(e, RingCentralError) and e.retryable),
        reraise=True,
        sleep=asyncio.sleep,
    )
    async for attempt in retrying:
        with attempt:
            return await operation()
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    return max(0.0, seconds)
