"""Exotel AgentStream: the Voicebot applet's bidirectional WebSocket media stream.

Exotel is the WebSocket client and sends JSON text frames tagged by ``event``
(developer.exotel.com/docs/agentstream/websocket-protocol): ``connected``, then
``start`` (``stream_sid`` and a ``start`` object with ``stream_sid``, ``call_sid``,
``account_sid``, ``from``, ``to``, ``custom_parameters`` and ``media_format``
``{encoding: "audio/x-raw", sample_rate: "8000", bit_rate: "16"}``), then ``media``
(``{chunk, timestamp, payload}``: base64 16-bit little-endian mono PCM, ~100 ms
each), ``dtmf`` (``{digit, duration}``), ``mark`` echoes and finally ``stop``. Ids,
sequence numbers, chunks and timestamps are strings; we need only the ids. We send
``media`` (``{stream_sid, media: {payload}}``), ``mark`` and ``clear``, each carrying
the ``stream_sid``.

Audio is PCM16 at 8 kHz by default, 16 kHz when the applet URL asks for
``?sample-rate=16000`` (the server passes that rate to the constructor; the start's
``media_format`` has the last word). Exotel also documents 24 kHz, which this
codebase does not carry: such a start is refused as ``unsupported_format``.

Where the two Exotel systems this product grew from differ from the docs, both
shapes are read:

- seed 000 (lead qualification) sends its lead context as a JSON *string* in
  ``customField`` on the ``connected`` event, beside a ``call_sid``. A JSON object
  there (string or object) is flattened into the start's ``custom_parameters``
  (``lead_name``, ``property_type``...); any other string is kept as
  ``customField``. ``customField`` is read on ``connected``, on ``start`` and inside
  the ``start`` object; explicit ``custom_parameters`` win over it.
- seed 002 (Go voicebot) puts ``custom_parameters`` at the top level of ``start``
  and may omit the ``start`` object; it also lists an inbound ``clear``, which the
  docs only have outbound: an inbound ``clear`` is accepted and gives no event.

The protocol has no transfer, hang-up or error message, so `format_transfer`,
`format_hangup` and `format_error` return ``None`` and the server ends the stream
instead: the Voicebot applet's stream closes and the flow goes on to its next
applet (where a Connect applet can hand the caller to a human), or the call ends.

This module is a pure codec (sans-I/O): it never touches a socket, and `parse`
raises only `ProtocolError`. Calling a ``format_*`` method before ``start`` is a
programming error (there is no ``stream_sid`` to echo yet) and raises `RuntimeError`.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any, Final

from realtime_voice.audio.format import AudioEncoding, AudioFormat, UnsupportedFormatError
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
from realtime_voice.protocols.json_fields import (
    check_stream_id,
    decode_base64_payload,
    section,
)
from realtime_voice.protocols.ringcentral_bridge import coerce_parameters, load_json_object

__all__ = ["CHUNK_BYTES", "ExotelProtocol"]

CHUNK_BYTES: Final = 320
"""Exotel plays outbound audio in units of 320 bytes; every payload we send is a multiple.

