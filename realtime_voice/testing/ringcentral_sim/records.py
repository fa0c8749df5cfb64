"""Records and error bodies of the RingCentral REST simulator (`ringcentral_sim`).

The state the simulator keeps and the tests inspect (`RecordedRequest`, `SimParty`,
`SimSession`) and the helpers that shape its answers as RingCentral's (`now_iso`,
`sim_error`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

__all__ = ["RecordedRequest", "SimParty", "SimSession", "now_iso", "sim_error"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator received.

    Attributes:
        method: HTTP method.
        path: URL path as sent (percent escapes kept).
        headers: request headers (last value per name).
        body: raw body.
        status: the status the simulator answered.
        bearer: the ``Authorization: Bearer`` token, if any.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    bearer: str | None

    def json(self) -> Any:
        """The body parsed as JSON (None when not JSON)."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    def form(self) -> dict[str, str]:
        """The body parsed as an urlencoded form."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace")))


@dataclass
class SimParty:
    """A party of a simulated telephony session.

    Attributes:
        party_id: its id.
        status: its status code.
        reason: its end reason.
        direction: ``Inbound`` or ``Outbound``.
        from_number: caller.
        to_number: dialled number.
    """

    party_id: str
    status: str = "Proceeding"
    reason: str | None = None
    direction: str = "Inbound"
    from_number: str = "+14155550123"
    to_number: str = "+16505550100"

    def as_json(self) -> dict[str, Any]:
        """The party in RingCentral's CallParty shape."""
        status: dict[str, Any] = {"code": self.status, "rcc": False}
        if self.reason is not None:
            status["reason"] = self.reason
        return {
            "id": self.party_id,
            "direction": self.direction,
            "from": {"phoneNumber": self.from_number},
            "to": {"phoneNumber": self.to_number},
            "status": status,
            "missedCall": False,
            "standAlone": False,
            "muted": False,
        }


@dataclass
class SimSession:
    """A simulated telephony session.

    Attributes:
        tsid: its ``telephonySessionId``.
        parties: its parties by id.
        sequence: numbers its notifications (``body.sequence``), from 1.
    """

    tsid: str
    parties: dict[str, SimParty]
    sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def now_iso(offset_s: float = 0.0) -> str:
    """The current UTC time (plus ``offset_s``) in RingCentral's ISO 8601 form."""
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sim_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """An error answer in RingCentral's shape (``errorCode``, ``message``, ``errors``)."""
    error: dict[str, Any] = {"errorCode": code, "message": message, **extra}
    return web.json_response(
        {"errorCode": code, "message": message, "errors": [error]}, status=status
    )
