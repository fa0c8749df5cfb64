"""CallRecorder throughput (turns per second) and spool replay time, on PostgreSQL and SQLite.

Run: ``python loadtests/bench_recorder.py [--turns 20000] [--calls 50] [--runs 3]
[--batch-size 100] [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
[--skip-postgres]``

PostgreSQL: a scratch database is created from the server named by ``--pg-url`` (default:
``TEST_DATABASE_URL``, else the local server) and dropped at the end. SQLite: a file in a
temporary directory (WAL, ``synchronous=NORMAL``, as the server runs it).

Throughput: ``--calls`` calls each say ``--turns``/``--calls`` turns, enqueued as fast as
the session API allows; the clock runs from the first enqueue to `CallRecorder.flush`
returning with every record committed. Replay: a spool of 1,000 records (10 calls: start,
90 turns, 8 events, end... each) left by a "previous process" is replayed by a fresh
recorder; the clock runs from `start` to `wait_replayed`. Each figure is the median of
``--runs`` runs, each on an empty schema.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from realtime_voice.storage.database import make_engine, normalize_url
from realtime_voice.storage.migrate import downgrade_database, upgrade_database
from realtime_voice.storage.recorder import CallRecorder
from realtime_voice.storage.records import (
    CallEnd,
    CallStart,
    EventRecord,
    Record,
    TurnRecord,
    record_to_json,
)
from realtime_voice.storage.spool import Spool

__all__ = ["main"]

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@contextmanager
def scratch_postgres(server: URL) -> Iterator[str]:
    """A new, empty database on ``server`` for the duration of the block."""
    name = f"rv_bench_{secrets.token_hex(4)}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fresh_schema(url: str) -> None:
    downgrade_database(url, "base")
    upgrade_database(url)


async def throughput(url: str, spool_dir: Path, *, turns: int, calls: int, batch: int) -> float:
    """Turns per second through the recorder, start of enqueue to all committed."""
    fresh_schema(url)
    recorder = CallRecorder(url, spool_dir=spool_dir, batch_size=batch)
    await recorder.start()
    journals = [recorder.journal(f"bench-{n}") for n in range(calls)]
    for n, journal in enumerate(journals):
        journal.started(session_id=f"s{n}", from_number="+15555550100",
                        to_number="+15555550199", protocol="ringcentral")
    await recorder.flush()
    per_call = turns // calls
    began = time.perf_counter()
    for i in range(per_call):
        for journal in journals:
            journal.turn("caller" if i % 2 == 0 else "bot",
                         f"turn {i}: I'd like a table for four tomorrow at seven",
                         confidence=0.93, latency_ms=412.5)
    await recorder.flush()
    elapsed = time.perf_counter() - began
    written = recorder.counters.written
    await recorder.close()
    if written != calls + per_call * calls:
        raise RuntimeError(f"expected {calls + per_call * calls} records, wrote {written}")
    return per_call * calls / elapsed


def spool_records(total: int = 1000) -> list[Record]:
    """``total`` records as ten calls would leave them."""
    records: list[Record] = []
    per_call = total // 10
    for n in range(10):
        call_id = f"replay-{n}"
        records.append(CallStart(call_id=call_id, seq=0, started_at=T0, protocol="twilio"))
        events = 8
        for i in range(per_call - 2 - events):
            records.append(TurnRecord(call_id=call_id, seq=i, speaker="caller", text=f"turn {i}",
                                      started_at=T0 + timedelta(seconds=i)))
        for i in range(events):
            records.append(EventRecord(call_id=call_id, seq=i, at=T0, kind="barge_in"))
        records.append(CallEnd(call_id=call_id, seq=1, ended_at=T0 + timedelta(minutes=2)))
    return records


async def replay_time(url: str, spool_dir: Path, *, batch: int) -> float:
    """Seconds for a fresh recorder to replay a 1,000-record spool."""
    fresh_schema(url)
    spool = Spool(spool_dir)
    spool.open()
    records = spool_records()
    spool.append([record_to_json(r) for r in records])
    spool.close()
    recorder = CallRecorder(url, spool_dir=spool_dir, batch_size=batch)
    began = time.perf_counter()
    await recorder.start()
    await recorder.wait_replayed()
    elapsed = time.perf_counter() - began
    replayed = recorder.counters.replayed
    await recorder.close()
    if replayed != len(records):
        raise RuntimeError(f"replayed {replayed} of {len(records)}")
    return elapsed


async def bench(name: str, url: str, args: argparse.Namespace) -> None:
    rates: list[float] = []
    replays: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            rates.append(await throughput(url, Path(tmp) / f"spool-{run}", turns=args.turns,
                                          calls=args.calls, batch=args.batch_size))
        with tempfile.TemporaryDirectory() as tmp:
            replays.append(await replay_time(url, Path(tmp) / f"spool-{run}",
                                             batch=args.batch_size))
    print(f"{name:<11} {statistics.median(rates):>12,.0f} turns/s   "
          f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    print(f"{'':<11} {statistics.median(replays) * 1000:>12,.0f} ms to replay 1,000 spooled "
          f"records   (runs: {', '.join(f'{r * 1000:.0f}' for r in replays)})")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("TEST_DATABASE_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args(argv)
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(f"python {platform.python_version()}, sqlalchemy {sqlalchemy.__version__}, "
          f"{os.cpu_count()} CPU(s); {args.turns:,} turns over {args.calls} calls, "
          f"batch {args.batch_size}, median of {args.runs}")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench("sqlite", f"sqlite:///{tmp}/bench.db", args))
    if not args.skip_postgres:
        server = normalize_url(args.pg_url)
        with scratch_postgres(server) as url:
            engine = make_engine(url)
            with engine.connect() as conn:
                version = conn.execute(text("SHOW server_version")).scalar()
            engine.dispose()
            asyncio.run(bench(f"postgresql {str(version).split()[0]}", url, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
