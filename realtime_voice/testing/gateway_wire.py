"""The gateway's side of the two media protocols, as pure codecs (no socket).

`RingCentralGatewayWire` speaks the RingCentral bridge protocol (docs/PROTOCOLS.md §2) and
`TwilioGatewayWire` speaks Twilio Media Streams (§3), each from the gateway's seat:
they format what a gateway sends (start, audio, DTMF, mark echoes, stop) and parse what
the server sends back into `ServerMessage` values. Anything the server sends that the
protocol does not allow parses into `Unexpected`, so a test can assert there was none.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "BotAudio",
    "BotClear",
    "BotError",
    "BotHangup",
    "BotMark",
    "BotTransfer",
    "GatewayWire",
    "RingCentralGatewayWire",
    "ServerMessage",
    "TwilioGatewayWire",
    "Unexpected",
    "check_digit",
    "load_stream_event",
    "media_payload",
    "new_twilio_sid",
    "stream_mark",
]


@dataclass(frozen=True, slots=True)
class BotAudio:
    """Bot audio in the call's wire format (mu-law 8 kHz here)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class BotMark:
    """A mark to echo once the audio sent before it has played."""

    name: str


@dataclass(frozen=True, slots=True)
class BotClear:
    """Barge-in: drop all queued bot audio now."""


@dataclass(frozen=True, slots=True)
class BotTransfer:
    """Hand the caller to a human (``phoneNumber`` or ``extensionNumber``)."""

    target: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class BotHangup:
    """The bot ends the call."""

    reason: str


@dataclass(frozen=True, slots=True)
class BotError:
    """The server rejected one of our frames; the call goes on."""

    code: str
    message: str
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unexpected:
    """A message the protocol does not allow from a server, with why."""

    problem: str
    raw: str


ServerMessage = BotAudio | BotMark | BotClear | BotTransfer | BotHangup | BotError | Unexpected

_DIGITS = frozenset("0123456789*#ABCD")


def new_twilio_sid(prefix: str) -> str:
    """A random Twilio-style id: two-letter prefix and 32 hex digits (``CA...``, ``MZ...``)."""
    return prefix + secrets.token_hex(16)


def check_digit(digit: str) -> str:
    """``digit`` itself when it is a keypad digit.

    Raises:
        ValueError: it is not one of 0-9, *, #, A-D.
    """
    if digit not in _DIGITS:
        raise ValueError(f"DTMF digit must be one of 0-9, *, #, A-D, got {digit!r}")
    return digit


def _load(message: str) -> dict[str, Any] | Unexpected:
    try:
        obj = json.loads(message)
    except json.JSONDecodeError as exc:
        return Unexpected(f"text frame is not JSON ({exc.msg})", message)
    if not isinstance(obj, dict):
        return Unexpected("text frame is not a JSON object", message)
    return obj


def load_stream_event(
    message: str | bytes, carrier: str, id_field: str, stream_id: str, *, required: bool = True
) -> dict[str, Any] | Unexpected:
    """A server message of a Twilio-like JSON stream, checked to be for ``stream_id``.

    Args:
        message: the WebSocket message (such carriers allow only text).
        carrier: the carrier's name, for the problem text.
        id_field: the field naming the stream (``streamSid``, ``stream_sid``...).
        stream_id: this stream's id.
        required: the server must name the stream (else only a wrong id is refused).
    """
    if isinstance(message, bytes):
        return Unexpected(f"{carrier} streams carry only text frames", repr(message[:32]))
    obj = _load(message)
    if isinstance(obj, Unexpected):
        return obj
    if obj.get(id_field) != stream_id and (required or obj.get(id_field) is not None):
        return Unexpected(
            f"{obj.get('event')!r} for {id_field} {obj.get(id_field)!r}, expected {stream_id!r}",
            message,
        )
    return obj


def media_payload(obj: Mapping[str, Any], message: str) -> bytes | Unexpected:
    """The decoded ``media.payload`` of a Twilio-like ``media`` message."""
    media = obj.get("media")
    payload = media.get("payload") if isinstance(media, dict) else None
    if not isinstance(payload, str):
        return Unexpected("media without a payload string", message)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return Unexpected("media payload is not valid base64", message)


def stream_mark(obj: Mapping[str, Any], message: str) -> BotMark | Unexpected:
    """The ``mark.name`` of a Twilio-like ``mark`` message."""
    mark = obj.get("mark")
    name = mark.get("name") if isinstance(mark, dict) else None
    if isinstance(name, str) and name:
        return BotMark(name)
    return Unexpected("mark without a non-empty mark.name", message)


class GatewayWire(Protocol):
    """What the simulated caller needs from one media protocol, gateway side."""

    def opening(self, custom_parameters: Mapping[str, str]) -> list[str]:
        """The messages a gateway sends right after connecting, before any audio."""
        ...

    def audio(self, frame: bytes, timestamp_ms: int) -> str | bytes:
        """One frame of caller audio; ``timestamp_ms`` is its start on the stream."""
        ...

    def dtmf(self, digit: str) -> str:
        """A keypad digit."""
        ...

    def mark(self, name: str) -> str:
        """The echo of a mark whose audio finished playing (or was cleared)."""
        ...

    def stop(self) -> str:
        """The caller hung up."""
        ...

    def parse(self, message: str | bytes) -> ServerMessage:
        """One message from the server."""
        ...


