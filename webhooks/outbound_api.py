"""``POST /api/calls/outbound``: place a call through the SIP leg with a flow and its context.

The body names the number and the conversation: ``{"to": "+15551230000", "flow":
"real_estate", "parameters": {"customer_name": "Dana", ...}, "ring_timeout_s": 30}``.
The answer comes once the dial is decided (answered, busy, no answer, failed): ``{"call_id",
"outcome", "status", "detail"}``; an answered call then runs like any other and its record
is at ``GET /api/calls/{call_id}``. It places real calls, so it takes the operator's
credentials (`webhooks.authorize.Authorizer`) as a write: the operator token as a bearer
(``VOICE_API_TOKEN``, or the one generated at first start), or a console session that
passes the cross-site request checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from realtime_voice.session.manager import AdmissionError
from realtime_voice.sip.transport import SipTransportError
from webhooks.authorize import Authorizer
from webhooks.body import read_body
from webhooks.errors import json_error

__all__ = ["OUTBOUND_PATH", "DialReport", "Dialer", "add_outbound_route"]

log = logging.getLogger(__name__)

OUTBOUND_PATH = "/api/calls/outbound"
_MAX_BODY = 16 * 1024
_MAX_RING_S = 120.0
_MAX_PARAMETERS = 32


class DialReport(Protocol):
    """How a dial went (the SIP phone's `OutboundCall`)."""

    @property
    def call_id(self) -> str:
        """The SIP Call-ID (the record's id)."""
        ...

    @property
    def outcome(self) -> str:
        """``answered``, ``busy``, ``no_answer`` or ``failed``."""
        ...

    @property
    def status(self) -> int | None:
        """The final SIP status, if one came."""
        ...

    @property
    def detail(self) -> str:
        """The status line or the error, in words."""
        ...


class Dialer(Protocol):
    """Places a call (`realtime_voice.server.sip_phone.SipPhone.dial`)."""

    async def dial(self, target: str, *, parameters: Mapping[str, str] | None = None,
                   ring_timeout_s: float = 60.0) -> DialReport:
        """Dial ``target``; returns once answered or given up."""
        ...


def _bad(message: str, field: str) -> web.Response:
    return json_error(400, message, field=field)


def add_outbound_route(app: web.Application, dialer: Dialer | None, *,
                       auth: Authorizer) -> None:
    """Add ``POST /api/calls/outbound``.

    Args:
        app: the HTTP control plane.
        dialer: the SIP phone, or None when no SIP device is configured (503).
        auth: the operator's credentials check; every request is a write (401 / 403).
    """

    async def outbound(request: web.Request) -> web.Response:
        await auth(request, write=True)
        raw = await read_body(request, _MAX_BODY)
        if raw is None:
            return json_error(413, f"request body over {_MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _bad(f"body is not JSON: {exc}", "")
        if not isinstance(body, dict):
            return _bad("body must be a JSON object", "")
        target = body.get("to")
        if not isinstance(target, str) or not target.strip():
            return _bad("to must be a phone number, extension or sip: URI", "to")
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict) or len(parameters) > _MAX_PARAMETERS or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in parameters.items()):
            return _bad(f"parameters must be an object of at most {_MAX_PARAMETERS} "
                        "string values", "parameters")
        flow = body.get("flow")
        if flow is not None:
            if not isinstance(flow, str):
                return _bad("flow must be a flow name", "flow")
            parameters = {**parameters, "flow": flow}
        ring = body.get("ring_timeout_s", 60)
        if isinstance(ring, bool) or not isinstance(ring, int | float) or not (
                0 < ring <= _MAX_RING_S):
            return _bad(f"ring_timeout_s must be a number of seconds up to {_MAX_RING_S:.0f}",
                        "ring_timeout_s")
        if dialer is None:
            return json_error(503, "no SIP device is configured (set RC_SIP_*)")
        try:
            report = await dialer.dial(target.strip(), parameters=parameters,
                                       ring_timeout_s=float(ring))
        except ValueError as exc:
            return _bad(str(exc), "to")
        except AdmissionError as exc:
            return json_error(503, f"not taking calls now: {exc.reason}",
                              headers={"Retry-After": "5"})
        except SipTransportError as exc:
            return json_error(503, f"the SIP device cannot place calls now: {exc}",
                              headers={"Retry-After": "5"})
        return web.json_response({"call_id": report.call_id, "outcome": report.outcome,
                                  "status": report.status, "detail": report.detail})

    app.router.add_post(OUTBOUND_PATH, outbound)
