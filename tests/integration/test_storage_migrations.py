"""Alembic migrations on the real database: up, down, up again; head matches the models;
``realtime-voice db``; the ``alembic`` command with the root ``alembic.ini``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from realtime_voice.cli import db as db_command
from realtime_voice.storage.database import make_engine
from realtime_voice.storage.migrate import (
    current_revision,
    downgrade_database,
    head_revision,
    upgrade_database,
)
from realtime_voice.storage.models import Base
from tests.integration import db_fixtures

database_url = db_fixtures.database_url
migrated_url = db_fixtures.migrated_url

REPO = Path(__file__).resolve().parents[2]
TABLES = {"calls", "turns", "call_events", "customers"}


def main(argv: list[str]) -> int:
    """``realtime-voice ARGV`` with the ``db`` sub-command (as `realtime_voice.cli` wires it)."""
    parser = argparse.ArgumentParser(prog="realtime-voice")
    db_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_and_upgrade_again(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade_database(database_url)
    assert current_revision(database_url) == head_revision()
    assert table_names(database_url) >= TABLES

    downgrade_database(database_url, "base")
    assert current_revision(database_url) is None
    assert table_names(database_url) & TABLES == set()

    upgrade_database(database_url)
    assert current_revision(database_url) == head_revision()
    assert table_names(database_url) >= TABLES


def test_upgrading_an_up_to_date_database_changes_nothing(migrated_url: str) -> None:
    upgrade_database(migrated_url)
    assert current_revision(migrated_url) == head_revision()


def test_head_schema_matches_the_models(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_server_start_migration_creates_the_sqlite_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'var' / 'realtime_voice.db'}"
    upgrade_database(url)
    assert (tmp_path / "fresh" / "var" / "realtime_voice.db").is_file()
    assert current_revision(url) == head_revision()


def test_db_command_upgrades_reports_and_downgrades(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "current", "--url", database_url]) == 0
    assert "base (empty)" in capsys.readouterr().out

    assert main(["db", "upgrade", "--url", database_url]) == 0
    assert f"at revision {head_revision()}" in capsys.readouterr().out

    assert main(["db", "current", "--url", database_url]) == 0
    assert "up to date" in capsys.readouterr().out

    assert main(["db", "downgrade", "base", "--url", database_url]) == 0
    assert "base (empty)" in capsys.readouterr().out
    assert table_names(database_url) & TABLES == set()


def test_db_command_takes_the_url_from_database_url(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["db", "upgrade"]) == 0
    assert current_revision(database_url) == head_revision()


def test_db_command_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade", "--url", "mysql://root@localhost/calls"]) == 2
    err = capsys.readouterr().err
    assert "unsupported database 'mysql'" in err and err.count("\n") == 1

    unreachable = "postgresql://postgres:secret@127.0.0.1:1/calls"
    assert main(["db", "current", "--url", unreachable]) == 1
    err = capsys.readouterr().err
    assert "OperationalError" in err and err.count("\n") == 1
    assert "secret" not in err


def test_alembic_command_with_the_root_ini(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert current_revision(database_url) == head_revision()
