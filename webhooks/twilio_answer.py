"""``POST /api/voice/twilio/incoming``: answer a Twilio (or SignalWire) call with TwiML.

Contract: docs/PROTOCOLS.md §3. The answer connects the call to our media plane::

    <Response><Connect><Stream url="wss://HOST/api/voice/twilio/ws">
      <Parameter name="token" value="..."/></Stream></Connect></Response>

with a stream token bound to the form's ``CallSid`` (the media plane checks it against
the ``start`` message's ``callSid``). The call is held as ringing in the
`CallSessionManager` so it counts against capacity and the media session learns the
numbers; at capacity or while draining the answer is ``<Reject reason="busy"/>``.

When ``TWILIO_AUTH_TOKEN`` is set, ``X-Twilio-Signature`` must be Twilio's signature of
the request (`realtime_voice.security.twilio_signature`). Behind a TLS-terminating
proxy the URL we see is not the one Twilio signed, so the public base URL
(``VOICE_PUBLIC_HTTP_URL``) is used when configured.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from xml.sax.saxutils import quoteattr

from aiohttp import web

from realtime_voice.log import call_id_var, mask_phone
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.security.twilio_signature import verify_twilio_signature
from realtime_voice.session.manager import AdmissionError, CallSessionManager, InboundCall
from webhooks.errors import json_error

__all__ = [
    "TWILIO_INCOMING_PATH",
    "TWILIO_STREAM_PATH",
    "TwilioAnswerHandler",
    "add_twilio_routes",
]

log = logging.getLogger(__name__)

TWILIO_INCOMING_PATH = "/api/voice/twilio/incoming"
TWILIO_STREAM_PATH = "/api/voice/twilio/ws"
MAX_BODY_BYTES = 64 * 1024
_TWIML_TYPE = "text/xml"


class TwilioAnswerHandler:
    """The aiohttp handler of Twilio's incoming-call webhook.

    Args:
        manager: the call registry (capacity, numbers for the media session).
        tokens: mints stream tokens.
        media_url: the public media base URL (``wss://voice.example.com``).
        auth_token: ``TWILIO_AUTH_TOKEN``; when set the signature is required.
        public_http_url: ``VOICE_PUBLIC_HTTP_URL``, the base URL Twilio is configured with
            (``https://voice.example.com``); None uses the URL the request arrived on.
    """

    def __init__(
        self,
        manager: CallSessionManager,
        tokens: StreamTokenIssuer,
        media_url: Callable[[], str],
        *,
        auth_token: str | None = None,
        public_http_url: str | None = None,
    ) -> None:
        self._manager = manager
        self._tokens = tokens
        self._media_url = media_url
        self._auth_token = auth_token
        self._public_http_url = public_http_url.rstrip("/") if public_http_url else None

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one incoming-call request with TwiML."""
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        except (ValueError, LookupError) as exc:  # a broken form body or unknown charset
            return json_error(400, f"unreadable form body: {exc}")
        params = [(name, value) for name, value in form.items() if isinstance(value, str)]
        if self._auth_token is not None:
            signature = request.headers.get("X-Twilio-Signature", "")
            url = self._signed_url(request)
            if not signature or not verify_twilio_signature(
                self._auth_token, url, params, signature
            ):
                log.warning("twilio incoming call refused: bad or missing X-Twilio-Signature")
                return json_error(403, "missing or invalid X-Twilio-Signature")
        call_sid = form.get("CallSid")
        if not isinstance(call_sid, str) or not call_sid.strip() or len(call_sid) > 128:
            return json_error(400, "missing field CallSid (a non-empty string)", field="CallSid")
        from_number = _form_str(form.get("From"))
        to_number = _form_str(form.get("To"))
        call_id_var.set(call_sid)

        existing = self._manager.ringing(call_sid)
        if existing is not None and isinstance(existing.answer.get("twiml"), str):
            log.info("repeated twilio incoming-call request: same answer")
            return _twiml(str(existing.answer["twiml"]))
        try:
            self._manager.check_capacity()
        except AdmissionError as exc:
            log.warning("twilio call rejected: %s", exc.reason)
            return _twiml('<Response><Reject reason="busy"/></Response>')

        stream_url = f"{self._media_url()}{TWILIO_STREAM_PATH}"
        token = self._tokens.mint(call_sid)
        twiml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Connect><Stream url={quoteattr(stream_url)}>"
            f'<Parameter name="token" value={quoteattr(token)}/>'
            "</Stream></Connect></Response>"
        )
        self._manager.add_ringing(
            InboundCall(call_sid, str(uuid.uuid4()), from_number, to_number, {"twiml": twiml})
        )
        log.info(
            "twilio call answered from %s to %s", mask_phone(from_number), mask_phone(to_number)
        )
        return _twiml(twiml)

    def _signed_url(self, request: web.Request) -> str:
        if self._public_http_url is not None:
            return self._public_http_url + request.rel_url.raw_path_qs
        return str(request.url)


def add_twilio_routes(app: web.Application, handler: TwilioAnswerHandler) -> None:
    """Register ``POST /api/voice/twilio/incoming``."""
    app.router.add_post(TWILIO_INCOMING_PATH, handler.handle)


def _form_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _twiml(xml: str) -> web.Response:
    return web.Response(text=xml, content_type=_TWIML_TYPE, charset="utf-8")
