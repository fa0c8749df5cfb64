"""Vonage Voice API WebSockets: an NCCO ``connect`` to a ``websocket`` endpoint.

Vonage is the WebSocket client (developer.vonage.com/en/voice/voice-api/concepts/websockets).
Its first message is a JSON text frame::

    {"event": "websocket:connected", "content-type": "audio/l16;rate=16000", ...}

where ``...`` is every key/value of the NCCO endpoint's ``headers``, flattened to the
top level (the docs: "The headers property is not present on the JSON payload so the
properties are at the top-level"). Our answer NCCO (`webhooks.vonage_answer`) puts the
call's ``uuid`` in the header `CALL_ID_HEADER` (``call_uuid``), the stream token in
``token`` and the numbers in ``from``/``to``; every header becomes a custom parameter
(numbers, booleans and nested values in their JSON spelling) and ``websocket:connected``
parses into the `StartEvent`.

After it, binary frames are the call's audio: 16-bit little-endian linear PCM, mono, at
the ``content-type`` rate (8000 or 16000), one 20 ms frame per message (320 or 640
bytes). Text frames are JSON events tagged by ``event``:

- ``websocket:dtmf`` ``{"digit": "5", "duration": 260}``, one digit per key press;
- ``websocket:notify`` ``{"payload": {...}}``: the echo of a ``notify`` we sent, once
  the audio queued before it has played. `format_mark` sends
  ``{"action": "notify", "payload": {"mark": name}}`` and the echo's ``payload.mark``
  is the `MarkEvent`;
- ``websocket:cleared``: Vonage's answer to our ``{"action": "clear"}``; no event.

The docs also warn that "various JSON text-based messages may be sent at any point in
the call" and that an application should look at ``event`` and ignore what it does not
use, so any other string ``event`` after ``websocket:connected`` gives no event (not an
error). Anything before ``websocket:connected`` (audio included) is ``bad_message``.

Outbound audio must be binary frames of exactly one 20 ms frame each ("It is important
that each message is 320 or 640 bytes ... and contains 20ms of audio"); `format_audio`
pads a short frame with PCM silence and `format_audio_frames` also splits a long one.
The clear and notify commands and their ``websocket:cleared``/``websocket:notify``
answers are named in the current guide, but its text for them could not be read; the
shapes here are the ones several independent implementations agree on (see
docs/carriers/vonage.md, "Not verified").

There is no transfer, hang-up or error message on the socket: `format_transfer`,
`format_hangup` and `format_error` return ``None``. Transfer and hang-up go through the
Voice REST API (`realtime_voice.carriers.vonage.VonageCallControl`).

This module is a pure codec (sans-I/O): `parse` raises only `ProtocolError`. Calling a
``format_*`` method before ``websocket:connected`` raises `RuntimeError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from realtime_voice.audio.format import AudioEncoding, AudioFormat, UnsupportedFormatError
from realtime_voice.protocols.base import (
    AudioEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
)
from realtime_voice.protocols.ringcentral_bridge import (
    DTMF_DIGITS,
    coerce_parameters,
    load_json_object,
)

__all__ = ["CALL_ID_HEADER", "CONTENT_TYPES", "VonageProtocol", "content_type"]

CALL_ID_HEADER: Final = "call_uuid"
"""The NCCO header carrying the call's ``uuid`` (the id the stream token is bound to)."""

CONTENT_TYPES: Final = {8000: "audio/l16;rate=8000", 16000: "audio/l16;rate=16000"}
"""The ``content-type`` values Vonage documents, by sample rate."""

_CLEAR: Final = '{"action":"clear"}'
_NOT_CONNECTED: Final = "no Vonage stream yet: outbound messages need websocket:connected first"
_RESERVED: Final = frozenset({"event", "content-type"})


def content_type(sample_rate: int) -> str:
    """The NCCO endpoint ``content-type`` for ``sample_rate`` (8000 or 16000).

    Raises:
        UnsupportedFormatError: any other rate.
    """
    try:
        return CONTENT_TYPES[sample_rate]
    except KeyError:
        raise UnsupportedFormatError(
            f"Vonage WebSockets carry L16 at 8000 or 16000 Hz, not {sample_rate!r}"
        ) from None


