"""The recorder's core decisions with a scripted database: spool while down, replay in
order, set aside a record the database refuses, drop (counted) when the spool is full."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import DataError, OperationalError

from realtime_voice.storage.pipeline import RecorderCounters, RecordPipeline, RetryPolicy
from realtime_voice.storage.records import Record, TurnRecord
from realtime_voice.storage.spool import Spool
from realtime_voice.storage.writer import RecordWriter

T0 = datetime(2025, 3, 1, tzinfo=UTC)


class ScriptedWriter(RecordWriter):
    """A writer whose database is up or down at the test's command; keeps what it got."""

    def __init__(self) -> None:
        super().__init__(create_engine("sqlite://"))
        self.up = True
        self.refuse: set[str] = set()
        self.stored: list[str] = []
        self.attempts = 0

    def probe(self) -> None:
        if not self.up:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("down"))

    def write(self, records: Sequence[Record]) -> None:
        self.attempts += 1
        self.probe()
        texts = [r.text for r in records if isinstance(r, TurnRecord)]
        if self.refuse.intersection(texts):
            raise DataError("INSERT", {}, ValueError("value too long"))
        self.stored += texts


def turns(*texts: str) -> list[Record]:
    return [TurnRecord(call_id="c", seq=i, speaker="caller", text=t, started_at=T0)
            for i, t in enumerate(texts)]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[RecordPipeline, ScriptedWriter, RecorderCounters]]:
    writer = ScriptedWriter()
    spool = Spool(tmp_path / "spool", max_bytes=4096)
    spool.open()
    counters = RecorderCounters()
    pipeline = RecordPipeline(
        writer, spool, batch_size=2, counters=counters,
        retry=RetryPolicy(attempts=3, initial_wait_s=0, max_wait_s=0),
    )
    yield pipeline, writer, counters
    spool.close()
    writer.engine.dispose()


def test_up_writes_straight_through(
    parts: tuple[RecordPipeline, ScriptedWriter, RecorderCounters],
) -> None:
    pipeline, writer, counters = parts
    pipeline.submit(turns("a", "b"))
    assert writer.stored == ["a", "b"]
    assert (counters.written, counters.spooled) == (2, 0)


def test_down_spools_after_bounded_retries_then_stops_trying(
    parts: tuple[RecordPipeline, ScriptedWriter, RecorderCounters],
) -> None:
    pipeline, writer, counters = parts
    writer.up = False
    pipeline.submit(turns("a"))
    assert writer.attempts == 3
    assert pipeline.down and pipeline.spool.depth == 1
    pipeline.submit(turns("b", "c"))
    assert writer.attempts == 3  # no waiting on a dead database for every batch
    assert counters.spooled == 3


def test_recovery_replays_in_order_and_new_records_wait_behind(
    parts: tuple[RecordPipeline, ScriptedWriter, RecorderCounters],
) -> None:
    pipeline, writer, counters = parts
    writer.up = False
    for text in "abcde":
        pipeline.submit(turns(text))
    pipeline.recover()
    assert pipeline.down and writer.stored == []
    writer.up = True
    pipeline.recover(max_chunks=1)  # part of the spool only
    assert not pipeline.down and writer.stored == ["a", "b"]
    pipeline.submit(turns("f"))  # must not overtake c, d, e
    pipeline.recover()
    assert writer.stored == ["a", "b", "c", "d", "e", "f"]
    assert pipeline.spool.depth == 0
    assert counters.replayed + counters.written == 6


def test_a_refused_record_is_set_aside_and_its_batch_mates_land(
    parts: tuple[RecordPipeline, ScriptedWriter, RecorderCounters],
) -> None:
    pipeline, writer, counters = parts
    writer.refuse = {"bad"}
    pipeline.submit(turns("a", "bad", "c"))
    assert writer.stored == ["a", "c"]
    assert (counters.written, counters.failed) == (2, 1)
    rejected = (pipeline.spool.directory / "rejected.jsonl").read_text()
    assert '"text":"bad"' in rejected
    assert not pipeline.down


def test_a_refused_record_in_the_spool_does_not_block_the_replay(
    parts: tuple[RecordPipeline, ScriptedWriter, RecorderCounters],
) -> None:
    pipeline, writer, counters = parts
    writer.up = False
    pipeline.submit(turns("a", "bad", "c", "d"))
    writer.up = True
    writer.refuse = {"bad"}
    pipeline.recover()
    assert writer.stored == ["a", "c", "d"]
    assert (counters.replayed, counters.failed) == (3, 1)
    assert pipeline.spool.depth == 0


def test_full_spool_drops_and_counts(
    parts: tuple[RecordPipeline, ScriptedWriter, RecorderCounters],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipeline, writer, counters = parts
    writer.up = False
    long_line = "x" * 1000
    for _ in range(6):
        pipeline.submit(turns(long_line))
    assert counters.spooled == 3
    assert counters.dropped == 3
    full_logs = [r for r in caplog.records if "dropping call records" in r.getMessage()]
    assert len(full_logs) == 1  # said once, not once per record


def test_unreadable_spool_line_is_set_aside(
    parts: tuple[RecordPipeline, ScriptedWriter, RecorderCounters],
) -> None:
    pipeline, writer, counters = parts
    pipeline.spool.append(["garbage"])
    writer.up = True
    pipeline.recover()
    assert counters.failed == 1
    assert pipeline.spool.depth == 0
    assert "garbage" in (pipeline.spool.directory / "rejected.jsonl").read_text()


def test_spool_only_after_a_shutdown_timeout(
    parts: tuple[RecordPipeline, ScriptedWriter, RecorderCounters],
) -> None:
    pipeline, writer, counters = parts
    pipeline.spool_only = True
    pipeline.submit(turns("a"))
    assert writer.attempts == 0 and counters.spooled == 1
