"""Plivo's answer URL, and the XML a transferred Plivo call fetches.

``POST`` (or ``GET``, when the Plivo application's answer method is GET)
``/api/voice/plivo/incoming`` answers an incoming call with Plivo XML that connects it
to our media plane (plivo.com/docs/voice/xml/audiostream)::

    <Response><Stream bidirectional="true" keepCallAlive="true"
        contentType="audio/x-mulaw;rate=8000" extraHeaders="tokenhex=...">
      wss://HOST/api/voice/plivo/ws?token=...</Stream></Response>

with a stream token bound to the request's ``CallUUID`` (the media plane checks it
against the ``start`` message's ``callId``). The token rides in the URL's query; it is
also in ``extraHeaders``, hex-encoded, because Plivo allows only letters and digits
there. ``keepCallAlive`` keeps the call on the stream until the stream ends. The call
is held as ringing in the `CallSessionManager`; at capacity or while draining the
answer is ``<Hangup reason="busy"/>`` (plivo.com/docs/voice/xml/hangup).

``POST``/``GET`` ``/api/voice/plivo/transfer?to=...&exp=...&sig=...`` is the
``aleg_url`` `realtime_voice.carriers.plivo` hands Plivo's transfer API: it answers
``<Response><Dial><Number>to</Number></Dial></Response>`` (``to`` without its ``+``:
Plivo's examples write numbers as country code and digits). It dials only a number we
signed into the URL for this very ``CallUUID`` with the stream secret, before ``exp``
(`realtime_voice.security.plivo_signature.verify_transfer`), so a request to it cannot
make us dial anything else.

When ``PLIVO_AUTH_TOKEN`` is set, both routes require Plivo's ``X-Plivo-Signature-V3``
(`realtime_voice.security.plivo_signature`), checked before anything else. Behind a
TLS-terminating proxy the URL we see is not the one Plivo signed, so the public base
URL (``VOICE_PUBLIC_HTTP_URL``) is used when configured.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from realtime_voice.log import call_id_var, mask_phone
from realtime_voice.security.plivo_signature import verify_plivo_signature_v3, verify_transfer
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.session.manager import AdmissionError, CallSessionManager, InboundCall
from webhooks.errors import json_error

__all__ = [
    "PLIVO_INCOMING_PATH",
    "PLIVO_STREAM_PATH",
    "PLIVO_TRANSFER_PATH",
    "PlivoAnswerHandler",
    "PlivoTransferHandler",
    "add_plivo_routes",
]

log = logging.getLogger(__name__)

PLIVO_INCOMING_PATH = "/api/voice/plivo/incoming"
PLIVO_STREAM_PATH = "/api/voice/plivo/ws"
PLIVO_TRANSFER_PATH = "/api/voice/plivo/transfer"
MAX_BODY_BYTES = 64 * 1024
_XML_TYPE = "text/xml"
_SIGNATURE = "X-Plivo-Signature-V3"
_NONCE = "X-Plivo-Signature-V3-Nonce"
# Plivo's CallUUIDs are UUIDs; anything outside this set cannot be one.
_CALL_UUID = re.compile(r"[A-Za-z0-9-]{1,64}")
_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_BUSY = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup reason="busy"/></Response>'


class _PlivoRequest:
    """The parameters and signature check shared by both routes."""

    def __init__(self, auth_token: str | None, public_http_url: str | None) -> None:
        self._auth_token = auth_token
        self._public_http_url = public_http_url.rstrip("/") if public_http_url else None

    async def read(self, request: web.Request) -> dict[str, str] | web.Response:
        """The request's parameters (form for POST, query for GET), or the 4xx answer."""
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        pairs: list[tuple[str, str]] = []
        if request.method == "POST":
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
            except (ValueError, LookupError) as exc:  # a broken form body or unknown charset
                return json_error(400, f"unreadable form body: {exc}")
            pairs = [(name, value) for name, value in form.items() if isinstance(value, str)]
        if self._auth_token is not None:
            url = self._signed_url(request)
            if not verify_plivo_signature_v3(
                self._auth_token,
                url,
                request.headers.get(_NONCE, ""),
                request.headers.get(_SIGNATURE, ""),
                pairs,
                method=request.method,
            ):
                log.warning("plivo request refused: bad or missing %s", _SIGNATURE)
                return json_error(403, f"missing or invalid {_SIGNATURE}")
        params = dict(request.query) if request.method == "GET" else {}
        params.update(pairs)
        return params

    def _signed_url(self, request: web.Request) -> str:
        if self._public_http_url is not None:
            return self._public_http_url + request.rel_url.raw_path_qs
        return str(request.url)


