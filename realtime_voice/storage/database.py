"""Engines for the call database: URL normalisation, SQLite pragmas, connection time limits.

Only PostgreSQL (through psycopg 3) and SQLite are supported: the recorder's idempotent
writes use ``INSERT ... ON CONFLICT``, which both speak with the same semantics.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = [
    "SUPPORTED_DIALECTS",
    "DatabaseConfigError",
    "ensure_sqlite_directory",
    "make_engine",
    "mask_url",
    "normalize_url",
]

log = logging.getLogger(__name__)

SUPPORTED_DIALECTS = ("postgresql", "sqlite")


class DatabaseConfigError(ValueError):
    """A database URL this server cannot use (message: one line, names the problem)."""


def normalize_url(url: str | URL) -> URL:
    """Map the URL spellings people paste to the driver we ship.

    ``postgres://`` and ``postgresql://`` (Heroku-style, libpq-style) become
    ``postgresql+psycopg://`` because psycopg 3 is the driver installed; ``sqlite://`` keeps
    the standard-library driver.

    Raises:
        DatabaseConfigError: not a URL, or a database other than PostgreSQL and SQLite.
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception as exc:  # SQLAlchemy raises ArgumentError with a long message
        raise DatabaseConfigError(f"not a database URL: {mask_url(str(url))!r}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend not in SUPPORTED_DIALECTS:
        raise DatabaseConfigError(
            f"unsupported database {backend!r}: expected postgresql or sqlite"
        )
    if backend == "postgresql" and driver in ("", "psycopg2"):
        driver = "psycopg"
    drivername = f"{backend}+{driver}" if driver else backend
    return parsed.set(drivername=drivername)


def mask_url(url: str | URL) -> str:
    """The URL with its password hidden, for logs and error messages."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def ensure_sqlite_directory(url: URL) -> None:
    """Create the directory of an SQLite file (``./var/`` for the default URL) if missing."""
    if url.get_backend_name() != "sqlite":
        return
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _json_dumps(value: object) -> str:
    # Same rule as the spool: a value JSON cannot hold is stored as its string, not refused.
    return json.dumps(value, ensure_ascii=False, default=str)


def make_engine(
    url: str | URL,
    *,
    connect_timeout_s: float = 3.0,
    sqlite_busy_timeout_ms: int = 5000,
    pool_size: int = 5,
    echo: bool = False,
) -> Engine:
    """A synchronous engine configured for this server.

    PostgreSQL: bounded connect time and TCP user timeout, so an unreachable database turns
    into an error in seconds instead of hanging a worker thread. SQLite: WAL (readers do not
    block the writer), foreign keys on, ``synchronous=NORMAL`` (durable across a process
    crash in WAL mode), and a busy timeout instead of failing at once on a locked file.

    Args:
        url: the database URL (normalised with `normalize_url`).
        connect_timeout_s: PostgreSQL connect timeout.
        sqlite_busy_timeout_ms: how long an SQLite statement waits for a lock.
        pool_size: PostgreSQL pool size.
        echo: log every statement (debugging).

    Raises:
        DatabaseConfigError: the URL is not usable.
    """
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {
        "echo": echo,
        # Connections die with the database; check before use so the first write after an
        # outage does not fail on a stale one.
        "pool_pre_ping": True,
        "json_serializer": _json_dumps,
    }
    if backend == "postgresql":
        connect_args: dict[str, Any] = {
            "connect_timeout": max(1, round(connect_timeout_s)),
            # A peer that vanished mid-write (no RST) would otherwise block for ~15 min.
            "tcp_user_timeout": 10_000,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
        kwargs.update(
            connect_args=connect_args, pool_size=pool_size, max_overflow=pool_size,
            pool_timeout=connect_timeout_s,
        )
        return create_engine(parsed, **kwargs)
    ensure_sqlite_directory(parsed)
    kwargs["connect_args"] = {"timeout": sqlite_busy_timeout_ms / 1000}
    engine = create_engine(parsed, **kwargs)
    busy_ms = int(sqlite_busy_timeout_ms)
    in_memory = (parsed.database or "") in ("", ":memory:")

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, record: ConnectionPoolEntry) -> None:
        cursor = dbapi_conn.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        finally:
            cursor.close()

    return engine
