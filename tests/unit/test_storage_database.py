"""Database URLs and engines: normalisation, masking, SQLite pragmas and directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from realtime_voice.storage.database import (
    DatabaseConfigError,
    make_engine,
    mask_url,
    normalize_url,
)


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgres://u:p@db/calls", "postgresql+psycopg"),
        ("postgresql://u@db/calls", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@db/calls", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db/calls", "postgresql+psycopg"),
        ("sqlite:///./var/realtime_voice.db", "sqlite"),
        ("sqlite+pysqlite:///x.db", "sqlite+pysqlite"),
    ],
)
def test_normalize_url(given: str, driver: str) -> None:
    assert normalize_url(given).drivername == driver


def test_normalize_keeps_everything_else() -> None:
    url = normalize_url("postgres://user:pw@db.example.com:6543/calls?sslmode=require")
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "user", "pw", "db.example.com", 6543, "calls")
    assert url.query == {"sslmode": "require"}


@pytest.mark.parametrize("bad", ["mysql://root@localhost/calls", "not a url", "oracle://x"])
def test_unsupported_or_malformed_urls(bad: str) -> None:
    with pytest.raises(DatabaseConfigError):
        normalize_url(bad)


def test_mask_url_hides_the_password() -> None:
    masked = mask_url("postgresql://user:hunter2@db/calls")
    assert "hunter2" not in masked and "user" in masked


def test_sqlite_engine_creates_the_directory_and_sets_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'calls.db'}", sqlite_busy_timeout_ms=1234)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 1234
    finally:
        engine.dispose()
    assert (tmp_path / "var" / "calls.db").is_file()
