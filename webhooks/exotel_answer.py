"""Exotel's Voicebot applet, dynamic URL: ``GET|POST /api/voice/exotel/init`` (and seed
002's ``/voicebot/init``) answer with the WebSocket URL the applet then opens.

The Voicebot applet takes either a ``wss://`` URL or "an HTTPS endpoint that dynamically
returns the WSS URL" (developer.exotel.com/docs/agentstream/stream-voicebot-applet).
Exotel calls such endpoints with the call's details as parameters (``CallSid``,
``CallFrom``/``From``, ``CallTo``/``To``, ``CustomField``; support.exotel.com's applet
URL articles). We answer ``{"url": "wss://HOST/api/voice/exotel/ws?..."}`` with a
single-use stream token bound to the ``CallSid`` (the media plane checks it against the
start's ``call_sid``, as for Twilio), the sample rate, and the applet URL's own extra
query parameters (``flow``, ``persona``... up to Exotel's three) passed on as custom
parameters. The same URL is also given as ``websocket_url``, the field seed 002's
voicebot answered with: Exotel's docs do not name the field, so both are sent.

``/voicebot/init`` answers with seed 002's stream path ``/was`` at 16 kHz unless told
otherwise; ``/api/voice/exotel/init`` with ``/api/voice/exotel/ws`` at 8 kHz (Exotel's
default). ``sample-rate`` in the applet URL chooses (8000 or 16000).

When ``EXOTEL_API_KEY``/``EXOTEL_API_TOKEN`` are set, the request must carry them as
HTTP Basic credentials (configure the applet URL as ``https://KEY:TOKEN@host/...``);
without them anyone who can reach the endpoint can mint a token for a call id of their
choosing, as with Twilio's webhook without ``TWILIO_AUTH_TOKEN`` (docs/SECURITY.md).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from realtime_voice.log import call_id_var, mask_phone
from realtime_voice.security.basic_auth import BasicAuthResult, check_basic_auth
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.session.manager import AdmissionError, CallSessionManager, InboundCall
from webhooks.errors import json_error

__all__ = [
    "EXOTEL_INIT_PATH",
    "EXOTEL_SEED_INIT_PATH",
    "ExotelAnswerHandler",
    "add_exotel_routes",
]

log = logging.getLogger(__name__)

EXOTEL_INIT_PATH: Final = "/api/voice/exotel/init"
EXOTEL_SEED_INIT_PATH: Final = "/voicebot/init"
MAX_BODY_BYTES: Final = 64 * 1024
_STREAM_PATHS: Final = {EXOTEL_INIT_PATH: "/api/voice/exotel/ws", EXOTEL_SEED_INIT_PATH: "/was"}
_DEFAULT_RATES: Final = {EXOTEL_INIT_PATH: "8000", EXOTEL_SEED_INIT_PATH: "16000"}
# Exotel's own call fields: everything else in the applet URL is a custom parameter.
_CALL_FIELDS: Final = frozenset({
    "CallSid", "CallFrom", "CallTo", "From", "To", "Direction", "Created", "StartTime",
    "EndTime", "CallType", "DialWhomNumber", "DialCallDuration", "CallStatus",
    "CustomField", "flow_id", "tenant_id", "digits", "RecordingUrl", "sample-rate",
    "token", "call_sid",
})
_MAX_PARAMS: Final = 10
_MAX_PARAM_CHARS: Final = 256


class ExotelAnswerHandler:
    """The aiohttp handler of the Voicebot applet's dynamic URL.

    Args:
        manager: the call registry (capacity, numbers for the media session).
        tokens: mints stream tokens.
        media_url: the public media base URL (``wss://voice.example.com``).
        basic_auth: ``(EXOTEL_API_KEY, EXOTEL_API_TOKEN)``; when set, required.
    """

    def __init__(
        self,
        manager: CallSessionManager,
        tokens: StreamTokenIssuer,
        media_url: Callable[[], str],
        *,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self._manager = manager
        self._tokens = tokens
        self._media_url = media_url
        self._basic_auth = basic_auth

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one applet request with the stream URL."""
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
        if self._basic_auth is not None:
            result = check_basic_auth(request.headers.get("Authorization"), *self._basic_auth)
            if result != BasicAuthResult.VALID:
                log.warning("exotel applet request refused: %s Basic credentials", result)
                response = json_error(401, f"{result} Basic credentials (EXOTEL_API_KEY/TOKEN)")
                response.headers["WWW-Authenticate"] = 'Basic realm="exotel"'
                return response
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                return json_error(413, f"request body over {MAX_BODY_BYTES} bytes")
            except (ValueError, LookupError) as exc:
                return json_error(400, f"unreadable form body: {exc}")
            params.update((k, v) for k, v in form.items() if isinstance(v, str))
        call_sid = params.get("CallSid", "").strip()
        if not call_sid or len(call_sid) > 128:
            return json_error(400, "missing field CallSid (a non-empty string)", field="CallSid")
        call_id_var.set(call_sid)
        rate = params.get("sample-rate", _DEFAULT_RATES[request.path])
        if rate not in ("8000", "16000"):
            return json_error(400, f"sample-rate must be 8000 or 16000, got {rate[:20]!r}",
                              field="sample-rate")
        custom = _custom_parameters(params)
        if isinstance(custom, str):
            return json_error(400, custom)
        from_number = params.get("CallFrom") or params.get("From") or ""
        to_number = params.get("CallTo") or params.get("To") or ""

        existing = self._manager.ringing(call_sid)
        if existing is not None and isinstance(existing.answer.get("exotel"), dict):
            log.info("repeated exotel applet request: same answer")
            return web.json_response(existing.answer["exotel"])
        try:
            self._manager.check_capacity()
        except AdmissionError as exc:
            log.warning("exotel call refused: %s", exc.reason)
            return json_error(503, f"no capacity for another call ({exc.reason})")
        query = {
            "sample-rate": rate,
            "call_sid": call_sid,
            **custom,
            "token": self._tokens.mint(call_sid),
        }
        url = f"{self._media_url()}{_STREAM_PATHS[request.path]}?{urlencode(query)}"
        answer = {"url": url, "websocket_url": url}
        self._manager.add_ringing(
            InboundCall(call_sid, str(uuid.uuid4()), from_number, to_number, {"exotel": answer})
        )
        log.info(
            "exotel call answered from %s to %s", mask_phone(from_number), mask_phone(to_number)
        )
        return web.json_response(answer)


def _custom_parameters(params: Mapping[str, str]) -> dict[str, str] | str:
    """The applet URL's own parameters (not Exotel's call fields), or what is wrong."""
    custom = {k: v for k, v in params.items() if k not in _CALL_FIELDS}
    if len(custom) > _MAX_PARAMS:
        return f"at most {_MAX_PARAMS} custom parameters, got {len(custom)}"
    for key, value in custom.items():
        if len(key) + len(value) > _MAX_PARAM_CHARS:
            return f"custom parameter {key[:40]!r} is over {_MAX_PARAM_CHARS} characters"
    return custom


def add_exotel_routes(app: web.Application, handler: ExotelAnswerHandler) -> None:
    """Register ``GET|POST /api/voice/exotel/init`` and seed 002's ``/voicebot/init``."""
    for path in (EXOTEL_INIT_PATH, EXOTEL_SEED_INIT_PATH):
        app.router.add_get(path, handler.handle, allow_head=False)
        app.router.add_post(path, handler.handle)
