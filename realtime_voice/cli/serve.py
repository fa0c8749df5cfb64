"""``realtime-voice serve``: run the server on the settings from the environment / ``.env``.

Before anything listens it settles the operator token (``VOICE_API_TOKEN``, else the data
directory's, generated at the first start) so that the logs redact it like every other
secret. Once the server is ready it prints where the console is, as Jupyter does: at the
start that generated the token, the one-click login link with the token in it; on later
starts the console's URL and where the token is kept, never the token.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from realtime_voice.security.operator_token import OperatorToken
    from realtime_voice.server.app import VoiceServer

__all__ = ["console_banner", "register"]


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
    from realtime_voice.security.operator_token import (
        OperatorTokenError,
        load_or_create_operator_token,
    )

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
    try:
        operator = load_or_create_operator_token(settings.console, settings.api_token)
    except OperatorTokenError as exc:
        print(f"realtime-voice: configuration error: {exc}", file=sys.stderr)
        return 2
    # The server takes the token as configured, so a generated one is redacted too.
    settings = dataclasses.replace(settings, api_token=operator.token)
    configure_logging(settings.log_level, settings.log_format, secrets=secrets_of(settings))
    from realtime_voice.server.app import run_server

    def ready(server: VoiceServer) -> None:
        print(console_banner(operator, _console_url(server)), flush=True)

    try:
        asyncio.run(run_server(settings, on_ready=ready))
    except SettingsError as exc:
        print(f"realtime-voice: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"realtime-voice: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _console_url(server: VoiceServer) -> str:
    """The console's base URL: VOICE_PUBLIC_HTTP_URL, else the bound address."""
    if server.settings.public_http_url:
        return server.settings.public_http_url.rstrip("/")
    host = server.settings.http_host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.http_port}"


def console_banner(operator: OperatorToken, base_url: str) -> str:
    """What ``serve`` prints once ready: the console's address and how to log in.

    Args:
        operator: the operator token and where it came from.
        base_url: the console's base URL (no trailing slash).
    """
    if operator.source == "generated":
        return (
            "\n    To open the console, visit (the link logs you in):\n"
            f"        {base_url}/login?token={operator.token}\n"
            f"    The operator token was generated and saved in {operator.path} (mode 0600);\n"
            "    API clients send it as \"Authorization: Bearer <token>\". Later starts "
            "print only where it is kept.\n"
        )
    where = (
        "VOICE_API_TOKEN" if operator.source == "env"
        else f"the operator token in {operator.path}"
    )
    return f"    Console: {base_url}/ (log in with {where})"
