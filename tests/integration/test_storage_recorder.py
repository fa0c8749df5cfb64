"""CallRecorder against a real database: records land, replays do not duplicate, and an
outage in the middle of live calls loses nothing (PostgreSQL through a TCP proxy that is
stopped, SQLite through a held write lock)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from realtime_voice.storage.database import make_engine
from realtime_voice.storage.journal import CallJournal
from realtime_voice.storage.models import Call, CallEvent, Turn
from realtime_voice.storage.pipeline import RetryPolicy
from realtime_voice.storage.recorder import CallRecorder
from realtime_voice.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    EventRecord,
    Record,
    TurnRecord,
    record_to_json,
)
from realtime_voice.storage.spool import Spool
from realtime_voice.storage.writer import RecordWriter
from tests.integration import db_fixtures
from tests.integration.db_fixtures import Outage

database_url = db_fixtures.database_url
migrated_url = db_fixtures.migrated_url
outage = db_fixtures.outage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def recorder_engine(url: str) -> Engine:
    """An engine that gives up on a locked SQLite file quickly (the outage tests)."""
    return make_engine(url, sqlite_busy_timeout_ms=100, connect_timeout_s=1)


@pytest.fixture
def make_recorder(tmp_path: Path) -> Iterator[Callable[..., CallRecorder]]:
    """Recorders with test-sized timings; engines handed to them are disposed at the end."""
    engines: list[Engine] = []

    def factory(url_or_engine: str | Engine, **options: object) -> CallRecorder:
        if isinstance(url_or_engine, Engine):
            engines.append(url_or_engine)
        defaults: dict[str, object] = {
            "spool_dir": tmp_path / "spool",
            "batch_size": 20,
            "flush_interval_s": 0.01,
            "probe_interval_s": 0.05,
            "retry": RetryPolicy(attempts=2, initial_wait_s=0.01, max_wait_s=0.02),
        }
        defaults.update(options)
        return CallRecorder(url_or_engine, **defaults)  # type: ignore[arg-type]

    yield factory
    for engine in engines:
        engine.dispose()


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Engine]:
    """A direct engine on the test database, for reading back."""
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def status_of(recorder: CallRecorder) -> str:
    """The recorder's status, read afresh (a plain property read would be narrowed by mypy)."""
    return recorder.status


def rows(
    engine: Engine, call_id: str, model: type[Turn] | type[CallEvent]
) -> list[tuple[int, str]]:
    """``(seq, text-or-kind)`` of a call's turns or events, in insertion (id) order."""
    label = Turn.text if model is Turn else CallEvent.kind
    with engine.connect() as conn:
        result = conn.execute(
            select(model.seq, label)
            .join(Call, model.call_id == Call.id)
            .where(Call.call_id == call_id)
            .order_by(model.id)
        ).all()
    return [(int(seq), str(value)) for seq, value in result]


