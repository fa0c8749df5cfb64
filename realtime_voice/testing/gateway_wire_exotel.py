"""Exotel's side of the Voicebot applet's stream, as a pure codec (no socket).

`ExotelGatewayWire` sends what Exotel sends (``connected``, ``start`` with the call ids,
``media_format`` and ``custom_parameters``, ~100 ms of ``media`` per message by default,
``dtmf``, ``mark`` echoes, ``stop``; ids and counters as strings, as the docs show) and
parses what the server sends back. Like every `GatewayWire`, its caller-side audio is
mu-law 8 kHz in 20 ms frames: caller frames are decoded to 16-bit PCM (and upsampled
for a 16 kHz stream) on the way out, and the bot's PCM comes back as mu-law 8 kHz, so
the simulated caller's timeline, recording and transcription stay the same for every
carrier. It also keeps what the raw wire looked like (`outbound_chunk_sizes`), so a test
can check Exotel's 320-byte rule on what the server really sent.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from realtime_voice.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    ServerMessage,
    Unexpected,
    check_digit,
    load_stream_event,
    media_payload,
    new_twilio_sid,
    stream_mark,
)

__all__ = ["ExotelGatewayWire"]


class ExotelGatewayWire:
    """Exotel's side of one Voicebot stream.

    Args:
        call_sid: the call id (the applet URL's token is bound to it).
        sample_rate: the stream's rate, 8000 or 16000 (``?sample-rate=``).
        seed_000: open as seed 000's lead-qualification client did: a ``connected``
            event carrying ``call_sid`` and the custom parameters as a JSON string in
            ``customField``, then a ``start`` without them.
        frames_per_message: 20 ms frames of caller audio per ``media`` message (Exotel
            sends about 100 ms: 5).
    """

    def __init__(
        self,
        call_sid: str,
        *,
        sample_rate: int = 8000,
        seed_000: bool = False,
        frames_per_message: int = 1,
    ) -> None:
        """Create the codec for one stream."""
        if sample_rate not in (8000, 16000):
            raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate}")
        self.call_sid = call_sid
        self.stream_sid = new_twilio_sid("MZ")
        self.account_sid = new_twilio_sid("AC")
        self.sample_rate = sample_rate
        self.seed_000 = seed_000
        self.outbound_chunk_sizes: list[int] = []
        """The PCM byte length of every ``media`` message the server sent."""
        self._frames_per_message = max(1, frames_per_message)
        self._pending: list[bytes] = []
        self._sequence = 0
        self._chunk = 0
        self._up = StreamingResampler(8000, sample_rate)
        self._down = StreamingResampler(sample_rate, 8000)

    def _event(self, event: str, **body: Any) -> str:
        self._sequence += 1
        return json.dumps(
            {
                "event": event,
                "sequence_number": str(self._sequence),
                "stream_sid": self.stream_sid,
                **body,
            },
            separators=(",", ":"),
        )

    def opening(self, custom_parameters: Mapping[str, str]) -> list[str]:
        """``connected`` then ``start``, as the docs (or seed 000's client) shape them."""
        media_format = {
            "encoding": "audio/x-raw",
            "sample_rate": str(self.sample_rate),
            "bit_rate": "16",
        }
        start: dict[str, Any] = {
            "stream_sid": self.stream_sid,
            "call_sid": self.call_sid,
            "account_sid": self.account_sid,
            "from": "+919876543210",
            "to": "+918047491899",
            "media_format": media_format,
        }
        if self.seed_000:
            connected = json.dumps(
                {
                    "event": "connected",
                    "call_sid": self.call_sid,
                    "customField": json.dumps(dict(custom_parameters)),
                }
            )
        else:
            connected = json.dumps({"event": "connected"})
            start["custom_parameters"] = dict(custom_parameters)
        return [connected, self._event("start", start=start)]

    def audio(self, frame: bytes, timestamp_ms: int) -> str | bytes:
        """Caller audio: mu-law 8 kHz in, ``media`` with PCM16 at the stream's rate out.

        With ``frames_per_message`` above 1 the frames are gathered and one message goes
        out per group; the frames in between return an empty string, which the caller
        must not send (the simulated caller skips empty messages).
        """
        pcm = self._up.process(ulaw_to_pcm16(frame))
        self._pending.append(pcm.astype("<i2").tobytes())
        if len(self._pending) < self._frames_per_message:
            return ""
        payload = b"".join(self._pending)
        self._pending.clear()
        self._chunk += 1
        return self._event(
            "media",
            media={
                "chunk": str(self._chunk),
                "timestamp": str(timestamp_ms),
                "payload": base64.b64encode(payload).decode("ascii"),
            },
        )

    def dtmf(self, digit: str) -> str:
        """A ``dtmf`` event with a duration, as the Voicebot applet sends it.

        Raises:
            ValueError: not a keypad digit.
        """
        return self._event("dtmf", dtmf={"digit": check_digit(digit), "duration": "100"})

    def mark(self, name: str) -> str:
        """The echo of a mark whose audio finished playing."""
        return self._event("mark", mark={"name": name})

    def stop(self) -> str:
        """The caller hung up."""
        return self._event(
            "stop", stop={"call_sid": self.call_sid, "account_sid": self.account_sid,
                          "reason": "callended"}
        )

    def parse(self, message: str | bytes) -> ServerMessage:
        """One server message: ``media``, ``mark`` or ``clear`` for this stream."""
        obj = load_stream_event(message, "Exotel", "stream_sid", self.stream_sid)
        if isinstance(obj, Unexpected):
            return obj
        assert isinstance(message, str)
        event = obj.get("event")
        if event == "media":
            pcm_bytes = media_payload(obj, message)
            if isinstance(pcm_bytes, Unexpected):
                return pcm_bytes
            self.outbound_chunk_sizes.append(len(pcm_bytes))
            if len(pcm_bytes) % 2:
                return Unexpected("media payload is not whole 16-bit samples", message)
            pcm = np.frombuffer(pcm_bytes, dtype="<i2").astype(np.int16)
            return BotAudio(pcm16_to_ulaw(self._down.process(pcm)))
        if event == "mark":
            return stream_mark(obj, message)
        if event == "clear":
            return BotClear()
        return Unexpected(f"unknown event {event!r}", message)
