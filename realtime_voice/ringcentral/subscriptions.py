"""Webhook subscriptions: the set-up step that makes RingCentral call our webhook.

``POST /restapi/v1.0/subscription`` with event filters and a WebHook delivery mode
(docs/RINGCENTRAL.md §1.1). While that request is in flight RingCentral performs the
Validation-Token handshake against the address, so the server must already be reachable
there; a failed handshake comes back as the request's error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from realtime_voice.ringcentral.client import RingCentralClient

__all__ = [
    "MAX_WEBHOOK_EXPIRES_IN",
    "SUBSCRIPTION_PATH",
    "Subscription",
    "SubscriptionClient",
    "inbound_telephony_filter",
]

SUBSCRIPTION_PATH = "/restapi/v1.0/subscription"
MAX_WEBHOOK_EXPIRES_IN = 630_720_000
"""The longest WebHook subscription lifetime RingCentral allows (20 years, in seconds)."""


def inbound_telephony_filter(*, account_wide: bool = False) -> str:
    """The event filter for inbound telephony session events.

    Args:
        account_wide: every extension of the account, instead of the authorised
            extension only (the bot's own).
    """
    scope = "/restapi/v1.0/account/~" + ("" if account_wide else "/extension/~")
    return f"{scope}/telephony/sessions?direction=Inbound"


@dataclass(frozen=True)
class Subscription:
    """A subscription as RingCentral describes it.

    Attributes:
        id: the subscription id.
        status: ``Active``, ``Suspended``, ``Blacklisted``, ...
        event_filters: the filters.
        transport_type: ``WebHook`` for ours.
        address: where notifications go.
        expiration_time: ISO 8601 end of life.
        expires_in: seconds left, as reported.
        creation_time: ISO 8601 creation.
        blacklisted_reason: why it was blacklisted, when it was.
    """

    id: str
    status: str
    event_filters: tuple[str, ...]
    transport_type: str
    address: str
    expiration_time: str
    expires_in: int | None
    creation_time: str
    blacklisted_reason: str | None = None

    @classmethod
    def from_json(cls, doc: Any) -> Subscription:
        """Parse one subscription record.

        Raises:
            ValueError: the record has no ``id``.
        """
        if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
            raise ValueError("subscription record without an id")
        raw_delivery = doc.get("deliveryMode")
        delivery: dict[str, Any] = raw_delivery if isinstance(raw_delivery, dict) else {}
        blacklisted = doc.get("blacklistedData")
        filters = doc.get("eventFilters")
        expires_in = doc.get("expiresIn")
        return cls(
            id=doc["id"],
            status=str(doc.get("status", "")),
            event_filters=tuple(str(f) for f in filters) if isinstance(filters, list) else (),
            transport_type=str(delivery.get("transportType", "")),
            address=str(delivery.get("address", "")),
            expiration_time=str(doc.get("expirationTime", "")),
            expires_in=expires_in if isinstance(expires_in, int) else None,
            creation_time=str(doc.get("creationTime", "")),
            blacklisted_reason=(
                str(blacklisted.get("reason", "")) if isinstance(blacklisted, dict) else None
            ),
        )


class SubscriptionClient:
    """Create, list and delete webhook subscriptions.

    Args:
        client: the authenticated REST client.
    """

    def __init__(self, client: RingCentralClient) -> None:
        self._client = client

    async def create(
        self,
        address: str,
        verification_token: str,
        *,
        event_filters: tuple[str, ...] | None = None,
        expires_in: int = MAX_WEBHOOK_EXPIRES_IN,
    ) -> Subscription:
        """Subscribe ``address`` to inbound telephony session events.

        Args:
            address: the public webhook URL (``https://.../api/ringcentral/webhook``).
            verification_token: sent back in every notification's ``Verification-Token``.
            event_filters: defaults to the bot extension's inbound telephony sessions.
            expires_in: lifetime in seconds (1 to 20 years' worth).

        Raises:
            ValueError: an empty token or a lifetime out of range.
            RingCentralApiError: refused, e.g. ``SUB-525`` when the handshake failed.
        """
        if not verification_token:
            raise ValueError("a verification token is required")
        if not 0 < expires_in <= MAX_WEBHOOK_EXPIRES_IN:
            raise ValueError(f"expires_in must be 1..{MAX_WEBHOOK_EXPIRES_IN} seconds")
        body = {
            "eventFilters": list(event_filters or (inbound_telephony_filter(),)),
            "deliveryMode": {
                "transportType": "WebHook",
                "address": address,
                "verificationToken": verification_token,
            },
            "expiresIn": expires_in,
        }
        return Subscription.from_json(
            await self._client.request("POST", SUBSCRIPTION_PATH, json_body=body)
        )

    async def list_all(self) -> list[Subscription]:
        """Every subscription of this application and user."""
        doc = await self._client.request("GET", SUBSCRIPTION_PATH)
        records = doc.get("records") if isinstance(doc, dict) else None
        if not isinstance(records, list):
            return []
        return [Subscription.from_json(r) for r in records if isinstance(r, dict) and "id" in r]

    async def get(self, subscription_id: str) -> Subscription:
        """One subscription.

        Raises:
            RingCentralApiError: 404 when it does not exist.
        """
        doc = await self._client.request("GET", self._path(subscription_id))
        return Subscription.from_json(doc)

    async def delete(self, subscription_id: str) -> None:
        """Delete a subscription.

        Raises:
            RingCentralApiError: 404 when it does not exist.
        """
        await self._client.request("DELETE", self._path(subscription_id))

    @staticmethod
    def _path(subscription_id: str) -> str:
        if not subscription_id.strip():
            raise ValueError("subscription id must not be empty")
        return f"{SUBSCRIPTION_PATH}/{quote(subscription_id, safe='')}"
