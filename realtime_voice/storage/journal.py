"""`CallJournal`: one call's records, numbered and timestamped, handed to a recorder.

The session keeps one journal per call and says what happened in plain terms
(``journal.turn("caller", text, confidence=0.9)``); the journal builds the records with
the per-call sequence numbers that make replays idempotent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from realtime_voice.storage.models import utc_now
from realtime_voice.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    EventKind,
    EventRecord,
    Record,
    TurnRecord,
)

__all__ = [
    "CallJournal",
    "RecordSink",
    "default_outcome",
    "metrics_from_stats",
    "utc_from_timestamp",
]


class RecordSink(Protocol):
    """Where records go (`CallRecorder`, or a list in a test)."""

    def record(self, record: Record) -> None:
        """Take one record without blocking."""
        ...


def utc_from_timestamp(epoch_s: float) -> datetime:
    """A ``time.time()`` value as a timezone-aware UTC datetime."""
    return datetime.fromtimestamp(epoch_s, UTC)


class CallJournal:
    """Builds one call's records in order and passes them to a sink.

    Args:
        sink: the recorder.
        call_id: the gateway call id.
        clock: current UTC time (injectable for tests).
    """

    def __init__(
        self, sink: RecordSink, call_id: str, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.sink = sink
        self.call_id = call_id
        self._clock = clock
        self._update_seq = 0
        self._turn_seq = 0
        self._event_seq = 0

    def _next_update(self) -> int:
        seq = self._update_seq
        self._update_seq += 1
        return seq

    def started(
        self,
        *,
        session_id: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
        protocol: str | None = None,
        direction: str = "inbound",
        state: str = "connected",
        flow: str | None = None,
        custom_parameters: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> None:
        """The call's media session began."""
        self.sink.record(CallStart(
            call_id=self.call_id, seq=self._next_update(),
            started_at=started_at or self._clock(), session_id=session_id,
            from_number=from_number, to_number=to_number, direction=direction,
            protocol=protocol, state=state, flow=flow, custom_parameters=custom_parameters,
        ))

    def updated(
        self,
        *,
        state: str | None = None,
        answered_at: datetime | None = None,
        flow: str | None = None,
        custom_parameters: Mapping[str, Any] | None = None,
        escalated: bool | None = None,
        transfer_target: str | None = None,
        outcome: str | None = None,
        rc_telephony_session_id: str | None = None,
        rc_party_id: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Some fields of the call changed (``None`` leaves a field as it is)."""
        self.sink.record(CallUpdate(
            call_id=self.call_id, seq=self._next_update(), at=at or self._clock(),
            state=state, answered_at=answered_at, flow=flow,
            custom_parameters=custom_parameters, escalated=escalated,
            transfer_target=transfer_target, outcome=outcome,
            rc_telephony_session_id=rc_telephony_session_id, rc_party_id=rc_party_id,
        ))

    def state_changed(self, old: str, new: str, *, at: datetime | None = None) -> None:
        """The call moved from state ``old`` to ``new``: the row and a ``state_change`` event."""
        when = at or self._clock()
        self.updated(state=new, at=when)
        self.event("state_change", {"from": old, "to": new}, at=when)

    def turn(
        self,
        speaker: Literal["caller", "bot"],
        text: str,
        *,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        intent: str | None = None,
        confidence: float | None = None,
        latency_ms: float | None = None,
        interrupted: bool = False,
    ) -> None:
        """One utterance; for a bot turn cut by barge-in, ``text`` is what was heard."""
        seq = self._turn_seq
        self._turn_seq += 1
        self.sink.record(TurnRecord(
            call_id=self.call_id, seq=seq, speaker=speaker, text=text,
            started_at=started_at or self._clock(), ended_at=ended_at, intent=intent,
            confidence=confidence, latency_ms=latency_ms, interrupted=interrupted,
        ))

    def event(
        self, kind: EventKind, data: Mapping[str, Any] | None = None, *, at: datetime | None = None
    ) -> None:
        """Something happened: ``transfer``, ``error``, ``dtmf``, ``barge_in``..."""
        seq = self._event_seq
        self._event_seq += 1
        self.sink.record(EventRecord(
            call_id=self.call_id, seq=seq, at=at or self._clock(), kind=kind, data=data
        ))

    def ended(
        self,
        *,
        state: str = "ended",
        end_reason: str | None = None,
        outcome: str | None = None,
        escalated: bool | None = None,
        transfer_target: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        ended_at: datetime | None = None,
        duration_s: float | None = None,
        usage: Mapping[str, Any] | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """The call is over (``duration_s`` defaults to end − stored start)."""
        self.sink.record(CallEnd(
            call_id=self.call_id, seq=self._next_update(), ended_at=ended_at or self._clock(),
            state=state, end_reason=end_reason, outcome=outcome, escalated=escalated,
            transfer_target=transfer_target, duration_s=duration_s, metrics=metrics,
            usage=usage, cost_usd=cost_usd,
        ))


def default_outcome(state: str, end_reason: str | None) -> str:
    """A call's outcome from how it ended, when nothing better is known.

    ``failed`` for a failed call, ``transferred`` for a handoff to a human,
    ``interrupted`` when the server shut down under it, else ``completed``.
    """
    if state == "failed":
        return "failed"
    if end_reason == "transferred":
        return "transferred"
    if end_reason == "server_shutdown":
        return "interrupted"
    return "completed"


def _summary(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)

    def pct(p: float) -> float:
        index = min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))
        return round(ordered[index], 1)

    return {
        "count": len(ordered),
        "p50": pct(0.5),
        "p95": pct(0.95),
        "max": round(ordered[-1], 1),
        "mean": round(sum(ordered) / len(ordered), 1),
    }


def metrics_from_stats(stats: object) -> dict[str, Any]:
    """A per-call metrics document from a stats dataclass (such as `CallStats`).

    Counters are copied; each list of latencies is kept (rounded to 0.1 ms) and
    summarised beside it as ``<name>_summary`` (count, p50, p95, max, mean).

    Raises:
        TypeError: ``stats`` is not a dataclass instance.
    """
    if not dataclasses.is_dataclass(stats) or isinstance(stats, type):
        raise TypeError("metrics_from_stats expects a dataclass instance")
    doc: dict[str, Any] = {}
    for name, value in dataclasses.asdict(stats).items():
        if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value):
            doc[name] = [round(float(v), 1) for v in value]
            if value:
                doc[f"{name}_summary"] = _summary([float(v) for v in value])
        else:
            doc[name] = value
    return doc
