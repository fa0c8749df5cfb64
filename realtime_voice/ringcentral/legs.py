"""What Call Control needs to know about a call's RingCentral telephony leg.

The notifications webhook (`webhooks.ringcentral`) learns each leg from telephony
session events and answers `TelephonyLegs.leg_for_call`; `RingCentralPlatformControl`
only asks. Both depend on this module, so the platform client never imports the HTTP
plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["TelephonyLeg", "TelephonyLegs"]


@dataclass
class TelephonyLeg:
    """What the webhook last learnt about one telephony session (for Call Control).

    Attributes:
        telephony_session_id: Call Control's session id.
        party_id: Call Control's party id.
        status_code: the party's last applied status code.
        direction: ``Inbound`` or ``Outbound``.
        from_number: caller number.
        to_number: dialled number.
        sequence: the last applied sequence.
        reason: end reason, once ended.
    """

    telephony_session_id: str
    party_id: str
    status_code: str
    direction: str
    from_number: str
    to_number: str
    sequence: int
    reason: str | None = None


class TelephonyLegs(Protocol):
    """Finds the telephony leg of one of our calls (the notifications webhook does)."""

    def leg_for_call(self, call_id: str) -> TelephonyLeg | None:
        """The telephony leg of ``call_id``, or ``None`` when none is known."""
        ...
