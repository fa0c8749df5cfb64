"""Running the Alembic migrations from code: the server at start, ``realtime-voice db``.

The migration scripts live in ``alembic/`` at the repository root (beside ``alembic.ini``),
found relative to this package; they are the same scripts the ``alembic`` command runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from alembic import command
from realtime_voice.storage.database import make_engine, mask_url, normalize_url

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "downgrade_database",
    "head_revision",
    "upgrade_database",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "alembic"
"""``alembic/`` at the repository root."""

# Any constant will do: it only has to be the same in every process migrating this database.
_PG_MIGRATION_LOCK = 0x7276_6462  # "rvdb"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at our scripts (no ini file needed).

    Raises:
        FileNotFoundError: the ``alembic/`` directory is not beside the package (an install
            without the repository).
    """
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise FileNotFoundError(f"migration scripts not found in {MIGRATIONS_DIR}")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["configure_logging"] = False
    if url is not None:
        cfg.attributes["url"] = normalize_url(url).render_as_string(hide_password=False)
    return cfg


@contextlib.contextmanager
def _quiet_alembic() -> Iterator[None]:
    # Alembic logs several INFO lines per run ("Context impl ...", plug-ins); the server's
    # log gets one line from us instead when something was actually migrated.
    logger = logging.getLogger("alembic")
    previous = logger.level
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def _migration_connection(url: str | URL) -> Iterator[Connection]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # Several server processes may start at once: one migrates, the others wait.
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
                conn.commit()
            try:
                yield conn
            finally:
                if conn.dialect.name == "postgresql":
                    conn.rollback()
                    conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK}
                    )
                    conn.commit()
    finally:
        engine.dispose()


def upgrade_database(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (creating an SQLite file's directory).

    Raises:
        DatabaseConfigError: the URL is not usable.
        sqlalchemy.exc.OperationalError: the database cannot be reached.
    """
    cfg = alembic_config(url)
    with _quiet_alembic(), _migration_connection(url) as conn:
        cfg.attributes["connection"] = conn
        before = MigrationContext.configure(conn).get_current_revision()
        command.upgrade(cfg, revision)
        conn.commit()
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database %s migrated: %s → %s", mask_url(url), before or "empty", after)


def downgrade_database(url: str | URL, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` removes everything)."""
    cfg = alembic_config(url)
    with _migration_connection(url) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
        conn.commit()


def current_revision(url: str | URL) -> str | None:
    """The revision the database is at (``None`` when never migrated)."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision among the scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migration scripts")
    return head
