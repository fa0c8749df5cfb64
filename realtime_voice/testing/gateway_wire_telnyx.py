"""Telnyx's side of a bidirectional media stream, as a pure codec (no socket).

`TelnyxGatewayWire` formats what Telnyx sends (``connected``, ``start``, ``media``,
``dtmf``, ``mark`` echoes, ``stop``; realtime_voice/protocols/telnyx.py has the shapes
and doc URLs) and parses what the server sends back (``media``, ``mark``, ``clear``)
into `realtime_voice.testing.gateway_wire.ServerMessage` values. Every message after
``connected`` carries a growing ``sequence_number`` and the ``stream_id``; ``media``
carries its own ``chunk`` counter and a ``timestamp``, all strings as Telnyx sends
them. ``start`` declares PCMU 8 kHz mono, the `GatewayWire` audio format, so frames
pass through unchanged.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from typing import Any

from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    ServerMessage,
    Unexpected,
    check_digit,
    load_stream_event,
    media_payload,
    stream_mark,
)

__all__ = ["TelnyxGatewayWire"]


class TelnyxGatewayWire:
    """Telnyx's side of a media stream in RTP bidirectional mode, PCMU 8 kHz.

    Args:
        call_control_id: the call's id (the answer webhook's token is bound to it).
        stream_id: the stream's id (a random UUID when omitted).
        from_number: ``start.from``.
        to_number: ``start.to``.
        client_state: ``start.client_state``, if the call has one.
    """

    def __init__(
        self,
        call_control_id: str,
        stream_id: str | None = None,
        *,
        from_number: str = "+13125550123",
        to_number: str = "+13125550100",
        client_state: str | None = None,
    ) -> None:
        """Create the codec for one stream."""
        self.call_control_id = call_control_id
        self.stream_id = stream_id or str(uuid.uuid4())
        self.from_number = from_number
        self.to_number = to_number
        self.client_state = client_state
        self.user_id = str(uuid.uuid4())
        self._sequence = 0
        self._chunk = 0

    def _event(self, event: str, **body: Any) -> str:
        self._sequence += 1
        return json.dumps(
            {
                "event": event,
                "sequence_number": str(self._sequence),
                **body,
                "stream_id": self.stream_id,
            },
            separators=(",", ":"),
        )

    def opening(self, custom_parameters: Mapping[str, str]) -> list[str]:
        """``connected``, then ``start`` with the call, numbers, format and parameters.

        The parameters travel in ``start.custom_parameters`` (where TeXML ``<Parameter>``
        values are read; the token itself belongs in the stream URL's query).
        """
        start: dict[str, Any] = {
            "user_id": self.user_id,
            "call_control_id": self.call_control_id,
            "call_session_id": str(uuid.uuid4()),
            "from": self.from_number,
            "to": self.to_number,
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        }
        if self.client_state is not None:
            start["client_state"] = self.client_state
        if custom_parameters:
            start["custom_parameters"] = dict(custom_parameters)
        connected = json.dumps({"event": "connected", "version": "1.0.0"})
        return [connected, self._event("start", start=start)]

    def audio(self, frame: bytes, timestamp_ms: int) -> str:
        """A ``media`` event on the inbound track, with the next chunk number."""
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
        """A ``dtmf`` event.

        Raises:
            ValueError: not a keypad digit.
        """
        return self._event("dtmf", dtmf={"digit": check_digit(digit)})

    def mark(self, name: str) -> str:
        """A ``mark`` event echoing the server's mark."""
        return self._event("mark", mark={"name": name})

    def stop(self) -> str:
        """A ``stop`` event naming the user and call."""
        return self._event(
            "stop", stop={"user_id": self.user_id, "call_control_id": self.call_control_id}
        )

    def parse(self, message: str | bytes) -> ServerMessage:
        """Parse one server message (``media``, ``mark`` or ``clear``).

        A ``stream_id``, if the server sends one, must be this stream's.

        Args:
            message: the WebSocket message.

        Returns:
            The typed message, or `Unexpected` naming what is wrong with it.
        """
        obj = load_stream_event(
            message, "Telnyx", "stream_id", self.stream_id, required=False
        )
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
