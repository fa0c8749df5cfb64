"""A local stand-in for Plivo's call REST API: transfer and hang-up of live calls.

It serves ``/v1/Account/{auth_id}/Call/{call_uuid}/`` on 127.0.0.1 like
``api.plivo.com`` does for the two calls `realtime_voice.carriers.plivo` makes:

- ``POST`` (transfer a call, plivo.com/docs/voice/api/call/transfer-a-call): takes a JSON
  or form body with ``legs`` (``aleg``, ``bleg`` or ``both``), ``aleg_url`` (required
  for ``aleg``/``both``) and ``aleg_method`` (``GET``/``POST``); answers ``202``
  ``{"message": "call transferred", "api_id": ...}``;
- ``DELETE`` (hang up a call, plivo.com/docs/voice/api/call/hangup-a-call): answers
  ``204`` with no body, and the call is gone.

HTTP Basic auth must name the account in the path with its auth token, else ``401``.
An unknown or ended call is ``404``. Errors carry ``{"api_id", "error"}``, the shape
Plivo's API uses; the exact error texts are the simulator's own. Every request is
recorded (`PlivoApiSimulator.requests`), and `PlivoApiSimulator.fail_next` makes the
next requests fail with a given status.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["PlivoApiSimulator", "RecordedRequest"]

_LEGS = frozenset({"aleg", "bleg", "both"})
_METHODS = frozenset({"GET", "POST"})


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the simulator received (whatever it answered).

    Attributes:
        method: ``POST`` or ``DELETE`` (or anything else a client sent).
        path: the request path.
        call_uuid: the call the path names.
        body: the decoded JSON or form body (empty when none).
        status: the status the simulator answered.
    """

    method: str
    path: str
    call_uuid: str
    body: dict[str, Any] = field(default_factory=dict)
    status: int = 0


class PlivoApiSimulator:
    """Plivo's call API for one account, on an ephemeral local port.

    Args:
        auth_id: the account's auth id (``MA...``).
        auth_token: its auth token.

    Use as ``async with PlivoApiSimulator(...) as sim:``; ``sim.base_url`` is the API
    base to give the client.
    """

    def __init__(self, auth_id: str, auth_token: str) -> None:
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.requests: list[RecordedRequest] = []
        self.live_calls: set[str] = set()
        self.transfers: dict[str, str] = {}
        """call_uuid -> the aleg_url the call was last sent to."""
        self._failures: list[int] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def add_call(self, call_uuid: str) -> None:
        """Make a call live, as if Plivo had answered it."""
        self.live_calls.add(call_uuid)

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` authenticated requests with ``status``."""
        self._failures.extend([status] * count)

    async def __aenter__(self) -> PlivoApiSimulator:
        app = web.Application()
        app.router.add_route("*", "/v1/Account/{auth_id}/Call/{call_uuid}/", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call_uuid = request.match_info["call_uuid"]
        body = await _body(request)
        response = self._answer(request, call_uuid, body)
        self.requests.append(
            RecordedRequest(request.method, request.path, call_uuid, body, response.status)
        )
        return response

    def _answer(self, request: web.Request, call_uuid: str, body: dict[str, Any]) -> web.Response:
        if not self._authorized(request):
            return _error(401, "Authentication credentials were not provided or are invalid.")
        if self._failures:
            return _error(self._failures.pop(0), "simulated failure")
        if request.method not in ("POST", "DELETE"):
            return _error(405, f"method {request.method} not allowed")
        if call_uuid not in self.live_calls:
            return _error(404, "not found")
        if request.method == "DELETE":
            self.live_calls.discard(call_uuid)
            return web.Response(status=204)
        legs = body.get("legs", "aleg")
        url = body.get("aleg_url")
        method = str(body.get("aleg_method", "POST")).upper()
        if legs not in _LEGS:
            return _error(400, f"legs must be aleg, bleg or both, got {legs!r}")
        if legs in ("aleg", "both") and (not isinstance(url, str) or not url):
            return _error(400, "aleg_url is required when legs is aleg or both")
        if method not in _METHODS:
            return _error(400, f"aleg_method must be GET or POST, got {method!r}")
        if isinstance(url, str):
            self.transfers[call_uuid] = url
        return web.json_response(
            {"message": "call transferred", "api_id": str(uuid.uuid4())}, status=202
        )

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (
            bool(sep)
            and user == self.auth_id
            and password == self.auth_token
            and request.match_info["auth_id"] == self.auth_id
        )


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    if request.content_type == "application/json":
        try:
            doc = json.loads(await request.text())
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"api_id": str(uuid.uuid4()), "error": message}, status=status)
