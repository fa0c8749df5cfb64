"""``POST /api/browser/calls``: start a browser call for the console's softphone.

Contract: docs/PROTOCOLS.md §8. The operator's page (a logged-in console session with
its CSRF token, or an API client with the bearer token) asks for a call; the answer
names the media URL to open, with a single-use stream token bound to a fresh call id
(``browser-<uuid>``) that lives only ``VOICE_BROWSER_TOKEN_TTL`` seconds, because the
page opens its socket at once. The body is optional::

    {"flow": "restaurant", "params": {"name": "Ana"}}

``flow`` must be one of the loaded flows (a 400 lists them); ``params`` are string
custom parameters, as a carrier's would be, bounded in count and size. The call is held
as ringing in the `CallSessionManager`, so it counts against capacity (503 when full or
draining), from ``browser``, and its parameters are fixed here: the media plane applies
them to the stream whatever the page sends.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from realtime_voice.log import call_id_var
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.session.manager import AdmissionError, CallSessionManager, InboundCall
from webhooks.authorize import Authorizer
from webhooks.body import read_body
from webhooks.errors import json_error

__all__ = [
    "BROWSER_CALLS_PATH",
    "BROWSER_STREAM_PATH",
    "BadBrowserCall",
    "add_browser_call_route",
    "read_browser_call",
]

log = logging.getLogger(__name__)

BROWSER_CALLS_PATH: Final = "/api/browser/calls"
BROWSER_STREAM_PATH: Final = "/api/voice/browser/ws"
"""The media plane's browser path (`realtime_voice.server.stream_routes.BROWSER_PATH`)."""
FROM_NUMBER: Final = "browser"
SAMPLE_RATE: Final = 16000
FRAME_BYTES: Final = 640
MAX_BODY_BYTES: Final = 16 * 1024
MAX_PARAMS: Final = 20
MAX_KEY_CHARS: Final = 64
MAX_VALUE_CHARS: Final = 500
# Keys the server itself sets or strips: the page must not smuggle a token or a flow
# past the flow check.
_RESERVED: Final = frozenset({"token", "flow"})
_KEY: Final = re.compile(r"[A-Za-z0-9_.-]+")
_FIELDS: Final = frozenset({"flow", "params"})


class BadBrowserCall(ValueError):
    """The request body cannot start a call.

    Attributes:
        code: the ``error`` code (``bad_request``, ``unknown_flow``).
        field: the field at fault, if one.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def _text(value: str, where: str) -> str:
    # Valid JSON may carry lone surrogates, which no URL, log or database column takes.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadBrowserCall("bad_request", f"{where} is not valid Unicode text", where) from None
    return value


def read_browser_call(
    body: Mapping[str, Any], flows: Collection[str] | None
) -> dict[str, str]:
    """The call's custom parameters from a request body (``flow`` among them if given).

    Args:
        body: the decoded JSON object.
        flows: the loaded flows' names; ``None`` accepts any flow (no flow responder).

    Raises:
        BadBrowserCall: an unknown field or flow, a wrong type, too many or too long
            parameters, or a reserved key.
    """
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise BadBrowserCall(
            "bad_request", f"unknown field {unknown[0][:40]!r} (expected flow, params)",
            unknown[0][:40],
        )
    params: dict[str, str] = {}
    raw = body.get("params")
    if raw is not None:
        if not isinstance(raw, dict):
            raise BadBrowserCall("bad_request", "params must be an object of strings", "params")
        if len(raw) > MAX_PARAMS:
            raise BadBrowserCall(
                "bad_request", f"params has {len(raw)} entries, at most {MAX_PARAMS}", "params"
            )
        for key, value in raw.items():
            where = f"params.{key[:40]}"
            if not _KEY.fullmatch(key) or len(key) > MAX_KEY_CHARS:
                raise BadBrowserCall(
                    "bad_request",
                    f"parameter name {key[:40]!r} must be 1-{MAX_KEY_CHARS} letters, digits, "
                    "'_', '.' or '-'",
                    "params",
                )
            if key in _RESERVED:
                raise BadBrowserCall(
                    "bad_request", f"parameter {key!r} is reserved (flow is a field of its own)",
                    where,
                )
            if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
                raise BadBrowserCall(
                    "bad_request",
                    f"{where} must be a string of at most {MAX_VALUE_CHARS} characters",
                    where,
                )
            params[key] = _text(value, where)
    flow = body.get("flow")
    if flow is not None:
        if not isinstance(flow, str) or not flow.strip():
            raise BadBrowserCall("bad_request", "flow must be a non-empty string", "flow")
        flow = _text(flow.strip(), "flow")
        if flows is not None and flow not in flows:
            raise BadBrowserCall(
                "unknown_flow",
                f"no flow {flow[:60]!r}: expected one of {', '.join(sorted(flows))}",
                "flow",
            )
        params["flow"] = flow
    return params


async def _body(request: web.Request) -> Mapping[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadBrowserCall("too_large", f"request body over {MAX_BODY_BYTES} bytes")
    raw = await read_body(request, MAX_BODY_BYTES)
    if raw is None:
        raise BadBrowserCall("too_large", f"request body over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadBrowserCall("bad_request", f"malformed JSON: {exc}"[:300]) from None
    if not isinstance(payload, dict):
        raise BadBrowserCall("bad_request", "the request body must be a JSON object")
    return payload


def add_browser_call_route(
    app: web.Application,
    manager: CallSessionManager,
    tokens: StreamTokenIssuer,
    media_url: Callable[[], str],
    auth: Authorizer,
    *,
    flows: Collection[str] | None = None,
    ttl_s: float = 60.0,
) -> None:
    """Register ``POST /api/browser/calls``.

    Args:
        app: the HTTP plane.
        manager: the call registry (capacity; the call is held as ringing).
        tokens: mints the stream token.
        media_url: the public media base URL (known only once the media socket binds).
        auth: who may start a call (a write: a cookie session must pass the CSRF check).
        flows: the loaded flows' names, to refuse an unknown one (``None``: any).
        ttl_s: the token's lifetime, ``VOICE_BROWSER_TOKEN_TTL``.
    """

    async def mint(request: web.Request) -> web.Response:
        await auth(request, write=True)
        try:
            params = read_browser_call(await _body(request), flows)
        except BadBrowserCall as exc:
            status = 413 if exc.code == "too_large" else 400
            return json_error(status, exc.code, message=str(exc), field=exc.field)
        try:
            manager.check_capacity()
        except AdmissionError as exc:
            log.warning("browser call refused: %s", exc.reason)
            return json_error(
                503, exc.reason, message="no call can be taken now: try again shortly",
                headers={"Retry-After": "5"},
            )
        call_id = f"browser-{uuid.uuid4()}"
        call_id_var.set(call_id)
        token = tokens.mint(call_id, ttl_s=ttl_s)
        query = urlencode({"call_id": call_id, "token": token})
        # The answer kept is what the stream must carry, not the token: it is single use.
        manager.add_ringing(
            InboundCall(
                call_id, str(uuid.uuid4()), FROM_NUMBER, "", {"custom_parameters": params}
            )
        )
        log.info("browser call minted (flow %s, %d parameter(s))",
                 params.get("flow", "default"), len(params))
        return web.json_response(
            {
                "call_id": call_id,
                "url": f"{media_url()}{BROWSER_STREAM_PATH}?{query}",
                "token": token,
                "expires_in": ttl_s,
                "sample_rate": SAMPLE_RATE,
                "frame_bytes": FRAME_BYTES,
            },
            status=201,
        )

    app.router.add_post(BROWSER_CALLS_PATH, mint)
