"""An Exotel caller: the Voicebot applet's dynamic URL, then Exotel's stream.

The gateway plays Exotel: it asks the applet URL (``POST /api/voice/exotel/init`` with
the call's form fields), reads the stream URL (its query carries the token bound to the
CallSid and the sample rate), opens it and sends ``connected`` and ``start``, then
~100 ms ``media`` messages of 16-bit PCM. The server sends ``media``, ``mark`` and
``clear`` back and ends a call by closing the stream.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlencode

from locust_voice.callers import Answer, CallerUser
from realtime_voice.testing.gateway_wire_exotel import ExotelGatewayWire
from webhooks.exotel_answer import EXOTEL_INIT_PATH

__all__ = ["ExotelCaller", "stream_url_of"]


def stream_url_of(body: str) -> str:
    """The stream URL of an applet-URL answer.

    Raises:
        ValueError: not JSON with a ``ws(s)://`` ``url``.
    """
    answer: Any = json.loads(body)
    url = answer.get("url") if isinstance(answer, dict) else None
    if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
        raise ValueError("the answer has no WebSocket url")
    return url


class ExotelCaller(CallerUser):
    """Exotel's Voicebot applet placing scripted calls (8 kHz PCM, Exotel's default)."""

    protocol = "exotel"

    def new_call_id(self) -> str:
        """An Exotel CallSid (32 hex digits)."""
        return secrets.token_hex(16)

    def answer(self, call_id: str) -> Answer:
        """POST the applet's form and read the stream URL."""
        form = {"CallSid": call_id, "CallFrom": "+919876543210", "CallTo": "+918047491899",
                "Direction": "incoming"}
        url = self.post_answer(
            EXOTEL_INIT_PATH,
            lambda response: stream_url_of(response.text or ""),
            data=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        wire = ExotelGatewayWire(call_id, frames_per_message=5)
        return Answer(url, wire, self.custom_parameters())
