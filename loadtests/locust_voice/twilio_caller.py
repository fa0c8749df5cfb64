"""A Twilio Media Streams caller: the TwiML webhook, then Twilio's WebSocket protocol.

The gateway plays Twilio: it posts the incoming-call webhook as a form (docs/PROTOCOLS.md §3),
reads the ``<Connect><Stream>`` URL and its ``token`` parameter from the TwiML answer,
opens the stream and sends ``connected`` and ``start`` (with the token among the custom
parameters and the CallSid it is bound to), then base64 mu-law ``media`` events. The
server sends ``media``, ``mark`` and ``clear`` back and ends a transfer by closing the
stream. The local stack sets no ``TWILIO_AUTH_TOKEN``, so requests carry no signature.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from urllib.parse import urlencode

from locust_voice.callers import Answer, CallerUser
from realtime_voice.testing.gateway_wire import TwilioGatewayWire, new_twilio_sid

__all__ = ["TWILIO_INCOMING_PATH", "TwilioCaller", "incoming_form", "stream_of"]

TWILIO_INCOMING_PATH = "/api/voice/twilio/incoming"


def incoming_form(call_sid: str, account_sid: str) -> dict[str, str]:
    """The form Twilio posts for an incoming call (the fields a voice app reads)."""
    return {
        "CallSid": call_sid,
        "AccountSid": account_sid,
        "From": "+15555551234",
        "To": "+15555555678",
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    """The stream URL and its ``<Parameter>`` values from a ``<Connect><Stream>`` answer.

    Raises:
        ValueError: not TwiML, a ``<Reject>``, or no ``<Connect><Stream url=...>`` with a
            ``token`` parameter (the message says which).
    """
    try:
        root = ElementTree.fromstring(twiml)
    except ElementTree.ParseError as exc:
        raise ValueError("the answer is not TwiML") from exc
    reject = root.find("Reject")
    if reject is not None:
        raise ValueError(f"the call was rejected ({reject.get('reason', 'no reason')})")
    stream = root.find("Connect/Stream")
    url = stream.get("url") if stream is not None else None
    if stream is None or not url:
        raise ValueError("the TwiML has no <Connect><Stream url=...>")
    parameters = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    if not parameters.get("token"):
        raise ValueError("the stream has no token parameter")
    return url, parameters


class TwilioCaller(CallerUser):
    """Twilio (or SignalWire) placing scripted calls over Media Streams."""

    protocol = "twilio"

    def new_call_id(self) -> str:
        """A Twilio CallSid (``CA`` and 32 hex digits)."""
        return new_twilio_sid("CA")

    def answer(self, call_id: str) -> Answer:
        """POST the incoming-call form and read the stream from the TwiML answer."""
        wire = TwilioGatewayWire(call_id)
        url, parameters = self.post_answer(
            TWILIO_INCOMING_PATH,
            lambda response: stream_of(response.text or ""),
            data=urlencode(incoming_form(call_id, wire.account_sid)),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        return Answer(url, wire, {**self.custom_parameters(), **parameters})
