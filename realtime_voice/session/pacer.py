"""The outbound pacer: bot audio to the gateway in 20 ms frames at real time.

Sending a whole TTS utterance at once would make barge-in useless: the gateway would
already hold seconds of audio that only a ``clear`` can stop, and our own record of what
the caller heard would be wrong. So the pacer keeps the gateway at most ``max_lead_ms``
ahead of real time, puts a mark after each utterance, and on ``clear`` drops everything
still queued here at once. Frames wait for the loop's shared `FrameClock` tick rather
than a timer of their own (at most one wake-up per 5 ms for all calls).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from realtime_voice.audio.codec import silence_byte
from realtime_voice.audio.format import FRAME_MS, AudioFormat
from realtime_voice.audio.framing import FrameChunker
from realtime_voice.session.frame_clock import FrameClock

__all__ = ["AudioOut", "OutboundPacer", "PacerStats"]

log = logging.getLogger(__name__)


class AudioOut(Protocol):
    """Where paced audio goes: the call's leg (`realtime_voice.legs.base.CallLeg`)."""

    def send_audio(self, frame: bytes) -> Awaitable[None]:
        """Play one frame."""
        ...

    def send_mark(self, name: str) -> Awaitable[None]:
        """Place a mark after the frames sent so far."""
        ...

    def clear(self) -> Awaitable[None]:
        """Drop what the far end holds."""
        ...


@dataclass(slots=True)
class PacerStats:
    """Counters of one call's outbound audio."""

    frames_sent: int = 0
    marks_sent: int = 0
    clears: int = 0
    frames_dropped_on_clear: int = 0
    late_frames: int = 0
    """Frames sent more than one frame period after their due time (jitter on our side)."""
    max_lateness_ms: float = 0.0


@dataclass(slots=True)
class _Mark:
    name: str


class OutboundPacer:
    """Paces one call's bot audio; one instance and one task per call.

    Args:
        out: the call leg the frames, marks and clears go to.
        audio_format: the call's outbound wire format (sets the frame size).
        max_lead_ms: how far ahead of real time the leg may be fed (its
            ``playout_lead_ms``: 60 ms for a WebSocket gateway).
        max_queued_ms: bound on audio waiting here; producers wait when it is full.
        clock: monotonic clock in seconds (injectable for tests).
        ticks: the 5 ms tick frames wait for (it must use ``clock``); ``"shared"``:
            the running loop's `FrameClock.shared`, taken at `start`; None: each frame
            sleeps for its own slot.
    """

    def __init__(
        self,
        out: AudioOut,
        audio_format: AudioFormat,
        *,
        max_lead_ms: int = 60,
        max_queued_ms: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        ticks: FrameClock | Literal["shared"] | None = None,
    ) -> None:
        self._out = out
        self._format = audio_format
        self._silence_byte = silence_byte(audio_format.encoding)
        self._chunker = FrameChunker(audio_format.frame_bytes, max_pending_bytes=1 << 20)
        self._lead_s = max_lead_ms / 1000
        self._frame_s = FRAME_MS / 1000
        self._max_items = max(1, max_queued_ms // FRAME_MS)
        self._clock = clock
        self._ticks: FrameClock | None = None
        self._shared_ticks = ticks == "shared"
        if isinstance(ticks, FrameClock):
            self._ticks = ticks
        self._items: collections.deque[bytes | _Mark] = collections.deque()
        self._frames_queued = 0
        self._wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._t0 = 0.0
        self._k = 0
        self._in_burst = False
        self._generation = 0  # bumped by clear(): a frame popped before it must not go out
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = PacerStats()
        self.on_frame_sent: Callable[[], None] | None = None
        """Called after each frame goes out (the session times first audio with it)."""
        self.on_mark_sent: Callable[[str], None] | None = None

    # -- producer side -------------------------------------------------------------

    async def put_audio(self, data: bytes) -> None:
        """Queue wire-format audio of any length; waits while the queue is full."""
        for frame in self._chunker.push(data):
            while self._frames_queued >= self._max_items and not self._closed:
                self._space.clear()
                await self._space.wait()
            if self._closed:
                return
            self._append(frame)
            self._frames_queued += 1

    def end_utterance(self, mark_name: str | None) -> None:
        """Flush the partial last frame (padded with silence) and queue a mark after it."""
        tail = self._chunker.flush(pad_byte=self._silence_byte)
        if tail:
            self._append(tail)
            self._frames_queued += 1
        if mark_name is not None:
            self._append(_Mark(mark_name))

    async def clear(self) -> int:
        """Drop everything queued and tell the gateway to drop what it buffered.

        Returns:
            The number of frames dropped here.
        """
        dropped = self._frames_queued
        self._generation += 1
        self._in_burst = False
        self._items.clear()
        self._frames_queued = 0
        self._chunker.flush()
        self._space.set()
        self._idle.set()
        self.stats.clears += 1
        self.stats.frames_dropped_on_clear += dropped
        await self._out.clear()
        return dropped

    # -- state ----------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Audio or marks are still waiting to go out."""
        return bool(self._items)

    @property
    def queued_ms(self) -> int:
        """Milliseconds of audio waiting here."""
        return self._frames_queued * FRAME_MS

    async def wait_idle(self) -> None:
        """Wait until everything queued so far has been sent."""
        await self._idle.wait()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the sending task (once)."""
        if self._task is None:
            if self._shared_ticks:
                self._ticks = FrameClock.shared()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pacer")

    async def close(self) -> None:
        """Stop sending; anything queued is discarded. Idempotent."""
        self._closed = True
        self._items.clear()
        self._frames_queued = 0
        self._space.set()
        self._idle.set()
        self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                # A send failed first (the gateway vanished mid-audio): closing is all
                # that is left to do, and it must not fail the call's ending.
                log.debug("pacer stopped by a failed send: %r", exc)
            self._task = None

    # -- internals ------------------------------------------------------------------

    def _append(self, item: bytes | _Mark) -> None:
        self._items.append(item)
        self._idle.clear()
        self._wakeup.set()

    async def _run(self) -> None:
        while not self._closed:
            if not self._items:
                self._idle.set()
                self._in_burst = False
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not self._in_burst:
                # A new burst (first audio, or after an underrun) starts a new real-time
                # schedule; carrying the old one over would send the backlog in one burst.
                self._in_burst = True
                self._t0 = self._clock()
                self._k = 0
            generation = self._generation
            item = self._items.popleft()
            if isinstance(item, _Mark):
                self.stats.marks_sent += 1
                await self._out.send_mark(item.name)
                if self.on_mark_sent is not None:
                    self.on_mark_sent(item.name)
                continue
            self._frames_queued -= 1
            if self._frames_queued < self._max_items:
                self._space.set()
            due = self._t0 + self._k * self._frame_s
            wait = due - self._lead_s - self._clock()
            if wait > 0:
                if self._ticks is not None:
                    await self._ticks.wait_until(due - self._lead_s)
                else:
                    await asyncio.sleep(wait)
                if generation != self._generation:
                    continue  # cleared while waiting for this frame's slot
            lateness = self._clock() - due
            if lateness > self._frame_s:
                self.stats.late_frames += 1
                self.stats.max_lateness_ms = max(self.stats.max_lateness_ms, lateness * 1000)
                if lateness > 10 * self._frame_s:
                    # We fell far behind (loop stall): restart the schedule rather than
                    # bursting seconds of audio at the gateway.
                    self._t0 = self._clock()
                    self._k = 0
            self._k += 1
            await self._out.send_audio(item)
            self.stats.frames_sent += 1
            if self.on_frame_sent is not None:
                self.on_frame_sent()
