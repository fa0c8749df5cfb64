"""RingCentral telephony events → call records (the webhook's `CallEventSink` for the recorder)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from realtime_voice.storage.journal import RecordSink
from realtime_voice.storage.records import NOTIFICATION_SEQ_BASE, CallUpdate, EventRecord
from webhooks.ringcentral_events import TelephonySessionEvent

__all__ = ["RecorderCallEventSink"]


class RecorderCallEventSink:
    """Turns ringing/answered/ended notifications into call updates and events.

    Args:
        records: the recorder.
        call_id_for: maps a telephonySessionId to our gateway call id.
    """

    def __init__(self, records: RecordSink, call_id_for: Callable[[str], str]) -> None:
        self._records = records
        self._call_id_for = call_id_for

    def _write(
        self, event: TelephonySessionEvent, kind: str, **fields: object
    ) -> None:
        call_id = self._call_id_for(event.telephony_session_id)
        at = event.occurred_at or dt.datetime.now(dt.UTC)
        party = event.party
        # seq=None: notifications come from outside the session and always apply.
        self._records.record(
            CallUpdate(
                call_id=call_id,
                seq=None,
                at=at,
                rc_telephony_session_id=event.telephony_session_id,
                rc_party_id=party.party_id if party else None,
                from_number=(party.from_number or None) if party else None,
                to_number=(party.to_number or None) if party else None,
                **fields,  # type: ignore[arg-type]
            )
        )
        self._records.record(
            EventRecord(
                call_id=call_id,
                seq=NOTIFICATION_SEQ_BASE + event.sequence,
                at=at,
                kind="notification",
                data={"status": event.status_code, "kind": kind, "uuid": event.uuid},
            )
        )

    async def ringing(self, event: TelephonySessionEvent) -> None:
        """A ringing inbound party: the call record exists from now on."""
        self._write(event, "ringing", state="ringing")

    async def answered(self, event: TelephonySessionEvent) -> None:
        """Answered on an endpoint."""
        self._write(event, "answered", answered_at=event.occurred_at or dt.datetime.now(dt.UTC))

    async def ended(self, event: TelephonySessionEvent, reason: str) -> None:
        """Disconnected or Gone: RingCentral's reason is kept as the end reason."""
        self._write(event, "ended", end_reason=reason)
