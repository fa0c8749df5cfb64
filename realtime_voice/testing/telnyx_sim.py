"""A Telnyx Call Control API simulator: the two commands our client sends, over real HTTP.

It serves ``POST /v2/calls/{call_control_id}/actions/transfer`` and ``.../hangup`` on
127.0.0.1 the way Telnyx answers them (developers.telnyx.com/api-reference/call-commands):

- ``Authorization: Bearer <api key>`` is required; a missing or wrong key is 401;
- success is ``200 {"data": {"result": "ok"}}``;
- a transfer without a string ``to`` is 422;
- once told which calls exist (`TelnyxApiSimulator.add_call`), an unknown
  ``call_control_id`` is 404, and a command on a call that was hung up is
  ``422 {"errors": [{"code": "90018", "title": "Call has already ended"}]}``;
- `TelnyxApiSimulator.fail_next` makes the next requests answer a given status.

Failure bodies have Telnyx's shape, ``{"errors": [{"code", "title", "detail"}]}``; the
codes other than 90018 are the simulator's own (Telnyx's exact codes for 401 and 404
were not verified). Every request is recorded, in order, for the tests to inspect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from aiohttp import web

__all__ = ["SimCall", "TelnyxApiSimulator", "TelnyxRequest"]

_ACTIONS: Final = frozenset({"transfer", "hangup"})


@dataclass(frozen=True, slots=True)
class TelnyxRequest:
    """One request the simulator received.

    Attributes:
        method: HTTP method.
        path: URL path as sent (percent escapes kept).
        call_control_id: the decoded id from the path ('' when the path has none).
        action: ``transfer``, ``hangup`` or whatever else the path named.
        bearer: the ``Authorization: Bearer`` key, if any.
        body: the body parsed as JSON (None when it is not JSON).
        status: the status the simulator answered.
    """

    method: str
    path: str
    call_control_id: str
    action: str
    bearer: str | None
    body: Any
    status: int


@dataclass(slots=True)
class SimCall:
    """A call the simulator knows: ``active`` until hung up; where it was sent."""

    active: bool = True
    transferred_to: str | None = None


def _error(status: int, code: str, title: str, detail: str = "") -> web.Response:
    body = {"errors": [{"code": code, "title": title, "detail": detail or title}]}
    return web.json_response(body, status=status)


class TelnyxApiSimulator:
    """The simulator: an aiohttp app plus the state the tests inspect.

    Args:
        api_key: the accepted Bearer key.
    """

    def __init__(self, api_key: str = "KEYsim0123456789") -> None:
        self.api_key = api_key
        self.requests: list[TelnyxRequest] = []
        """Every request received, in order."""
        self.calls: dict[str, SimCall] = {}
        """Known calls by ``call_control_id`` (empty: every id is accepted)."""
        self.url = ""
        """The base URL once started (what ``TelnyxCallControl`` takes as ``base_url``)."""
        self._faults: list[int] = []
        self._runner: web.AppRunner | None = None
        self.app = web.Application()
        self.app.router.add_post("/v2/calls/{call_control_id}/actions/{action}", self._handle)

    def add_call(self, call_control_id: str) -> SimCall:
        """Make the simulator strict about ids, knowing this call (active)."""
        call = self.calls[call_control_id] = SimCall()
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
        auth = request.headers.get("Authorization", "")
        bearer = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        call_id = unquote(request.match_info["call_control_id"])
        action = request.match_info["action"]
        response = self._answer(call_id, action, bearer, body)
        self.requests.append(
            TelnyxRequest(
                request.method, request.raw_path, call_id, action, bearer, body, response.status
            )
        )
        return response

    def _answer(self, call_id: str, action: str, bearer: str | None, body: Any) -> web.Response:
        if bearer != self.api_key:
            return _error(401, "10009", "Authentication failed", "Missing or invalid API key")
        if self._faults:
            status = self._faults.pop(0)
            return _error(status, str(status), "Simulated failure")
        if action not in _ACTIONS:
            return _error(404, "10005", "Resource not found", f"no action {action!r}")
        call = self.calls.get(call_id)
        if self.calls and call is None:
            return _error(404, "10005", "Resource not found", "Call not found")
        if call is not None and not call.active:
            return _error(422, "90018", "Call has already ended")
        if action == "transfer":
            to = body.get("to") if isinstance(body, dict) else None
            if not isinstance(to, str) or not to:
                return _error(422, "10015", "Invalid value for parameter", "to is required")
            if call is not None:
                call.transferred_to = to
        elif call is not None:
            call.active = False
        return web.json_response({"data": {"result": "ok"}})
