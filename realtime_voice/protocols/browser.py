"""The browser leg: the console's softphone on a WebSocket carrying 16 kHz PCM.

The page is the WebSocket client (docs/PROTOCOLS.md §8). It asks the HTTP plane for a
call (``POST /api/browser/calls``), gets a call id and a single-use token bound to it,
and opens ``/api/voice/browser/ws?call_id=...&token=...``. Then, client to server:

- ``{"event":"start","call_id":"browser-...","sample_rate":16000}``, first (the call id
  must be the one in the URL; ``sample_rate`` may be left out, and must be 16000);
- binary frames: the microphone, 16-bit little-endian mono PCM at 16 kHz, any even
  length up to 64 KiB. The codec re-frames them into whole 20 ms frames of 640 bytes,
  one `AudioEvent` each, and keeps an incomplete tail for the next message;
- ``{"event":"mark","name":...}`` once the page has *played* the audio the server sent
  before its mark of that name (the page's jitter buffer, not the socket, is the clock);
- ``{"event":"dtmf","digit":"5"}`` and ``{"event":"hangup"}`` (the `StopEvent`).

Server to client: ``started`` (`format_started`, once the call is admitted), binary
640-byte frames of the bot's voice, ``mark``, ``clear`` (barge-in: drop everything
queued), ``error`` for a rejected message, ``transfer`` (a browser cannot be handed to a
phone: the page shows the number and the call ends as transferred) and ``end`` with the
reason, right before the close (`format_end`).

There is no hang-up message of its own: the ``end`` before the close carries the reason
of every ending, the bot's hang-up included, so `format_hangup` returns ``None``.

This module is a pure codec (sans-I/O): `parse` raises only `ProtocolError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.protocols.base import (
    AudioEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
    StopEvent,
)
from realtime_voice.protocols.ringcentral_bridge import DTMF_DIGITS, load_json_object

__all__ = [
    "BROWSER_FORMAT",
    "FRAME_BYTES",
    "MAX_AUDIO_BYTES",
    "MAX_CALL_ID",
    "MAX_MARK_NAME",
    "SAMPLE_RATE",
    "BrowserProtocol",
]

SAMPLE_RATE: Final = 16000
BROWSER_FORMAT: Final = AudioFormat(AudioEncoding.PCM16, SAMPLE_RATE, 1)
"""The browser leg's only format both ways: PCM16LE, mono, 16 kHz."""
FRAME_BYTES: Final = BROWSER_FORMAT.frame_bytes
"""640: one 20 ms frame."""
MAX_AUDIO_BYTES: Final = 64 * 1024
"""The longest binary message accepted (about 2 s of audio)."""
MAX_CALL_ID: Final = 128
MAX_MARK_NAME: Final = 128
_EVENTS: Final = "start, mark, dtmf or hangup"
_CLEAR: Final = '{"event":"clear"}'


def _dumps(obj: object) -> str:
    # ensure_ascii stays on: a mark name with a lone surrogate must still give valid UTF-8.
    return json.dumps(obj, separators=(",", ":"))


def _name(obj: Mapping[str, Any], key: str, event: str, limit: int) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ProtocolError(
            "bad_message",
            f"{event} {key!r} must be a non-empty string of at most {limit} characters, "
            f"got {str(value)[:40]!r}",
        )
    return value


