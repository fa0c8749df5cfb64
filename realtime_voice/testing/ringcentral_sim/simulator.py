"""`RingCentralSimulator`: the aiohttp app, its request log and faults, and the test API.

The simulator puts together the OAuth token endpoint (`oauth`), Call Control
(`call_control`) and webhook subscriptions (`subscriptions`) behind one listening
address, logs every request (`RingCentralSimulator.requests`) and can make the token
endpoint or the API fail a given number of times. Its methods are what tests and load
tests drive and inspect.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from realtime_voice.testing.ringcentral_sim.call_control import CallControl
from realtime_voice.testing.ringcentral_sim.devices import Devices
from realtime_voice.testing.ringcentral_sim.oauth import TOKEN_PATH, TokenIssuer
from realtime_voice.testing.ringcentral_sim.records import (
    RecordedRequest,
    SimParty,
    SimSession,
    sim_error,
)
from realtime_voice.testing.ringcentral_sim.subscriptions import Subscriptions

__all__ = ["RingCentralSimulator"]

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Fault:
    remaining: int
    status: int
    retry_after: float | None = None


class RingCentralSimulator:
    """The simulator: an aiohttp app plus the state the tests inspect.

    Args:
        client_id: the accepted ``RC_CLIENT_ID``.
        client_secret: the accepted ``RC_CLIENT_SECRET``.
        jwt: the accepted ``RC_JWT_TOKEN`` assertion.
        token_ttl_s: ``expires_in`` of issued access tokens.
        auto_sessions: unknown telephony sessions are created (Answered) on first use,
            instead of answering 404.
        notify_on_change: announce Call Control state changes to subscribed webhooks.
        clock: monotonic seconds for token expiry (injectable for tests).
    """

    def __init__(
        self,
        *,
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",
        jwt: str = "sim-jwt-assertion",
        token_ttl_s: int = 3600,
        auto_sessions: bool = False,
        notify_on_change: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # The parts read these settings from here at each request (see `Credentials` and
        # `CallSettings`), so a test may change them while the simulator runs.
        self.client_id = client_id
        self.client_secret = client_secret
        self.jwt = jwt
        self.token_ttl_s = token_ttl_s
        self.auto_sessions = auto_sessions
        self.notify_on_change = notify_on_change
        self._auth = TokenIssuer(self, clock)
        self._subscriptions = Subscriptions(self._auth)
        self._calls = CallControl(self._auth, self._subscriptions, self)
        self.devices = Devices(self._auth)
        """Devices and their SIP credentials (``readDeviceSipInfo``)."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in order."""
        self._token_fault: _Fault | None = None
        self._api_fault: _Fault | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""
        """The base URL, once started (``RC_SERVER_URL``)."""
        self.app = self._build_app()

    # ------------------------------------------------------------------ state

    @property
    def sessions(self) -> dict[str, SimSession]:
        """Telephony sessions by id."""
        return self._calls.sessions

    @property
    def subscriptions(self) -> dict[str, dict[str, Any]]:
        """Webhook subscription records by id, as the API returns them."""
        return self._subscriptions.records

    # ------------------------------------------------------------------ control

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns the base URL to use as ``RC_SERVER_URL``."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"
        self._subscriptions.open(self.url)
        return self.url

    async def close(self) -> None:
        """Stop listening and finish pending webhook deliveries."""
        await self._calls.wait_delivered()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self._subscriptions.close()

    async def wait_delivered(self) -> None:
        """Wait until every notification announced so far has been delivered."""
        await self._calls.wait_delivered()

    def fail_token(self, times: int = 1, status: int = 401) -> None:
        """Make the next ``times`` token requests fail with ``status``."""
        self._token_fault = _Fault(times, status)

    def fail_api(self, times: int = 1, status: int = 503, retry_after: float | None = None) -> None:
        """Make the next ``times`` API (non-token) requests fail with ``status``."""
        self._api_fault = _Fault(times, status, retry_after)

    def revoke_tokens(self) -> None:
        """Invalidate every issued access token (the API then answers 401)."""
        self._auth.revoke_all()

    def add_session(
        self,
        telephony_session_id: str,
        party_id: str,
        *,
        status: str = "Answered",
        from_number: str = "+14155550123",
        to_number: str = "+16505550100",
    ) -> SimParty:
        """Create a telephony session with one inbound party."""
        party = SimParty(party_id, status, from_number=from_number, to_number=to_number)
        self.sessions[telephony_session_id] = SimSession(telephony_session_id, {party_id: party})
        return party

    def party(self, telephony_session_id: str, party_id: str) -> SimParty:
        """A party's current state."""
        return self.sessions[telephony_session_id].parties[party_id]

    def requests_to(self, method: str, path_suffix: str) -> list[RecordedRequest]:
        """Logged requests with this method whose path ends with ``path_suffix``."""
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    @property
    def token_requests(self) -> list[RecordedRequest]:
        """Logged token endpoint requests."""
        return self.requests_to("POST", TOKEN_PATH)

    async def notify(
        self, telephony_session_id: str, status: str, reason: str | None = None
    ) -> list[int]:
        """Set the session's (first) party to ``status`` and post the notification to
        every active subscription, as RingCentral would. Returns the HTTP statuses."""
        return await self._calls.notify(telephony_session_id, status, reason)

    # ------------------------------------------------------------------ app

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._faults], client_max_size=1 << 20)
        app.router.add_post(TOKEN_PATH, self._auth.token)
        self._calls.add_routes(app.router)
        self._subscriptions.add_routes(app.router)
        self.devices.add_routes(app.router)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        body = await request.read()
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        self.requests.append(
            RecordedRequest(
                request.method,
                request.rel_url.raw_path,
                dict(request.headers),
                body,
                response.status,
                bearer,
            )
        )
        return response

    @web.middleware
    async def _faults(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        is_token = request.path == TOKEN_PATH
        fault = self._token_fault if is_token else self._api_fault
        if fault is not None and fault.remaining > 0:
            fault.remaining -= 1
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            if is_token and fault.status == 401:
                return web.json_response(
                    {"error": "invalid_client", "error_description": "simulated refusal"},
                    status=401,
                )
            response = sim_error(fault.status, f"SIM-{fault.status}", "simulated fault")
            response.headers.update(headers)
            return response
        return await handler(request)
