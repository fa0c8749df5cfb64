"""Vonage's side of a Voice API WebSocket, as a pure codec (no socket).

`VonageGatewayWire` is the `GatewayWire` of `realtime_voice.protocols.vonage`: it formats
what Vonage sends (``websocket:connected`` with the NCCO headers flattened in, binary
L16 audio, ``websocket:dtmf``, the ``websocket:notify`` echo of a mark) and parses what
the server sends back (binary L16, ``notify``, ``clear``) into `ServerMessage` values.

The `GatewayWire` audio API is mu-law 8 kHz in 160-byte 20 ms frames, while Vonage
carries 16-bit PCM at the stream's rate (16 kHz by default). So `audio` decodes mu-law
and, at 16 kHz, upsamples with a `StreamingResampler` that lives for the whole stream;
`parse` does the reverse for bot audio (its own downsampler), giving `BotAudio` in
mu-law 8 kHz. Both resamplers keep their filter state across frames, so 20 ms in is
20 ms out.

Two things are this wire's own business, not the protocol's:

- ``websocket:cleared``: Vonage answers a ``clear``; a faithful caller sends
  `VonageGatewayWire.cleared` after `BotClear`.
- ``stop``: Vonage ends a stream by closing the socket, with no message; `stop` sends
  an informational event the codec ignores, because `GatewayWire` needs a message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from realtime_voice.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    BotMark,
    ServerMessage,
    Unexpected,
)

__all__ = ["VonageGatewayWire"]

_DIGITS: Final = frozenset("0123456789*#ABCD")
_RATES: Final = {8000: "audio/l16;rate=8000", 16000: "audio/l16;rate=16000"}


class VonageGatewayWire:
    """Vonage's side of one WebSocket to the server.

    Args:
        call_uuid: the call leg's ``uuid`` (the answer's token is bound to it).
        sample_rate: the stream's L16 rate, as the answer NCCO's ``content-type`` says.

    Raises:
        ValueError: a rate other than 8000 or 16000.
    """

    def __init__(self, call_uuid: str, sample_rate: int = 16000) -> None:
        """Create the wire for one stream."""
        if sample_rate not in _RATES:
            raise ValueError(f"Vonage WebSockets carry 8000 or 16000 Hz, not {sample_rate!r}")
        self.call_uuid = call_uuid
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate // 50 * 2
        """Bytes in one 20 ms L16 frame at the stream's rate (320 or 640)."""
        self._up = StreamingResampler(8000, sample_rate) if sample_rate != 8000 else None
        self._down = StreamingResampler(sample_rate, 8000) if sample_rate != 8000 else None

    def opening(self, custom_parameters: Mapping[str, str]) -> list[str]:
        """``websocket:connected`` with the ``content-type`` and the NCCO headers.

        ``call_uuid`` is set from the wire (a ``call_uuid`` parameter overrides it);
        ``custom_parameters`` should carry the answer's ``token``.
        """
        message: dict[str, Any] = {
            "event": "websocket:connected",
            "content-type": _RATES[self.sample_rate],
        }
        message["call_uuid"] = self.call_uuid
        message.update(custom_parameters)
        return [json.dumps(message, separators=(",", ":"))]

    def audio(self, frame: bytes, timestamp_ms: int) -> bytes:
        """One mu-law 8 kHz frame as a binary L16 frame at the stream's rate.

        Vonage's audio carries no timestamp; ``timestamp_ms`` is unused.
        """
        pcm = ulaw_to_pcm16(frame)
        if self._up is not None:
            pcm = self._up.process(pcm)
        return pcm.astype("<i2").tobytes()

    def dtmf(self, digit: str) -> str:
        """``websocket:dtmf`` with the digit and a typical key-press duration.

        Raises:
            ValueError: not a keypad digit.
        """
        if digit not in _DIGITS:
            raise ValueError(f"DTMF digit must be one of 0-9, *, #, A-D, got {digit!r}")
        return json.dumps({"event": "websocket:dtmf", "digit": digit, "duration": 260})

    def mark(self, name: str) -> str:
        """``websocket:notify`` echoing the payload of the server's notify for ``name``."""
        return json.dumps({"event": "websocket:notify", "payload": {"mark": name}})

    def cleared(self) -> str:
        """``websocket:cleared``: Vonage's answer to a ``clear``."""
        return '{"event":"websocket:cleared"}'

    def stop(self) -> str:
        """An informational event the codec ignores (Vonage just closes; module doc)."""
        return '{"event":"websocket:closing"}'

    def parse(self, message: str | bytes) -> ServerMessage:
        """Parse one server message: binary L16 audio, ``notify`` or ``clear``.

        Args:
            message: the WebSocket message.

        Returns:
            The typed message (audio as mu-law 8 kHz), or `Unexpected` naming what is
            wrong with it.
        """
        if isinstance(message, bytes):
            return self._parse_audio(message)
        try:
            obj = json.loads(message)
        except json.JSONDecodeError as exc:
            return Unexpected(f"text frame is not JSON ({exc.msg})", message)
        if not isinstance(obj, dict):
            return Unexpected("text frame is not a JSON object", message)
        action = obj.get("action")
        if action == "notify":
            payload = obj.get("payload")
            name = payload.get("mark") if isinstance(payload, dict) else None
            if isinstance(name, str) and name:
                return BotMark(name)
            return Unexpected("notify without a non-empty payload.mark", message)
        if action == "clear":
            return BotClear()
        return Unexpected(f"unknown action {action!r}", message)

    def _parse_audio(self, message: bytes) -> ServerMessage:
        # Vonage plays only whole 20 ms frames; anything else is a server bug to catch.
        if len(message) != self.frame_bytes:
            return Unexpected(
                f"binary frame of {len(message)} bytes, Vonage wants exactly {self.frame_bytes}",
                repr(message[:32]),
            )
        pcm = np.frombuffer(message, dtype="<i2").astype(np.int16)
        if self._down is not None:
            pcm = self._down.process(pcm)
        return BotAudio(pcm16_to_ulaw(pcm))