Exotel's docs: "Chunk size should always be in multiple of 320 bytes"; a shorter last
packet makes the platform wait 20 ms before the next one, a gap the caller hears.
"""

_DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
# "audio/x-raw" is what the start's media_format says; "raw"/"slin" are how the docs
# name the same 16-bit linear PCM in prose.
_PCM_ENCODINGS: Final = frozenset({"audio/x-raw", "raw", "slin"})
_CUSTOM_FIELD_KEYS: Final = ("customField", "CustomField")
_NO_STREAM: Final = "no Exotel stream yet: outbound messages need the stream_sid from start"
_EVENTS: Final = "connected, start, media, dtmf, mark, clear or stop"


def _dumps(obj: object) -> str:
    # ensure_ascii stays on: a peer-supplied string with a lone surrogate (a mark name
    # we echo, say) must still give valid UTF-8 on the wire.
    return json.dumps(obj, separators=(",", ":"))


def _custom_field(obj: Mapping[str, Any], where: str) -> dict[str, str]:
    """Seed 000's lead context: ``customField`` as a JSON object (or its JSON text)."""
    for key in _CUSTOM_FIELD_KEYS:
        value = obj.get(key)
        if value is None:
            continue
        if isinstance(value, dict):
            return coerce_parameters(value, f"{where}.{key}")
        if not isinstance(value, str):
            raise ProtocolError(
                "bad_message",
                f"{where}.{key} must be a string or an object, got {type(value).__name__}",
            )
        try:
            decoded = json.loads(value)
        except (RecursionError, ValueError):
            decoded = None
        if isinstance(decoded, dict):
            return coerce_parameters(decoded, f"{where}.{key}")
        # Exotel documents customfield as free metadata text: keep it whole.
        return {"customField": value}
    return {}


def _optional_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(
            "bad_message", f"{where}.{key} must be a string, got {type(value).__name__}"
        )
    return value


def _audio_format(fmt: object, default: AudioFormat) -> AudioFormat:
    """The start's ``media_format``: PCM16 at 8 or 16 kHz (absent fields: ``default``)."""
    if fmt is None:
        return default
    if not isinstance(fmt, dict):
        raise ProtocolError(
            "bad_message", f"start.media_format must be an object, got {type(fmt).__name__}"
        )
    encoding = fmt.get("encoding", "audio/x-raw")
    rate = fmt.get("sample_rate", default.sample_rate)
    bits = fmt.get("bit_rate", "16")
    # Exotel sends numbers as strings ("8000"); a JSON number means the same thing,
    # a boolean does not.
    if (
        not isinstance(encoding, str)
        or encoding.lower() not in _PCM_ENCODINGS
        or isinstance(bits, bool)
        or bits not in ("16", 16)
        or isinstance(rate, bool)
        or not isinstance(rate, int | str)
    ):
        raise ProtocolError(
            "unsupported_format",
            f"start.media_format must be audio/x-raw 16-bit PCM at 8000 or 16000 Hz, got "
            f"encoding={encoding!r} sample_rate={rate!r} bit_rate={bits!r}",
        )
    try:
        return AudioFormat.parse(AudioEncoding.PCM16.value, rate, 1)
    except UnsupportedFormatError as exc:
        raise ProtocolError(
            "unsupported_format", f"start.media_format.sample_rate {rate!r}: {exc}"
        ) from None


