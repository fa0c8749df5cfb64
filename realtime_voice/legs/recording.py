"""`RecordingLeg`: any call leg, with what the caller said and heard tapped for a recording.

The session keeps talking to a `CallLeg` and never learns it is recorded: this wrapper
passes every call through to the real leg and copies three things to the call's
recording tap on the way (`realtime_voice.storage.recording.CallTap` implements it):

- the caller's audio: the inbound `AudioEvent`s, taken from the listener `run` is given;
- the bot's audio: each frame `send_audio` plays;
- the cut: `clear` (barge-in), after which the far end never plays what it held.

The tap is closed when `run` returns and again (idempotently) on `close`, so a call that
ends whichever way still finishes its file.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from ai_pipeline.responder import TransferTarget
from realtime_voice.audio.format import AudioFormat
from realtime_voice.legs.base import (
    CLOSE_NORMAL,
    AudioEvent,
    CallLeg,
    LegListener,
    MediaEvent,
    ProtocolError,
)

__all__ = ["RecordingLeg", "RecordingTap", "TapSource", "recorded"]


class RecordingTap(Protocol):
    """Where one call's audio is copied. Every method is non-blocking and never raises."""

    def caller_audio(self, payload: bytes, fmt: AudioFormat) -> None:
        """Caller audio just received, in the wire format ``fmt``."""
        ...

    def bot_audio(self, frame: bytes, fmt: AudioFormat) -> None:
        """A bot frame just sent, in the wire format ``fmt``."""
        ...

    def cut(self) -> None:
        """The far end drops the bot audio it still holds."""
        ...

    def close(self) -> None:
        """The call is over (idempotent)."""
        ...


class TapSource(Protocol):
    """Hands out a recording tap per call (`realtime_voice.storage.recording.Recordings`)."""

    def tap(self, call_id: str) -> RecordingTap | None:
        """The call's tap, or ``None`` when calls are not recorded."""
        ...


def recorded(leg: CallLeg, recordings: TapSource | None, call_id: str) -> CallLeg:
    """``leg`` wrapped in a `RecordingLeg` when calls are recorded, else ``leg`` itself."""
    tap = recordings.tap(call_id) if recordings is not None else None
    return leg if tap is None else RecordingLeg(leg, tap)


class _TappedListener:
    """The session as the real leg sees it: caller audio is copied to the tap first."""

    __slots__ = ("_leg", "_listener", "_tap")

    def __init__(self, listener: LegListener, tap: RecordingTap, leg: CallLeg) -> None:
        self._listener = listener
        self._tap = tap
        self._leg = leg

    @property
    def is_ended(self) -> bool:
        return self._listener.is_ended

    async def handle(self, event: MediaEvent) -> None:
        if isinstance(event, AudioEvent):
            self._tap.caller_audio(event.payload, self._leg.audio_format)
        await self._listener.handle(event)

    async def on_rejected(self, error: ProtocolError) -> None:
        await self._listener.on_rejected(error)

    def on_inactive(self, idle_s: float) -> None:
        self._listener.on_inactive(idle_s)


class RecordingLeg:
    """A `CallLeg` that records the call it carries.

    Args:
        leg: the real leg (WebSocket, SIP...).
        tap: the call's recording tap.
    """

    def __init__(self, leg: CallLeg, tap: RecordingTap) -> None:
        self._leg = leg
        self._tap = tap

    @property
    def inner(self) -> CallLeg:
        """The leg being recorded."""
        return self._leg

    @property
    def name(self) -> str:
        """The real leg's name."""
        return self._leg.name

    @property
    def audio_format(self) -> AudioFormat:
        """The real leg's current wire format."""
        return self._leg.audio_format

    @property
    def playout_lead_ms(self) -> int:
        """The real leg's playout lead."""
        return self._leg.playout_lead_ms

    def send_audio(self, frame: bytes) -> Awaitable[None]:
        """Copy the frame to the recording, then play it."""
        # Outbound audio is the mono form of the wire format (`Speaker` paces it so).
        self._tap.bot_audio(frame, self._leg.audio_format.mono)
        return self._leg.send_audio(frame)

    def send_mark(self, name: str) -> Awaitable[None]:
        """Pass the mark on."""
        return self._leg.send_mark(name)

    def clear(self) -> Awaitable[None]:
        """Cut the recording's bot channel here, then clear the far end."""
        self._tap.cut()
        return self._leg.clear()

    def send_error(self, code: str, message: str) -> Awaitable[None]:
        """Pass the error frame on."""
        return self._leg.send_error(code, message)

    async def transfer(self, target: TransferTarget) -> None:
        """Pass the transfer on."""
        await self._leg.transfer(target)

    async def hang_up(self, reason: str) -> None:
        """Pass the hang-up on."""
        await self._leg.hang_up(reason)

    async def run(self, listener: LegListener) -> None:
        """Run the real leg with caller audio tapped; the recording ends with it."""
        try:
            await self._leg.run(_TappedListener(listener, self._tap, self._leg))
        finally:
            self._tap.close()

    def disconnect_reason(self) -> str:
        """The real leg's reason."""
        return self._leg.disconnect_reason()

    async def close(self, reason: str, *, code: int = CLOSE_NORMAL) -> bool | None:
        """Finish the recording, then close the real leg."""
        self._tap.close()
        return await self._leg.close(reason, code=code)
