"""RingCentral Call Control for calls the notifications webhook has seen.

The calls and their bodies: docs/RINGCENTRAL.md §3.
"""

from __future__ import annotations

import logging

from ai_pipeline.responder import TransferTarget
from realtime_voice.ringcentral.call_control import CallControlClient
from realtime_voice.ringcentral.errors import RingCentralError
from realtime_voice.ringcentral.legs import TelephonyLegs

__all__ = ["RingCentralPlatformControl"]

log = logging.getLogger(__name__)


class RingCentralPlatformControl:
    """RingCentral Call Control for calls the notifications webhook has seen.

    Args:
        legs: knows the telephony session and party of each call (the notifications
            webhook).
        client: the Call Control client (one per process).
    """

    def __init__(self, legs: TelephonyLegs, client: CallControlClient) -> None:
        self._legs = legs
        self._client = client

    async def transfer(self, call_id: str, target: TransferTarget) -> bool:
        """Blind transfer when answered; forward while still ringing."""
        leg = self._legs.leg_for_call(call_id)
        if leg is None:
            return False
        try:
            if leg.status_code in ("Setup", "Proceeding"):
                await self._client.forward(leg.telephony_session_id, leg.party_id, target)
            else:
                await self._client.transfer(leg.telephony_session_id, leg.party_id, target)
        except RingCentralError as exc:
            log.error("RingCentral transfer failed: %s", exc)
            return False
        log.info("RingCentral transferred the caller")
        return True

    async def hangup(self, call_id: str) -> bool:
        """Drop our party."""
        leg = self._legs.leg_for_call(call_id)
        if leg is None:
            return False
        try:
            await self._client.hangup(leg.telephony_session_id, leg.party_id)
        except RingCentralError as exc:
            log.error("RingCentral hang-up failed: %s", exc)
            return False
        return True
