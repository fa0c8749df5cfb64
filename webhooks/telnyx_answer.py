"""``POST /api/voice/telnyx/incoming``: answer a Telnyx TeXML call with a media stream.

This is a TeXML application's voice URL. Telnyx posts the call as a form
(``application/x-www-form-urlencoded``: ``AccountSid``, ``CallSid``, ``From``, ``To``,
``CallStatus``, ``ConnectionId``...); a JSON object body is read the same way. The
answer connects the call to our media plane::

    <Response><Connect><Stream url="wss://HOST/api/voice/telnyx/ws?token=..."
      codec="PCMU" bidirectionalMode="rtp" bidirectionalCodec="PCMU"/></Connect></Response>

``<Connect>`` runs the stream synchronously: the TeXML after it (none) runs only once
the stream stops, so the call lasts as long as our WebSocket does. ``bidirectionalMode
="rtp"`` lets us send raw PCMU back (the default, ``mp3``, takes only whole MP3 files).
``codec="PCMU"`` makes the caller's audio PCMU too (Telnyx transcodes PCMA calls; by
default it would stream the call's own codec), because the codec answers in the format
the stream's start declares and Telnyx plays back what ``bidirectionalCodec`` names.

The stream token is bound to the form's ``CallSid``. Telnyx documents TeXML's
``CallSid`` as "the unique identifier of the call (call_control_id)" (``v3:...``), the
same id the stream's ``start.call_control_id`` carries, which the media plane checks
the token against. The token rides in the URL query: Telnyx opens exactly the URL we
give, so nothing in-band is needed. The call is held as ringing in the
`CallSessionManager` so it counts against capacity; at capacity or while draining the
answer is ``<Reject reason="busy"/>``, and a repeated request gets the same answer.

When ``TELNYX_PUBLIC_KEY`` is set, the request must carry Telnyx's Ed25519 signature
of its body (`realtime_voice.security.telnyx_signature`); it is checked before
anything else. Telnyx does not sign the URL, so unlike Twilio's handler this one has
no use for ``VOICE_PUBLIC_HTTP_URL``; the argument is taken for a uniform constructor.
Docs: developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/stream, .../connect,
.../reject and developers.telnyx.com/api-reference/callbacks/texml-call-answered.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import parse_qsl, quote
from xml.sax.saxutils import quoteattr

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from realtime_voice.log import call_id_var, mask_phone
from realtime_voice.security.telnyx_signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TelnyxSignatureError,
    TelnyxWebhookVerifier,
)
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.session.manager import AdmissionError, CallSessionManager, InboundCall
from webhooks.errors import json_error

__all__ = [
    "TELNYX_INCOMING_PATH",
    "TELNYX_STREAM_PATH",
    "TelnyxAnswerHandler",
    "add_telnyx_routes",
]

log = logging.getLogger(__name__)

TELNYX_INCOMING_PATH: Final = "/api/voice/telnyx/incoming"
TELNYX_STREAM_PATH: Final = "/api/voice/telnyx/ws"
MAX_BODY_BYTES: Final = 64 * 1024
_MAX_CALL_ID = 128
_TEXML_TYPE: Final = "text/xml"
_BUSY: Final = '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>'
_TOO_BIG: Final = f"request body over {MAX_BODY_BYTES} bytes"


class _BadBody(ValueError):
    """The body is not a readable form or JSON object."""


class TelnyxAnswerHandler:
    """The aiohttp handler of a Telnyx TeXML application's voice URL.

    Args:
        manager: the call registry (capacity, numbers for the media session).
        tokens: mints stream tokens.
        media_url: the public media base URL (``wss://voice.example.com``).
        public_key: ``TELNYX_PUBLIC_KEY`` (base64 Ed25519); when set the signature is
            required.
        public_http_url: accepted for a uniform constructor; Telnyx does not sign URLs.
        verifier: a ready verifier instead of ``public_key`` (tests inject a clock).

    Raises:
        ValueError: ``public_key`` is not a base64 Ed25519 public key.
    """

    def __init__(
        self,
        manager: CallSessionManager,
        tokens: StreamTokenIssuer,
        media_url: Callable[[], str],
        *,
        public_key: str | None = None,
        public_http_url: str | None = None,
        verifier: TelnyxWebhookVerifier | None = None,
    ) -> None:
        self._manager = manager
        self._tokens = tokens
        self._media_url = media_url
        if verifier is None and public_key is not None:
            verifier = TelnyxWebhookVerifier(public_key)
        self._verifier = verifier
        del public_http_url  # see the class doc

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one incoming-call request with TeXML."""
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return json_error(413, _TOO_BIG)
        try:
            body = await _read_body(request)
        except (ConnectionError, ValueError, HttpProcessingError) as exc:  # broken body
            return json_error(400, f"unreadable request body: {exc}")
        if body is None:
            return json_error(413, _TOO_BIG)
        if self._verifier is not None:
            try:
                self._verifier.verify(
                    body,
                    request.headers.get(SIGNATURE_HEADER),
                    request.headers.get(TIMESTAMP_HEADER),
                )
            except TelnyxSignatureError as exc:
                log.warning("telnyx incoming call refused: signature %s", exc.reason)
                return json_error(403, f"missing or invalid {SIGNATURE_HEADER} ({exc.reason})")
        try:
            params = _parameters(body, request.content_type)
        except _BadBody as exc:
            return json_error(400, str(exc))
        call_sid = params.get("CallSid", "")
        if not call_sid.strip() or len(call_sid) > _MAX_CALL_ID:
            return json_error(400, "missing field CallSid (a non-empty string)", field="CallSid")
        from_number = params.get("From", "")
        to_number = params.get("To", "")
        call_id_var.set(call_sid)

        existing = self._manager.ringing(call_sid)
        if existing is not None and isinstance(existing.answer.get("texml"), str):
            log.info("repeated telnyx incoming-call request: same answer")
            return _texml(str(existing.answer["texml"]))
        try:
            self._manager.check_capacity()
        except AdmissionError as exc:
            log.warning("telnyx call rejected: %s", exc.reason)
            return _texml(_BUSY)

        token = self._tokens.mint(call_sid)
        stream_url = f"{self._media_url()}{TELNYX_STREAM_PATH}?token={quote(token, safe='')}"
        texml = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Connect><Stream url={quoteattr(stream_url)}"
            ' codec="PCMU" bidirectionalMode="rtp" bidirectionalCodec="PCMU"/>'
            "</Connect></Response>"
        )
        self._manager.add_ringing(
            InboundCall(call_sid, str(uuid.uuid4()), from_number, to_number, {"texml": texml})
        )
        log.info(
            "telnyx call answered from %s to %s", mask_phone(from_number), mask_phone(to_number)
        )
        return _texml(texml)


def add_telnyx_routes(app: web.Application, handler: TelnyxAnswerHandler) -> None:
    """Register ``POST /api/voice/telnyx/incoming``."""
    app.router.add_post(TELNYX_INCOMING_PATH, handler.handle)


async def _read_body(request: web.Request) -> bytes | None:
    """The raw body (the signature covers these exact bytes); None when over the limit."""
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
    """The request's string parameters, from a form or a JSON object body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadBody(f"request body is not UTF-8 ({exc.reason})") from None
    if content_type == "application/json":
        try:
            obj = json.loads(text)
        except (RecursionError, ValueError) as exc:
            raise _BadBody(f"request body is not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise _BadBody("JSON request body must be an object")
        return {k: v for k, v in obj.items() if isinstance(v, str)}
    try:
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=200))
    except ValueError as exc:  # more fields than max_num_fields
        raise _BadBody(f"unreadable form body: {exc}") from None


def _texml(xml: str) -> web.Response:
    return web.Response(text=xml, content_type=_TEXML_TYPE, charset="utf-8")