def _call_uuid(params: Mapping[str, str]) -> str | web.Response:
    call_uuid = params.get("CallUUID", "")
    if not _CALL_UUID.fullmatch(call_uuid):
        return json_error(400, "missing field CallUUID (a Plivo call UUID)", field="CallUUID")
    return call_uuid


class PlivoAnswerHandler:
    """The aiohttp handler of Plivo's answer URL.

    Args:
        manager: the call registry (capacity, numbers for the media session).
        tokens: mints stream tokens.
        media_url: the public media base URL (``wss://voice.example.com``).
        auth_token: ``PLIVO_AUTH_TOKEN``; when set the V3 signature is required.
        public_http_url: ``VOICE_PUBLIC_HTTP_URL``, the base URL Plivo is configured with
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
        self._reader = _PlivoRequest(auth_token, public_http_url)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one incoming-call request with Plivo XML."""
        params = await self._reader.read(request)
        if isinstance(params, web.Response):
            return params
        call_uuid = _call_uuid(params)
        if isinstance(call_uuid, web.Response):
            return call_uuid
        from_number = params.get("From", "")
        to_number = params.get("To", "")
        call_id_var.set(call_uuid)

        existing = self._manager.ringing(call_uuid)
        if existing is not None and isinstance(existing.answer.get("xml"), str):
            log.info("repeated plivo answer request: same answer")
            return _xml(str(existing.answer["xml"]))
        try:
            self._manager.check_capacity()
        except AdmissionError as exc:
            log.warning("plivo call rejected: %s", exc.reason)
            return _xml(_BUSY)

        token = self._tokens.mint(call_uuid)
        stream_url = f"{self._media_url()}{PLIVO_STREAM_PATH}?{urlencode({'token': token})}"
        extra_headers = f"tokenhex={token.encode('ascii').hex()}"
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Response><Stream bidirectional="true" keepCallAlive="true" '
            'contentType="audio/x-mulaw;rate=8000" '
            f"extraHeaders={quoteattr(extra_headers)}>{escape(stream_url)}</Stream></Response>"
        )
        self._manager.add_ringing(
            InboundCall(call_uuid, str(uuid.uuid4()), from_number, to_number, {"xml": xml})
        )
        log.info(
            "plivo call answered from %s to %s", mask_phone(from_number), mask_phone(to_number)
        )
        return _xml(xml)


class PlivoTransferHandler:
    """The XML a call fetches when `PlivoCallControl.transfer` moves it: dial the human.

    Args:
        secret: the server's stream secret, the key the transfer URL was signed with.
        auth_token: ``PLIVO_AUTH_TOKEN``; when set the V3 signature is required too.
        public_http_url: as for `PlivoAnswerHandler`.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        auth_token: str | None = None,
        public_http_url: str | None = None,
    ) -> None:
        self._secret = secret
        self._reader = _PlivoRequest(auth_token, public_http_url)

    async def handle(self, request: web.Request) -> web.Response:
        """Answer ``<Dial><Number>`` for a correctly signed transfer URL, else 403."""
        params = await self._reader.read(request)
        if isinstance(params, web.Response):
            return params
        call_uuid = _call_uuid(params)
        if isinstance(call_uuid, web.Response):
            return call_uuid
        call_id_var.set(call_uuid)
        # The signed fields come from the URL we built, never from the form body.
        number = request.query.get("to", "")
        expiry = request.query.get("exp", "")
        signature = request.query.get("sig", "")
        if not _NUMBER.fullmatch(number):
            return json_error(400, "missing query parameter to (a phone number)", parameter="to")
        if not verify_transfer(self._secret, call_uuid, number, expiry, signature):
            log.warning("plivo transfer refused: bad, expired or foreign transfer signature")
            return json_error(403, "invalid or expired transfer signature", parameter="sig")
        log.info("plivo transfer: dialling %s", mask_phone(number))
        # Plivo's examples write numbers as country code and digits, without the "+".
        return _xml(
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Dial><Number>{escape(number.lstrip('+'))}</Number></Dial></Response>"
        )


def add_plivo_routes(
    app: web.Application,
    handler: PlivoAnswerHandler,
    transfer: PlivoTransferHandler | None = None,
) -> None:
    """Register the answer URL (POST and GET) and, if given, the transfer XML route."""
    app.router.add_post(PLIVO_INCOMING_PATH, handler.handle)
    app.router.add_get(PLIVO_INCOMING_PATH, handler.handle, allow_head=False)
    if transfer is not None:
        app.router.add_post(PLIVO_TRANSFER_PATH, transfer.handle)
        app.router.add_get(PLIVO_TRANSFER_PATH, transfer.handle, allow_head=False)


def _xml(xml: str) -> web.Response:
    return web.Response(text=xml, content_type=_XML_TYPE, charset="utf-8")