def _dumps(obj: object) -> str:
    # ensure_ascii stays on: a mark name with a lone surrogate must still give valid UTF-8.
    return json.dumps(obj, separators=(",", ":"))


def _audio_format(value: object, default: AudioFormat) -> AudioFormat:
    """``audio/l16;rate=N`` → PCM16 at N (8000 or 16000); absent → ``default``."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise ProtocolError(
            "bad_message",
            f"websocket:connected content-type must be a string, got {type(value).__name__}",
        )
    media_type, *params = (part.strip() for part in value.lower().split(";"))
    rate: str | None = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip() == "rate":
            rate = val.strip()
    if media_type != "audio/l16" or rate is None:
        raise ProtocolError(
            "unsupported_format",
            f"websocket:connected content-type must be audio/l16;rate=8000 or 16000, got {value!r}",
        )
    try:
        if not (rate.isascii() and rate.isdigit()):
            raise UnsupportedFormatError(f"rate {rate!r} is not a number")
        fmt = AudioFormat.parse(AudioEncoding.PCM16.value, rate, 1)
        content_type(fmt.sample_rate)  # 8 or 16 kHz only, like Vonage
    except UnsupportedFormatError as exc:
        raise ProtocolError(
            "unsupported_format", f"websocket:connected content-type {value!r}: {exc}"
        ) from None
    return fmt


def _header(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(
            "bad_message",
            f"websocket:connected header {key!r} must be a string, got {type(value).__name__}",
        )
    return value


class VonageProtocol:
    """Codec for one Vonage Voice WebSocket. One instance per call.

    Attributes:
        name: ``vonage``, for logs and metrics.
        audio_format: PCM16 mono at the constructor's rate until ``websocket:connected``
            declares its ``content-type``.
        call_uuid: the ``call_uuid`` header (``None`` before connected or without it).
        from_number: the ``from`` header (the caller), if any.
        to_number: the ``to`` header (the number called), if any.
        headers: every NCCO header of ``websocket:connected``, as strings.
    """

    name: str = "vonage"

    def __init__(self, sample_rate: int = 16000) -> None:
        """Create the codec for one stream.

        Args:
            sample_rate: the rate the answer NCCO asked for (8000 or 16000), used until
                ``websocket:connected`` names its ``content-type``.

        Raises:
            UnsupportedFormatError: any other rate.
        """
        content_type(sample_rate)
        self.audio_format: AudioFormat = AudioFormat(AudioEncoding.PCM16, sample_rate, 1)
        self.call_uuid: str | None = None
        self.from_number: str | None = None
        self.to_number: str | None = None
        self.headers: dict[str, str] = {}
        self._connected = False
        self._frame_bytes = self.audio_format.frame_bytes

    @property
    def connected(self) -> bool:
        """Whether ``websocket:connected`` has been parsed."""
        return self._connected

    def parse(self, message: str | bytes) -> list[MediaEvent]:
        """Parse one WebSocket message from Vonage.

        Args:
            message: one frame: binary audio or a JSON text event.

        Returns:
            The events it carries: none for empty audio, ``websocket:cleared`` and
            other informational events, else exactly one.

        Raises:
            ProtocolError: ``bad_message`` for a malformed or out-of-order message;
                ``unsupported_format`` for a ``content-type`` other than L16 at 8 or
                16 kHz.
        """
        # Ordered by frequency: audio is 50 messages a second, the rest are rare.
        if isinstance(message, bytes | bytearray | memoryview):
            return self._parse_audio(bytes(message))
        obj = load_json_object(message, "event")
        event = obj.get("event")
        if event == "websocket:connected":
            return [self._parse_connected(obj)]
        if not isinstance(event, str):
            if event is None:
                raise ProtocolError("bad_message", "text frame has no 'event' field")
            raise ProtocolError(
                "bad_message", f"'event' must be a string, got {type(event).__name__}"
            )
        if not self._connected:
            raise ProtocolError(
                "bad_message", f"{event!r} event received before websocket:connected"
            )
        if event == "websocket:dtmf":
            digit = obj.get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                raise ProtocolError(
                    "bad_message",
                    f"websocket:dtmf digit must be one of 0-9, *, #, A-D, got {digit!r}",
                )
            return [DtmfEvent(digit)]
        if event == "websocket:notify":
            return [self._parse_notify(obj)]
        # websocket:cleared answers our clear; the docs tell clients to skip events
        # they do not use, so the rest are informational too.
        return []

    def _parse_audio(self, audio: bytes) -> list[MediaEvent]:
        if not self._connected:
            raise ProtocolError(
                "bad_message",
                f"binary audio frame of {len(audio)} bytes received before websocket:connected",
            )
        if len(audio) % 2:
            raise ProtocolError(
                "bad_message",
                f"binary audio frame of {len(audio)} bytes is not whole 16-bit samples",
            )
        return [AudioEvent(audio)] if audio else []

    def _parse_connected(self, obj: Mapping[str, Any]) -> StartEvent:
        if self._connected:
            raise ProtocolError("bad_message", "duplicate websocket:connected")
        fmt = _audio_format(obj.get("content-type"), self.audio_format)
        raw = {key: value for key, value in obj.items() if key not in _RESERVED}
        call_uuid = _header(raw, CALL_ID_HEADER)
        params = coerce_parameters(raw, "websocket:connected headers")
        # A number header may arrive as a JSON number: its JSON spelling is the number.
        from_number = params.get("from") if raw.get("from") is not None else None
        to_number = params.get("to") if raw.get("to") is not None else None
        # Only now, with the whole message valid, does the stream start.
        self._connected = True
        self.audio_format = fmt
        self._frame_bytes = fmt.frame_bytes
        self.call_uuid = call_uuid
        self.from_number = from_number
        self.to_number = to_number
        self.headers = params
        return StartEvent(custom_parameters=dict(params), call_id=call_uuid, audio_format=fmt)

    def _parse_notify(self, obj: Mapping[str, Any]) -> MarkEvent:
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            raise ProtocolError(
                "bad_message",
                f"websocket:notify needs a 'payload' object, got {type(payload).__name__}",
            )
        name = payload.get("mark")
        if not isinstance(name, str) or not name:
            raise ProtocolError(
                "bad_message",
                f"websocket:notify payload.mark must be a non-empty string, got {name!r}",
            )
        return MarkEvent(name)

    def _require_connected(self) -> None:
        if not self._connected:
            raise RuntimeError(_NOT_CONNECTED)

    def format_audio(self, frame: bytes) -> bytes:
        """One binary message of exactly one 20 ms frame (320 or 640 bytes).

        A shorter frame (the last of an utterance) is padded with PCM silence, which
        the caller cannot hear, because Vonage wants every message to be one whole
        frame. Use `format_audio_frames` for audio longer than one frame.

        Raises:
            RuntimeError: called before ``websocket:connected``.
            ValueError: ``frame`` is longer than one 20 ms frame.
        """
        self._require_connected()
        size = self._frame_bytes
        if len(frame) == size:
            return bytes(frame)
        if len(frame) > size:
            raise ValueError(
                f"Vonage takes one {size}-byte frame per message, got {len(frame)} bytes "
                "(use format_audio_frames)"
            )
        return bytes(frame) + bytes(size - len(frame))

    def format_audio_frames(self, audio: bytes) -> list[bytes]:
        """Any amount of audio as whole 20 ms frames, the last padded with silence.

        Raises:
            RuntimeError: called before ``websocket:connected``.
        """
        self._require_connected()
        size = self._frame_bytes
        return [self.format_audio(audio[i : i + size]) for i in range(0, len(audio), size)]

    def format_mark(self, name: str) -> str:
        """``{"action":"notify","payload":{"mark":name}}``, echoed as websocket:notify.

        Raises:
            RuntimeError: called before ``websocket:connected``.
        """
        self._require_connected()
        return _dumps({"action": "notify", "payload": {"mark": name}})

    def format_clear(self) -> str:
        """``{"action":"clear"}``: Vonage drops its queued audio (barge-in).

        Raises:
            RuntimeError: called before ``websocket:connected``.
        """
        self._require_connected()
        return _CLEAR

    def format_transfer(self, target: Mapping[str, str]) -> str | None:
        """No transfer message on the socket: the REST API transfers (module doc)."""
        return None

    def format_hangup(self, reason: str) -> str | None:
        """No hang-up message on the socket: the REST API hangs up (module doc)."""
        return None

    def format_error(self, code: str, message: str) -> str | None:
        """No error message: rejected frames are only counted and logged."""
        return None
