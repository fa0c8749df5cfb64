"""What the recorder is handed: small immutable records, and their JSON form for the spool.

Every record names its call by the gateway call id and carries a per-call sequence number,
so writing it twice (a replay after an outage) changes nothing: a turn or an event is
unique by ``(call, seq)``, and a call update older than the last one applied is skipped.
Call updates from a source without a sequence (``seq=None``: RingCentral notifications)
are patches that set only the fields they name, so applying one twice is harmless too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from realtime_voice.storage.models import EVENT_KINDS

__all__ = [
    "NOTIFICATION_SEQ_BASE",
    "CallEnd",
    "CallStart",
    "CallUpdate",
    "EventKind",
    "EventRecord",
    "Record",
    "RecordFormatError",
    "TurnRecord",
    "record_from_json",
    "record_to_json",
]

NOTIFICATION_SEQ_BASE = 1_000_000
"""Event ``seq`` offset for events recorded outside the session (RingCentral notifications:
``NOTIFICATION_SEQ_BASE + body.sequence``), so they never collide with the session's own
numbering (0, 1, 2...) under the ``(call, seq)`` idempotency key."""

EventKind = Literal[
    "state_change", "transfer", "error", "notification", "dtmf", "barge_in", "silence"
]


class RecordFormatError(ValueError):
    """A spooled line is not a record this version understands."""


def _check_call_id(call_id: str) -> None:
    if not call_id or len(call_id) > 128:
        raise ValueError(f"call_id must be 1-128 characters, got {call_id!r}")


def _check_aware(name: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")


def _own_copy(record: object, name: str) -> None:
    """Copy a mapping field: the caller may go on mutating its dict after enqueueing."""
    value = getattr(record, name)
    if value is not None:
        object.__setattr__(record, name, _plain(value))


def _check_seq(seq: int | None, *, optional: bool) -> None:
    if seq is None and optional:
        return
    if not isinstance(seq, int) or seq < 0:
        raise ValueError(f"seq must be a non-negative integer, got {seq!r}")


@dataclass(frozen=True, slots=True)
class CallStart:
    """A media session began (or the webhook answered the call).

    Attributes:
        call_id: the gateway call id.
        seq: the session's call-update sequence number (first update: 0).
        started_at: when the call started (UTC).
        session_id: our media session id.
        from_number: caller (E.164).
        to_number: dialled number.
        direction: ``inbound`` or ``outbound``.
        protocol: wire protocol (``ringcentral``, ``twilio``).
        state: the call state (`CallState` value).
        flow: conversation flow name, when the gateway chose one.
        custom_parameters: the gateway's custom parameters (JSON-able).
        rc_telephony_session_id: RingCentral telephonySessionId, when known.
        rc_party_id: RingCentral partyId, when known.
    """

    call_id: str
    seq: int
    started_at: datetime
    session_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str = "inbound"
    protocol: str | None = None
    state: str = "connected"
    flow: str | None = None
    custom_parameters: Mapping[str, Any] | None = None
    rc_telephony_session_id: str | None = None
    rc_party_id: str | None = None

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_seq(self.seq, optional=False)
        _check_aware("started_at", self.started_at)
        _own_copy(self, "custom_parameters")


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """Set some fields of a call; fields left ``None`` are not touched.

    Attributes:
        call_id: the gateway call id.
        seq: the session's call-update sequence number, or ``None`` for a source without
            one (a RingCentral notification): such a patch is always applied.
        at: when the change happened (UTC).
        state: new call state.
        answered_at: when the call was answered (media started).
        session_id: our media session id.
        from_number: caller.
        to_number: dialled number.
        direction: ``inbound`` or ``outbound``.
        protocol: wire protocol.
        flow: conversation flow name.
        custom_parameters: the gateway's custom parameters (replaces the stored ones).
        escalated: the call was escalated to a human.
        transfer_target: where it was transferred.
        outcome: business outcome (``completed``, ``transferred``, ``booked``...).
        end_reason: why it ended (for a notification reporting a disconnect).
        rc_telephony_session_id: RingCentral telephonySessionId.
        rc_party_id: RingCentral partyId.
    """

    call_id: str
    seq: int | None
    at: datetime
    state: str | None = None
    answered_at: datetime | None = None
    session_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    protocol: str | None = None
    flow: str | None = None
    custom_parameters: Mapping[str, Any] | None = None
    escalated: bool | None = None
    transfer_target: str | None = None
    outcome: str | None = None
    end_reason: str | None = None
    rc_telephony_session_id: str | None = None
    rc_party_id: str | None = None

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_seq(self.seq, optional=True)
        _check_aware("at", self.at)
        _check_aware("answered_at", self.answered_at)
        _own_copy(self, "custom_parameters")


@dataclass(frozen=True, slots=True)
class CallEnd:
    """The call is over.

    Attributes:
        call_id: the gateway call id.
        seq: the session's call-update sequence number.
        ended_at: when it ended (UTC).
        state: ``ended`` or ``failed``.
        end_reason: why (``completed``, ``caller_hangup``, ``transferred``, ...).
        outcome: business outcome, when known.
        escalated: handed to a human.
        transfer_target: where to, when transferred.
        duration_s: call length; computed from the stored start time when ``None``.
        metrics: per-call counters and latencies (JSON-able).
        usage: billable usage and its estimated cost per provider (JSON-able).
        cost_usd: the estimated total cost in dollars.
    """

    call_id: str
    seq: int
    ended_at: datetime
    state: str = "ended"
    end_reason: str | None = None
    outcome: str | None = None
    escalated: bool | None = None
    transfer_target: str | None = None
    duration_s: float | None = None
    metrics: Mapping[str, Any] | None = None
    usage: Mapping[str, Any] | None = None
    cost_usd: float | None = None

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_seq(self.seq, optional=False)
        _check_aware("ended_at", self.ended_at)
        _own_copy(self, "metrics")
        _own_copy(self, "usage")


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One utterance of the conversation.

    Attributes:
        call_id: the gateway call id.
        seq: the turn's number in the call (0, 1, 2... in speaking order).
        speaker: ``caller`` or ``bot``.
        text: what was said; for an interrupted bot turn, what the caller heard.
        started_at: when the utterance started (UTC).
        ended_at: when it ended.
        intent: the intent recognised in a caller turn.
        confidence: recogniser confidence 0..1 (caller turns).
        latency_ms: end of the caller's turn → first bot audio (bot turns).
        interrupted: the bot was cut off by barge-in.
    """

    call_id: str
    seq: int
    speaker: Literal["caller", "bot"]
    text: str
    started_at: datetime
    ended_at: datetime | None = None
    intent: str | None = None
    confidence: float | None = None
    latency_ms: float | None = None
    interrupted: bool = False

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_seq(self.seq, optional=False)
        if self.speaker not in ("caller", "bot"):
            raise ValueError(f"speaker must be 'caller' or 'bot', got {self.speaker!r}")
        _check_aware("started_at", self.started_at)
        _check_aware("ended_at", self.ended_at)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Something that happened to the call.

    Attributes:
        call_id: the gateway call id.
        seq: the event's number in the call (0, 1, 2...).
        at: when (UTC).
        kind: ``state_change``, ``transfer``, ``error``, ``notification``, ``dtmf`` or
            ``barge_in``.
        data: details (JSON-able), e.g. ``{"from": "connected", "to": "in_progress"}``.
    """

    call_id: str
    seq: int
    at: datetime
    kind: EventKind
    data: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        _check_call_id(self.call_id)
        _check_seq(self.seq, optional=False)
        _check_aware("at", self.at)
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(EVENT_KINDS)}, got {self.kind!r}")
        _own_copy(self, "data")


Record = CallStart | CallUpdate | CallEnd | TurnRecord | EventRecord

_TAGS: dict[type[Any], str] = {
    CallStart: "call_start",
    CallUpdate: "call_update",
    CallEnd: "call_end",
    TurnRecord: "turn",
    EventRecord: "event",
}
_TYPES: dict[str, type[Any]] = {tag: cls for cls, tag in _TAGS.items()}
_DATETIME_FIELDS = frozenset({"started_at", "ended_at", "answered_at", "at"})


def _plain(value: object) -> object:
    """Mappings become dicts (JSON cannot take a MappingProxy); anything else unchanged."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def record_to_json(record: Record) -> str:
    """One spool line (no newline) for ``record``: ``{"t": tag, ...fields}``.

    Values that JSON cannot hold are written with ``str`` rather than failing: a record
    that cannot be spooled would be lost, and a stringified value is still readable.
    """
    doc: dict[str, object] = {"t": _TAGS[type(record)]}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            doc[f.name] = value.astimezone(UTC).isoformat()
        else:
            doc[f.name] = _plain(value)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)


def record_from_json(line: str) -> Record:
    """Parse one spool line back into its record.

    Raises:
        RecordFormatError: not JSON, an unknown record type, or invalid fields.
    """
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise RecordFormatError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RecordFormatError("not a JSON object")
    cls = _TYPES.get(str(doc.pop("t", "")))
    if cls is None:
        raise RecordFormatError("unknown record type")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in names:
            continue  # written by a newer version: the fields we know still apply
        if key in _DATETIME_FIELDS and value is not None:
            try:
                value = datetime.fromisoformat(value)
            except (TypeError, ValueError) as exc:
                raise RecordFormatError(f"{key}: not an ISO 8601 time") from exc
        kwargs[key] = value
    try:
        record: Record = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise RecordFormatError(str(exc)) from exc
    return record