def call_row(engine: Engine, call_id: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(select(Call.__table__).where(Call.call_id == call_id)).mappings().one()
    return dict(row)


def count(engine: Engine, model: type[Call] | type[Turn] | type[CallEvent]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def sample_call(call_id: str, turns: int = 4) -> list[Record]:
    records: list[Record] = [
        CallStart(call_id=call_id, seq=0, started_at=T0, session_id="s-" + call_id,
                  from_number="+15555551234", to_number="+15555555678",
                  protocol="ringcentral", custom_parameters={"persona": "host"}),
        CallUpdate(call_id=call_id, seq=1, at=T0 + timedelta(seconds=1), state="in_progress",
                   answered_at=T0 + timedelta(seconds=1)),
    ]
    for i in range(turns):
        records.append(TurnRecord(
            call_id=call_id, seq=i, speaker="caller" if i % 2 == 0 else "bot",
            text=f"line {i}", started_at=T0 + timedelta(seconds=2 + i), confidence=0.9,
        ))
    records.append(EventRecord(call_id=call_id, seq=0, at=T0 + timedelta(seconds=3),
                               kind="dtmf", data={"digit": "5"}))
    records.append(CallEnd(call_id=call_id, seq=2, ended_at=T0 + timedelta(seconds=30),
                           end_reason="completed", outcome="completed",
                           metrics={"turns": turns, "response_latencies_ms": [310.5, 402.0]}))
    return records


async def test_records_are_written_and_read_back(
    migrated_url: str, db: Engine, make_recorder: Callable[..., CallRecorder]
) -> None:
    recorder = make_recorder(migrated_url)
    await recorder.start()
    for record in sample_call("call-1"):
        recorder.record(record)
    await recorder.flush()
    await recorder.close()

    call = call_row(db, "call-1")
    assert call["state"] == "ended"
    assert call["session_id"] == "s-call-1"
    assert call["from_number"] == "+15555551234"
    assert call["protocol"] == "ringcentral"
    assert call["answered_at"] == T0 + timedelta(seconds=1)
    assert call["ended_at"] == T0 + timedelta(seconds=30)
    assert call["duration_s"] == pytest.approx(30.0)
    assert call["outcome"] == "completed"
    assert call["custom_parameters"] == {"persona": "host"}
    assert call["metrics"] == {"turns": 4, "response_latencies_ms": [310.5, 402.0]}
    started = call["started_at"]
    assert isinstance(started, datetime) and started.tzinfo is not None
    assert rows(db, "call-1", Turn) == [(i, f"line {i}") for i in range(4)]
    assert rows(db, "call-1", CallEvent) == [(0, "dtmf")]
    assert recorder.counters.written == len(sample_call("call-1"))
    assert recorder.counters.spooled == recorder.counters.failed == 0


async def test_journal_numbers_a_sessions_records(
    migrated_url: str, db: Engine, make_recorder: Callable[..., CallRecorder]
) -> None:
    recorder = make_recorder(migrated_url)
    await recorder.start()
    journal = recorder.journal("call-j")
    assert isinstance(journal, CallJournal)
    journal.started(session_id="s1", from_number="+15555550001", to_number="+15555550002",
                    protocol="twilio")
    journal.turn("caller", "what time do you open", confidence=0.8)
    journal.turn("bot", "We open at", interrupted=True, latency_ms=420.0)
    journal.state_changed("in_progress", "ending")
    journal.event("transfer", {"target": {"phoneNumber": "+15555550100"}})
    journal.ended(end_reason="transferred", outcome="transferred", escalated=True,
                  transfer_target="+15555550100")
    await recorder.close()

    call = call_row(db, "call-j")
    assert (call["state"], call["escalated"], call["transfer_target"]) == (
        "ended", True, "+15555550100")
    assert rows(db, "call-j", Turn) == [(0, "what time do you open"), (1, "We open at")]
    assert rows(db, "call-j", CallEvent) == [(0, "state_change"), (1, "transfer")]


async def test_same_records_twice_make_one_row_each(migrated_url: str, db: Engine) -> None:
    writer = RecordWriter(db)
    records = sample_call("call-dup")
    writer.write(records)
    writer.write(records)
    writer.write(records[2:4])
    assert count(db, Call) == 1
    assert count(db, Turn) == 4
    assert count(db, CallEvent) == 1
    assert call_row(db, "call-dup")["state"] == "ended"


async def test_an_older_update_replayed_late_does_not_roll_the_call_back(
    migrated_url: str, db: Engine
) -> None:
    writer = RecordWriter(db)
    start, update, *_, end = sample_call("call-order")
    writer.write([start, update, end])
    writer.write([update])  # a replay of seq 1 after seq 2 was applied
    assert call_row(db, "call-order")["state"] == "ended"
    # A patch without a sequence (a RingCentral notification) always applies.
    writer.write([CallUpdate(call_id="call-order", seq=None, at=T0, rc_party_id="p-1")])
    row = call_row(db, "call-order")
    assert (row["state"], row["rc_party_id"]) == ("ended", "p-1")


async def test_a_turn_before_its_call_start_still_lands(migrated_url: str, db: Engine) -> None:
    writer = RecordWriter(db)
    records = sample_call("call-late-start")
    writer.write(records[2:3])  # the first turn alone
    writer.write(records)
    assert call_row(db, "call-late-start")["session_id"] == "s-call-late-start"
    assert len(rows(db, "call-late-start", Turn)) == 4


async def test_a_spooled_batch_already_in_the_database_replays_without_duplicates(
    migrated_url: str, db: Engine, tmp_path: Path, make_recorder: Callable[..., CallRecorder]
) -> None:
    # The commit reached the database but its acknowledgement was lost: the batch was
    # spooled anyway, and the next start replays it.
    records = sample_call("call-ack-lost")
    RecordWriter(db).write(records)
    spool = Spool(tmp_path / "spool")
    spool.open()
    spool.append([record_to_json(r) for r in records])
    spool.close()

    recorder = make_recorder(migrated_url)
    await recorder.start()
    await recorder.wait_replayed()
    await recorder.close()
    assert recorder.counters.replayed == len(records)
    assert count(db, Turn) == 4
    assert count(db, CallEvent) == 1
    assert count(db, Call) == 1


async def test_a_record_the_database_refuses_is_set_aside_and_the_rest_land(
    migrated_url: str, db: Engine, tmp_path: Path, make_recorder: Callable[..., CallRecorder]
) -> None:
    recorder = make_recorder(migrated_url)
    await recorder.start()
    records = sample_call("call-poison")
    bad = TurnRecord(call_id="call-poison", seq=2**70, speaker="caller", text="too big",
                     started_at=T0)
    for record in [*records[:3], bad, *records[3:]]:
        recorder.record(record)
    await recorder.close()
    assert recorder.counters.failed == 1
    assert recorder.counters.written == len(records)
    assert len(rows(db, "call-poison", Turn)) == 4
    rejected = (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and "too big" in rejected[0]


async def test_database_outage_mid_call_loses_nothing_and_keeps_order(
    outage: Outage, db: Engine, make_recorder: Callable[..., CallRecorder]
) -> None:
    recorder = make_recorder(recorder_engine(outage.url))
    await recorder.start()
    journals = [recorder.journal(f"call-{n}") for n in range(3)]
    for n, journal in enumerate(journals):
        journal.started(session_id=f"s{n}", from_number="+15555551234",
                        to_number="+15555555678", protocol="ringcentral")

    def speak(lines: range) -> None:
        for i in lines:
            for journal in journals:
                journal.turn("caller" if i % 2 == 0 else "bot", f"line {i}")
                if i % 5 == 0:
                    journal.event("barge_in", {"at_line": i})

    speak(range(0, 10))
    await recorder.flush()
    assert status_of(recorder) == "healthy"
    written_before = recorder.counters.written
    assert written_before == 3 + 30 + 6

    await outage.begin()
    speak(range(10, 40))
    for journal in journals:
        journal.state_changed("in_progress", "ending")
    await recorder.flush()
    assert status_of(recorder) == "down"
    assert recorder.spool_depth == 3 * 30 + 3 * 6 + 3 * 2
    assert recorder.counters.dropped == 0

    await outage.end()
    speak(range(40, 50))
    for journal in journals:
        journal.ended(end_reason="completed", outcome="completed")
    await recorder.flush()
    await recorder.wait_replayed()
    await recorder.close()

    assert status_of(recorder) == "healthy"
    assert recorder.counters.failed == recorder.counters.dropped == 0
    for n in range(3):
        assert rows(db, f"call-{n}", Turn) == [(i, f"line {i}") for i in range(50)]
        events = rows(db, f"call-{n}", CallEvent)
        assert [seq for seq, _ in events] == list(range(len(events)))
        assert len(events) == 10 + 1
        assert call_row(db, f"call-{n}")["state"] == "ended"
    total = 3 * (1 + 50 + 10 + 2 + 1)
    assert recorder.counters.written + recorder.counters.replayed == total
    assert recorder.counters.replayed >= 3 * 30 + 3 * 6 + 3 * 2


async def test_spool_left_by_a_stopped_recorder_is_replayed_by_the_next(
    outage: Outage, db: Engine, make_recorder: Callable[..., CallRecorder]
) -> None:
    await outage.begin()
    first = make_recorder(recorder_engine(outage.url))
    await first.start()
    for n in range(5):
        for record in sample_call(f"call-r{n}"):
            first.record(record)
    await first.close(timeout_s=10)  # the database is away: everything goes to the spool
    assert first.counters.written == 0
    assert first.spool_depth == 5 * len(sample_call("x"))

    await outage.end()
    second = make_recorder(recorder_engine(outage.url))
    await second.start()
    await second.wait_replayed()
    await second.close()
    assert second.counters.replayed == 5 * len(sample_call("x"))
    assert count(db, Call) == 5
    assert count(db, Turn) == 5 * 4
    for n in range(5):
        assert call_row(db, f"call-r{n}")["state"] == "ended"


async def test_recorder_starts_with_the_database_down_and_catches_up(
    outage: Outage, db: Engine, make_recorder: Callable[..., CallRecorder]
) -> None:
    await outage.begin()
    recorder = make_recorder(recorder_engine(outage.url))
    await recorder.start()
    for record in sample_call("call-early"):
        recorder.record(record)
    await recorder.flush()
    assert recorder.status == "down"
    await outage.end()
    await recorder.wait_replayed()
    await recorder.close()
    assert len(rows(db, "call-early", Turn)) == 4
