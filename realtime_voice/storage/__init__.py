"""Persistence: the call database (SQLAlchemy models, Alembic migrations), the outage-proof
`CallRecorder` (batched, spooled to disk while the database is away), and the read side."""

from __future__ import annotations

from realtime_voice.storage.database import DatabaseConfigError, make_engine, normalize_url
from realtime_voice.storage.journal import (
    CallJournal,
    RecordSink,
    default_outcome,
    metrics_from_stats,
    utc_from_timestamp,
)
from realtime_voice.storage.migrate import (
    current_revision,
    downgrade_database,
    head_revision,
    upgrade_database,
)
from realtime_voice.storage.queries import CallFilter, CallPage, CallStore
from realtime_voice.storage.recorder import CallRecorder, RecorderCounters, RetryPolicy
from realtime_voice.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    EventRecord,
    Record,
    TurnRecord,
)
from realtime_voice.storage.spool import SpoolError, SpoolLockedError

__all__ = [
    "CallEnd",
    "CallFilter",
    "CallJournal",
    "CallPage",
    "CallRecorder",
    "CallStart",
    "CallStore",
    "CallUpdate",
    "DatabaseConfigError",
    "EventRecord",
    "Record",
    "RecordSink",
    "RecorderCounters",
    "RetryPolicy",
    "SpoolError",
    "SpoolLockedError",
    "TurnRecord",
    "current_revision",
    "default_outcome",
    "downgrade_database",
    "head_revision",
    "make_engine",
    "metrics_from_stats",
    "normalize_url",
    "upgrade_database",
    "utc_from_timestamp",
]
