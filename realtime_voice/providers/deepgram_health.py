"""Deepgram's state for the health endpoint: one cheap authenticated request, cached.

`DeepgramHealth.status` never waits: it returns the last verdict and, when that is
older than the interval (30 s), starts one background check. The check is
``GET /v1/projects`` with the API key (small, needs no project id, proves both the
network path and the key):

- ``healthy``: 200 within ``slow_s``;
- ``degraded``: 200 but slow, 429 or 5xx (calls may work, or fail over);
- ``down``: unreachable, timed out, or the key refused (401/403);
- ``offline``: no key configured (the offline engines are in use).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final, Literal

import aiohttp

from realtime_voice.providers.deepgram_client import DEFAULT_REST_URL

__all__ = ["DeepgramHealth", "DeepgramStatus"]

log = logging.getLogger(__name__)

DeepgramStatus = Literal["healthy", "degraded", "down", "offline"]

_NOT_CHECKED: Final = "not checked yet"


class DeepgramHealth:
    """Cached health of the Deepgram REST host.

    Args:
        api_key: the key; None reports ``offline`` and never checks.
        base_url: REST host (``DEEPGRAM_BASE_URL``), default Deepgram's.
        interval_s: a verdict is reused this long.
        timeout_s: the check's overall deadline.
        slow_s: a successful answer slower than this is ``degraded``.
        clock: monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        api_key: str | None,
        base_url: str | None = None,
        *,
        interval_s: float = 30.0,
        timeout_s: float = 3.0,
        slow_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = api_key
        self._url = (base_url or DEFAULT_REST_URL).rstrip("/") + "/v1/projects"
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._slow_s = slow_s
        self._clock = clock
        # Until the first check the host is unproven: degraded, not healthy.
        self._status: DeepgramStatus = "offline" if api_key is None else "degraded"
        self.detail = "no DEEPGRAM_API_KEY" if api_key is None else _NOT_CHECKED
        """Why the status is what it is (for logs and the health document)."""
        self.latency_ms: float | None = None
        """Duration of the last check."""
        self._checked_at: float | None = None
        self._task: asyncio.Task[DeepgramStatus] | None = None

    @property
    def status(self) -> DeepgramStatus:
        """The last verdict; starts a background check when it is stale (never waits)."""
        if self._key is not None and self._stale() and (self._task is None or self._task.done()):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return self._status
            self._task = loop.create_task(self.refresh(), name="deepgram-health")
        return self._status

    async def refresh(self) -> DeepgramStatus:
        """Check now and cache the verdict (at start-up, or from `status`)."""
        if self._key is None:
            return self._status
        started = self._clock()
        status: DeepgramStatus
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                aiohttp.ClientSession() as session,
                session.get(self._url, headers={"Authorization": f"Token {self._key}"}) as reply,
            ):
                code = reply.status
                await reply.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            status, detail = "down", f"unreachable: {exc!r}"
        else:
            elapsed = self._clock() - started
            if code == 200:
                status = "healthy" if elapsed <= self._slow_s else "degraded"
                detail = f"HTTP 200 in {elapsed * 1000:.0f} ms"
            elif code in (401, 403):
                status, detail = "down", f"API key refused (HTTP {code})"
            else:
                status, detail = "degraded", f"HTTP {code}"
        self.latency_ms = (self._clock() - started) * 1000
        if status != self._status or detail != self.detail:
            level = logging.INFO if status == "healthy" else logging.WARNING
            log.log(level, "Deepgram is %s: %s", status, detail)
        self._status, self.detail = status, detail
        self._checked_at = self._clock()
        return status

    async def aclose(self) -> None:
        """Cancel a check in flight (at shutdown)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _stale(self) -> bool:
        return self._checked_at is None or self._clock() - self._checked_at >= self._interval_s
