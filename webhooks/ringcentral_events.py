"""Typed RingCentral webhook notifications, parsed from the raw JSON with no I/O.

Shape: docs/RINGCENTRAL.md §1.4. Only what a voice bot acts on is kept; unknown fields are
ignored (RingCentral adds fields over time) but a field we rely on with the wrong type is
refused with `NotificationError`, whose ``field`` is the JSON path of the culprit
(``body.parties[0].status.code``), so the webhook can answer 400 naming it.

Telephony session notifications become `TelephonySessionEvent`; every other event type
(for instance the subscription renewal reminder) becomes `OtherNotification`, which the
webhook acknowledges and ignores.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENDED_CODES",
    "RINGING_CODES",
    "NotificationError",
    "OtherNotification",
    "Party",
    "PartyStatus",
    "TelephonySessionEvent",
    "parse_notification",
]

RINGING_CODES = frozenset({"Setup", "Proceeding"})
"""Party status codes of a call being offered (ringing) and not yet answered."""

ENDED_CODES = frozenset({"Disconnected", "Gone"})
"""Party status codes that end a call leg."""

_TELEPHONY_EVENT = "/telephony/sessions"
_MAX_ID = 256  # ids are tens of characters; a longer one is an attack or a bug


class NotificationError(ValueError):
    """The notification is not valid JSON or a field has the wrong shape.

    Attributes:
        field: JSON path of the offending field (``""`` for the document itself).
        message: one human-readable line naming the field.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class PartyStatus:
    """A party's call status.

    Attributes:
        code: ``Setup``, ``Proceeding``, ``Answered``, ``Disconnected``, ``Gone``, ``Hold``,
            ... (kept as sent: RingCentral may add codes).
        reason: why it ended (``CallFinished``, ``BlindTransfer``, ...) for Disconnected/Gone.
    """

    code: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Party:
    """One call party as reported to the subscriber.

    Attributes:
        party_id: ``parties[].id``, used in Call Control paths.
        status: its status.
        direction: ``Inbound`` or ``Outbound`` (``""`` when absent).
        from_number: caller's ``phoneNumber`` (``""`` when absent).
        from_name: caller's display name.
        to_number: dialled ``phoneNumber``.
        to_name: callee's display name.
        extension_id: the subscriber extension this party belongs to.
        missed_call: RingCentral's missed-call flag.
        sip_call_id: ``sipData.callId`` (subscriptions with ``sipData=true``): the SIP
            Call-ID of this party's leg, which joins the event to a SIP leg's call.
    """

    party_id: str
    status: PartyStatus
    direction: str = ""
    from_number: str = ""
    from_name: str = ""
    to_number: str = ""
    to_name: str = ""
    extension_id: str = ""
    missed_call: bool = False
    sip_call_id: str = ""


@dataclass(frozen=True, slots=True)
class TelephonySessionEvent:
    """One telephony session notification.

    Attributes:
        uuid: notification id (deduplication key).
        event: the event filter URI with ids filled in.
        telephony_session_id: ``body.telephonySessionId`` (Call Control paths).
        sequence: ``body.sequence``, the order within the telephony session.
        parties: the parties reported (normally only the subscriber's own).
        session_id: the legacy ``body.sessionId``.
        event_time: ``body.eventTime`` as sent (ISO 8601).
        timestamp: top-level ``timestamp`` as sent.
        subscription_id: the subscription that delivered it.
        owner_id: the subscriber's extension id.
    """

    uuid: str
    event: str
    telephony_session_id: str
    sequence: int
    parties: tuple[Party, ...]
    session_id: str = ""
    event_time: str = ""
    timestamp: str = ""
    subscription_id: str = ""
    owner_id: str = ""

    @property
    def occurred_at(self) -> dt.datetime | None:
        """``body.eventTime`` (else ``timestamp``) as an aware UTC datetime, if parseable."""
        for text in (self.event_time, self.timestamp):
            if not text:
                continue
            try:
                moment = dt.datetime.fromisoformat(text)
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return moment.astimezone(dt.UTC)
        return None

    @property
    def party(self) -> Party | None:
        """The party the bot cares about: the first inbound one, else the first one."""
        for party in self.parties:
            if party.direction == "Inbound":
                return party
        return self.parties[0] if self.parties else None

    @property
    def status_code(self) -> str:
        """`party`'s status code (``""`` without parties)."""
        party = self.party
        return party.status.code if party is not None else ""

    @property
    def reason(self) -> str | None:
        """`party`'s end reason, if any."""
        party = self.party
        return party.status.reason if party is not None else None


@dataclass(frozen=True, slots=True)
class OtherNotification:
    """A notification of an event type the bot does not act on.

    Attributes:
        uuid: notification id.
        event: the event filter URI.
    """

    uuid: str
    event: str


