"""RingCentral Call Control: the calls a voice bot needs (docs/RINGCENTRAL.md §3).

All paths are under ``/restapi/v1.0/account/~/telephony/sessions/{telephonySessionId}``:

- `CallControlClient.transfer`: ``POST .../parties/{partyId}/transfer`` (an answered party),
- `CallControlClient.forward`: ``POST .../parties/{partyId}/forward`` (a ringing party),
- `CallControlClient.hangup`: ``DELETE .../parties/{partyId}`` (drop our party),
- `CallControlClient.end_session`: ``DELETE`` the whole session,
- `CallControlClient.get_session`: ``GET`` the session and its parties.

Transfer and forward bodies carry exactly one target field. Errors arrive as the
`realtime_voice.ringcentral.errors` tree; a retried transfer whose first attempt did go
through fails on the second with a 4xx, never transfers twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ai_pipeline.responder import TransferTarget
from realtime_voice.ringcentral.client import RingCentralClient

__all__ = ["SESSIONS_PATH", "CallControlClient", "CallTarget"]

SESSIONS_PATH = "/restapi/v1.0/account/~/telephony/sessions"


@dataclass(frozen=True)
class CallTarget:
    """Where a call goes: exactly one of the four RingCentral target kinds.

    Attributes:
        phone_number: an E.164 number.
        extension_number: a short extension number such as ``104``.
        voicemail: an extension id whose voicemail takes the call.
        park_orbit: a park location id (transfer only).
    """

    phone_number: str | None = None
    extension_number: str | None = None
    voicemail: str | None = None
    park_orbit: str | None = None

    def __post_init__(self) -> None:
        given = [v for v in self._fields().values() if v is not None]
        if len(given) != 1:
            raise ValueError(
                "CallTarget needs exactly one of phone_number, extension_number, "
                "voicemail, park_orbit"
            )
        if not given[0].strip():
            raise ValueError("CallTarget value must not be empty")

    @classmethod
    def of(cls, target: CallTarget | TransferTarget) -> CallTarget:
        """A `CallTarget` from the responder's `TransferTarget` (or itself)."""
        if isinstance(target, CallTarget):
            return target
        return cls(phone_number=target.phone_number, extension_number=target.extension_number)

    def as_wire(self) -> dict[str, str]:
        """The request body: ``{"phoneNumber": ...}`` or one of the other three."""
        return {k: v for k, v in self._fields().items() if v is not None}

    def _fields(self) -> dict[str, str | None]:
        return {
            "phoneNumber": self.phone_number,
            "extensionNumber": self.extension_number,
            "voicemail": self.voicemail,
            "parkOrbit": self.park_orbit,
        }


class CallControlClient:
    """Call Control requests through one authenticated `RingCentralClient`.

    Args:
        client: the REST client (token, retries, timeouts, error translation).
    """

    def __init__(self, client: RingCentralClient) -> None:
        self._client = client

    async def transfer(
        self,
        telephony_session_id: str,
        party_id: str,
        target: CallTarget | TransferTarget,
    ) -> dict[str, Any]:
        """Blind-transfer an answered party.

        Returns:
            The party as RingCentral describes it after the request.

        Raises:
            RingCentralError: see `RingCentralClient.request`.
        """
        path = f"{self._party(telephony_session_id, party_id)}/transfer"
        body = CallTarget.of(target).as_wire()
        return _object(await self._client.request("POST", path, json_body=body))

    async def forward(
        self,
        telephony_session_id: str,
        party_id: str,
        target: CallTarget | TransferTarget,
    ) -> dict[str, Any]:
        """Send a ringing (not yet answered) party elsewhere.

        Raises:
            ValueError: a park orbit target (forward does not take one).
            RingCentralError: see `RingCentralClient.request`.
        """
        wire = CallTarget.of(target)
        if wire.park_orbit is not None:
            raise ValueError("forward takes a phone number, an extension or a voicemail")
        path = f"{self._party(telephony_session_id, party_id)}/forward"
        return _object(await self._client.request("POST", path, json_body=wire.as_wire()))

    async def hangup(self, telephony_session_id: str, party_id: str) -> None:
        """Drop our party from the call (the caller hears the call end).

        Raises:
            RingCentralError: see `RingCentralClient.request`.
        """
        await self._client.request("DELETE", self._party(telephony_session_id, party_id))

    async def end_session(self, telephony_session_id: str) -> None:
        """End the whole telephony session, every party included.

        Raises:
            RingCentralError: see `RingCentralClient.request`.
        """
        await self._client.request("DELETE", _session(telephony_session_id))

    async def get_session(self, telephony_session_id: str) -> dict[str, Any]:
        """The session with its parties and their statuses.

        Raises:
            RingCentralError: see `RingCentralClient.request`.
        """
        return _object(await self._client.request("GET", _session(telephony_session_id)))

    @staticmethod
    def _party(telephony_session_id: str, party_id: str) -> str:
        return f"{_session(telephony_session_id)}/parties/{_segment(party_id, 'party_id')}"


def _session(telephony_session_id: str) -> str:
    return f"{SESSIONS_PATH}/{_segment(telephony_session_id, 'telephony_session_id')}"


def _segment(value: str, name: str) -> str:
    if not value or not value.strip():
        raise ValueError(f"{name} must not be empty")
    # Ids are opaque: escape everything so an odd id cannot change the path.
    return quote(value, safe="")


def _object(doc: Any) -> dict[str, Any]:
    return doc if isinstance(doc, dict) else {}
