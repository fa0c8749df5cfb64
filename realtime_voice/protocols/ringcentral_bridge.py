"""The RingCentral bridge protocol: our own contract with the media gateway (docs/PROTOCOLS.md §2).

RingCentral does not stream two-way call audio over a WebSocket itself, so a media
gateway bridges the call to us. Audio travels as raw binary frames in the negotiated
format; control travels as small JSON text frames tagged by ``type``.

This module is a pure codec (sans-I/O): `RingCentralBridgeProtocol.parse` turns one
WebSocket message into events, the ``format_*`` methods build the messages to send.
It never touches a socket. Any malformed inbound message raises `ProtocolError`
(never another exception), so the server can answer with an ``error`` frame, count it
and carry on with the call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from realtime_voice.audio.format import MULAW_8K, AudioFormat, UnsupportedFormatError
from realtime_voice.protocols.base import (
    AudioEvent,
    ConfigEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
    StopEvent,
)

__all__ = ["DTMF_DIGITS", "RingCentralBridgeProtocol", "coerce_parameters", "load_json_object"]

DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
"""Every keypad digit a DTMF event may carry."""

_CLEAR: Final = '{"type":"clear"}'


def _dumps(obj: object) -> str:
    # ensure_ascii stays on: a peer-supplied string with a lone surrogate (a mark name
    # we echo, say) must still give valid UTF-8 on the wire.
    return json.dumps(obj, separators=(",", ":"))


def _parameter_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    # Numbers, booleans and nested values keep their JSON spelling ("5", "true",
    # '{"a":1}') so a responder sees what the gateway wrote, not Python's repr.
    return _dumps(value)


def coerce_parameters(value: object, where: str) -> dict[str, str]:
    """Validate a ``customParameters`` object and coerce its values to strings.

    Args:
        value: the decoded JSON value, or ``None`` when the field was absent.
        where: the field's name for the error message.

    Returns:
        The parameters as a ``str -> str`` mapping (empty when absent).

    Raises:
        ProtocolError: ``bad_message`` when the value is present but not an object.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError("bad_message", f"{where} must be an object, got {type(value).__name__}")
    return {str(k): _parameter_text(v) for k, v in value.items()}


def load_json_object(text: str, tag: str) -> dict[str, Any]:
    """Decode one text frame that must hold a JSON object.

    Args:
        text: the frame.
        tag: the field naming the message kind (``type`` or ``event``), for messages.

    Raises:
        ProtocolError: ``bad_message`` for anything but a JSON object.
    """
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ProtocolError("bad_message", "text frame is nested too deeply") from None
    except ValueError as exc:
        # JSONDecodeError, and also ValueError for integers past Python's digit limit.
        raise ProtocolError("bad_message", f"text frame is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            "bad_message",
            f"text frame must be a JSON object with a {tag!r} field, got {type(obj).__name__}",
        )
    return obj


def _int_field(obj: Mapping[str, Any], key: str, current: int) -> int | str:
    value = obj.get(key)
    if value is None:
        return current
    # bool is an int subclass; {"channels": true} is a type error, not channel 1.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ProtocolError(
            "bad_message", f"config {key!r} must be an integer, got {type(value).__name__}"
        )
    return value


class RingCentralBridgeProtocol:
    """Codec for the gateway bridge protocol (docs/PROTOCOLS.md §2). One instance per call.

    Attributes:
        name: ``ringcentral``, for logs and metrics.
        audio_format: the call's current wire format; a ``config`` message updates it.
    """

    name: str = "ringcentral"

    def __init__(self, audio_format: AudioFormat = MULAW_8K) -> None:
        """Create the codec for one call.

        Args:
            audio_format: the format negotiated in the WebSocket URL
                (see `format_from_query`).
        """
        self.audio_format = audio_format

    @staticmethod
    def format_from_query(query: Mapping[str, str]) -> AudioFormat:
        """Read the optional ``encoding``/``sample_rate``/``channels`` query parameters.

        Args:
            query: the WebSocket URL's query parameters.

        Returns:
            The negotiated format (mu-law 8 kHz mono when none are given).

        Raises:
            UnsupportedFormatError: a value we do not speak; the server closes with 1003.
        """
        return AudioFormat.parse(
            query.get("encoding", "mulaw"),
            query.get("sample_rate", "8000"),
            query.get("channels", "1"),
        )

    def parse(self, message: str | bytes) -> list[MediaEvent]:
        """Parse one WebSocket message.

        Args:
            message: a text (``str``) or binary (``bytes``) frame.

        Returns:
            The events it carries: none for an empty binary frame, else exactly one.

        Raises:
            ProtocolError: ``bad_message`` for a malformed frame, ``unsupported_format``
                for a ``config`` asking for a format we do not speak.
        """
        if not isinstance(message, str):
            if not message:
                return []
            return [AudioEvent(bytes(message))]
        obj = load_json_object(message, "type")
        kind = obj.get("type")
        if kind == "start":
            params = coerce_parameters(obj.get("customParameters"), "start.customParameters")
            return [StartEvent(custom_parameters=params)]
        if kind == "config":
            return [self._parse_config(obj)]
        if kind == "dtmf":
            digit = obj.get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                raise ProtocolError(
                    "bad_message", f"dtmf 'digit' must be one of 0-9, *, #, A-D, got {digit!r}"
                )
            return [DtmfEvent(digit)]
        if kind == "mark":
            name = obj.get("name")
            if not isinstance(name, str) or not name:
                raise ProtocolError(
                    "bad_message", f"mark 'name' must be a non-empty string, got {name!r}"
                )
            return [MarkEvent(name)]
        if kind == "stop":
            return [StopEvent()]
        if kind is None:
            raise ProtocolError("bad_message", "text frame has no 'type' field")
        raise ProtocolError(
            "bad_message",
            f"unknown message type {kind!r} (expected start, config, dtmf, mark or stop)",
        )

    def _parse_config(self, obj: Mapping[str, Any]) -> ConfigEvent:
        current = self.audio_format
        encoding = obj.get("encoding", current.encoding.value)
        if not isinstance(encoding, str):
            raise ProtocolError(
                "bad_message", f"config 'encoding' must be a string, got {type(encoding).__name__}"
            )
        rate = _int_field(obj, "sampleRate", current.sample_rate)
        channels = _int_field(obj, "channels", current.channels)
        try:
            fmt = AudioFormat.parse(encoding, rate, channels)
        except UnsupportedFormatError as exc:
            raise ProtocolError("unsupported_format", f"unsupported audio format: {exc}") from None
        self.audio_format = fmt
        return ConfigEvent(fmt)

    def format_audio(self, frame: bytes) -> bytes:
        """Bot audio goes out as a binary frame, unchanged."""
        return frame

    def format_mark(self, name: str) -> str:
        """``{"type":"mark","name":...}``: echoed once the audio before it has played."""
        return _dumps({"type": "mark", "name": name})

    def format_clear(self) -> str:
        """``{"type":"clear"}``: barge-in, drop all queued bot audio now."""
        return _CLEAR

    def format_transfer(self, target: Mapping[str, str]) -> str:
        """``{"type":"transfer","target":{"phoneNumber"|"extensionNumber":...}}``."""
        return _dumps({"type": "transfer", "target": dict(target)})

    def format_hangup(self, reason: str) -> str:
        """``{"type":"hangup","reason":...}``: end the call after its last words played."""
        return _dumps({"type": "hangup", "reason": reason})

    def format_error(self, code: str, message: str) -> str:
        """``{"type":"error","code":...,"message":...}``: a frame was rejected."""
        return _dumps({"type": "error", "code": code, "message": message})
