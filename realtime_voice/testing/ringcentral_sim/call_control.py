"""The simulator's Call Control: telephony sessions, their parties and the actions on them.

Routes under ``/restapi/v1.0/account/~/telephony/sessions/{id}``: ``GET`` and
``DELETE`` of a session, ``DELETE`` of a party, and a party's ``transfer`` and
``forward``, with docs/RINGCENTRAL.md §3's bodies (exactly one target) and party states
(forward only while ringing, transfer only once answered). Each state change is
announced to every subscribed webhook in the background, as RingCentral does;
`CallControl.wait_delivered` waits for those deliveries.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final, Protocol

from aiohttp import web

from realtime_voice.testing.ringcentral_sim.oauth import TokenIssuer
from realtime_voice.testing.ringcentral_sim.records import SimParty, SimSession, sim_error
from realtime_voice.testing.ringcentral_sim.subscriptions import Subscriptions

__all__ = ["SESSIONS_PATH", "CallControl", "CallSettings"]

SESSIONS_PATH: Final = "/restapi/v1.0/account/~/telephony/sessions"
_TARGETS: Final = ("phoneNumber", "extensionNumber", "voicemail", "parkOrbit")
_RINGING: Final = ("Setup", "Proceeding")
_CONNECTED: Final = ("Answered", "Hold")


class CallSettings(Protocol):
    """How Call Control behaves (`RingCentralSimulator` has these)."""

    auto_sessions: bool
    """Unknown telephony sessions are created (Answered) on first use, not a 404."""
    notify_on_change: bool
    """State changes are announced to subscribed webhooks."""


class CallControl:
    """Telephony sessions by id, their routes, and the announcements of their changes.

    Args:
        auth: checks the access token of every request.
        subscriptions: where state changes are announced.
        settings: read at each request, so a test may change them at any time.
    """

    def __init__(
        self, auth: TokenIssuer, subscriptions: Subscriptions, settings: CallSettings
    ) -> None:
        self._auth = auth
        self._subscriptions = subscriptions
        self._settings = settings
        self.sessions: dict[str, SimSession] = {}
        """Telephony sessions by id."""
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the Call Control routes."""
        base = SESSIONS_PATH + "/{tsid}"
        router.add_get(base, self._get_session)
        router.add_delete(base, self._delete_session)
        router.add_delete(base + "/parties/{pid}", self._drop_party)
        router.add_post(base + "/parties/{pid}/transfer", self._transfer)
        router.add_post(base + "/parties/{pid}/forward", self._forward)

    async def notify(
        self, telephony_session_id: str, status: str, reason: str | None = None
    ) -> list[int]:
        """Set the session's (first) party to ``status`` and announce it now.

        Returns:
            The HTTP status of each delivery (0 where it failed).
        """
        session = self.sessions[telephony_session_id]
        party = next(iter(session.parties.values()))
        party.status, party.reason = status, reason
        return await self._subscriptions.announce(session, party)

    async def wait_delivered(self) -> None:
        """Wait until every change announced so far has been delivered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _session(self, request: web.Request) -> SimSession | web.Response:
        """The addressed session, or the answer that refuses the request."""
        if (denied := self._auth.bearer_error(request)) is not None:
            return denied
        tsid = request.match_info["tsid"]
        session = self.sessions.get(tsid)
        if session is None and self._settings.auto_sessions:
            pid = request.match_info.get("pid") or f"p-{tsid}-1"
            session = SimSession(tsid, {pid: SimParty(pid, "Answered")})
            self.sessions[tsid] = session
        if session is None:
            return sim_error(
                404, "CMN-102", "Resource for parameter [telephonySessionId] is not found"
            )
        return session

    def _party(self, request: web.Request) -> tuple[SimSession, SimParty] | web.Response:
        """The addressed session and party, or the answer that refuses the request."""
        session = self._session(request)
        if isinstance(session, web.Response):
            return session
        party = session.parties.get(request.match_info["pid"])
        if party is None:
            return sim_error(404, "CMN-102", "Resource for parameter [partyId] is not found")
        return session, party

    async def _get_session(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if isinstance(session, web.Response):
            return session
        return web.json_response(
            {
                "id": session.tsid,
                "origin": {"type": "Call"},
                "parties": [p.as_json() for p in session.parties.values()],
            }
        )

    async def _delete_session(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if isinstance(session, web.Response):
            return session
        for party in session.parties.values():
            self._change(session, party, "Disconnected", "CallFinished")
        return web.Response(status=204)

    async def _drop_party(self, request: web.Request) -> web.Response:
        found = self._party(request)
        if isinstance(found, web.Response):
            return found
        session, party = found
        if party.status in ("Disconnected", "Gone"):
            return sim_error(409, "SIM-PartyEnded", "The party has already ended")
        self._change(session, party, "Disconnected", "CallFinished")
        return web.Response(status=204)

    async def _transfer(self, request: web.Request) -> web.Response:
        return await self._move(
            request, allowed=_TARGETS, states=_CONNECTED, reason="BlindTransfer"
        )

    async def _forward(self, request: web.Request) -> web.Response:
        return await self._move(
            request, allowed=_TARGETS[:3], states=_RINGING, reason="CallRedirected"
        )

    async def _move(
        self,
        request: web.Request,
        *,
        allowed: tuple[str, ...],
        states: tuple[str, ...],
        reason: str,
    ) -> web.Response:
        found = self._party(request)
        if isinstance(found, web.Response):
            return found
        session, party = found
        try:
            body = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return sim_error(400, "CMN-101", "Request body is not valid JSON")
        given = [k for k in body if k in _TARGETS] if isinstance(body, dict) else []
        if (
            len(given) != 1
            or given[0] not in allowed
            or not isinstance(body[given[0]], str)
            or (not body[given[0]].strip())
        ):
            return sim_error(
                400,
                "CMN-101",
                f"Exactly one of {', '.join(allowed)} (a non-empty string) is required",
            )
        if party.status not in states:
            return sim_error(
                409,
                "SIM-InvalidState",
                f"Party is {party.status}; this action needs {' or '.join(states)}",
            )
        self._change(session, party, "Disconnected", reason)
        answer = party.as_json()
        return web.json_response(answer)

    def _change(self, session: SimSession, party: SimParty, status: str, reason: str) -> None:
        party.status, party.reason = status, reason
        if self._settings.notify_on_change and self._subscriptions.records:
            # In the background: the answer to this request does not wait for webhooks.
            task = asyncio.get_running_loop().create_task(
                self._subscriptions.announce(session, party)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
