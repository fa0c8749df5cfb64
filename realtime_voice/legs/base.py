"""The call leg: everything a call session needs from a carrier, and nothing else.

A leg is one call's connection to the telephony side: a gateway WebSocket today
(`WebSocketLeg` over the RingCentral bridge or Twilio codec), a SIP/RTP dialog or a
browser tomorrow. The session talks only to this interface, so a new carrier is a new
leg and never a change to the session.

Inbound, a leg delivers the neutral events of `realtime_voice.protocols.base` to a
`LegListener`: the call's start (parameters, format), audio in the call's wire format,
format changes, DTMF, marks ("the audio before this mark has played") and the far end
hanging up. A message it cannot understand it answers itself, as its carrier expects,
and reports as a `ProtocolError`.

Outbound, it plays 20 ms frames, clears what is queued, places marks, transfers, hangs
up and closes. What the caller has *heard* comes back as marks: a WebSocket gateway
echoes them once the audio before them played; an RTP leg would emit them from its own
playout clock. `playout_lead_ms` says how far ahead of real time the leg may be fed
(the audio it holds that the caller has not heard yet), which is what the session
subtracts when it estimates how much of a cut utterance was heard.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from ai_pipeline.responder import TransferTarget
from realtime_voice.audio.format import AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
    ConfigEvent,
    ConnectedEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
    StopEvent,
)

__all__ = [
    "CLOSE_INTERNAL",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "AudioEvent",
    "CallLeg",
    "ConfigEvent",
    "ConnectedEvent",
    "DtmfEvent",
    "LegListener",
    "MarkEvent",
    "MediaEvent",
    "PlatformCallControl",
    "PlatformControlError",
    "ProtocolError",
    "StartEvent",
    "StopEvent",
]

CLOSE_NORMAL = 1000
"""The call ended as intended (WebSocket close code; other legs map it to a normal end)."""
CLOSE_POLICY = 1008
"""The far end broke the protocol (too many bad messages)."""
CLOSE_INTERNAL = 1011
"""We failed (a provider gave up): the call ends as failed."""


class PlatformControlError(Exception):
    """A transfer or hang-up on the telephony platform raised or overran its time bound.

    Raised by `CallLeg.close` after the transport is closed all the same.
    """


class PlatformCallControl(Protocol):
    """Transfer or hang up a call on its telephony platform. Never raises."""

    async def transfer(self, call_id: str, target: TransferTarget) -> bool:
        """Returns whether the platform accepted the transfer."""
        ...

    async def hangup(self, call_id: str) -> bool:
        """Returns whether the platform dropped the call."""
        ...


class LegListener(Protocol):
    """Who hears a leg's inbound side: the call session."""

    @property
    def is_ended(self) -> bool:
        """The call is over: the leg stops delivering."""
        ...

    async def handle(self, event: MediaEvent) -> None:
        """Act on one inbound event (audio, DTMF, mark, start, config, stop)."""
        ...

    async def on_rejected(self, error: ProtocolError) -> None:
        """An inbound message was malformed (the leg has not answered it yet)."""
        ...

    def on_inactive(self, idle_s: float) -> None:
        """Nothing arrived for ``idle_s`` seconds: the far end is gone without a word."""
        ...


class CallLeg(Protocol):
    """One call's connection to the carrier, as the session uses it.

    Outbound methods raise the transport's error when the far end has gone; the call
    then ends as its inbound side notices (`run` returns).
    """

    @property
    def name(self) -> str:
        """Short carrier/protocol name for logs, metrics and the call record."""
        ...

    @property
    def audio_format(self) -> AudioFormat:
        """The call's current wire format, both directions."""
        ...

    @property
    def playout_lead_ms(self) -> int:
        """How far ahead of real time outbound audio may be fed (held but not yet heard)."""
        ...

    def send_audio(self, frame: bytes) -> Awaitable[None]:
        """Play one 20 ms frame of the call's format (the pacer keeps real time)."""
        ...

    def send_mark(self, name: str) -> Awaitable[None]:
        """Ask to hear ``MarkEvent(name)`` once the audio sent before it has played."""
        ...

    def clear(self) -> Awaitable[None]:
        """Barge-in: drop all outbound audio the far end still holds."""
        ...

    def send_error(self, code: str, message: str) -> Awaitable[None]:
        """Tell the far end one of its messages was rejected, if the carrier has a way."""
        ...

    async def transfer(self, target: TransferTarget) -> None:
        """Hand the caller to ``target`` (gateway frame and/or platform request).

        Returns once the request is on its way; `close` waits for a platform request
        still in flight, because the gateway may drop the socket as soon as it hears.
        """
        ...

    async def hang_up(self, reason: str) -> None:
        """End the call on the carrier's side after the last words were heard."""
        ...

    async def run(self, listener: LegListener) -> None:
        """Deliver inbound events to ``listener`` until the far end goes or the call ends."""
        ...

    def disconnect_reason(self) -> str:
        """Why the far end went, for a call that ended because the leg did."""
        ...

    async def close(self, reason: str, *, code: int = CLOSE_NORMAL) -> bool | None:
        """Finish a pending platform request (bounded), then close the transport.

        Idempotent. Returns whether the platform carried out the transfer or hang-up
        (``None``: none was asked of it).

        Raises:
            PlatformControlError: the platform request raised or overran its bound.
        """
        ...
