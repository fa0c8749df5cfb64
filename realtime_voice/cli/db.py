"""``realtime-voice db upgrade|downgrade|current``: migrate the call database.

The URL is ``--url``, else ``DATABASE_URL`` (environment or ``.env``), else the server's
default SQLite file. Exit codes: 0 done, 1 the database could not be reached or migrated,
2 a configuration error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``db`` sub-command and its ``upgrade``, ``downgrade`` and ``current``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "db",
        help="migrate the call database (Alembic)",
        description="Migrate the call database. The URL comes from --url, else DATABASE_URL "
        "(environment or .env), else the default SQLite file ./var/realtime_voice.db.",
    )
    actions = parser.add_subparsers(dest="db_action", required=True, metavar="ACTION")

    upgrade = actions.add_parser("upgrade", help="migrate up (default: to the newest revision)")
    upgrade.add_argument("revision", nargs="?", default="head", help="target (default: head)")
    downgrade = actions.add_parser("downgrade", help="migrate down to a revision")
    downgrade.add_argument("revision", help="target: a revision id, -1 for one step, or base")
    current = actions.add_parser("current", help="print the database's revision")
    for sub in (upgrade, downgrade, current):
        sub.add_argument("--url", help="database URL (overrides DATABASE_URL)")
        sub.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from realtime_voice.config import SettingsError, load_settings
    from realtime_voice.storage.database import DatabaseConfigError, mask_url, normalize_url
    from realtime_voice.storage.migrate import (
        current_revision,
        downgrade_database,
        head_revision,
        upgrade_database,
    )
    from realtime_voice.storage.writer import describe_error

    try:
        url = args.url or load_settings().database_url
        normalize_url(url)
    except (SettingsError, DatabaseConfigError) as exc:
        print(f"realtime-voice db: configuration error: {exc}", file=sys.stderr)
        return 2
    where = mask_url(url)
    try:
        if args.db_action == "upgrade":
            upgrade_database(url, args.revision)
            print(f"{where}: at revision {current_revision(url)} (head {head_revision()})")
        elif args.db_action == "downgrade":
            downgrade_database(url, args.revision)
            print(f"{where}: at revision {current_revision(url) or 'base (empty)'}")
        else:
            revision = current_revision(url)
            head = head_revision()
            note = "up to date" if revision == head else f"head is {head}: run db upgrade"
            print(f"{where}: at revision {revision or 'base (empty)'} ({note})")
    except SQLAlchemyError as exc:
        print(f"realtime-voice db: {where}: {describe_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # Alembic reports a bad revision as CommandError / ValueError
        print(f"realtime-voice db: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
