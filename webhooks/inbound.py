"""``POST /api/voice/inbound``: answer an inbound call with a signed media WebSocket URL.

Contract: docs/PROTOCOLS.md §1. Idempotent per ``body.id``; 400 names the bad field; 401 on a
wrong ``Verification-Token``; 503 at capacity.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from realtime_voice.log import call_id_var, mask_phone
from realtime_voice.security.shared_secret import secret_matches
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.session.manager import AdmissionError, CallSessionManager, InboundCall
from webhooks.body import read_body
from webhooks.errors import json_error

__all__ = ["InboundCallHandler"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024


def _phone(party: Any, field: str) -> str:
    """``body.from.phoneNumber``; absent is fine, the wrong type is not."""
    if party is None:
        return ""
    if not isinstance(party, dict):
        raise ValueError(f"body.{field} must be an object")
    number = party.get("phoneNumber", "")
    if not isinstance(number, str):
        raise ValueError(f"body.{field}.phoneNumber must be a string")
    return number


def _encodable(text: str) -> bool:
    """Valid JSON may carry lone surrogates (``\\ud800``), which no URL or HMAC can take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class InboundCallHandler:
    """The aiohttp handler for inbound-call webhooks.

    Args:
        manager: the call registry (capacity, idempotency).
        tokens: mints stream tokens.
        media_url: returns the public media base URL (known only after the socket binds).
        verification_token: required ``Verification-Token`` header value, if configured.
    """

    def __init__(
        self,
        manager: CallSessionManager,
        tokens: StreamTokenIssuer,
        media_url: Callable[[], str],
        verification_token: str | None,
    ) -> None:
        self._manager = manager
        self._tokens = tokens
        self._media_url = media_url
        self._verification_token = verification_token

    async def handle(self, request: web.Request) -> web.Response:
        """Handle one webhook request."""
        if self._verification_token is not None:
            given = request.headers.get("Verification-Token", "")
            if not secret_matches(given, self._verification_token):
                log.warning("inbound webhook refused: wrong or missing Verification-Token")
                return json_error(401, "missing or wrong Verification-Token header")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        raw = await read_body(request, MAX_BODY_BYTES)
        if raw is None:
            return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            # JSONDecodeError and UnicodeDecodeError are ValueErrors; so are numbers past
            # Python's digit limit. RecursionError: nesting deeper than the parser's stack.
            return json_error(400, f"malformed JSON: {exc}"[:300])
        if not isinstance(payload, dict):
            return json_error(400, "the request body must be a JSON object")
        event = payload.get("event", "call.inbound")
        if event != "call.inbound":
            return json_error(
                400, f"unsupported event {event!r} (expected call.inbound)", field="event"
            )
        body = payload.get("body")
        if not isinstance(body, dict):
            return json_error(400, "missing field body (an object)", field="body")
        call_id = body.get("id")
        if not isinstance(call_id, str) or not call_id.strip() or len(call_id) > 128:
            return json_error(400, "missing field body.id (a non-empty string)", field="body.id")
        try:
            from_number = _phone(body.get("from"), "from")
            to_number = _phone(body.get("to"), "to")
        except ValueError as exc:
            return json_error(400, str(exc), field=str(exc).split(" ")[0])
        for field, value in (
            ("body.id", call_id),
            ("body.from.phoneNumber", from_number),
            ("body.to.phoneNumber", to_number),
        ):
            if not _encodable(value):
                return json_error(
                    400, f"{field} is not valid Unicode text (lone surrogate)", field=field
                )

        call_id_var.set(call_id)
        existing = self._manager.ringing(call_id)
        if existing is not None:
            log.info("repeated inbound webhook: same answer")
            return web.json_response(existing.answer)
        try:
            self._manager.check_capacity()
        except AdmissionError as exc:
            log.warning("inbound call rejected: %s", exc.reason)
            reason = "at_capacity" if exc.reason == "at_capacity" else "shutting_down"
            return web.json_response({"action": "reject", "reason": reason}, status=503)

        session_id = str(uuid.uuid4())
        query = urlencode(
            {
                "call_id": call_id,
                "from_number": from_number,
                "to_number": to_number,
                "session_id": session_id,
                "token": self._tokens.mint(call_id),
            }
        )
        answer: dict[str, object] = {
            "action": "answer",
            "media": {
                "type": "websocket",
                "url": f"{self._media_url()}/api/voice/realtime/ws/call?{query}",
                "format": {"encoding": "mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
        self._manager.add_ringing(InboundCall(call_id, session_id, from_number, to_number, answer))
        log.info(
            "inbound call answered from %s to %s", mask_phone(from_number), mask_phone(to_number)
        )
        return web.json_response(answer)
