"""`FakeLeg`: a `CallLeg` in memory that records what the session sent and plays it out.

It behaves like a gateway with a real-time playout buffer: each frame takes 20 ms to
play, starting when the previous one finished (or now, after a gap), and a mark is
echoed when the audio queued before it has played. ``clear`` empties the buffer and
echoes pending marks at once (as Twilio does). Inbound, a test pushes the events a
carrier would deliver (`receive`), or makes the far end vanish (`disconnect`).

Run it on `realtime_voice.testing.virtual_time` and the playout clock is virtual too:
a minute of bot speech plays in a few milliseconds, in the same order every time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from ai_pipeline.responder import TransferTarget
from realtime_voice.audio.format import FRAME_MS, MULAW_8K, AudioFormat
from realtime_voice.legs.base import (
    CLOSE_NORMAL,
    LegListener,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StopEvent,
)

__all__ = ["FakeLeg", "Sent"]

_FRAME_S = FRAME_MS / 1000


@dataclass(frozen=True, slots=True)
class Sent:
    """One thing the session sent, with the (loop) time it was sent.

    Attributes:
        kind: what it was.
        detail: the mark name, error code, hang-up reason or transfer target.
        at: ``loop.time()`` when it was sent.
    """

    kind: Literal["audio", "mark", "clear", "error", "transfer", "hangup"]
    detail: str
    at: float


@dataclass
class _Disconnect:
    reason: str = "caller_disconnected"


@dataclass
class FakeLeg:
    """A call leg for tests (see the module docstring).

    Attributes:
        audio_format: the call's wire format.
        name: reported as the call's protocol.
        playout_lead_ms: how far ahead the session may feed it.
        echo_marks: echo marks once played (False: a gateway that never echoes).
        platform_result: what `close` reports of a transfer or hang-up (None: no platform).
        sent: everything sent, in order.
        frames: the audio frames, in order.
        closed: the reason and code of the close, once closed.
    """

    audio_format: AudioFormat = MULAW_8K
    name: str = "fake"
    playout_lead_ms: int = 60
    echo_marks: bool = True
    platform_result: bool | None = None
    sent: list[Sent] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    closed: tuple[str, int] | None = None
    _inbox: asyncio.Queue[MediaEvent | ProtocolError | _Disconnect] = field(
        default_factory=asyncio.Queue
    )
    _play_end: float = 0.0
    _pending_marks: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    _listener: LegListener | None = None
    _disconnect_reason: str = "caller_disconnected"

    # -- what a test does ------------------------------------------------------------

    def receive(self, event: MediaEvent | ProtocolError) -> None:
        """The carrier delivers ``event`` (a `ProtocolError` stands for a malformed message)."""
        self._inbox.put_nowait(event)

    def hang_up_far_end(self) -> None:
        """The caller hangs up: the carrier says so (a ``stop``)."""
        self.receive(StopEvent())

    def disconnect(self, reason: str = "caller_disconnected") -> None:
        """The connection drops without a word."""
        self._inbox.put_nowait(_Disconnect(reason))

    def go_idle(self, idle_s: float) -> None:
        """Nothing has arrived for ``idle_s``: the leg's watchdog fires."""
        assert self._listener is not None, "run() first"
        self._listener.on_inactive(idle_s)

    def kinds(self) -> list[str]:
        """What was sent, audio runs collapsed (``["audio", "mark", "hangup"]``)."""
        out: list[str] = []
        for item in self.sent:
            if item.kind != "audio" or not out or out[-1] != "audio":
                out.append(item.kind)
        return out

    def played_until(self) -> float:
        """When the audio sent so far finishes playing."""
        return self._play_end

    # -- the CallLeg interface ---------------------------------------------------------

    async def send_audio(self, frame: bytes) -> None:
        """Queue one frame for playout."""
        now = self._now()
        self.sent.append(Sent("audio", "", now))
        self.frames.append(frame)
        self._play_end = max(now, self._play_end) + _FRAME_S

    async def send_mark(self, name: str) -> None:
        """Echo ``name`` when the audio before it has played."""
        now = self._now()
        self.sent.append(Sent("mark", name, now))
        if self.echo_marks:
            loop = asyncio.get_running_loop()
            self._pending_marks[name] = loop.call_at(max(now, self._play_end), self._echo, name)

    async def clear(self) -> None:
        """Drop the playout buffer; pending marks come back at once."""
        now = self._now()
        self.sent.append(Sent("clear", "", now))
        self._play_end = now
        for name, handle in list(self._pending_marks.items()):
            handle.cancel()
            self._echo(name)

    async def send_error(self, code: str, message: str) -> None:
        """Record an error frame."""
        self.sent.append(Sent("error", code, self._now()))

    async def transfer(self, target: TransferTarget) -> None:
        """Record the transfer request."""
        wire = target.as_wire()
        self.sent.append(Sent("transfer", next(iter(wire.values())), self._now()))

    async def hang_up(self, reason: str) -> None:
        """Record the hang-up request."""
        self.sent.append(Sent("hangup", reason, self._now()))

    async def run(self, listener: LegListener) -> None:
        """Deliver what `receive` queued until the far end goes or the call ends."""
        self._listener = listener
        while not listener.is_ended:
            item = await self._inbox.get()
            if isinstance(item, _Disconnect):
                self._disconnect_reason = item.reason
                return
            if isinstance(item, ProtocolError):
                await listener.on_rejected(item)
            else:
                await listener.handle(item)

    def disconnect_reason(self) -> str:
        """Why the far end went."""
        return self._disconnect_reason

    async def close(self, reason: str, *, code: int = CLOSE_NORMAL) -> bool | None:
        """Record the close; report `platform_result` when a transfer or hang-up was asked."""
        if self.closed is not None:
            return None
        self.closed = (reason, code)
        self._inbox.put_nowait(_Disconnect(reason))  # like a closed socket: run() returns
        for handle in self._pending_marks.values():
            handle.cancel()
        self._pending_marks.clear()
        asked = any(item.kind in ("transfer", "hangup") for item in self.sent)
        return self.platform_result if asked else None

    def _echo(self, name: str) -> None:
        self._pending_marks.pop(name, None)
        self.receive(MarkEvent(name))

    def _now(self) -> float:
        return asyncio.get_running_loop().time()
