"""`MediaClock`: one absolute 20 ms tick for every RTP stream of the process.

(Not the 5 ms tick the outbound pacers share, `realtime_voice.session.frame_clock`: that
one paces what the session hands a leg; this one sends RTP packets.)

A timer per call costs a wake-up per call every 20 ms and drifts: each relative sleep
adds the loop's lateness to the next one (the RingCentral SDK's relative timer does
exactly that, docs/RINGCENTRAL_SIP.md §3). `MediaClock` schedules tick *n* at
``start + n * period`` with ``loop.call_at``, so lateness never accumulates, and calls
every subscribed stream from that one timer.

A tick that comes late is counted; if it is a whole period or more late, the ticks it
ran over are skipped, never run back to back (a burst of packets helps no receiver).
`tick_index` moves on by the skipped ticks all the same, so a stream that compares it
with the last index it saw knows how many frames of RTP timestamp to account
(``RtpSequencer.skip``).

The clock runs only while someone is subscribed. Subscribers must be quick and must
not raise; one that does is logged and the others still run.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MediaClock", "MediaClockStats"]

log = logging.getLogger(__name__)

_WINDOW = 1000  # ticks of lateness kept for the percentile (20 s at 20 ms)


@dataclass(frozen=True, slots=True)
class MediaClockStats:
    """Counters of one `MediaClock` (the counts only grow).

    Attributes:
        ticks: ticks run.
        late_ticks: ticks that ran ``late_threshold_s`` or more after their time.
        skipped_ticks: ticks not run because an earlier one ran a period or more late.
        max_lateness_ms: the worst lateness seen, in ms.
        lateness_p99_ms: the 99th percentile of lateness over the last ticks (about
            1,000), in ms.
        subscribers: callbacks subscribed now.
        callback_errors: callbacks that raised (logged and swallowed).
    """

    ticks: int
    late_ticks: int
    skipped_ticks: int
    max_lateness_ms: float
    lateness_p99_ms: float
    subscribers: int
    callback_errors: int


class MediaClock:
    """One absolute 20 ms tick shared by every RTP stream of the process.

    Args:
        period_s: the tick period.
        loop: the event loop to run on (default: the running loop at the first
            `subscribe`, so the clock can be built before the loop runs).
        late_threshold_s: lateness from which a tick counts as late (default: a
            quarter of the period, 5 ms).

    Raises:
        ValueError: a period or threshold that is not positive.
    """

    def __init__(
        self,
        period_s: float = 0.020,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        late_threshold_s: float | None = None,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, not {period_s}")
        threshold = period_s / 4 if late_threshold_s is None else late_threshold_s
        if threshold <= 0:
            raise ValueError(f"late_threshold_s must be positive, not {threshold}")
        self._period = period_s
        self._threshold = threshold
        self._loop = loop
        self._subscribers: dict[int, Callable[[], None]] = {}
        self._next_id = 0
        self._handle: asyncio.TimerHandle | None = None
        self._start = 0.0  # loop time of tick 0
        self._index = 0  # index of the tick running now, or of the last one run
        self._next_index = 0  # index of the tick scheduled next
        self._ticks = 0
        self._late = 0
        self._skipped = 0
        self._max_lateness = 0.0
        self._errors = 0
        self._lateness: deque[float] = deque(maxlen=_WINDOW)

    @property
    def period_s(self) -> float:
        """The tick period in seconds."""
        return self._period

    @property
    def tick_index(self) -> int:
        """Index of the tick running now (or last run); skipped ticks count too."""
        return self._index

    @property
    def running(self) -> bool:
        """Whether a tick is scheduled (someone is subscribed)."""
        return self._handle is not None

    def next_tick_at(self) -> float | None:
        """Loop time of the next tick, or None while the clock is stopped."""
        if self._handle is None:
            return None
        return self._start + self._next_index * self._period

    def subscribe(self, on_tick: Callable[[], None]) -> Callable[[], None]:
        """Call ``on_tick`` on every tick from the next one on.

        Args:
            on_tick: a quick callback; what it raises is logged, not propagated.

        Returns:
            A function that unsubscribes it (idempotent). The clock stops when the last
            subscriber goes, and restarts on the next grid when one comes.
        """
        token = self._next_id
        self._next_id += 1
        self._subscribers[token] = on_tick
        if self._handle is None:
            self._begin()

        def unsubscribe() -> None:
            if self._subscribers.pop(token, None) is not None and not self._subscribers:
                self._stop()

        return unsubscribe

    @property
    def stats(self) -> MediaClockStats:
        """The counters now."""
        window = sorted(self._lateness)
        p99 = window[min(len(window) - 1, math.ceil(0.99 * len(window)) - 1)] if window else 0.0
        return MediaClockStats(
            ticks=self._ticks,
            late_ticks=self._late,
            skipped_ticks=self._skipped,
            max_lateness_ms=self._max_lateness * 1000,
            lateness_p99_ms=p99 * 1000,
            subscribers=len(self._subscribers),
            callback_errors=self._errors,
        )

    def _begin(self) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        # The grid restarts one period from now; the index carries on so that a stream
        # comparing indices never sees it go back.
        self._next_index = self._index + 1
        self._start = loop.time() + self._period - self._next_index * self._period
        self._schedule(loop)

    def _stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        when = self._start + self._next_index * self._period
        self._handle = loop.call_at(when, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        assert loop is not None
        index = self._next_index
        # asyncio runs a timer up to its clock resolution early: that is not lateness.
        lateness = max(0.0, loop.time() - (self._start + index * self._period))
        if lateness >= self._period:
            # Run over whole periods: skip them rather than run them back to back.
            missed = int(lateness // self._period)
            self._skipped += missed
            index += missed
        self._index = index
        self._next_index = index + 1
        self._ticks += 1
        self._record(lateness)
        # Schedule first, so a callback that unsubscribes everyone stops the clock.
        self._schedule(loop)
        for token, callback in list(self._subscribers.items()):
            if token not in self._subscribers:
                continue  # unsubscribed by an earlier callback of this tick
            try:
                callback()
            except Exception:
                self._errors += 1
                log.exception("frame clock subscriber %r raised", callback)

    def _record(self, lateness: float) -> None:
        self._lateness.append(lateness)
        if lateness > self._max_lateness:
            self._max_lateness = lateness
        if lateness >= self._threshold:
            self._late += 1
