"""A local RingCentral REST simulator: OAuth, Call Control and webhook subscriptions.

It stands in for ``platform.ringcentral.com`` so the real client code
(`realtime_voice.ringcentral`) can be tested and load-tested without an account:

- ``POST /restapi/oauth/token``: the JWT-bearer grant, checking HTTP Basic client
  credentials and the assertion; access tokens expire after ``token_ttl_s``.
- Call Control under ``/restapi/v1.0/account/~/telephony/sessions/{id}``: ``GET``,
  ``DELETE``, ``parties/{id}`` ``DELETE``, ``parties/{id}/transfer`` and ``/forward``,
  with RINGCENTRAL.md §3's bodies (exactly one target) and party states (forward only
  while ringing, transfer only once answered). A state change is announced to every
  subscribed webhook, as RingCentral does.
- ``/restapi/v1.0/subscription``: create (performing the Validation-Token handshake
  against the address first, failing with ``SUB-525`` as RingCentral does), list, get,
  delete.
- Every request is logged (`RingCentralSimulator.requests`) for assertions, and fault
  knobs make the token endpoint or the API fail a given number of times.

Error bodies use RingCentral's shape (``errorCode``, ``message``, ``errors``). Where the
real error code for a condition is not documented in our references, the simulator uses
its own ``SIM-...`` code rather than invent a RingCentral one.

``realtime-voice simulate ringcentral`` runs it on its own (see `add_arguments`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hmac
import itertools
import json
import logging
import secrets
import signal
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from realtime_voice.testing.ringcentral_notify import (
    post_notification,
    telephony_notification,
    validate_webhook,
)
from realtime_voice.testing.ringcentral_sim_records import (
    RecordedRequest,
    SimParty,
    now_iso,
    sim_error,
)

__all__ = [
    "RecordedRequest",
    "RingCentralSimulator",
    "SimParty",
    "add_arguments",
    "run",
]

log = logging.getLogger(__name__)

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_SESSIONS = "/restapi/v1.0/account/~/telephony/sessions"
_SUBSCRIPTION = "/restapi/v1.0/subscription"
_TARGETS = ("phoneNumber", "extensionNumber", "voicemail", "parkOrbit")
_RINGING = ("Setup", "Proceeding")
_CONNECTED = ("Answered", "Hold")


@dataclass
class _SimSession:
    tsid: str
    parties: dict[str, SimParty]
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


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
        self.client_id = client_id
        self.client_secret = client_secret
        self.jwt = jwt
        self.token_ttl_s = token_ttl_s
        self.auto_sessions = auto_sessions
        self.notify_on_change = notify_on_change
        self._clock = clock
        self.requests: list[RecordedRequest] = []
        self.sessions: dict[str, _SimSession] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self._verification: dict[str, str | None] = {}
        self._tokens: dict[str, float] = {}
        self._token_fault: _Fault | None = None
        self._api_fault: _Fault | None = None
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.url = ""
        self.app = self._build_app()

    # ------------------------------------------------------------------ control

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns the base URL to use as ``RC_SERVER_URL``."""
        self._http = aiohttp.ClientSession()
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"http://{host}:{bound}"
        return self.url

    async def close(self) -> None:
        """Stop listening and finish pending webhook deliveries."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def wait_delivered(self) -> None:
        """Wait until every notification announced so far has been delivered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def fail_token(self, times: int = 1, status: int = 401) -> None:
        """Make the next ``times`` token requests fail with ``status``."""
        self._token_fault = _Fault(times, status)

    def fail_api(self, times: int = 1, status: int = 503, retry_after: float | None = None) -> None:
        """Make the next ``times`` API (non-token) requests fail with ``status``."""
        self._api_fault = _Fault(times, status, retry_after)

    def revoke_tokens(self) -> None:
        """Invalidate every issued access token (the API then answers 401)."""
        self._tokens.clear()

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
        self.sessions[telephony_session_id] = _SimSession(
            telephony_session_id, {party_id: party}
        )
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
        return self.requests_to("POST", "/restapi/oauth/token")

    async def notify(
        self, telephony_session_id: str, status: str, reason: str | None = None
    ) -> list[int]:
        """Set the session's (first) party to ``status`` and post the notification to
        every active subscription, as RingCentral would. Returns the HTTP statuses."""
        session = self.sessions[telephony_session_id]
        party = next(iter(session.parties.values()))
        party.status, party.reason = status, reason
        return await self._announce(session, party)

    # ------------------------------------------------------------------ app

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record, self._faults], client_max_size=1 << 20)
        app.router.add_post("/restapi/oauth/token", self._token)
        base = _SESSIONS + "/{tsid}"
        app.router.add_get(base, self._get_session)
        app.router.add_delete(base, self._delete_session)
        app.router.add_delete(base + "/parties/{pid}", self._drop_party)
        app.router.add_post(base + "/parties/{pid}/transfer", self._transfer)
        app.router.add_post(base + "/parties/{pid}/forward", self._forward)
        app.router.add_post(_SUBSCRIPTION, self._create_subscription)
        app.router.add_get(_SUBSCRIPTION, self._list_subscriptions)
        app.router.add_get(_SUBSCRIPTION + "/{sid}", self._get_subscription)
        app.router.add_delete(_SUBSCRIPTION + "/{sid}", self._delete_subscription)
        return app

    @web.middleware
    async def _record(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        body = await request.read()
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        self.requests.append(
            RecordedRequest(
                request.method, request.rel_url.raw_path, dict(request.headers), body,
                response.status, bearer,
            )
        )
        return response

    @web.middleware
    async def _faults(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        is_token = request.path == "/restapi/oauth/token"
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

    # ------------------------------------------------------------------ OAuth

    async def _token(self, request: web.Request) -> web.Response:
        if not self._basic_auth_ok(request.headers.get("Authorization", "")):
            return web.json_response(
                {"error": "invalid_client", "error_description": "Invalid client credentials"},
                status=401,
            )
        form = await request.post()
        grant = form.get("grant_type")
        if grant != JWT_BEARER_GRANT:
            return web.json_response(
                {"error": "unsupported_grant_type", "error_description": f"{grant!r}"},
                status=400,
            )
        assertion = form.get("assertion")
        if not isinstance(assertion, str) or not hmac.compare_digest(
            assertion.encode(), self.jwt.encode()
        ):
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT assertion"},
                status=400,
            )
        token = "sim-at-" + secrets.token_urlsafe(18)
        self._tokens[token] = self._clock() + self.token_ttl_s
        return web.json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.token_ttl_s,
                "refresh_token": "sim-rt-" + secrets.token_urlsafe(18),
                "refresh_token_expires_in": 604800,
                "scope": "CallControl ReadAccounts WebhookSubscriptions",
                "owner_id": "684351005",
                "endpoint_id": "sim-endpoint",
            }
        )

    def _basic_auth_ok(self, header: str) -> bool:
        if not header.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        given_id, _, given_secret = decoded.partition(":")
        return hmac.compare_digest(given_id.encode(), self.client_id.encode()) and (
            hmac.compare_digest(given_secret.encode(), self.client_secret.encode())
        )

    def _bearer_error(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        expiry = self._tokens.get(token)
        if expiry is None:
            return sim_error(401, "SIM-TokenInvalid", "Access token is missing or unknown")
        if self._clock() >= expiry:
            return sim_error(401, "SIM-TokenExpired", "Access token expired")
        return None

    # ------------------------------------------------------------------ Call Control

    def _find(self, request: web.Request) -> tuple[_SimSession | None, web.Response | None]:
        tsid = request.match_info["tsid"]
        session = self.sessions.get(tsid)
        if session is None and self.auto_sessions:
            pid = request.match_info.get("pid") or f"p-{tsid}-1"
            self.add_session(tsid, pid)
            session = self.sessions[tsid]
        if session is None:
            return None, sim_error(
                404, "CMN-102", "Resource for parameter [telephonySessionId] is not found"
            )
        return session, None

    def _find_party(
        self, request: web.Request
    ) -> tuple[_SimSession | None, SimParty | None, web.Response | None]:
        session, error = self._find(request)
        if session is None:
            return None, None, error
        party = session.parties.get(request.match_info["pid"])
        if party is None:
            return session, None, sim_error(
                404, "CMN-102", "Resource for parameter [partyId] is not found"
            )
        return session, party, None

    async def _get_session(self, request: web.Request) -> web.Response:
        if (denied := self._bearer_error(request)) is not None:
            return denied
        session, error = self._find(request)
        if session is None:
            assert error is not None
            return error
        return web.json_response(
            {
                "id": session.tsid,
                "origin": {"type": "Call"},
                "parties": [p.as_json() for p in session.parties.values()],
            }
        )

    async def _delete_session(self, request: web.Request) -> web.Response:
        if (denied := self._bearer_error(request)) is not None:
            return denied
        session, error = self._find(request)
        if session is None:
            assert error is not None
            return error
        for party in session.parties.values():
            self._change(session, party, "Disconnected", "CallFinished")
        return web.Response(status=204)

    async def _drop_party(self, request: web.Request) -> web.Response:
        if (denied := self._bearer_error(request)) is not None:
            return denied
        session, party, error = self._find_party(request)
        if session is None or party is None:
            assert error is not None
            return error
        if party.status in ("Disconnected", "Gone"):
            return sim_error(409, "SIM-PartyEnded", "The party has already ended")
        self._change(session, party, "Disconnected", "CallFinished")
        return web.Response(status=204)

    async def _transfer(self, request: web.Request) -> web.Response:
        return await self._move(request, allowed=_TARGETS, states=_CONNECTED,
                                reason="BlindTransfer")

    async def _forward(self, request: web.Request) -> web.Response:
        return await self._move(request, allowed=_TARGETS[:3], states=_RINGING,
                                reason="CallRedirected")

    async def _move(
        self, request: web.Request, *, allowed: tuple[str, ...], states: tuple[str, ...],
        reason: str,
    ) -> web.Response:
        if (denied := self._bearer_error(request)) is not None:
            return denied
        session, party, error = self._find_party(request)
        if session is None or party is None:
            assert error is not None
            return error
        try:
            body = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return sim_error(400, "CMN-101", "Request body is not valid JSON")
        given = [k for k in body if k in _TARGETS] if isinstance(body, dict) else []
        if len(given) != 1 or given[0] not in allowed or not isinstance(body[given[0]], str) or (
            not body[given[0]].strip()
        ):
            return sim_error(
                400, "CMN-101",
                f"Exactly one of {', '.join(allowed)} (a non-empty string) is required",
            )
        if party.status not in states:
            return sim_error(
                409, "SIM-InvalidState",
                f"Party is {party.status}; this action needs {' or '.join(states)}",
            )
        self._change(session, party, "Disconnected", reason)
        answer = party.as_json()
        return web.json_response(answer)

    def _change(self, session: _SimSession, party: SimParty, status: str, reason: str) -> None:
        party.status, party.reason = status, reason
        if self.notify_on_change and self.subscriptions:
            task = asyncio.get_running_loop().create_task(self._announce(session, party))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _announce(self, session: _SimSession, party: SimParty) -> list[int]:
        note = telephony_notification(
            telephony_session_id=session.tsid,
            party_id=party.party_id,
            sequence=next(session.sequence),
            status=party.status,
            reason=party.reason,
            from_number=party.from_number,
            to_number=party.to_number,
            direction=party.direction,
        )
        statuses: list[int] = []
        http = self._http
        if http is None:
            raise RuntimeError("start the simulator before notifying")
        for sid, record in list(self.subscriptions.items()):
            if record["status"] != "Active":
                continue
            note["subscriptionId"] = sid
            address = record["deliveryMode"]["address"]
            try:
                statuses.append(
                    await post_notification(
                        http, address, note, self._verification.get(sid), timeout_s=3.0
                    )
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("notification to subscription %s failed: %s", sid, exc)
                statuses.append(0)
        return statuses

    # ------------------------------------------------------------------ subscriptions

    async def _create_subscription(self, request: web.Request) -> web.Response:
        if (denied := self._bearer_error(request)) is not None:
            return denied
        try:
            body = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return sim_error(400, "CMN-101", "Request body is not valid JSON")
        if not isinstance(body, dict):
            return sim_error(400, "CMN-101", "Request body must be an object")
        filters = body.get("eventFilters")
        if not isinstance(filters, list) or not filters or not all(
            isinstance(f, str) and f.startswith("/restapi/") for f in filters
        ):
            return sim_error(400, "CMN-101", "Parameter [eventFilters] value is invalid")
        delivery = body.get("deliveryMode")
        if not isinstance(delivery, dict) or delivery.get("transportType") != "WebHook":
            return sim_error(400, "CMN-101", "Parameter [deliveryMode.transportType] is invalid")
        address = delivery.get("address")
        parts = urlsplit(address) if isinstance(address, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            return sim_error(400, "CMN-101", "Parameter [deliveryMode.address] value is invalid")
        token = delivery.get("verificationToken")
        if token is not None and not isinstance(token, str):
            return sim_error(
                400, "CMN-101", "Parameter [deliveryMode.verificationToken] is invalid"
            )
        expires_in = body.get("expiresIn", 604800)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int) or not (
            0 < expires_in <= 630_720_000
        ):
            return sim_error(400, "CMN-101", "Parameter [expiresIn] value is invalid")
        assert isinstance(address, str)
        handshake = await validate_webhook(address)
        if not handshake.ok:
            log.info("webhook handshake failed: %s", "; ".join(handshake.problems))
            return sim_error(
                400, "SUB-525", "WebHook server response is invalid",
                problems=handshake.problems,
            )
        sid = str(uuidlib.uuid4())
        record = {
            "uri": f"{self.url}{_SUBSCRIPTION}/{sid}",
            "id": sid,
            "creationTime": now_iso(),
            "status": "Active",
            "eventFilters": filters,
            "expirationTime": now_iso(expires_in),
            "expiresIn": expires_in,
            "deliveryMode": {"transportType": "WebHook", "encryption": False,
                             "address": address},
        }
        self.subscriptions[sid] = record
        self._verification[sid] = token
        return web.json_response(record)

    async def _list_subscriptions(self, request: web.Request) -> web.Response:
        if (denied := self._bearer_error(request)) is not None:
            return denied
        return web.json_response(
            {"uri": f"{self.url}{_SUBSCRIPTION}", "records": list(self.subscriptions.values())}
        )

    async def _get_subscription(self, request: web.Request) -> web.Response:
        if (denied := self._bearer_error(request)) is not None:
            return denied
        record = self.subscriptions.get(request.match_info["sid"])
        if record is None:
            return sim_error(404, "CMN-102", "Resource for parameter [subscriptionId] is not found")
        return web.json_response(record)

    async def _delete_subscription(self, request: web.Request) -> web.Response:
        if (denied := self._bearer_error(request)) is not None:
            return denied
        sid = request.match_info["sid"]
        if self.subscriptions.pop(sid, None) is None:
            return sim_error(404, "CMN-102", "Resource for parameter [subscriptionId] is not found")
        self._verification.pop(sid, None)
        return web.Response(status=204)


# ---------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``realtime-voice simulate ringcentral``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    parser.add_argument("--client-id", default="sim-client-id", help="accepted RC_CLIENT_ID")
    parser.add_argument(
        "--client-secret", default="sim-client-secret", help="accepted RC_CLIENT_SECRET"
    )
    parser.add_argument("--jwt", default="sim-jwt-assertion", help="accepted RC_JWT_TOKEN")
    parser.add_argument(
        "--token-ttl", type=int, default=3600, help="access token lifetime in seconds"
    )
    parser.add_argument(
        "--strict-sessions",
        action="store_true",
        help="answer 404 for telephony sessions it was not told about (default: create them)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C or SIGTERM."""

    async def main() -> None:
        sim = RingCentralSimulator(
            client_id=args.client_id,
            client_secret=args.client_secret,
            jwt=args.jwt,
            token_ttl_s=args.token_ttl,
            auto_sessions=not args.strict_sessions,
        )
        url = await sim.start(args.host, args.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        print(
            f"RingCentral simulator on {url}\n"
            f"  RC_SERVER_URL={url} RC_CLIENT_ID={args.client_id} "
            f"RC_CLIENT_SECRET={args.client_secret} RC_JWT_TOKEN={args.jwt}\n"
            "Ctrl-C to stop.",
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await sim.close()

    try:
        asyncio.run(main())
    except OSError as exc:
        print(f"realtime-voice simulate ringcentral: {exc}")
        return 1
    return 0
