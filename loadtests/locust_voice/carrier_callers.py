"""Callers of the four stream carriers: each asks its answer webhook as the carrier does,
then speaks the carrier's stream protocol (`realtime_voice.testing.carrier_answers` builds
the request and reads the answer, so these users and the capacity benchmark's callers
answer calls exactly like the end-to-end tests).

- ``ExotelCaller``: the Voicebot applet's dynamic URL (GET), 16-bit PCM at 8 kHz in
  ~100 ms messages;
- ``TelnyxCaller``: the TeXML request (POST form), base64 PCMU, chunks numbered;
- ``PlivoCaller``: the answer_url request (POST form), ``playAudio``/``checkpoint`` back;
- ``VonageCaller``: the answer URL (GET), binary 16-bit PCM at 16 kHz.

The local stack configures no carrier credentials, so requests carry no signature and
transfers and hang-ups end the stream (docs/carriers/).
"""

from __future__ import annotations

import secrets
import uuid
from typing import ClassVar
from urllib.parse import urlencode

from locust_voice.callers import Answer, CallerUser
from realtime_voice.testing.carrier_answers import CarrierCall, answer_request, read_answer

__all__ = ["ExotelCaller", "PlivoCaller", "TelnyxCaller", "VonageCaller"]


class _CarrierCaller(CallerUser):
    abstract = True
    carrier: ClassVar[str]

    def new_call_id(self) -> str:
        """A call id shaped as the carrier's."""
        if self.carrier == "exotel":
            return secrets.token_hex(16)
        if self.carrier == "telnyx":
            return "v3:" + secrets.token_urlsafe(24)
        return str(uuid.uuid4())

    def answer(self, call_id: str) -> Answer:
        """Ask the carrier's answer webhook and read the stream it names."""
        call = CarrierCall(
            self.host or "", call_id, "+15555551234", "+15555555678",
            custom_parameters=self.custom_parameters(),
        )
        request = answer_request(self.carrier, call)
        body = (
            {"params": request.fields}
            if request.method == "GET"
            else {"data": urlencode(request.fields), "headers": {
                **request.headers, "Content-Type": "application/x-www-form-urlencoded"}}
        )
        stream = self.post_answer(
            request.path,
            lambda response: read_answer(self.carrier, call, response.text or ""),
            method=request.method,
            **body,
        )
        return Answer(stream.media_url, stream.wire, stream.custom_parameters)


class ExotelCaller(_CarrierCaller):
    """Exotel's Voicebot applet placing scripted calls."""

    protocol = "exotel"
    carrier = "exotel"


class TelnyxCaller(_CarrierCaller):
    """A Telnyx TeXML application placing scripted calls."""

    protocol = "telnyx"
    carrier = "telnyx"


class PlivoCaller(_CarrierCaller):
    """A Plivo application placing scripted calls."""

    protocol = "plivo"
    carrier = "plivo"


class VonageCaller(_CarrierCaller):
    """A Vonage Voice application placing scripted calls."""

    protocol = "vonage"
    carrier = "vonage"
