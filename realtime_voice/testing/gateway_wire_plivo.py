"""Plivo's side of its bidirectional audio stream, as a pure codec (no socket).

`PlivoGatewayWire` is the `GatewayWire` of `realtime_voice.protocols.plivo`: it formats
what Plivo sends (``start`` with ``extra_headers``, ``media``, ``dtmf``,
``playedStream`` for a checkpoint, ``clearedAudio``) and parses what the server sends
back (``playAudio``, ``checkpoint``, ``clearAudio``) into `ServerMessage` values. Its
audio API is mu-law 8 kHz, as the answer XML asks.

Two things are this wire's own business and not the protocol's:

- ``clearedAudio``: Plivo acknowledges a ``clearAudio``; a caller that wants to be
  faithful sends `PlivoGatewayWire.cleared` after `BotClear`.
- ``stop``: Plivo's docs leave it out of their message list; the official stream SDKs
  read ``{event: "stop", streamId, reason}``, which is what `stop` sends.
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
    BotMark,
    ServerMessage,
    Unexpected,
    check_digit,
    load_stream_event,
    media_payload,
)

__all__ = ["PlivoGatewayWire", "format_extra_headers"]

_DIGITS = frozenset("0123456789*#ABCD")
_SEPARATORS = frozenset(",;=")


def format_extra_headers(parameters: Mapping[str, str]) -> str:
    """``name=value;name=value``, the shape Plivo's start example shows.

    Raises:
        ValueError: a name or value holding ``,``, ``;`` or ``=`` (it would not survive),
            or an empty name.
    """
    for name, value in parameters.items():
        if not name or _SEPARATORS & set(name + value):
            raise ValueError(
                f"extra header {name!r}={value!r} cannot travel in Plivo's extra_headers"
            )
    return ";".join(f"{name}={value}" for name, value in parameters.items())


class PlivoGatewayWire:
    """Plivo's side of one bidirectional stream.

    Every message carries an incrementing ``sequenceNumber`` (a number, as Plivo's
    examples show) and, after ``start``, the ``streamId``.

    Args:
        call_uuid: the call's ``CallUUID`` (the webhook's token is bound to it).
        stream_id: the stream's id (a random UUID when omitted).
        account_id: the account (``MA...``, random when omitted).
    """

    def __init__(
        self, call_uuid: str, stream_id: str | None = None, account_id: str | None = None
    ) -> None:
        """Create the wire for one stream."""
        self.call_uuid = call_uuid
        self.stream_id = stream_id or str(uuid.uuid4())
        self.account_id = account_id or "MA" + uuid.uuid4().hex[:18].upper()
        self._sequence = 0
        self._chunk = 0

    def _event(self, event: str, **body: Any) -> str:
        self._sequence += 1
        return json.dumps(
            {"event": event, "sequenceNumber": self._sequence, "streamId": self.stream_id, **body},
            separators=(",", ":"),
        )

    def opening(self, custom_parameters: Mapping[str, str]) -> list[str]:
        """``start`` with the call and stream ids, the media format and the parameters.

        Raises:
            ValueError: a parameter that cannot travel in ``extra_headers``.
        """
        self._sequence += 1
        start = {
            "event": "start",
            "sequenceNumber": self._sequence,
            "start": {
                "callId": self.call_uuid,
                "streamId": self.stream_id,
                "accountId": self.account_id,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
            },
            "extra_headers": format_extra_headers(custom_parameters),
        }
        return [json.dumps(start, separators=(",", ":"))]

    def audio(self, frame: bytes, timestamp_ms: int) -> str:
        """A ``media`` event on the inbound track (``timestamp`` as a string, ms)."""
        self._chunk += 1
        return self._event(
            "media",
            media={
                "track": "inbound",
                "timestamp": str(timestamp_ms),
                "chunk": self._chunk,
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
        """``playedStream``: the checkpoint ``name`` was reached."""
        return self._event("playedStream", name=name)

    def cleared(self) -> str:
        """``clearedAudio``: Plivo's acknowledgement of a ``clearAudio``."""
        return self._event("clearedAudio")

    def stop(self) -> str:
        """A ``stop`` event (see the module doc)."""
        return self._event("stop", reason="hangup")

    def parse(self, message: str | bytes) -> ServerMessage:
        """Parse one server message (``playAudio``, ``checkpoint`` or ``clearAudio``).

        Args:
            message: the WebSocket message.

        Returns:
            The typed message, or `Unexpected` naming what is wrong with it.
        """
        # checkpoint and clearAudio must name this stream (playAudio need not: the
        # docs' example carries no streamId, though Plivo's SDKs send one).
        obj = load_stream_event(message, "Plivo", "streamId", self.stream_id, required=False)
        if isinstance(obj, Unexpected):
            return obj
        assert isinstance(message, str)
        event = obj.get("event")
        if event == "playAudio":
            return self._parse_play(obj, message)
        if obj.get("streamId") is None:
            return Unexpected(f"{event!r} without this stream's streamId", message)
        if event == "checkpoint":
            name = obj.get("name")
            if isinstance(name, str) and name:
                return BotMark(name)
            return Unexpected("checkpoint without a non-empty name", message)
        if event == "clearAudio":
            return BotClear()
        return Unexpected(f"unknown event {event!r}", message)

    def _parse_play(self, obj: Mapping[str, Any], message: str) -> ServerMessage:
        media = obj.get("media")
        if not isinstance(media, dict):
            return Unexpected("playAudio without a media object", message)
        if media.get("contentType") != "audio/x-mulaw" or media.get("sampleRate") != 8000:
            return Unexpected(
                "playAudio must be audio/x-mulaw at 8000 Hz on this stream, got "
                f"{media.get('contentType')!r} at {media.get('sampleRate')!r}",
                message,
            )
        audio = media_payload(obj, message)
        return audio if isinstance(audio, Unexpected) else BotAudio(audio)
