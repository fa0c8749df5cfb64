"""The simulator's webhook subscriptions and the notifications it delivers to them.

``/restapi/v1.0/subscription``: create, list, get and delete. Create checks the body as
RingCentral does (event filters, a ``WebHook`` delivery mode with an http(s) address,
an optional verification token, ``expiresIn``), then performs the Validation-Token
handshake against the address (`ringcentral_notify.validate_webhook`) and refuses with
``SUB-525`` when the webhook answers it wrongly. `Subscriptions.announce` posts a
telephony session notification to every active subscription, with its verification
token, as RingCentral would.
"""

from __future__ import annotations

import json
import logging
import uuid as uuidlib
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from realtime_voice.testing.ringcentral_notify import (
    post_notification,
    telephony_notification,
    validate_webhook,
)
from realtime_voice.testing.ringcentral_sim.oauth import TokenIssuer
from realtime_voice.testing.ringcentral_sim.records import (
    SimParty,
    SimSession,
    now_iso,
    sim_error,
)

__all__ = ["SUBSCRIPTION_PATH", "Subscriptions"]

log = logging.getLogger(__name__)

SUBSCRIPTION_PATH: Final = "/restapi/v1.0/subscription"


class Subscriptions:
    """Webhook subscriptions by id, their routes, and delivery to them.

    Args:
        auth: checks the access token of every request.
    """

    def __init__(self, auth: TokenIssuer) -> None:
        self._auth = auth
        self.records: dict[str, dict[str, Any]] = {}
        """Subscription records by id, as the API returns them."""
        self._verification: dict[str, str | None] = {}
        self._http: aiohttp.ClientSession | None = None
        self._base_url = ""

    def open(self, base_url: str) -> None:
        """Start delivering (one HTTP client for every webhook); ``base_url`` is the sim's."""
        self._http = aiohttp.ClientSession()
        self._base_url = base_url

    async def close(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the subscription routes."""
        router.add_post(SUBSCRIPTION_PATH, self._create)
        router.add_get(SUBSCRIPTION_PATH, self._list)
        router.add_get(SUBSCRIPTION_PATH + "/{sid}", self._get)
        router.add_delete(SUBSCRIPTION_PATH + "/{sid}", self._delete)

    async def announce(self, session: SimSession, party: SimParty) -> list[int]:
        """Post ``party``'s state to every active subscription; the HTTP statuses (0: failed).

        Raises:
            RuntimeError: `open` was not called (the simulator was not started).
        """
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
        for sid, record in list(self.records.items()):
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

    async def _create(self, request: web.Request) -> web.Response:
        if (denied := self._auth.bearer_error(request)) is not None:
            return denied
        try:
            body = json.loads(await request.read())
        except (UnicodeDecodeError, json.JSONDecodeError):
            return sim_error(400, "CMN-101", "Request body is not valid JSON")
        if not isinstance(body, dict):
            return sim_error(400, "CMN-101", "Request body must be an object")
        filters = body.get("eventFilters")
        if (
            not isinstance(filters, list)
            or not filters
            or not all(isinstance(f, str) and f.startswith("/restapi/") for f in filters)
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
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int)
            or not (0 < expires_in <= 630_720_000)
        ):
            return sim_error(400, "CMN-101", "Parameter [expiresIn] value is invalid")
        assert isinstance(address, str)
        handshake = await validate_webhook(address)
        if not handshake.ok:
            log.info("webhook handshake failed: %s", "; ".join(handshake.problems))
            return sim_error(
                400,
                "SUB-525",
                "WebHook server response is invalid",
                problems=handshake.problems,
            )
        sid = str(uuidlib.uuid4())
        record = {
            "uri": f"{self._base_url}{SUBSCRIPTION_PATH}/{sid}",
            "id": sid,
            "creationTime": now_iso(),
            "status": "Active",
            "eventFilters": filters,
            "expirationTime": now_iso(expires_in),
            "expiresIn": expires_in,
            "deliveryMode": {"transportType": "WebHook", "encryption": False, "address": address},
        }
        self.records[sid] = record
        self._verification[sid] = token
        return web.json_response(record)

    async def _list(self, request: web.Request) -> web.Response:
        if (denied := self._auth.bearer_error(request)) is not None:
            return denied
        return web.json_response(
            {"uri": f"{self._base_url}{SUBSCRIPTION_PATH}", "records": list(self.records.values())}
        )

    async def _get(self, request: web.Request) -> web.Response:
        if (denied := self._auth.bearer_error(request)) is not None:
            return denied
        record = self.records.get(request.match_info["sid"])
        if record is None:
            return sim_error(404, "CMN-102", "Resource for parameter [subscriptionId] is not found")
        return web.json_response(record)

    async def _delete(self, request: web.Request) -> web.Response:
        if (denied := self._auth.bearer_error(request)) is not None:
            return denied
        sid = request.match_info["sid"]
        if self.records.pop(sid, None) is None:
            return sim_error(404, "CMN-102", "Resource for parameter [subscriptionId] is not found")
        self._verification.pop(sid, None)
        return web.Response(status=204)
