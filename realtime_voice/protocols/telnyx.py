"""Telnyx Media Streaming over WebSocket, bidirectional in RTP mode (TeXML ``<Stream>``).

Telnyx is the WebSocket client and sends JSON text frames tagged by ``event``
(developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket,
.../docs/voice/programmable-voice/media-streaming): ``connected`` ``{version}``;
``start`` with ``stream_id`` and ``sequence_number`` at the top level and ``start:
{user_id, call_control_id, call_session_id, client_state, from, to, media_format:
{encoding, sample_rate, channels}}``; ``media`` ``{media: {track, chunk, timestamp,
payload}}`` (a base64 RTP payload, no header); ``dtmf`` ``{dtmf: {digit}}``; ``mark``
echoes ``{mark: {name}}``; ``error`` ``{error: {code, title, detail}}``; and ``stop``
``{stop: {user_id, call_control_id}}``. Every frame after ``connected`` carries the
``stream_id``; numbers arrive as strings. We send ``media`` ``{media: {payload}}``,
``mark`` ``{mark: {name}}`` and ``clear``, without a ``stream_id``: Telnyx's examples
of outbound frames have none (one socket is one stream) and its docs ask for none.

Audio: ``media_format.encoding`` ``PCMU`` (older examples: ``audio/x-mulaw``) or
``PCMA`` (``audio/x-alaw``) at 8 kHz, or ``L16`` at 8 or 16 kHz: Call Control's
``stream_codec``/``stream_bidirectional_codec`` list L16 (team-telnyx/telnyx-go
``CallDialParams``), TeXML's ``<Stream>`` attributes do not. The docs do not give L16's
byte order; it is taken as RFC 3551's network byte order (as pipecat's serializer
does) and swapped to and from the little-endian PCM16 the server speaks. Any other
encoding, rate or channel count is ``unsupported_format``; no ``media_format`` means
PCMU 8 kHz, Telnyx's default. We answer in the start's format, so the answer webhook
asks Telnyx for one codec both ways (``codec`` and ``bidirectionalCodec``).

Ordering: Telnyx says frame order is not guaranteed and ``media.chunk`` can reorder
them. Inbound frames are released in chunk order: an early frame waits, in a window of
at most ``reorder_window`` frames (3: 60 ms), for those before it; when the window
overflows, the missing chunks are given up as lost. A frame older than what was
released (late, or a duplicate) is dropped, unless it is over 50 chunks (1 s) behind:
then the counter restarted and the order restarts from it. ``stop`` first releases
what still waits. Frames without a ``chunk`` pass straight through; outbound-track
frames (our own audio, with ``track="both_tracks"``) are dropped.

Errors: an ``error`` frame says Telnyx refused something we sent (100002
``unknown_error``, 100003 ``malformed_frame``, 100004 ``invalid_media``, 100005
``rate_limit_reached``). That is worth a log line, not the call: `parse` logs it,
keeps it in ``last_error``/``error_count`` and returns no event. It is not a
`ProtocolError`, which would count towards the session's error limit.

Custom parameters: TeXML ``<Parameter>``s are "included in the start message", in a
field the docs do not name; ``custom_parameters`` and ``customParameters`` are read in
``start`` and at the top level. ``client_state`` (Call Control's base64 app state) is
kept in ``client_state`` and, unless a parameter has that name, in
``custom_parameters["client_state"]``. The stream token comes in the URL query.

There is no transfer, hang-up or error message: `format_transfer`, `format_hangup` and
`format_error` return ``None``, and transfer and hang-up go through Call Control's REST
API (`realtime_voice.carriers.telnyx`) with ``start.call_control_id``.

This module is a pure codec (sans-I/O): it never touches a socket, and `parse` raises
only `ProtocolError`. A ``format_*`` method called before ``start`` is a programming
error (the bidirectional stream is not up yet) and raises `RuntimeError`.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from realtime_voice.audio.format import AudioEncoding, AudioFormat
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
from realtime_voice.protocols.ringcentral_bridge import (
    DTMF_DIGITS,
    coerce_parameters,
    load_json_object,
)

__all__ = ["DEFAULT_REORDER_WINDOW", "TelnyxProtocol", "TelnyxStreamError"]

log = logging.getLogger(__name__)

DEFAULT_REORDER_WINDOW: Final = 3
"""Early frames held back while waiting for a missing chunk (60 ms of 20 ms frames)."""

PCMU_8K: Final = AudioFormat(AudioEncoding.MULAW, 8000, 1)

# Wire encoding names (upper-cased) -> our encoding. The MIME spellings are what the
# older Call Control examples show in start.media_format.encoding.
_ENCODINGS: Final = {
    "PCMU": AudioEncoding.MULAW,
    "AUDIO/X-MULAW": AudioEncoding.MULAW,
    "PCMA": AudioEncoding.ALAW,
    "AUDIO/X-ALAW": AudioEncoding.ALAW,
    "L16": AudioEncoding.PCM16,
}
_RATES: Final = {
    AudioEncoding.MULAW: {8000},
    AudioEncoding.ALAW: {8000},
    AudioEncoding.PCM16: {8000, 16000},
}
# A chunk counter is a small decimal string; longer text is not a counter (and would
# cost int() quadratic time on the way to its digit limit).
_MAX_CHUNK_DIGITS: Final = 18
_RESTART_GAP: Final = 50
"""A chunk this far behind the next expected one means the counter restarted (1 s)."""
_MAX_ERROR_TEXT: Final = 200
_PARAMETER_KEYS: Final = ("custom_parameters", "customParameters")
_NO_STREAM: Final = "no Telnyx stream yet: outbound messages need the stream to have started"
_EVENTS: Final = "connected, start, media, dtmf, mark, error or stop"
_CLEAR: Final = '{"event":"clear"}'
_MEDIA_PREFIX: Final = '{"event":"media","media":{"payload":"'


@dataclass(frozen=True, slots=True)
class TelnyxStreamError:
    """An ``error`` frame: Telnyx refused something we sent; the call goes on.

    Attributes:
        code: Telnyx's code (``100005``...), as sent.
        title: its short name (``rate_limit_reached``...).
        detail: its explanation.
    """

    code: str
    title: str
    detail: str


def _dumps(obj: object) -> str:
    # ensure_ascii stays on: a peer-supplied string with a lone surrogate (a mark name
    # we echo, say) must still give valid UTF-8 on the wire.
    return json.dumps(obj, separators=(",", ":"))


def _optional_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(
            "bad_message", f"{where}.{key} must be a string, got {type(value).__name__}"
        )
    return value


def _int_text(value: object) -> int | None:
    """A JSON number or decimal string as an int; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and 0 < len(value) <= _MAX_CHUNK_DIGITS and value.isdigit():
        return int(value)
    return None