class RingCentralGatewayWire:
    """Gateway side of the RingCentral bridge protocol (docs/PROTOCOLS.md §2).

    Audio travels as raw binary frames both ways; everything else is JSON with a
    ``type`` field.
    """

    def opening(self, custom_parameters: Mapping[str, str]) -> list[str]:
        """``{"type":"start","customParameters":{...}}``."""
        return [json.dumps({"type": "start", "customParameters": dict(custom_parameters)})]

    def audio(self, frame: bytes, timestamp_ms: int) -> bytes:
        """The frame itself, as a binary message (the protocol carries no timestamp)."""
        return frame

    def dtmf(self, digit: str) -> str:
        """``{"type":"dtmf","digit":...}``.

        Raises:
            ValueError: not a keypad digit.
        """
        return json.dumps({"type": "dtmf", "digit": check_digit(digit)})

    def mark(self, name: str) -> str:
        """``{"type":"mark","name":...}``."""
        return json.dumps({"type": "mark", "name": name})

    def stop(self) -> str:
        """``{"type":"stop"}``."""
        return '{"type": "stop"}'

    def parse(self, message: str | bytes) -> ServerMessage:
        """Parse one server message (binary = bot audio).

        Args:
            message: the WebSocket message.

        Returns:
            The typed message, or `Unexpected` naming what is wrong with it.
        """
        if isinstance(message, bytes):
            return BotAudio(message)
        obj = _load(message)
        if isinstance(obj, Unexpected):
            return obj
        kind = obj.get("type")
        if kind == "mark":
            name = obj.get("name")
            if isinstance(name, str) and name:
                return BotMark(name)
            return Unexpected("mark without a non-empty name", message)
        if kind == "clear":
            return BotClear()
        if kind == "transfer":
            target = obj.get("target")
            if (
                isinstance(target, dict)
                and len(target) == 1
                and next(iter(target)) in ("phoneNumber", "extensionNumber")
                and all(isinstance(v, str) for v in target.values())
            ):
                return BotTransfer(target)
            return Unexpected("transfer target must be {phoneNumber} or {extensionNumber}", message)
        if kind == "hangup":
            reason = obj.get("reason", "")
            return BotHangup(reason if isinstance(reason, str) else str(reason))
        if kind == "error":
            return BotError(str(obj.get("code", "")), str(obj.get("message", "")), obj)
        return Unexpected(f"unknown message type {kind!r}", message)


class TwilioGatewayWire:
    """Gateway side of Twilio Media Streams (docs/PROTOCOLS.md §3), as Twilio sends it.

    Every message after ``connected`` carries an incrementing ``sequenceNumber``;
    ``media`` carries its own ``chunk`` counter and a ``timestamp`` in ms from the
    start of the stream; all three are strings, as Twilio sends them.

    Args:
        call_sid: the ``CA...`` call id (the webhook token is bound to it).
        stream_sid: the ``MZ...`` stream id (random when omitted).
        account_sid: the ``AC...`` account id (random when omitted).
    """

    def __init__(
        self, call_sid: str, stream_sid: str | None = None, account_sid: str | None = None
    ) -> None:
        """Create the codec for one stream."""
        self.call_sid = call_sid
        self.stream_sid = stream_sid or new_twilio_sid("MZ")
        self.account_sid = account_sid or new_twilio_sid("AC")
        self._sequence = 0
        self._chunk = 0

    def _next_sequence(self) -> str:
        self._sequence += 1
        return str(self._sequence)

    def _event(self, event: str, **body: Any) -> str:
        return json.dumps(
            {
                "event": event,
                "sequenceNumber": self._next_sequence(),
                "streamSid": self.stream_sid,
                **body,
            },
            separators=(",", ":"),
        )

    def opening(self, custom_parameters: Mapping[str, str]) -> list[str]:
        """``connected``, then ``start`` with the call ids, media format and parameters."""
        connected = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        start = self._event(
            "start",
            start={
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": dict(custom_parameters),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        )
        return [connected, start]

    def audio(self, frame: bytes, timestamp_ms: int) -> str:
        """A ``media`` event with the frame base64-encoded on the inbound track."""
        self._chunk += 1
        return self._event(
            "media",
            media={
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(timestamp_ms),
                "payload": base64.b64encode(frame).decode("ascii"),
            },
        )

    def dtmf(self, digit: str) -> str:
        """A ``dtmf`` event on ``inbound_track``.

        Raises:
            ValueError: not a keypad digit.
        """
        return self._event("dtmf", dtmf={"track": "inbound_track", "digit": check_digit(digit)})

    def mark(self, name: str) -> str:
        """A ``mark`` event echoing the server's mark."""
        return self._event("mark", mark={"name": name})

    def stop(self) -> str:
        """A ``stop`` event naming the account and call."""
        return self._event("stop", stop={"accountSid": self.account_sid, "callSid": self.call_sid})

    def parse(self, message: str | bytes) -> ServerMessage:
        """Parse one server message (``media``, ``mark`` or ``clear`` for our stream).

        Args:
            message: the WebSocket message.

        Returns:
            The typed message, or `Unexpected` naming what is wrong with it.
        """
        obj = load_stream_event(message, "Twilio", "streamSid", self.stream_sid)
        if isinstance(obj, Unexpected):
            return obj
        assert isinstance(message, str)
        event = obj.get("event")
        if event == "media":
            audio = media_payload(obj, message)
            return audio if isinstance(audio, Unexpected) else BotAudio(audio)
        if event == "mark":
            return stream_mark(obj, message)
        if event == "clear":
            return BotClear()
        return Unexpected(f"unknown event {event!r}", message)
