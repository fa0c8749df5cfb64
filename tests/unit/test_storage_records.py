"""Records: validation, the spool's JSON form, and the per-call journal's numbering."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from realtime_voice.session.stats import CallStats
from realtime_voice.storage.journal import (
    CallJournal,
    default_outcome,
    metrics_from_stats,
    utc_from_timestamp,
)
from realtime_voice.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    EventRecord,
    Record,
    RecordFormatError,
    TurnRecord,
    record_from_json,
    record_to_json,
)

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)

EXAMPLES: list[Record] = [
    CallStart(call_id="c1", seq=0, started_at=T0, session_id="s", from_number="+15555551234",
              to_number="+15555555678", protocol="twilio", custom_parameters={"persona": "x"}),
    CallUpdate(call_id="c1", seq=None, at=T0, state="ringing", rc_telephony_session_id="t-1",
               rc_party_id="p-1", answered_at=T0 + timedelta(seconds=2)),
    CallEnd(call_id="c1", seq=3, ended_at=T0, state="failed", end_reason="stt_failed",
            metrics={"turns": 2, "latencies": [1.5, 2.5]}),
    TurnRecord(call_id="c1", seq=4, speaker="bot", text="Bonjour, ça va ? 👋", started_at=T0,
               ended_at=T0, latency_ms=12.5, interrupted=True),
    EventRecord(call_id="c1", seq=0, at=T0, kind="transfer",
                data={"target": {"extensionNumber": "104"}}),
]


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_json_round_trip(record: Record) -> None:
    line = record_to_json(record)
    assert "\n" not in line
    assert record_from_json(line) == record


def test_times_are_written_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    record = EventRecord(call_id="c", seq=0, at=datetime(2025, 3, 1, 13, 0, tzinfo=paris),
                         kind="dtmf")
    assert json.loads(record_to_json(record))["at"] == "2025-03-01T12:00:00+00:00"


def test_a_mapping_is_copied_when_the_record_is_made() -> None:
    params = {"persona": "host"}
    record = CallStart(call_id="c", seq=0, started_at=T0, custom_parameters=params)
    params["persona"] = "changed after enqueueing"
    assert record.custom_parameters == {"persona": "host"}


def test_a_value_json_cannot_hold_is_spooled_as_text() -> None:
    record = EventRecord(call_id="c", seq=0, at=T0, kind="error", data={"when": T0})
    assert record_from_json(record_to_json(record)).data == {"when": str(T0)}  # type: ignore[union-attr]


def test_fields_from_a_newer_version_are_ignored() -> None:
    doc = json.loads(record_to_json(EXAMPLES[4]))
    doc["added_later"] = 1
    assert record_from_json(json.dumps(doc)) == EXAMPLES[4]


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        "[1, 2]",
        '{"t": "mystery", "call_id": "c"}',
        '{"t": "turn", "call_id": "c", "seq": 0}',
        '{"t": "event", "call_id": "c", "seq": 0, "at": "noon", "kind": "dtmf"}',
        '{"t": "event", "call_id": "c", "seq": 0, "at": "2025-03-01T12:00:00", "kind": "dtmf"}',
    ],
)
def test_unreadable_lines_raise_record_format_error(line: str) -> None:
    with pytest.raises(RecordFormatError):
        record_from_json(line)


@pytest.mark.parametrize(
    "make",
    [
        lambda: CallStart(call_id="", seq=0, started_at=T0),
        lambda: CallStart(call_id="x" * 129, seq=0, started_at=T0),
        lambda: CallStart(call_id="c", seq=-1, started_at=T0),
        lambda: CallStart(call_id="c", seq=0, started_at=datetime(2025, 3, 1)),
        lambda: CallUpdate(call_id="c", seq=None, at=T0, answered_at=datetime(2025, 3, 1)),
        lambda: TurnRecord(call_id="c", seq=0, speaker="agent", text="x",  # type: ignore[arg-type]
                           started_at=T0),
        lambda: EventRecord(call_id="c", seq=0, at=T0, kind="hold"),  # type: ignore[arg-type]
    ],
)
def test_invalid_records_are_refused_at_construction(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_journal_numbers_each_kind_of_record_per_call() -> None:
    sink: list[Record] = []

    class Sink:
        def record(self, record: Record) -> None:
            sink.append(record)

    journal = CallJournal(Sink(), "call-9", clock=lambda: T0)
    journal.started(session_id="s", protocol="ringcentral")
    journal.turn("caller", "hi")
    journal.state_changed("connected", "in_progress")
    journal.turn("bot", "hello")
    journal.event("dtmf", {"digit": "1"})
    journal.ended(end_reason="completed")

    assert [type(r).__name__ for r in sink] == [
        "CallStart", "TurnRecord", "CallUpdate", "EventRecord", "TurnRecord", "EventRecord",
        "CallEnd",
    ]
    assert all(r.call_id == "call-9" for r in sink)
    updates = [r.seq for r in sink if isinstance(r, (CallStart, CallUpdate, CallEnd))]
    assert updates == [0, 1, 2]
    assert [r.seq for r in sink if isinstance(r, TurnRecord)] == [0, 1]
    assert [r.seq for r in sink if isinstance(r, EventRecord)] == [0, 1]
    change = sink[3]
    assert isinstance(change, EventRecord)
    assert change.data == {"from": "connected", "to": "in_progress"}
    assert all(
        getattr(r, "started_at", None) == T0 or getattr(r, "at", None) == T0
        or getattr(r, "ended_at", None) == T0
        for r in sink
    )


def test_metrics_from_call_stats() -> None:
    stats = CallStats(frames_in=500, turns=3, barge_ins=1,
                      response_latencies_ms=[400.04, 300.0, 1200.0])
    doc = metrics_from_stats(stats)
    assert doc["frames_in"] == 500
    assert doc["turns"] == 3
    assert doc["response_latencies_ms"] == [400.0, 300.0, 1200.0]
    assert doc["response_latencies_ms_summary"] == {
        "count": 3, "p50": 400.0, "p95": 1200.0, "max": 1200.0, "mean": 633.3,
    }
    assert doc["barge_in_latencies_ms"] == []
    assert "barge_in_latencies_ms_summary" not in doc
    json.dumps(doc)
    with pytest.raises(TypeError):
        metrics_from_stats({"frames_in": 1})


@pytest.mark.parametrize(
    ("state", "reason", "outcome"),
    [
        ("ended", "completed", "completed"),
        ("ended", "caller_hangup", "completed"),
        ("ended", "transferred", "transferred"),
        ("ended", "server_shutdown", "interrupted"),
        ("failed", "stt_failed", "failed"),
        ("failed", "transferred", "failed"),
    ],
)
def test_default_outcome(state: str, reason: str, outcome: str) -> None:
    assert default_outcome(state, reason) == outcome


def test_utc_from_timestamp() -> None:
    assert utc_from_timestamp(0.0) == datetime(1970, 1, 1, tzinfo=UTC)
