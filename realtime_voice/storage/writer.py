"""Applying records to the database: one transaction per batch, idempotent by construction.

A batch is written as: a stub row for every call it mentions (``INSERT ... ON CONFLICT DO
NOTHING`` on the gateway call id, so a turn that arrives before its call's start still has
a parent), the call updates in order (each guarded by the call's ``last_seq``), then all
turns and events in two multi-row inserts that skip ``(call, seq)`` pairs already present.
Runs in a worker thread: everything here blocks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, String, Table, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.sql.dml import Insert

from realtime_voice.storage.models import Base, utc_now
from realtime_voice.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    EventRecord,
    Record,
    TurnRecord,
)

__all__ = ["RecordWriter", "describe_error", "is_transient"]

CALLS: Table = Base.metadata.tables["calls"]
TURNS: Table = Base.metadata.tables["turns"]
EVENTS: Table = Base.metadata.tables["call_events"]

_LENGTHS: dict[str, dict[str, int]] = {
    table.name: {
        column.name: column.type.length
        for column in table.columns
        if isinstance(column.type, String) and column.type.length
    }
    for table in (CALLS, TURNS, EVENTS)
}


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` means "the database is unavailable", not "this record is bad".

    Transient errors are retried and then spooled; anything else is the record's fault
    (a constraint, a value the column cannot hold) and retrying it would block the spool
    forever. Errors about the schema (a missing table before ``db upgrade``) count as
    transient on purpose: the records wait in the spool until the schema is fixed.
    """
    if isinstance(exc, (IntegrityError, DataError)):
        return False
    return isinstance(exc, (DBAPIError, PoolTimeoutError, DisconnectionError, OSError))


def _fit(table: str, values: dict[str, Any]) -> dict[str, Any]:
    """Truncate strings to their column's length (the gateway's ids are not ours to trust)."""
    limits = _LENGTHS[table]
    for name, limit in limits.items():
        value = values.get(name)
        if isinstance(value, str) and len(value) > limit:
            values[name] = value[:limit]
    return values


def _insert_new(conn: Connection, table: Table, key: list[str]) -> Insert:
    """``INSERT ... ON CONFLICT (key) DO NOTHING``: rows already there are left alone."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=key)
    raise NotImplementedError(f"unsupported database dialect {conn.dialect.name!r}")


def _record_time(record: Record) -> datetime:
    if isinstance(record, CallStart):
        return record.started_at
    if isinstance(record, CallEnd):
        return record.ended_at
    if isinstance(record, TurnRecord):
        return record.started_at
    return record.at


_PATCH_SKIP = frozenset({"call_id", "seq", "at"})


def _patch_values(record: CallStart | CallUpdate | CallEnd) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        if f.name in _PATCH_SKIP:
            continue
        value = getattr(record, f.name)
        if value is not None:
            values[f.name] = value
    return values


class RecordWriter:
    """Writes record batches through a synchronous engine.

    Args:
        engine: a PostgreSQL or SQLite engine whose schema is migrated to head.
    """

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("postgresql", "sqlite"):
            raise ValueError(f"unsupported database dialect {engine.dialect.name!r}")
        self.engine = engine

    def probe(self) -> None:
        """Round-trip to the database (raises if it is unreachable)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def write(self, records: Sequence[Record]) -> None:
        """Write ``records`` in one transaction: all of them or none.

        Raises:
            SQLAlchemyError: the database refused (see `is_transient`).
        """
        if not records:
            return
        with self.engine.begin() as conn:
            ids = self._ensure_calls(conn, records)
            turns: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for record in records:
                if isinstance(record, TurnRecord):
                    turns.append(self._turn_row(ids[record.call_id], record))
                elif isinstance(record, EventRecord):
                    events.append(self._event_row(ids[record.call_id], record))
                else:
                    self._apply_patch(conn, ids[record.call_id], record)
            if turns:
                conn.execute(_insert_new(conn, TURNS, ["call_id", "seq"]), turns)
            if events:
                conn.execute(_insert_new(conn, EVENTS, ["call_id", "seq"]), events)

    def _ensure_calls(self, conn: Connection, records: Iterable[Record]) -> dict[str, int]:
        first_seen: dict[str, datetime] = {}
        for record in records:
            first_seen.setdefault(record.call_id, _record_time(record))
        now = utc_now()
        stubs = [
            _fit("calls", {
                "call_id": call_id, "started_at": at, "state": "initializing",
                "direction": "inbound", "escalated": False, "created_at": now,
                "updated_at": now,
            })
            for call_id, at in first_seen.items()
        ]
        conn.execute(_insert_new(conn, CALLS, ["call_id"]), stubs)
        keys = [stub["call_id"] for stub in stubs]
        rows = conn.execute(
            select(CALLS.c.call_id, CALLS.c.id).where(CALLS.c.call_id.in_(keys))
        ).all()
        found = {row[0]: int(row[1]) for row in rows}
        # A call id longer than the column was stored truncated: map it back.
        return {call_id: found[key] for call_id, key in zip(first_seen, keys, strict=True)}

    def _apply_patch(
        self, conn: Connection, pk: int, record: CallStart | CallUpdate | CallEnd
    ) -> None:
        values = _fit("calls", _patch_values(record))
        if isinstance(record, CallEnd) and record.duration_s is None:
            started = conn.execute(select(CALLS.c.started_at).where(CALLS.c.id == pk)).scalar()
            if isinstance(started, datetime):
                values["duration_s"] = max(0.0, (record.ended_at - started).total_seconds())
        values["updated_at"] = utc_now()
        stmt = update(CALLS).where(CALLS.c.id == pk)
        if record.seq is not None:
            # Skip an update older than one already applied (a replay after a newer write).
            stmt = stmt.where(or_(CALLS.c.last_seq.is_(None), CALLS.c.last_seq < record.seq))
            values["last_seq"] = record.seq
        conn.execute(stmt.values(**values))

    @staticmethod
    def _turn_row(pk: int, record: TurnRecord) -> dict[str, Any]:
        return _fit("turns", {
            "call_id": pk,
            "seq": record.seq,
            "speaker": record.speaker,
            "text": record.text,
            "intent": record.intent,
            "confidence": record.confidence,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "latency_ms": record.latency_ms,
            "interrupted": record.interrupted,
        })

    @staticmethod
    def _event_row(pk: int, record: EventRecord) -> dict[str, Any]:
        return _fit("call_events", {
            "call_id": pk,
            "seq": record.seq,
            "at": record.at,
            "kind": record.kind,
            "data": dict(record.data) if record.data is not None else None,
        })


def describe_error(exc: BaseException) -> str:
    """One line for a log: the driver's message without SQLAlchemy's statement dump."""
    inner: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:
        inner = exc.orig
    lines = str(inner).strip().splitlines()
    return f"{type(inner).__name__}: {lines[0] if lines else '(no message)'}"

