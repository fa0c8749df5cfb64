"""Twilio Media Streams, bidirectional (``<Connect><Stream>``); SignalWire speaks it too.

Twilio is the WebSocket client and sends only JSON text frames, tagged by ``event``:
``connected``, then ``start`` (which names the ``streamSid`` and ``callSid``), then
``media`` (base64 mu-law 8 kHz mono, ~20 ms each), ``dtmf``, ``mark`` echoes and
finally ``stop``. Sequence numbers, chunks and timestamps arrive as strings; we do not
need them. We send ``media``, ``mark`` and ``clear``, each carrying the ``streamSid``.

The protocol has no transfer, hang-up or error message, so `format_transfer`,
`format_hangup` and `format_error` return ``None`` and the server ends the stream
instead: with ``<Connect><Stream>`` closing the WebSocket makes Twilio continue with
the TwiML after ``<Connect>``, where a ``<Dial>`` can hand the caller to a human (or
nothing follows and the call ends).

This module is a pure codec (sans-I/O): it never touches a socket, and `parse`
raises only `ProtocolError`. Calling a ``format_*`` method before ``start`` is a
programming error (there is no ``streamSid`` to echo yet) and raises `RuntimeError`.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any, Final

from realtime_voice.audio.format import MULAW_8K, AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
    ConnectedEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.json_fields import check_stream_id, decode_base64_payload
from realtime_voice.protocols.ringcentral_bridge import (
    DTMF_DIGITS,
    coerce_parameters,
    load_json_object,
)

__all__ = ["TwilioMediaStreamsProtocol"]

_MULAW_MIME: Final = "audio/x-mulaw"
_NO_STREAM: Final = "no Twilio stream yet: outbound messages need the streamSid from start"


def _section(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(
            "bad_message",
            f"{obj.get('event')} message needs a {key!r} object, got {type(value).__name__}",
        )
    return value


def _check_media_format(fmt: object) -> None:
    if fmt is None:
        return
    if not isinstance(fmt, dict):
        raise ProtocolError("bad_message", "start.mediaFormat must be an object")
    encoding = fmt.get("encoding", _MULAW_MIME)
    rate = fmt.get("sampleRate", 8000)
    channels = fmt.get("channels", 1)
    # Twilio sends the rate as a number, but a string "8000" means the same thing.
    if (
        not isinstance(encoding, str)
        or encoding.lower() != _MULAW_MIME
        or str(rate) != "8000"
        or str(channels) != "1"
    ):
        raise ProtocolError(
            "unsupported_format",
            f"Twilio media must be audio/x-mulaw 8000 Hz mono, got encoding={encoding!r} "
            f"sampleRate={rate!r} channels={channels!r}",
        )


class TwilioMediaStreamsProtocol:
    """Codec for Twilio Media Streams (docs/PROTOCOLS.md §3). One instance per call.

    Attributes:
        name: ``twilio``, for logs and metrics.
        audio_format: always mu-law 8 kHz mono; Twilio offers nothing else.
        stream_sid: the ``streamSid`` from ``start`` (``None`` before it).
        call_sid: the ``callSid`` from ``start``, if it carried one.
    """

    name: str = "twilio"

    def __init__(self) -> None:
        """Create the codec for one stream; it learns its ``streamSid`` from ``start``."""
        self.audio_format: AudioFormat = MULAW_8K
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        # Outbound media runs every 20 ms per call, so its fixed JSON around the
        # payload is built once at start rather than re-serialised per frame.
        self._media_prefix: str | None = None
        self._clear: str | None = None

    def parse(self, message: str | bytes) -> list[MediaEvent]:
        """Parse one WebSocket message from Twilio.

        Args:
            message: one frame; Twilio only ever sends text.

        Returns:
            The events it carries: none for an empty or outbound-track ``media``,
            else exactly one.

        Raises:
            ProtocolError: ``bad_message`` for a malformed, unknown or out-of-order
                message; ``unsupported_format`` for a ``start`` whose media format is
                not mu-law 8 kHz mono.
        """
        if not isinstance(message, str):
            raise ProtocolError(
                "bad_message",
                f"Twilio sends only text frames; got a binary frame of {len(message)} bytes",
            )
        obj = load_json_object(message, "event")
        event = obj.get("event")
        # Ordered by frequency: media is ~50 messages a second, the rest are rare.
        if event == "media":
            self._check_stream(obj, event)
            return self._parse_media(_section(obj, "media"))
        if event == "connected":
            return [ConnectedEvent()]
        if event == "start":
            return [self._parse_start(obj)]
        if event == "dtmf":
            self._check_stream(obj, event)
            digit = _section(obj, "dtmf").get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                raise ProtocolError(
                    "bad_message", f"dtmf.digit must be one of 0-9, *, #, A-D, got {digit!r}"
                )
            return [DtmfEvent(digit)]
        if event == "mark":
            self._check_stream(obj, event)
            name = _section(obj, "mark").get("name")
            if not isinstance(name, str) or not name:
                raise ProtocolError(
                    "bad_message", f"mark.name must be a non-empty string, got {name!r}"
                )
            return [MarkEvent(name)]
        if event == "stop":
            self._check_stream(obj, event)
            return [StopEvent()]
        if event is None:
            raise ProtocolError("bad_message", "text frame has no 'event' field")
        raise ProtocolError(
            "bad_message",
            f"unknown event {event!r} (expected connected, start, media, dtmf, mark or stop)",
        )

    def _check_stream(self, obj: Mapping[str, Any], event: str) -> None:
        check_stream_id(self.stream_sid, obj.get("streamSid"), "streamSid", event)

    def _parse_media(self, media: Mapping[str, Any]) -> list[MediaEvent]:
        track = media.get("track")
        if track is not None and track != "inbound":
            if track == "outbound":
                # Our own audio echoed back: nothing the conversation needs.
                return []
            raise ProtocolError(
                "bad_message", f"media.track must be 'inbound' or 'outbound', got {track!r}"
            )
        audio = decode_base64_payload(media.get("payload"), "media.payload")
        return [AudioEvent(audio)] if audio else []

    def _parse_start(self, obj: Mapping[str, Any]) -> StartEvent:
        if self.stream_sid is not None:
            raise ProtocolError("bad_message", f"duplicate start for stream {self.stream_sid!r}")
        start = _section(obj, "start")
        sid = obj.get("streamSid", start.get("streamSid"))
        if not isinstance(sid, str) or not sid:
            raise ProtocolError("bad_message", f"start needs a non-empty streamSid, got {sid!r}")
        call_sid = start.get("callSid")
        if call_sid is not None and not isinstance(call_sid, str):
            raise ProtocolError(
                "bad_message", f"start.callSid must be a string, got {type(call_sid).__name__}"
            )
        _check_media_format(start.get("mediaFormat"))
        params = coerce_parameters(start.get("customParameters"), "start.customParameters")
        # Only now, with the whole message valid, does the stream become started.
        self.stream_sid = sid
        self.call_sid = call_sid
        sid_json = json.dumps(sid)
        self._media_prefix = '{"event":"media","streamSid":' + sid_json + ',"media":{"payload":"'
        self._clear = '{"event":"clear","streamSid":' + sid_json + "}"
        return StartEvent(
            custom_parameters=params, call_id=call_sid, stream_id=sid, audio_format=MULAW_8K
        )

    def _require_sid(self) -> str:
        if self.stream_sid is None:
            raise RuntimeError(_NO_STREAM)
        return self.stream_sid

    def format_audio(self, frame: bytes) -> str:
        """``{"event":"media","streamSid":...,"media":{"payload":<base64 mu-law>}}``.

        Raises:
            RuntimeError: called before ``start``.
        """
        prefix = self._media_prefix
        if prefix is None:
            raise RuntimeError(_NO_STREAM)
        # base64 output is pure ASCII with no quotes or backslashes, so pasting it into
        # the prebuilt JSON is exactly what json.dumps would produce.
        return f'{prefix}{binascii.b2a_base64(frame, newline=False).decode("ascii")}"}}}}'

    def format_mark(self, name: str) -> str:
        """``{"event":"mark","streamSid":...,"mark":{"name":...}}``, echoed once played.

        Raises:
            RuntimeError: called before ``start``.
        """
        sid = self._require_sid()
        return json.dumps(
            {"event": "mark", "streamSid": sid, "mark": {"name": name}}, separators=(",", ":")
        )

    def format_clear(self) -> str:
        """``{"event":"clear","streamSid":...}``: Twilio drops its queued audio (barge-in).

        Raises:
            RuntimeError: called before ``start``.
        """
        self._require_sid()
        assert self._clear is not None
        return self._clear

    def format_transfer(self, target: Mapping[str, str]) -> str | None:
        """Twilio has no transfer message: the server closes the stream (see module doc)."""
        return None

    def format_hangup(self, reason: str) -> str | None:
        """Twilio has no hang-up message: the server closes the stream (see module doc)."""
        return None

    def format_error(self, code: str, message: str) -> str | None:
        """Twilio has no error message: rejected frames are only counted and logged."""
        return None
