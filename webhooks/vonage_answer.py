"""Vonage Voice answer and event URLs: connect the call to our media plane with an NCCO.

``GET|POST /api/voice/vonage/answer`` is the Vonage application's ``answer_url``. Vonage
sends a GET with the call in the query string by default, or a POST with a JSON body
when the application's ``answer_method`` is POST; the fields we use are ``uuid`` (the
call leg), ``conversation_uuid``, ``from`` and ``to``
(developer.vonage.com/en/voice/voice-api/webhook-reference#answer-webhook). The answer
is an NCCO that connects the call to our WebSocket::

    [{"action": "connect", "endpoint": [{"type": "websocket",
      "uri": "wss://HOST/api/voice/vonage/ws", "content-type": "audio/l16;rate=16000",
      "headers": {"call_uuid": "...", "token": "...", "from": "...", "to": "..."}}]}]

Vonage flattens the endpoint's ``headers`` into its first WebSocket message,
``websocket:connected`` (developer.vonage.com/en/voice/voice-api/concepts/websockets),
where `realtime_voice.protocols.vonage.VonageProtocol` reads the ``call_uuid`` as the
call id and the ``token`` as the stream token, which is bound to that ``uuid``. The
guide caps ``headers`` at 512 bytes; ours take about 200. The call is held as ringing
in the `CallSessionManager` so it counts against capacity; at capacity or while
draining the NCCO is a single ``talk`` saying the lines are busy, after which the NCCO
is done and Vonage ends the call. A repeated request gets the same answer.

``POST /api/voice/vonage/event`` is the ``event_url``: call status changes
(``started``, ``ringing``, ``answered``, ``completed``...; also the WebSocket leg's
``disconnected``/``failed``). They are logged and answered 200 with an empty body.

When ``VONAGE_SIGNATURE_SECRET`` is set both routes require Vonage's signed-webhook JWT
(`realtime_voice.security.vonage_signature`), checked before anything else: a missing
token is 401, a bad one 403. Vonage signs the payload, not the URL, so
``public_http_url`` is accepted only for a uniform constructor.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from realtime_voice.log import call_id_var, mask_phone
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.security.vonage_signature import VonageSignatureError, VonageWebhookVerifier
from realtime_voice.session.manager import AdmissionError, CallSessionManager, InboundCall
from webhooks.errors import json_error

__all__ = [
    "BUSY_NCCO",
    "VONAGE_ANSWER_PATH",
    "VONAGE_EVENT_PATH",
    "VONAGE_STREAM_PATH",
    "VonageAnswerHandler",
    "add_vonage_routes",
]

log = logging.getLogger(__name__)

VONAGE_ANSWER_PATH: Final = "/api/voice/vonage/answer"
VONAGE_EVENT_PATH: Final = "/api/voice/vonage/event"
VONAGE_STREAM_PATH: Final = "/api/voice/vonage/ws"
MAX_BODY_BYTES: Final = 64 * 1024
BUSY_NCCO: Final = [
    {"action": "talk", "text": "Sorry, all our lines are busy. Please call again later."}
]
"""The capacity answer: the caller hears this, then the NCCO ends and so does the call."""
_MAX_CALL_ID = 128
_TOO_BIG: Final = f"request body over {MAX_BODY_BYTES} bytes"
# The content-type values Vonage documents for a websocket endpoint, by rate. (Kept here
# rather than imported: the HTTP plane does not import the media codecs.)
_CONTENT_TYPES: Final = {8000: "audio/l16;rate=8000", 16000: "audio/l16;rate=16000"}


class _BadBody(ValueError):
    """The body is not a readable JSON object or form."""


class VonageAnswerHandler:
    """The aiohttp handlers of a Vonage Voice application's answer and event URLs.

    Args:
        manager: the call registry (capacity, numbers for the media session).
        tokens: mints stream tokens.
        media_url: the public media base URL (``wss://voice.example.com``).
        signature_secret: ``VONAGE_SIGNATURE_SECRET``; when set the signed-webhook JWT
            is required on both routes.
        public_http_url: accepted for a uniform constructor; Vonage does not sign URLs.
        sample_rate: the L16 rate the NCCO asks for (16000, or 8000).
        verifier: a ready verifier instead of ``signature_secret`` (tests inject a clock).

    Raises:
        ValueError: a ``sample_rate`` other than 8000 or 16000.
    """

    def __init__(
        self,
        manager: CallSessionManager,
        tokens: StreamTokenIssuer,
        media_url: Callable[[], str],
        *,
        signature_secret: str | None = None,
        public_http_url: str | None = None,
        sample_rate: int = 16000,
        verifier: VonageWebhookVerifier | None = None,
    ) -> None:
        if sample_rate not in _CONTENT_TYPES:
            raise ValueError(f"Vonage WebSockets carry 8000 or 16000 Hz, not {sample_rate!r}")
        self._manager = manager
        self._tokens = tokens
        self._media_url = media_url
        self._content_type = _CONTENT_TYPES[sample_rate]
        if verifier is None and signature_secret:
            verifier = VonageWebhookVerifier(signature_secret)
        self._verifier = verifier
        del public_http_url  # see the class doc

    async def handle_answer(self, request: web.Request) -> web.Response:
        """Answer one call (GET query or POST JSON) with an NCCO."""
        read = await self._read_signed(request, "answer")
        if isinstance(read, web.Response):
            return read
        params = read
        call_uuid = params.get("uuid", "")
        if not call_uuid.strip() or len(call_uuid) > _MAX_CALL_ID:
            return json_error(400, "missing field uuid (a non-empty string)", field="uuid")
        from_number = params.get("from", "")
        to_number = params.get("to", "")
        call_id_var.set(call_uuid)

        existing = self._manager.ringing(call_uuid)
        if existing is not None and isinstance(existing.answer.get("ncco"), list):
            log.info("repeated vonage answer request: same answer")
            return web.json_response(existing.answer["ncco"])
        try:
            self._manager.check_capacity()
        except AdmissionError as exc:
            log.warning("vonage call rejected: %s", exc.reason)
            return web.json_response(BUSY_NCCO)

        headers = {"call_uuid": call_uuid, "token": self._tokens.mint(call_uuid)}
        # The numbers ride along so the media codec can expose them; an absent one
        # (a Client SDK caller has from_user instead of from) is left out.
        headers.update((k, v) for k, v in (("from", from_number), ("to", to_number)) if v)
        ncco: list[dict[str, Any]] = [
            {
                "action": "connect",
                "endpoint": [
                    {
                        "type": "websocket",
                        "uri": f"{self._media_url()}{VONAGE_STREAM_PATH}",
                        "content-type": self._content_type,
                        "headers": headers,
                    }
                ],
            }
        ]
        self._manager.add_ringing(
            InboundCall(call_uuid, str(uuid.uuid4()), from_number, to_number, {"ncco": ncco})
        )
        log.info(
            "vonage call answered from %s to %s (conversation %s)",
            mask_phone(from_number),
            mask_phone(to_number),
            params.get("conversation_uuid", "?")[:_MAX_CALL_ID],
        )
        return web.json_response(ncco)

    async def handle_event(self, request: web.Request) -> web.Response:
        """Log one call event; 200 whatever it says once the signature is good."""
        read = await self._read_signed(request, "event")
        if isinstance(read, web.Response):
            if read.status in (401, 403, 413):
                return read
            # An unreadable event is logged and acknowledged: Vonage retries what is
            # not 2xx, and a retry would be just as unreadable.
            log.warning("vonage event unreadable (HTTP %d would have been sent)", read.status)
            return web.Response(status=200)
        params = read
        call_uuid = params.get("uuid", "")[:_MAX_CALL_ID]
        if call_uuid:
            call_id_var.set(call_uuid)
        log.info(
            "vonage event: call %s status %s",
            call_uuid or "?",
            params.get("status", "?")[:64],
        )
        return web.Response(status=200)

    async def _read_signed(
        self, request: web.Request, route: str
    ) -> Mapping[str, str] | web.Response:
        """The request's string parameters, after the size limit and the signature."""
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return json_error(413, _TOO_BIG)
        try:
            body = await _read_body(request)
        except (ConnectionError, ValueError, HttpProcessingError) as exc:  # broken body
            return json_error(400, f"unreadable request body: {exc}")
        if body is None:
            return json_error(413, _TOO_BIG)
        query = list(request.rel_url.query.items())
        if self._verifier is not None:
            authorization = request.headers.get("Authorization")
            try:
                self._verifier.verify(authorization, body=body, query=query)
            except VonageSignatureError as exc:
                log.warning("vonage %s refused: signature %s", route, exc.reason)
                status = 401 if not authorization else 403
                return json_error(
                    status, f"missing or invalid Vonage signed-webhook JWT ({exc.reason})"
                )
        if not body:
            return dict(query)
        try:
            return _parameters(body, request.content_type)
        except _BadBody as exc:
            return json_error(400, str(exc))


def add_vonage_routes(app: web.Application, handler: VonageAnswerHandler) -> None:
    """Register ``GET|POST /api/voice/vonage/answer`` and ``POST /api/voice/vonage/event``."""
    app.router.add_get(VONAGE_ANSWER_PATH, handler.handle_answer, allow_head=False)
    app.router.add_post(VONAGE_ANSWER_PATH, handler.handle_answer)
    app.router.add_post(VONAGE_EVENT_PATH, handler.handle_event)


async def _read_body(request: web.Request) -> bytes | None:
    """The raw body (the payload hash covers it); None when over the limit."""
    # Read in a loop: the declared length may be absent (chunked) or a lie.
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
    return b"".join(chunks)


def _parameters(body: bytes, content_type: str) -> Mapping[str, str]:
    """String fields of a JSON object body (Vonage's POST) or, failing that, a form."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadBody(f"request body is not UTF-8 ({exc.reason})") from None
    if content_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=200))
        except ValueError as exc:
            raise _BadBody(f"unreadable form body: {exc}") from None
    try:
        obj = json.loads(text)
    except (RecursionError, ValueError) as exc:
        raise _BadBody(f"request body is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise _BadBody("JSON request body must be an object")
    return {k: v for k, v in obj.items() if isinstance(v, str)}