def _swap16(data: bytes) -> bytes:
    """Swap the two bytes of every 16-bit sample (big- <-> little-endian)."""
    swapped = bytearray(len(data))
    swapped[0::2] = data[1::2]
    swapped[1::2] = data[0::2]
    return bytes(swapped)


def _audio_format(fmt: object) -> AudioFormat:
    """The start's ``media_format``: PCMU/PCMA at 8 kHz or L16 at 8/16 kHz, mono."""
    if fmt is None:
        return PCMU_8K
    if not isinstance(fmt, dict):
        raise ProtocolError(
            "bad_message", f"start.media_format must be an object, got {type(fmt).__name__}"
        )
    encoding = fmt.get("encoding", "PCMU")
    rate_value = fmt.get("sample_rate", 8000)
    channels_value = fmt.get("channels", 1)
    ours = _ENCODINGS.get(encoding.upper()) if isinstance(encoding, str) else None
    rate = _int_text(rate_value)
    channels = _int_text(channels_value)
    if ours is None or rate not in _RATES[ours] or channels != 1:
        raise ProtocolError(
            "unsupported_format",
            "start.media_format must be PCMU or PCMA at 8000 Hz or L16 at 8000/16000 Hz, "
            f"mono; got encoding={encoding!r} sample_rate={rate_value!r} "
            f"channels={channels_value!r}",
        )
    assert rate is not None
    return AudioFormat(ours, rate, 1)