class BrowserProtocol:
    """Codec for one browser leg. One instance per call.

    Args:
        call_id: the call id the page's URL names, if known: the ``start`` must name the
            same one.

    Attributes:
        name: ``browser``, for logs, metrics and the call record.
        audio_format: always `BROWSER_FORMAT`.
        call_id: the call id of ``start`` (``None`` before it).
    """

    name: str = "browser"

    def __init__(self, call_id: str | None = None) -> None:
        """Create the codec for one call."""
        self.audio_format: AudioFormat = BROWSER_FORMAT
        self.call_id: str | None = None
        self._expected = call_id or None
        self._tail = b""

    @property
    def started(self) -> bool:
        """Whether ``start`` has been parsed."""
        return self.call_id is not None

    def parse(self, message: str | bytes) -> list[MediaEvent]:
        """Parse one message from the page.

        Args:
            message: binary microphone audio or a JSON text event.

        Returns:
            The events it carries: one `AudioEvent` per whole 20 ms frame now complete
            (none while a frame is still filling), else exactly one.

        Raises:
            ProtocolError: ``bad_message`` for a malformed, unknown or out-of-order
                message; ``unsupported_format`` for a ``sample_rate`` other than 16000.
        """
        # Ordered by frequency: audio is most messages, the rest are rare.
        if isinstance(message, bytes | bytearray | memoryview):
            return self._parse_audio(bytes(message))
        obj = load_json_object(message, "event")
        event = obj.get("event")
        if not isinstance(event, str):
            got = "no 'event' field" if event is None else f"'event' of {type(event).__name__}"
            raise ProtocolError("bad_message", f"text frame has {got} (expected a string)")
        if event == "start":
            return [self._parse_start(obj)]
        if not self.started:
            raise ProtocolError("bad_message", f"{event[:40]!r} event received before start")
        if event == "mark":
            return [MarkEvent(_name(obj, "name", "mark", MAX_MARK_NAME))]
        if event == "dtmf":
            digit = obj.get("digit")
            if not isinstance(digit, str) or digit not in DTMF_DIGITS:
                raise ProtocolError(
                    "bad_message", f"dtmf digit must be one of 0-9, *, #, A-D, got {digit!r}"
                )
            return [DtmfEvent(digit)]
        if event == "hangup":
            return [StopEvent()]
        raise ProtocolError("bad_message", f"unknown event {event[:40]!r} (expected {_EVENTS})")

    def _parse_audio(self, audio: bytes) -> list[MediaEvent]:
        if not self.started:
            raise ProtocolError(
                "bad_message", f"binary audio frame of {len(audio)} bytes received before start"
            )
        if len(audio) % 2 or len(audio) > MAX_AUDIO_BYTES:
            raise ProtocolError(
                "bad_message",
                f"binary audio frame of {len(audio)} bytes: expected whole 16-bit samples, "
                f"at most {MAX_AUDIO_BYTES} bytes",
            )
        # An AudioWorklet posts 128-sample quanta and a page may batch them: re-frame so
        # that the session sees the same 20 ms frames as from every other leg.
        data = self._tail + audio if self._tail else audio
        whole = len(data) - len(data) % FRAME_BYTES
        self._tail = data[whole:]
        return [AudioEvent(data[i : i + FRAME_BYTES]) for i in range(0, whole, FRAME_BYTES)]

    def _parse_start(self, obj: Mapping[str, Any]) -> StartEvent:
        if self.started:
            raise ProtocolError("bad_message", "duplicate start")
        call_id = _name(obj, "call_id", "start", MAX_CALL_ID)
        if self._expected is not None and call_id != self._expected:
            raise ProtocolError(
                "bad_message", f"start names call {call_id[:40]!r} but the URL names another"
            )
        rate = obj.get("sample_rate", SAMPLE_RATE)
        if rate != SAMPLE_RATE:
            raise ProtocolError(
                "unsupported_format",
                f"start sample_rate must be {SAMPLE_RATE} (PCM16LE mono), got {str(rate)[:20]!r}",
            )
        self.call_id = call_id
        return StartEvent(call_id=call_id, audio_format=BROWSER_FORMAT)

    # -- outbound ---------------------------------------------------------------------

    def format_started(self) -> str:
        """``started``: the call is admitted; the page may stream its microphone."""
        return _dumps(
            {
                "event": "started",
                "call_id": self.call_id,
                "sample_rate": SAMPLE_RATE,
                "frame_bytes": FRAME_BYTES,
            }
        )

    def format_audio(self, frame: bytes) -> bytes:
        """One binary message of exactly one 640-byte frame (a short one padded).

        Raises:
            ValueError: ``frame`` is longer than one 20 ms frame.
        """
        if len(frame) == FRAME_BYTES:
            return bytes(frame)
        if len(frame) > FRAME_BYTES:
            raise ValueError(f"one {FRAME_BYTES}-byte frame per message, got {len(frame)} bytes")
        # The page's playback counts frames to place marks: keep every message whole.
        return bytes(frame) + bytes(FRAME_BYTES - len(frame))

    def format_mark(self, name: str) -> str:
        """``{"event":"mark","name":...}``, echoed once the page has played up to it."""
        return _dumps({"event": "mark", "name": name})

    def format_clear(self) -> str:
        """``{"event":"clear"}``: the page drops its queued bot audio (barge-in)."""
        return _CLEAR

    def format_transfer(self, target: Mapping[str, str]) -> str:
        """``{"event":"transfer","to":...}``: the page shows where a phone call would go."""
        to = target.get("phoneNumber") or target.get("extensionNumber") or ""
        return _dumps({"event": "transfer", "to": to})

    def format_hangup(self, reason: str) -> str | None:
        """No message: the ``end`` before the close says it (module doc)."""
        return None

    def format_error(self, code: str, message: str) -> str:
        """``{"event":"error","code":...,"message":...}`` for a rejected message."""
        return _dumps({"event": "error", "code": code, "message": message[:200]})

    def format_end(self, reason: str) -> str:
        """``{"event":"end","reason":...}``, sent right before the server closes."""
        return _dumps({"event": "end", "reason": reason[:120]})
