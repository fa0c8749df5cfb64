"""A Vonage Voice API simulator: the modify-call request our client sends, over real HTTP.

It serves ``PUT /v1/calls/{uuid}`` on 127.0.0.1 the way Vonage answers it
(developer.vonage.com/en/api/voice#updateCall):

- ``Authorization: Bearer <JWT>`` is required and must be an RS256 token signed by the
  application's key (checked with the public key), with ``application_id`` naming the
  application and ``iat``/``exp``/``jti`` present and ``exp`` not passed; else 401;
- success is ``204 No Content``;
- a body that is not ``{"action": "hangup"}`` or a ``transfer`` with a
  ``destination`` of ``{"type": "ncco", "ncco": [...]}`` (or ``"url": [...]``) is 400;
- once told which calls exist (`VonageApiSimulator.add_call`), an unknown uuid is 404
  and a command on a call that was hung up is 400;
- `VonageApiSimulator.fail_next` makes the next requests answer a given status.

Failure bodies have Vonage's problem-details shape (``{"type", "title", "detail"}``);
the exact titles and the status for a finished call are the simulator's own (not
verified). Every request is recorded, in order, for the tests to inspect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

import jwt
from aiohttp import web

__all__ = ["SimCall", "VonageApiSimulator", "VonageRequest"]

_ACTIONS: Final = frozenset({"transfer", "hangup"})


@dataclass(frozen=True, slots=True)
class VonageRequest:
    """One request the simulator received.

    Attributes:
        method: HTTP method.
        path: URL path as sent (percent escapes kept).
        call_uuid: the decoded uuid from the path.
        claims: the verified JWT claims (None when the token was refused).
        body: the body parsed as JSON (None when it is not JSON).
        status: the status the simulator answered.
    """

    method: str
    path: str
    call_uuid: str
    claims: dict[str, Any] | None
    body: Any
    status: int


@dataclass(slots=True)
class SimCall:
    """A call the simulator knows: ``active`` until hung up; the NCCOs it was sent."""

    active: bool = True
    transfers: list[list[Any]] = field(default_factory=list)


def _problem(status: int, title: str, detail: str) -> web.Response:
    body = {"type": "https://developer.vonage.com/api-errors", "title": title, "detail": detail}
    return web.json_response(body, status=status)


class VonageApiSimulator:
    """The simulator: an aiohttp app plus the state the tests inspect.

    Args:
        application_id: the accepted ``application_id`` claim.
        public_key_pem: the application's RSA public key (PEM) that verifies tokens.
    """

    def __init__(self, application_id: str, public_key_pem: str | bytes) -> None:
        self.application_id = application_id
        self._public_key = public_key_pem
        self.requests: list[VonageRequest] = []
        """Every request received, in order."""
        self.calls: dict[str, SimCall] = {}
        """Known calls by uuid (empty: every uuid is accepted)."""
        self.url = ""
        """The base URL once started (what ``VonageCallControl`` takes as ``base_url``)."""
        self._faults: list[int] = []
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.router.add_put("/v1/calls/{uuid}", self._handle)

    def add_call(self, call_uuid: str) -> SimCall:
        """Make the simulator strict about uuids, knowing this call (active)."""
        call = self.calls[call_uuid] = SimCall()
        return call

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` authenticated requests with ``status``."""
        self._faults.extend([status] * times)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns the base URL."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"
        return self.url

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except (UnicodeDecodeError, ValueError):
            body = None
        claims = self._claims(request.headers.get("Authorization", ""))
        call_uuid = unquote(request.match_info["uuid"])
        response = self._answer(call_uuid, claims, body)
        self.requests.append(
            VonageRequest(
                request.method, request.raw_path, call_uuid, claims, body, response.status
            )
        )
        return response

    def _claims(self, authorization: str) -> dict[str, Any] | None:
        if not authorization.startswith("Bearer "):
            return None
        try:
            claims = jwt.decode(
                authorization[len("Bearer ") :],
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["application_id", "iat", "exp", "jti"]},
            )
        except jwt.InvalidTokenError:
            return None
        return claims if claims.get("application_id") == self.application_id else None

    def _answer(self, call_uuid: str, claims: dict[str, Any] | None, body: Any) -> web.Response:
        if claims is None:
            return _problem(401, "Unauthorized", "missing or invalid application JWT")
        if self._faults:
            status = self._faults.pop(0)
            return _problem(status, "Simulated failure", f"simulated HTTP {status}")
        call = self.calls.get(call_uuid)
        if self.calls and call is None:
            return _problem(404, "Not Found", f"call {call_uuid} not found")
        action = body.get("action") if isinstance(body, dict) else None
        if action not in _ACTIONS:
            return _problem(400, "Bad Request", "action must be transfer or hangup")
        if call is not None and not call.active:
            return _problem(400, "Bad Request", "call is no longer in progress")
        if action == "transfer":
            ncco = _transfer_ncco(body)
            if ncco is None:
                return _problem(400, "Bad Request", "transfer needs an ncco destination")
            if call is not None:
                call.transfers.append(ncco)
        elif call is not None:
            call.active = False
        return web.Response(status=204)


def _transfer_ncco(body: dict[str, Any]) -> list[Any] | None:
    """The destination NCCO (or URL list) of a transfer body; None if malformed."""
    destination = body.get("destination")
    if not isinstance(destination, dict) or destination.get("type") != "ncco":
        return None
    ncco = destination.get("ncco", destination.get("url"))
    if not isinstance(ncco, list) or not ncco:
        return None
    return ncco