def parse_notification(raw: bytes | str) -> TelephonySessionEvent | OtherNotification:
    """Parse one notification request body.

    Args:
        raw: the HTTP request body.

    Returns:
        A `TelephonySessionEvent` for ``.../telephony/sessions`` events, else an
        `OtherNotification`.

    Raises:
        NotificationError: malformed JSON or a field of the wrong shape (names the field).
    """
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError:
        raise NotificationError("", "the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise NotificationError("", f"malformed JSON: {exc.msg} at char {exc.pos}") from None
    except (ValueError, RecursionError) as exc:
        # Numbers past Python's digit limit, or nesting deeper than the parser's stack.
        raise NotificationError("", f"malformed JSON: {exc}"[:200]) from None
    if not isinstance(doc, dict):
        raise NotificationError("", "the notification must be a JSON object")
    uuid = _string(doc, "uuid", "uuid", required=True)
    event = _string(doc, "event", "event", required=True)
    if _TELEPHONY_EVENT not in event.split("?", 1)[0]:
        return OtherNotification(uuid=uuid, event=event)
    body = doc.get("body")
    if not isinstance(body, dict):
        raise NotificationError("body", "missing field body (an object)")
    sequence = body.get("sequence")
    # bool is an int subclass in Python; true is not a sequence number.
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise NotificationError("body.sequence", "body.sequence must be a non-negative integer")
    parties_raw = body.get("parties", [])
    if not isinstance(parties_raw, list):
        raise NotificationError("body.parties", "body.parties must be an array")
    parties = tuple(
        _party(item, f"body.parties[{index}]") for index, item in enumerate(parties_raw)
    )
    return TelephonySessionEvent(
        uuid=uuid,
        event=event,
        telephony_session_id=_string(
            body, "telephonySessionId", "body.telephonySessionId", required=True
        ),
        sequence=sequence,
        parties=parties,
        session_id=_string(body, "sessionId", "body.sessionId"),
        event_time=_string(body, "eventTime", "body.eventTime"),
        timestamp=_string(doc, "timestamp", "timestamp"),
        subscription_id=_string(doc, "subscriptionId", "subscriptionId"),
        owner_id=_string(doc, "ownerId", "ownerId"),
    )


def _party(item: Any, path: str) -> Party:
    if not isinstance(item, dict):
        raise NotificationError(path, f"{path} must be an object")
    status = item.get("status")
    if not isinstance(status, dict):
        raise NotificationError(f"{path}.status", f"missing field {path}.status (an object)")
    reason = _string(status, "reason", f"{path}.status.reason")
    missed = item.get("missedCall", False)
    if not isinstance(missed, bool):
        raise NotificationError(f"{path}.missedCall", f"{path}.missedCall must be true or false")
    from_number, from_name = _endpoint(item.get("from"), f"{path}.from")
    to_number, to_name = _endpoint(item.get("to"), f"{path}.to")
    return Party(
        party_id=_string(item, "id", f"{path}.id", required=True),
        status=PartyStatus(
            code=_string(status, "code", f"{path}.status.code", required=True),
            reason=reason or None,
        ),
        direction=_string(item, "direction", f"{path}.direction"),
        from_number=from_number,
        from_name=from_name,
        to_number=to_number,
        to_name=to_name,
        extension_id=_string(item, "extensionId", f"{path}.extensionId"),
        missed_call=missed,
        sip_call_id=_sip_call_id(item.get("sipData"), f"{path}.sipData"),
    )


def _sip_call_id(value: Any, path: str) -> str:
    """``sipData.callId``: optional; when present it must be an object with a string."""
    if value is None:
        return ""
    if not isinstance(value, dict):
        raise NotificationError(path, f"{path} must be an object")
    return _string(value, "callId", f"{path}.callId")


def _endpoint(value: Any, path: str) -> tuple[str, str]:
    """``from``/``to``: absent is fine (PSTN parties are often bare), the wrong type is not."""
    if value is None:
        return "", ""
    if not isinstance(value, dict):
        raise NotificationError(path, f"{path} must be an object")
    return (
        _string(value, "phoneNumber", f"{path}.phoneNumber"),
        _string(value, "name", f"{path}.name"),
    )


def _string(obj: dict[str, Any], key: str, path: str, *, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise NotificationError(path, f"missing field {path} (a non-empty string)")
        return ""
    # RingCentral sends ids as strings; an integer id would mean a changed contract.
    if not isinstance(value, str):
        raise NotificationError(path, f"{path} must be a string")
    if required and not value.strip():
        raise NotificationError(path, f"{path} must not be empty")
    if len(value) > _MAX_ID and key != "event":
        raise NotificationError(path, f"{path} is over {_MAX_ID} characters")
    return value
