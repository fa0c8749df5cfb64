"""Plivo Audio Streaming, bidirectional (the ``<Stream bidirectional="true">`` XML element).

Plivo is the WebSocket client and sends JSON text frames tagged by ``event``
(plivo.com/docs/voice/audio-streaming/audio-streaming, "Stream Event Protocol";
plivo.com/docs/voice/xml/audiostream for the element):

- ``start``, once: ``sequenceNumber`` and a ``start`` object with ``callId`` (the
  call's ``CallUUID``), ``streamId``, ``accountId``, ``tracks`` (``["inbound"]``) and
  ``mediaFormat`` ``{encoding: "audio/x-mulaw", sampleRate: 8000}``, plus a top-level
  ``extra_headers`` string carrying the element's ``extraHeaders`` attribute;
- ``media``: ``streamId`` and ``media`` ``{track, timestamp, chunk, payload}``, the
  payload base64 raw audio;
- ``dtmf``: ``streamId`` and ``dtmf`` ``{digit, track}``;
- ``playedStream``: ``{streamId, name}``, the echo of one of our ``checkpoint``\\s once
  the audio queued before it has played;
- ``clearedAudio``: ``{streamId}``, the acknowledgement of our ``clearAudio``;
- ``stop``: ``{streamId, reason}``. The docs' message list leaves it out, but Plivo's
  official stream SDKs (github.com/plivo/plivo-stream-sdk-java, ``StopEvent``) read it.

We send ``playAudio`` (``{streamId, media: {contentType, sampleRate, payload}}``; the
docs' example has no ``streamId``, the official SDK sends one), ``checkpoint``
(``{streamId, name}``) and ``clearAudio`` (``{streamId}``).

Audio is mu-law 8 kHz (``audio/x-mulaw;rate=8000``, what our answer XML asks for) or
16-bit linear PCM at 8 or 16 kHz (``audio/x-l16;rate=8000|16000``); anything else is
refused as ``unsupported_format``.

Where the docs are silent or disagree, this codec is lenient and says so:

- ``extra_headers``: the element's docs give ``test1=12,test2=123`` (comma-separated)
  while the start example shows ``userId=12345;sessionId=abc-xyz``; both separators are
  read. A JSON object (or its text) is accepted too. The docs allow only letters and
  digits in the attribute, so our stream token (which has ``.``, ``-`` and ``_``) travels
  in the stream URL's query and, hex-encoded, as ``tokenhex`` here; `PlivoProtocol`
  turns ``tokenhex`` back into ``custom_parameters["token"]``.
- an older release of the official Java SDK reads a ``start.customParameters`` object;
  it is read too, below ``extra_headers`` in precedence.
- Plivo's help centre names the checkpoint echo ``played``; it is read like
  ``playedStream``.
- the byte order of ``audio/x-l16`` is not documented; it is taken as the little-endian
  PCM16 the rest of this code base carries.

The protocol has no transfer, hang-up or error message, so `format_transfer`,
`format_hangup` and `format_error` return ``None``: transfer and hang-up go through
Plivo's REST API (`realtime_voice.carriers.plivo`).

This module is a pure codec (sans-I/O): it never touches a socket, and `parse` raises
only `ProtocolError`. Calling a ``format_*`` method before ``start`` is a programming
error (there is no ``streamId`` yet) and raises `RuntimeError`.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any, Final

from realtime_voice.audio.format import MULAW_8K, AudioEncoding, AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
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
from realtime_voice.protocols.ringcentral_bridge import (
    DTMF_DIGITS,
    coerce_parameters,
    load_json_object,
)

__all__ = ["PlivoProtocol", "parse_extra_headers"]

_MULAW: Final = "audio/x-mulaw"
_L16: Final = "audio/x-l16"
_NO_STREAM: Final = "no Plivo stream yet: outbound messages need the streamId from start"
_EVENTS: Final = "start, media, dtmf, playedStream, clearedAudio or stop"
_TOKEN_HEX: Final = "tokenhex"


def _dumps(obj: object) -> str:
    # ensure_ascii stays on: a peer-supplied string with a lone surrogate (a checkpoint
    # name we echo, say) must still give valid UTF-8 on the wire.
    return json.dumps(obj, separators=(",", ":"))


def _nonempty_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(
            "bad_message", f"{where}.{key} must be a non-empty string, got {value!r}"
        )
    return value


def parse_extra_headers(value: object, where: str = "start.extra_headers") -> dict[str, str]:
    """The ``extraHeaders`` Plivo passes through, as a ``str -> str`` mapping.

    Args:
        value: the decoded JSON value: ``"a=1;b=2"`` or ``"a=1,b=2"``, a JSON object or
            its text, or ``None`` when absent.
        where: the field's name for error messages.

    Returns:
        The headers (empty when absent); ``tokenhex`` is decoded into ``token``.

    Raises:
        ProtocolError: ``bad_message`` for a value that is neither a string nor an object,
            or a ``tokenhex`` that is not hex-encoded ASCII.
    """
    if value is None:
        return {}
    if isinstance(value, str):
        stripped = value.strip()
        decoded: object = None
        if stripped.startswith("{"):
            try:
                decoded = json.loads(stripped)
            except (RecursionError, ValueError):
                decoded = None
        if isinstance(decoded, dict):
            headers = coerce_parameters(decoded, where)
        else:
            headers = {}
            for item in stripped.replace(";", ",").split(","):
                name, _, text = item.partition("=")
                if name.strip():
                    headers[name.strip()] = text.strip()
    elif isinstance(value, dict):
        headers = coerce_parameters(value, where)
    else:
        raise ProtocolError(
            "bad_message", f"{where} must be a string or an object, got {type(value).__name__}"
        )
    hexed = headers.pop(_TOKEN_HEX, None)
    if hexed is not None and "token" not in headers:
        try:
            headers["token"] = bytes.fromhex(hexed).decode("ascii")
        except ValueError:  # bad hex, or UnicodeDecodeError
            raise ProtocolError(
                "bad_message", f"{where}.{_TOKEN_HEX} must be hex-encoded ASCII, got {hexed!r}"
            ) from None
    return headers


def _audio_format(fmt: object, default: AudioFormat) -> AudioFormat:
    """``start.mediaFormat``: mu-law 8 kHz or L16 8/16 kHz (absent: ``default``)."""
    if fmt is None:
        return default
    if not isinstance(fmt, dict):
        raise ProtocolError(
            "bad_message", f"start.mediaFormat must be an object, got {type(fmt).__name__}"
        )
    encoding = fmt.get("encoding", _MULAW)
    rate = fmt.get("sampleRate")
    mime = encoding.split(";")[0].strip().lower() if isinstance(encoding, str) else None
    if rate is None and isinstance(encoding, str) and "rate=" in encoding:
        # The element's contentType spelling, "audio/x-l16;rate=16000", carries the rate.
        rate = encoding.rpartition("rate=")[2].strip()
    if rate is None:
        rate = default.sample_rate
    # The docs send a JSON number; a numeric string means the same, a boolean does not.
    rate_text = None if isinstance(rate, bool) or not isinstance(rate, int | str) else str(rate)
    if mime == _MULAW and rate_text == "8000":
        return MULAW_8K
    if mime == _L16 and rate_text in ("8000", "16000"):
        return AudioFormat(AudioEncoding.PCM16, int(rate_text), 1)
    raise ProtocolError(
        "unsupported_format",
        "start.mediaFormat must be audio/x-mulaw at 8000 Hz or audio/x-l16 at 8000 or "
        f"16000 Hz, got encoding={encoding!r} sampleRate={fmt.get('sampleRate')!r}",
    )


class PlivoProtocol:
    """Codec for Plivo's bidirectional audio stream. One instance per call.

    Attributes:
        name: ``plivo``, for logs and metrics.
        audio_format: the constructor's format until ``start`` declares one.
        stream_id: the ``start.streamId`` (``None`` before it).
        call_uuid: the ``start.callId``: the call's ``CallUUID``.
        account_id: the ``start.accountId``, if any.
        from_number: always ``None``: the stream carries no numbers (the answer webhook
            saw them; the server takes them from the ringing call).
        to_number: always ``None``, likewise.
    """

    name: str = "plivo"

    def __init__(self, *, audio_format: AudioFormat = MULAW_8K) -> None:
        """Create the codec for one stream.

        Args:
            audio_format: the format the answer XML's ``contentType`` asked for, used
                until ``start.mediaFormat`` says otherwise (our answer asks mu-law 8 kHz).
        """
        self.audio_format: AudioFormat = audio_format
        self.stream_id: str | None = None
        self.call_uuid: str | None = None
        self.account_id: str | None = None
        self.from_number: str | None = None
        self.to_number: str | None = None
        # playAudio goes out every 20 ms per call, so the JSON around the payload is
        # built once at start rather than re-serialised per frame.
        self._media_prefix: str | None = None
        self._clear: str | None = None

    def parse(self, message: str | bytes) -> list[MediaEvent]:
        """Parse one WebSocket message from Plivo.

        Args:
            message: one frame; Plivo only ever sends text.

        Returns:
            The events it carries: none for an empty or outbound-track ``media`` and for
            ``clearedAudio``, else exactly one.

        Raises:
            ProtocolError: ``bad_message`` for a malformed, unknown or out-of-order
                message; ``unsupported_format`` for a ``start`` whose media format is
                neither mu-law 8 kHz nor L16 at 8 or 16 kHz.
        """
        if not isinstance(message, str):
            raise ProtocolError(
                "bad_message",
                f"Plivo sends only text frames; got a binary frame of {len(message)} bytes",
            )
        obj = load_json_object(message, "event")
        event = obj.get("event")
        # Ordered by frequency: media is ~50 messages a second, the rest are rare.
        if event == "media":
            self._check_stream(obj, event)
            return self._parse_media(section(obj, "media", event))
        if event == "start":
            return [self._parse_start(obj)]
        if event == "dtmf":
            self._check_stream(obj, event)
            digit = section(obj, "dtmf", event).get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                raise ProtocolError(
                    "bad_message", f"dtmf.digit must be one of 0-9, *, #, A-D, got {digit!r}"
                )
            return [DtmfEvent(digit)]
        if event in ("playedStream", "played"):
            self._check_stream(obj, event)
            name = obj.get("name")
            if not isinstance(name, str) or not name:
                raise ProtocolError(
                    "bad_message", f"{event}.name must be a non-empty string, got {name!r}"
                )
            return [MarkEvent(name)]
        if event == "clearedAudio":
            # Only an acknowledgement: the session already dropped its own queue.
            self._check_stream(obj, event)
            return []
        if event == "stop":
            self._check_stream(obj, event)
            return [StopEvent()]
        if event is None:
            raise ProtocolError("bad_message", "text frame has no 'event' field")
        raise ProtocolError("bad_message", f"unknown event {event!r} (expected {_EVENTS})")

    def _check_stream(self, obj: Mapping[str, Any], event: str) -> None:
        check_stream_id(self.stream_id, obj.get("streamId"), "streamId", event)

    def _parse_media(self, media: Mapping[str, Any]) -> list[MediaEvent]:
        track = media.get("track")
        if track is not None and track != "inbound":
            if track == "outbound":
                # Our own audio forked back (audioTrack="both"): not the caller's voice.
                return []
            raise ProtocolError(
                "bad_message", f"media.track must be 'inbound' or 'outbound', got {track!r}"
            )
        audio = decode_base64_payload(media.get("payload"), "media.payload")
        return [AudioEvent(audio)] if audio else []

    def _parse_start(self, obj: Mapping[str, Any]) -> StartEvent:
        if self.stream_id is not None:
            raise ProtocolError("bad_message", f"duplicate start for stream {self.stream_id!r}")
        start = section(obj, "start", "start")
        stream_id = _nonempty_str(start, "streamId", "start")
        call_uuid = _nonempty_str(start, "callId", "start")
        account_id = start.get("accountId")
        if account_id is not None and not isinstance(account_id, str):
            raise ProtocolError(
                "bad_message",
                f"start.accountId must be a string, got {type(account_id).__name__}",
            )
        tracks = start.get("tracks")
        if tracks is not None and (
            not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks)
        ):
            raise ProtocolError(
                "bad_message", f"start.tracks must be a list of strings, got {tracks!r}"
            )
        fmt = _audio_format(start.get("mediaFormat"), self.audio_format)
        # The docs put extra_headers at the top level; inside start (or camelCase) is
        # read too, the top level winning.
        params = coerce_parameters(start.get("customParameters"), "start.customParameters")
        params.update(parse_extra_headers(start.get("extra_headers"), "start.start.extra_headers"))
        params.update(parse_extra_headers(obj.get("extraHeaders"), "start.extraHeaders"))
        params.update(parse_extra_headers(obj.get("extra_headers"), "start.extra_headers"))
        # Only now, with the whole message valid, does the stream become started.
        self.stream_id = stream_id
        self.call_uuid = call_uuid
        self.account_id = account_id
        self.audio_format = fmt
        content_type = _MULAW if fmt.encoding is AudioEncoding.MULAW else _L16
        self._media_prefix = (
            f'{{"event":"playAudio","streamId":{json.dumps(stream_id)},"media":{{"contentType":'
            f'{json.dumps(content_type)},"sampleRate":{fmt.sample_rate},"payload":"'
        )
        self._clear = _dumps({"event": "clearAudio", "streamId": stream_id})
        return StartEvent(
            custom_parameters=params, call_id=call_uuid, stream_id=stream_id, audio_format=fmt
        )

    def _require_stream(self) -> str:
        if self.stream_id is None:
            raise RuntimeError(_NO_STREAM)
        return self.stream_id

    def format_audio(self, frame: bytes) -> str:
        """``{"event":"playAudio","streamId":...,"media":{"contentType","sampleRate","payload"}}``.

        The content type and rate are the stream's own (Plivo's help centre warns
        against switching codecs between ``playAudio`` events).

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
        """``{"event":"checkpoint","streamId":...,"name":...}``; Plivo answers ``playedStream``.

        Raises:
            RuntimeError: called before ``start``.
        """
        stream_id = self._require_stream()
        return _dumps({"event": "checkpoint", "streamId": stream_id, "name": name})

    def format_clear(self) -> str:
        """``{"event":"clearAudio","streamId":...}``: Plivo drops its buffered audio.

        Raises:
            RuntimeError: called before ``start``.
        """
        self._require_stream()
        assert self._clear is not None
        return self._clear

    def format_transfer(self, target: Mapping[str, str]) -> str | None:
        """Plivo's stream has no transfer message: the REST API transfers (module doc)."""
        return None

    def format_hangup(self, reason: str) -> str | None:
        """Plivo's stream has no hang-up message: the REST API hangs up (module doc)."""
        return None

    def format_error(self, code: str, message: str) -> str | None:
        """Plivo has no error message: rejected frames are only counted and logged."""
        return None
