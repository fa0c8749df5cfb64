"""The `MediaProtocol` interface and the neutral events every wire protocol parses into.

A protocol module is a pure codec (sans-I/O): text or bytes in, typed events out;
outbound audio, marks and control actions in, wire messages out. It never awaits,
never touches a socket and never raises anything but `ProtocolError` from `parse`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from realtime_voice.audio.format import AudioFormat

__all__ = [
    "AudioEvent",
    "ConfigEvent",
    "ConnectedEvent",
    "DtmfEvent",
    "MarkEvent",
    "MediaEvent",
    "MediaProtocol",
    "ProtocolError",
    "StartEvent",
    "StopEvent",
]


class ProtocolError(Exception):
    """One inbound message could not be understood; the call goes on.

    Attributes:
        code: short machine-readable reason, e.g. ``bad_message``.
        message: human-readable explanation naming the problem.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ConnectedEvent:
    """Twilio's first message; carries nothing we use."""


@dataclass(frozen=True, slots=True)
class StartEvent:
    """Media begins.

    Attributes:
        custom_parameters: gateway-supplied parameters that shape the conversation
            (persona, greeting_text, flow, customer_name, token for Twilio, ...).
        call_id: the gateway's call id when the protocol carries one (Twilio ``callSid``).
        stream_id: the stream id outbound messages must echo (Twilio ``streamSid``).
        audio_format: the media format the start message declares, if any.
    """

    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    call_id: str | None = None
    stream_id: str | None = None
    audio_format: AudioFormat | None = None


@dataclass(frozen=True, slots=True)
class AudioEvent:
    """Caller audio in the call's wire format (any length)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class ConfigEvent:
    """The gateway changes the audio format before audio flows."""

    audio_format: AudioFormat


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """A keypad digit (0-9, *, #, A-D)."""

    digit: str


@dataclass(frozen=True, slots=True)
class MarkEvent:
    """The gateway finished playing everything sent before the mark of this name."""

    name: str


@dataclass(frozen=True, slots=True)
class StopEvent:
    """The caller hung up / the stream ends."""


MediaEvent = (
    ConnectedEvent | StartEvent | AudioEvent | ConfigEvent | DtmfEvent | MarkEvent | StopEvent
)


class MediaProtocol(Protocol):
    """One gateway wire protocol, as a pure codec. One instance per call.

    Outbound ``format_*`` methods return the message to send, or ``None`` when the
    protocol has no such message (the session then uses its fallback: e.g. Twilio has
    no transfer frame, so the session ends the stream and lets the TwiML continue).
    """

    name: str
    """Short protocol name for logs and metrics (``ringcentral`` or ``twilio``)."""

    audio_format: AudioFormat
    """The call's current wire format (updated by ``config``/``start`` events)."""

    def parse(self, message: str | bytes) -> list[MediaEvent]:
        """Parse one WebSocket message into zero or more events.

        Raises:
            ProtocolError: the message is malformed; the caller answers per protocol
                (``format_error``) and counts it.
        """
        ...

    def format_audio(self, frame: bytes) -> str | bytes:
        """Wrap one 20 ms frame of bot audio in the wire format."""
        ...

    def format_mark(self, name: str) -> str:
        """A mark the gateway echoes back once the audio before it has played."""
        ...

    def format_clear(self) -> str:
        """Barge-in: tell the gateway to drop all queued bot audio now."""
        ...

    def format_transfer(self, target: Mapping[str, str]) -> str | None:
        """Ask the gateway to hand the caller to a human, if the protocol can.

        ``target`` is the RingCentral-style target object: ``{"phoneNumber": ...}`` or
        ``{"extensionNumber": ...}`` (``TransferTarget.as_wire()`` in `ai_pipeline`).
        """
        ...

    def format_hangup(self, reason: str) -> str | None:
        """Ask the gateway to end the call, if the protocol can."""
        ...

    def format_error(self, code: str, message: str) -> str | None:
        """An error frame for a rejected message, if the protocol has one."""
        ...
