"""One clock for every call's outbound pacer on an event loop: a shared tick.

A pacer that sleeps for its own next frame arms a timer per frame, and with N calls
speaking the loop wakes N times every 20 ms, each time for one send. With a shared tick
every 5 ms the loop wakes at most 200 times a second however many calls speak, and
each tick sends the frames of every pacer whose slot has come. Each pacer keeps its own
task, so a call whose socket is slow (a send that waits for the peer) holds up only
itself.

A frame leaves at the first tick at or after its slot: up to one tick (5 ms) late,
which is what the tick costs in jitter. A 20 ms tick would wake the loop less again,
but a burst's first frames go out at once, off the grid, and the rest would then trail
them by up to 20 ms (the gateway's lead would shrink by that much at random).

Measured with websockets alone (`loadtests/bench_websocket_floor.py`: 20 connections
each sent 50 frames a second, 2 cores): 4.0 ms of server CPU per call-second with a
timer per sender, 3.3 on the shared 5 ms tick (kernel time 0.9 -> 0.3). In the whole
server the tick, the mu-law passthrough and the Deepgram bridge's silence batching
together took a 20-call step from 15.2 to 10.4-11.5 ms per call-second.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Final

from realtime_voice.audio.format import FRAME_MS

__all__ = ["FrameClock"]

_TICK_S: Final = FRAME_MS / 4000
# A tick may fire this much before its time (asyncio runs timers that are due within
# its clock resolution): a deadline that close has come.
_EARLY_S: Final = 0.0005

_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameClock] = (
    weakref.WeakKeyDictionary()
)


class FrameClock:
    """Wakes waiters on a common grid of ``tick_s`` (5 ms); runs only while awaited.

    Args:
        tick_s: the grid step in seconds.
        clock: monotonic clock in seconds; deadlines given to `wait_until` use it.
    """

    def __init__(
        self, *, tick_s: float = _TICK_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if tick_s <= 0:
            raise ValueError(f"tick_s must be positive, not {tick_s}")
        self._tick_s = tick_s
        self._clock = clock
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def shared(cls) -> FrameClock:
        """The running loop's clock (made on first use, gone with the loop).

        It ticks on the loop's own time (``loop.time``, which is `time.monotonic` on a
        standard loop), so a loop with a virtual clock paces on virtual time.
        """
        loop = asyncio.get_running_loop()
        clock = _shared.get(loop)
        if clock is None:
            clock = _shared[loop] = cls(clock=loop.time)
        return clock

    @property
    def clock(self) -> Callable[[], float]:
        """The clock deadlines are measured on."""
        return self._clock

    @property
    def running(self) -> bool:
        """The tick task is alive (it stops one tick after the last waiter)."""
        return self._task is not None and not self._task.done()

    @property
    def waiting(self) -> int:
        """Waiters for the next tick."""
        return len(self._waiters)

    async def wait_until(self, deadline: float) -> None:
        """Return at the first tick at or after ``deadline`` (at once if it has passed)."""
        if self._clock() >= deadline - _EARLY_S:
            return
        loop = asyncio.get_running_loop()
        # A future per waiter: cancelling one pacer must not cancel the others.
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append((deadline, waiter))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="frame-clock")
        await waiter

    async def _run(self) -> None:
        tick = self._tick_s
        next_at = self._clock() + tick
        while self._waiters:
            delay = next_at - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
            now = self._clock()
            # After a stall, start a new grid rather than firing the missed ticks.
            next_at = next_at + tick if now - next_at < tick else now + tick
            due = now + _EARLY_S
            waiting: list[tuple[float, asyncio.Future[None]]] = []
            for deadline, waiter in self._waiters:
                if waiter.done():
                    continue  # cancelled
                if deadline <= due:
                    waiter.set_result(None)
                else:
                    waiting.append((deadline, waiter))
            self._waiters = waiting