class ExotelProtocol:
    """Codec for the Exotel Voicebot applet's stream. One instance per call.

    Attributes:
        name: ``exotel``, for logs and metrics.
        audio_format: PCM16 mono at the constructor's rate until ``start`` declares one.
        stream_sid: the ``stream_sid`` from ``start`` (``None`` before it).
        call_sid: the ``call_sid`` from ``start`` (or, failing that, ``connected``).
        account_sid: the ``start.account_sid``, if any.
        from_number: the ``start.from`` (the caller), if any.
        to_number: the ``start.to`` (the number called), if any.
    """

    name: str = "exotel"

    def __init__(self, sample_rate: int = 8000) -> None:
        """Create the codec for one stream.

        Args:
            sample_rate: the applet URL's ``sample-rate`` (8000 or 16000), used until
                the start's ``media_format`` says otherwise.

        Raises:
            UnsupportedFormatError: any other rate.
        """
        self.audio_format: AudioFormat = AudioFormat(AudioEncoding.PCM16, sample_rate, 1)
        self.stream_sid: str | None = None
        self.call_sid: str | None = None
        self.account_sid: str | None = None
        self.from_number: str | None = None
        self.to_number: str | None = None
        # Seed 000 sends the call_sid and lead context on connected, before start.
        self._connected_call_sid: str | None = None
        self._connected_params: dict[str, str] = {}
        # Outbound media runs every 20 ms per call, so its fixed JSON around the
        # payload is built once at start rather than re-serialised per frame.
        self._media_prefix: str | None = None
        self._clear: str | None = None

    def parse(self, message: str | bytes) -> list[MediaEvent]:
        """Parse one WebSocket message from Exotel.

        Args:
            message: one frame; Exotel only ever sends text.

        Returns:
            The events it carries: none for an empty ``media`` or an inbound ``clear``,
            else exactly one.

        Raises:
            ProtocolError: ``bad_message`` for a malformed, unknown or out-of-order
                message; ``unsupported_format`` for a ``start`` whose media format is
                not 16-bit PCM at 8 or 16 kHz.
        """
        if not isinstance(message, str):
            raise ProtocolError(
                "bad_message",
                f"Exotel sends only text frames; got a binary frame of {len(message)} bytes",
            )
        obj = load_json_object(message, "event")
        event = obj.get("event")
        # Ordered by frequency: media is ~10 messages a second, the rest are rare.
        if event == "media":
            self._check_stream(obj, event)
            return self._parse_media(section(obj, "media", event))
        if event == "connected":
            self._parse_connected(obj)
            return [ConnectedEvent()]
        if event == "start":
            return [self._parse_start(obj)]
        if event == "dtmf":
            self._check_stream(obj, event)
            digit = section(obj, "dtmf", event).get("digit")
            if not isinstance(digit, str) or digit not in _DTMF_DIGITS:
                raise ProtocolError(
                    "bad_message", f"dtmf.digit must be one of 0-9, *, #, A-D, got {digit!r}"
                )
            return [DtmfEvent(digit)]
        if event == "mark":
            self._check_stream(obj, event)
            name = section(obj, "mark", event).get("name")
            if not isinstance(name, str) or not name:
                raise ProtocolError(
                    "bad_message", f"mark.name must be a non-empty string, got {name!r}"
                )
            return [MarkEvent(name)]
        if event == "stop":
            self._check_stream(obj, event)
            return [StopEvent()]
        if event == "clear":
            # Seed 002 handles an inbound clear; Exotel documents clear as ours to send.
            # Nothing in the call depends on it.
            self._check_stream(obj, event)
            return []
        if event is None:
            raise ProtocolError("bad_message", "text frame has no 'event' field")
        raise ProtocolError("bad_message", f"unknown event {event!r} (expected {_EVENTS})")

    def _check_stream(self, obj: Mapping[str, Any], event: str) -> None:
        given = obj.get("stream_sid", obj.get("streamSid"))
        check_stream_id(self.stream_sid, given, "stream_sid", event)

    def _parse_connected(self, obj: Mapping[str, Any]) -> None:
        call_sid = _optional_str(obj, "call_sid", "connected")
        params = _custom_field(obj, "connected")
        if call_sid is not None:
            self._connected_call_sid = call_sid
        if params:
            self._connected_params = params

    def _parse_media(self, media: Mapping[str, Any]) -> list[MediaEvent]:
        audio = decode_base64_payload(media.get("payload"), "media.payload")
        return [AudioEvent(audio)] if audio else []

    def _parse_start(self, obj: Mapping[str, Any]) -> StartEvent:
        if self.stream_sid is not None:
            raise ProtocolError("bad_message", f"duplicate start for stream {self.stream_sid!r}")
        # Seed 002's start may carry everything at the top level, without a start object.
        raw_start = obj.get("start")
        if raw_start is not None and not isinstance(raw_start, dict):
            raise ProtocolError(
                "bad_message",
                f"start message needs a 'start' object, got {type(raw_start).__name__}",
            )
        start: Mapping[str, Any] = raw_start or {}
        sid = obj.get("stream_sid", start.get("stream_sid"))
        if not isinstance(sid, str) or not sid:
            raise ProtocolError("bad_message", f"start needs a non-empty stream_sid, got {sid!r}")
        call_sid = _optional_str(start, "call_sid", "start")
        if call_sid is None:
            call_sid = _optional_str(obj, "call_sid", "start")
        account_sid = _optional_str(start, "account_sid", "start")
        from_number = _optional_str(start, "from", "start")
        to_number = _optional_str(start, "to", "start")
        fmt = _audio_format(start.get("media_format"), self.audio_format)
        # Lowest precedence first: lead context from connected, then any customField
        # on start, then custom_parameters (seed 002's top level, then the docs' place).
        params = dict(self._connected_params)
        params.update(_custom_field(obj, "start"))
        params.update(_custom_field(start, "start.start"))
        params.update(coerce_parameters(obj.get("custom_parameters"), "start.custom_parameters"))
        params.update(coerce_parameters(start.get("custom_parameters"), "start.custom_parameters"))
        # Only now, with the whole message valid, does the stream become started.
        self.stream_sid = sid
        self.call_sid = call_sid if call_sid is not None else self._connected_call_sid
        self.account_sid = account_sid
        self.from_number = from_number
        self.to_number = to_number
        self.audio_format = fmt
        sid_json = json.dumps(sid)
        self._media_prefix = '{"event":"media","stream_sid":' + sid_json + ',"media":{"payload":"'
        self._clear = '{"event":"clear","stream_sid":' + sid_json + "}"
        return StartEvent(
            custom_parameters=params, call_id=self.call_sid, stream_id=sid, audio_format=fmt
        )

    def _require_sid(self) -> str:
        if self.stream_sid is None:
            raise RuntimeError(_NO_STREAM)
        return self.stream_sid

    def format_audio(self, frame: bytes) -> str:
        """``{"event":"media","stream_sid":...,"media":{"payload":<base64 PCM16>}}``.

        Exotel wants every payload to be a multiple of `CHUNK_BYTES` (320) bytes. One
        20 ms frame of 16-bit PCM is exactly 320 bytes at 8 kHz and 640 bytes (two
        units; seed 002's chunk) at 16 kHz, so the session's frames go out unchanged.
        Any other length (a short last frame) is padded with PCM silence (zero bytes)
        up to the next multiple, at most 319 bytes (< 20 ms at 8 kHz): a little
        silence the caller cannot hear instead of the 20 ms gap Exotel leaves after a
        short packet. Exotel's docs advise at least 3.2 KB (100 ms) per message over
        jittery networks; a caller that wants that passes 100 ms of audio at a time.

        Raises:
            RuntimeError: called before ``start``.
        """
        prefix = self._media_prefix
        if prefix is None:
            raise RuntimeError(_NO_STREAM)
        short = -len(frame) % CHUNK_BYTES
        if short:
            frame = frame + bytes(short)
        # base64 output is pure ASCII with no quotes or backslashes, so pasting it into
        # the prebuilt JSON is exactly what json.dumps would produce.
        return f'{prefix}{binascii.b2a_base64(frame, newline=False).decode("ascii")}"}}}}'

    def format_mark(self, name: str) -> str:
        """``{"event":"mark","stream_sid":...,"mark":{"name":...}}``, echoed once played.

        Raises:
            RuntimeError: called before ``start``.
        """
        sid = self._require_sid()
        return _dumps({"event": "mark", "stream_sid": sid, "mark": {"name": name}})

    def format_clear(self) -> str:
        """``{"event":"clear","stream_sid":...}``: Exotel drops its queued audio (barge-in).

        Raises:
            RuntimeError: called before ``start``.
        """
        self._require_sid()
        assert self._clear is not None
        return self._clear

    def format_transfer(self, target: Mapping[str, str]) -> str | None:
        """Exotel has no transfer message: the server closes the stream (see module doc)."""
        return None

    def format_hangup(self, reason: str) -> str | None:
        """Exotel has no hang-up message: the server closes the stream (see module doc)."""
        return None

    def format_error(self, code: str, message: str) -> str | None:
        """Exotel has no error message: rejected frames are only counted and logged."""
        return None
