"""``realtime-voice serve``: run the server on the settings from the environment / ``.env``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``serve`` sub-command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the voice server (HTTP control plane + WebSocket media plane)",
        description="Run the server. Configuration comes from environment variables and a "
        ".env file in the working directory (see README).",
    )
    parser.add_argument("--http-port", type=int, help="override VOICE_HTTP_PORT")
    parser.add_argument("--media-port", type=int, help="override VOICE_MEDIA_PORT")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    from realtime_voice.config import SettingsError, load_settings
    from realtime_voice.log import configure_logging, secrets_of

    env = dict(os.environ)
    if args.http_port is not None:
        env["VOICE_HTTP_PORT"] = str(args.http_port)
    if args.media_port is not None:
        env["VOICE_MEDIA_PORT"] = str(args.media_port)
    try:
        settings = load_settings(env)
    except SettingsError as exc:
        print(f"realtime-voice: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(settings))
    from realtime_voice.server.app import run_server

    try:
        asyncio.run(run_server(dataclasses.replace(settings)))
    except SettingsError as exc:
        print(f"realtime-voice: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"realtime-voice: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0
