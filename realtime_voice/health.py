"""The health report shared by both planes (docs/PROTOCOLS.md §5)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from realtime_voice import __version__
from realtime_voice.session.manager import AdmissionError, CallSessionManager

__all__ = ["HealthReporter"]


class _HasDeepgramStatus(Protocol):
    @property
    def deepgram_status(self) -> str: ...


class HealthReporter:
    """Builds the health document from the live manager and engines.

    ``status`` is ``healthy``; ``degraded`` (HTTP 200) when a dependency is down;
    ``unhealthy`` (HTTP 503) when this process cannot take a call (draining or full).
    """

    def __init__(
        self,
        manager: CallSessionManager,
        engines: _HasDeepgramStatus,
        database: Callable[[], str] | None = None,
        sip: Callable[[], dict[str, object]] | None = None,
    ) -> None:
        self._database = database
        self._sip = sip
        self._manager = manager
        self._engines = engines
        self._started = time.monotonic()

    def report(self) -> tuple[int, dict[str, object]]:
        """The HTTP status and JSON body of the health endpoint."""
        deepgram = self._engines.deepgram_status
        database = self._database() if self._database is not None else "disabled"
        try:
            self._manager.check_capacity()
            can_take_calls = True
        except AdmissionError:
            can_take_calls = False
        sip = self._sip() if self._sip is not None else None
        # A device that is not registered gets no calls: the process still serves the
        # WebSocket carriers, so that is "degraded", not "unhealthy".
        sip_down = sip is not None and sip.get("registration") in ("failing", "refused")
        if not can_take_calls:
            status = "unhealthy"
        elif deepgram in ("down", "degraded") or database == "down" or sip_down:
            status = "degraded"
        else:
            status = "healthy"
        body: dict[str, object] = {
            "status": status,
            "deepgram": deepgram,
            "database": database,
            **({"sip": sip} if sip is not None else {}),
            **self._manager.stats(),
            "uptime_s": int(time.monotonic() - self._started),
            "version": __version__,
        }
        return (503 if status == "unhealthy" else 200), body
