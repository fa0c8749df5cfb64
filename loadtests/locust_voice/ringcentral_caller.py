"""A RingCentral media-bridge caller: the inbound webhook, then the bridge protocol.

The gateway posts the inbound-call webhook (docs/PROTOCOLS.md §1), takes the signed media URL
from the answer and streams the call there with the RingCentral bridge protocol (§2):
raw mu-law binary frames both ways, JSON control messages.
"""

from __future__ import annotations

from typing import Any

from locust_voice.callers import Answer, CallerUser
from realtime_voice.testing.gateway_wire import RingCentralGatewayWire

__all__ = ["INBOUND_PATH", "RingCentralCaller", "inbound_body", "media_url_of"]

INBOUND_PATH = "/api/voice/inbound"
CALLER_NUMBER = "+15555551234"
BOT_NUMBER = "+15555555678"


def inbound_body(call_id: str) -> dict[str, Any]:
    """The inbound-call webhook body for ``call_id`` (docs/PROTOCOLS.md §1)."""
    return {
        "event": "call.inbound",
        "body": {
            "id": call_id,
            "from": {"phoneNumber": CALLER_NUMBER},
            "to": {"phoneNumber": BOT_NUMBER},
        },
    }


def media_url_of(answer: Any) -> str:
    """The media WebSocket URL of an inbound-call answer.

    Raises:
        ValueError: not an ``answer`` with a mu-law 8 kHz WebSocket media URL carrying a
            token (the message says what is wrong).
    """
    if not isinstance(answer, dict) or answer.get("action") != "answer":
        raise ValueError("the answer's action is not 'answer'")
    media = answer.get("media")
    if not isinstance(media, dict) or not isinstance(media.get("url"), str):
        raise ValueError("the answer has no media.url")
    fmt = media.get("format", {})
    if not isinstance(fmt, dict) or (fmt.get("encoding"), fmt.get("sampleRate")) != (
        "mulaw",
        8000,
    ):
        raise ValueError("the answer's media format is not mu-law 8 kHz")
    url: str = media["url"]
    if "token=" not in url:
        raise ValueError("the answer's media url carries no token")
    return url


class RingCentralCaller(CallerUser):
    """A RingCentral bridge gateway placing scripted calls."""

    protocol = "ringcentral"

    def answer(self, call_id: str) -> Answer:
        """POST the inbound webhook and read the signed media URL from its answer."""
        headers = {}
        if self.options.rc_verification_token:
            headers["Verification-Token"] = self.options.rc_verification_token
        url = self.post_answer(
            INBOUND_PATH,
            lambda response: media_url_of(response.json()),
            json=inbound_body(call_id),
            headers=headers,
        )
        return Answer(url, RingCentralGatewayWire(), self.custom_parameters())