class _ChunkOrder:
    """Releases inbound frames in ``media.chunk`` order through a small window."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.expected: int | None = None
        self.pending: dict[int, bytes] = {}
        self.dropped = 0
        self.lost = 0

    def push(self, chunk: int, payload: bytes) -> list[bytes]:
        restarted: list[bytes] = []
        if self.expected is not None and self.expected - chunk > _RESTART_GAP:
            # Far behind is not a late frame but a counter that started again: keep
            # listening rather than drop every frame from now on.
            restarted = self.flush()
            self.expected = None
        if self.expected is None:
            self.expected = chunk
        if chunk < self.expected or chunk in self.pending:
            self.dropped += 1  # late (already given up on, or released) or a duplicate
            return []
        self.pending[chunk] = payload
        out = restarted + self._drain()
        if len(self.pending) > self.window:
            # The missing chunk is not coming in time: skip the gap and go on.
            first = min(self.pending)
            self.lost += first - self.expected
            self.expected = first
            out.extend(self._drain())
        return out

    def flush(self) -> list[bytes]:
        out = [self.pending[c] for c in sorted(self.pending)]
        if self.pending:
            self.expected = max(self.pending) + 1
        self.pending.clear()
        return out

    def _drain(self) -> list[bytes]:
        out: list[bytes] = []
        assert self.expected is not None
        while self.expected in self.pending:
            out.append(self.pending.pop(self.expected))
            self.expected += 1
        return out


class TelnyxProtocol:
    """Codec for a Telnyx bidirectional media stream. One instance per call.

    Attributes:
        name: ``telnyx``, for logs and metrics.
        audio_format: PCMU 8 kHz until ``start`` declares the stream's format.
        stream_id: the top-level ``stream_id`` from ``start`` (``None`` before it).
        call_control_id: ``start.call_control_id``, the id Call Control commands take
            (and the TeXML ``CallSid``; the stream token is bound to it).
        call_session_id: ``start.call_session_id``, if any.
        client_state: ``start.client_state`` as sent (base64 text), if any.
        from_number: ``start.from`` (the caller), if any.
        to_number: ``start.to`` (the number called), if any.
        version: the ``connected`` frame's protocol version, if any.
        last_error: the latest inbound ``error`` frame, if any.
        error_count: how many ``error`` frames arrived.
    """

    name: str = "telnyx"

    def __init__(self, *, reorder_window: int = DEFAULT_REORDER_WINDOW) -> None:
        """Create the codec for one stream.

        Args:
            reorder_window: how many early frames may wait for a missing chunk; 0
                releases every frame at once (late ones are still dropped).

        Raises:
            ValueError: a negative window.
        """
        if reorder_window < 0:
            raise ValueError(f"reorder_window must be >= 0, got {reorder_window}")
        self.audio_format: AudioFormat = PCMU_8K
        self.stream_id: str | None = None
        self.call_control_id: str | None = None
        self.call_session_id: str | None = None
        self.client_state: str | None = None
        self.from_number: str | None = None
        self.to_number: str | None = None
        self.version: str | None = None
        self.last_error: TelnyxStreamError | None = None
        self.error_count = 0
        self._order = _ChunkOrder(reorder_window)
        self._l16 = False

    @property
    def dropped_chunks(self) -> int:
        """Inbound frames dropped as late or duplicate."""
        return self._order.dropped

    @property
    def lost_chunks(self) -> int:
        """Chunks never received that the reorder window gave up waiting for."""
        return self._order.lost

    def parse(self, message: str | bytes) -> list[MediaEvent]:
        """Parse one WebSocket message from Telnyx.

        Args:
            message: one frame; Telnyx only ever sends text.

        Returns:
            The events it carries: for ``media``, zero or more audio events in chunk
            order (see module doc); none for ``error``; for ``stop``, any audio still
            held back followed by the stop; else exactly one.

        Raises:
            ProtocolError: ``bad_message`` for a malformed, unknown or out-of-order
                message; ``unsupported_format`` for a ``start`` whose media format is
                not PCMU/PCMA 8 kHz or L16 8/16 kHz mono.
        """
        if not isinstance(message, str):
            raise ProtocolError(
                "bad_message",
                f"Telnyx sends only text frames; got a binary frame of {len(message)} bytes",
            )
        obj = load_json_object(message, "event")
        event = obj.get("event")
        # Ordered by frequency: media is ~50 messages a second, the rest are rare.
        if event == "media":
            self._check_stream(obj, event)
            return self._parse_media(section(obj, "media", event))
        if event == "connected":
            self.version = _optional_str(obj, "version", "connected")
            return [ConnectedEvent()]
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
        if event == "mark":
            self._check_stream(obj, event)
            name = section(obj, "mark", event).get("name")
            if not isinstance(name, str) or not name:
                raise ProtocolError(
                    "bad_message", f"mark.name must be a non-empty string, got {name!r}"
                )
            return [MarkEvent(name)]
        if event == "error":
            # Telnyx may refuse a frame of ours at any time, even before start.
            self._parse_error(obj)
            return []
        if event == "stop":
            self._check_stream(obj, event)
            held: list[MediaEvent] = [AudioEvent(p) for p in self._order.flush() if p]
            return [*held, StopEvent()]
        if event is None:
            raise ProtocolError("bad_message", "text frame has no 'event' field")
        raise ProtocolError("bad_message", f"unknown event {event!r} (expected {_EVENTS})")

    def _check_stream(self, obj: Mapping[str, Any], event: str) -> None:
        check_stream_id(self.stream_id, obj.get("stream_id"), "stream_id", event)

    def _parse_media(self, media: Mapping[str, Any]) -> list[MediaEvent]:
        track = media.get("track")
        if track is not None and track != "inbound":
            if track == "outbound":
                # Our own audio echoed back (track="both_tracks"): not the caller.
                return []
            raise ProtocolError(
                "bad_message", f"media.track must be 'inbound' or 'outbound', got {track!r}"
            )
        raw_chunk = media.get("chunk")
        chunk = _int_text(raw_chunk)
        if raw_chunk is not None and (chunk is None or chunk < 0):
            raise ProtocolError(
                "bad_message", f"media.chunk must be a decimal counter, got {raw_chunk!r}"
            )
        audio = decode_base64_payload(media.get("payload"), "media.payload")
        if self._l16:
            if len(audio) % 2:
                raise ProtocolError(
                    "bad_message",
                    f"media.payload of L16 audio must be whole 16-bit samples, "
                    f"got {len(audio)} bytes",
                )
            audio = _swap16(audio)
        released = [audio] if chunk is None else self._order.push(chunk, audio)
        return [AudioEvent(p) for p in released if p]

    def _parse_error(self, obj: Mapping[str, Any]) -> None:
        body = section(obj, "error", "error")
        fields = []
        for key in ("code", "title", "detail"):
            value = body.get(key)
            # Telnyx sends the code as a string ("100005"); a number means the same.
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            if value is not None and not isinstance(value, str):
                raise ProtocolError(
                    "bad_message",
                    f"error.{key} must be a string, got {type(value).__name__}",
                )
            fields.append((value or "")[:_MAX_ERROR_TEXT])
        error = TelnyxStreamError(*fields)
        self.last_error = error
        self.error_count += 1
        # %r keeps peer-supplied text on one line and free of control characters.
        log.warning("telnyx stream error %r %r: %r", error.code, error.title, error.detail)

    def _parse_start(self, obj: Mapping[str, Any]) -> StartEvent:
        if self.stream_id is not None:
            raise ProtocolError("bad_message", f"duplicate start for stream {self.stream_id!r}")
        start = section(obj, "start", "start")
        sid = obj.get("stream_id", start.get("stream_id"))
        if not isinstance(sid, str) or not sid:
            raise ProtocolError("bad_message", f"start needs a non-empty stream_id, got {sid!r}")
        call_control_id = _optional_str(start, "call_control_id", "start")
        call_session_id = _optional_str(start, "call_session_id", "start")
        client_state = _optional_str(start, "client_state", "start")
        from_number = _optional_str(start, "from", "start")
        to_number = _optional_str(start, "to", "start")
        fmt = _audio_format(start.get("media_format"))
        # Lowest precedence first: client_state, then top-level parameters, then the
        # start object's own.
        params: dict[str, str] = {}
        if client_state is not None:
            params["client_state"] = client_state
        for where, holder in (("start", obj), ("start.start", start)):
            for key in _PARAMETER_KEYS:
                params.update(coerce_parameters(holder.get(key), f"{where}.{key}"))
        # Only now, with the whole message valid, does the stream become started.
        self.stream_id = sid
        self.call_control_id = call_control_id
        self.call_session_id = call_session_id
        self.client_state = client_state
        self.from_number = from_number
        self.to_number = to_number
        self.audio_format = fmt
        self._l16 = fmt.encoding is AudioEncoding.PCM16
        return StartEvent(
            custom_parameters=params, call_id=call_control_id, stream_id=sid, audio_format=fmt
        )

    def _require_stream(self) -> None:
        if self.stream_id is None:
            raise RuntimeError(_NO_STREAM)

    def format_audio(self, frame: bytes) -> str:
        """``{"event":"media","media":{"payload":<base64 RTP payload>}}``.

        PCMU/PCMA frames go out as they are. PCM16 frames of an L16 stream are swapped
        to network byte order; a stray odd last byte (half a sample) is dropped.

        Raises:
            RuntimeError: called before ``start``.
        """
        self._require_stream()
        if self._l16:
            frame = _swap16(frame[: len(frame) & ~1])
        # base64 output is pure ASCII with no quotes or backslashes, so pasting it into
        # the fixed JSON is exactly what json.dumps would produce.
        return f'{_MEDIA_PREFIX}{binascii.b2a_base64(frame, newline=False).decode("ascii")}"}}}}'

    def format_mark(self, name: str) -> str:
        """``{"event":"mark","mark":{"name":...}}``, echoed once the audio before it played.

        Raises:
            RuntimeError: called before ``start``.
        """
        self._require_stream()
        return _dumps({"event": "mark", "mark": {"name": name}})

    def format_clear(self) -> str:
        """``{"event":"clear"}``: Telnyx drops the audio it has queued (barge-in).

        Raises:
            RuntimeError: called before ``start``.
        """
        self._require_stream()
        return _CLEAR

    def format_transfer(self, target: Mapping[str, str]) -> str | None:
        """Telnyx streams have no transfer message: Call Control's REST API does it."""
        return None

    def format_hangup(self, reason: str) -> str | None:
        """Telnyx streams have no hang-up message: Call Control's REST API does it."""
        return None

    def format_error(self, code: str, message: str) -> str | None:
        """Telnyx streams take no error message: rejected frames are only counted."""
        return None
