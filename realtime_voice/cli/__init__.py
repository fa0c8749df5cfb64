"""The ``realtime-voice`` command line: one module per sub-command.

Each sub-command module exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit code.

The test tools (``call``: a simulated gateway; ``simulate``: provider simulators) live
in `realtime_voice.testing` and are loaded by module name, so that nothing the server
imports ever pulls test code in (the ``no-test-code-in-production`` contract in
``.importlinter``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from realtime_voice import __version__

__all__ = ["build_parser", "main"]

_TEST_TOOLS = ("realtime_voice.testing.caller_cli",)
"""Sub-commands that are test tools: registered from `realtime_voice.testing`."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    # Imported here so `realtime-voice --help` stays fast and a broken optional engine
    # never breaks unrelated sub-commands at import time.
    from realtime_voice.cli import db, dial, ringcentral, serve, simulate

    parser = argparse.ArgumentParser(
        prog="realtime-voice", description="Real-time voice AI agent server for telephony."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(subparsers)
    for tool in _TEST_TOOLS:
        importlib.import_module(tool).register(subparsers)
    simulate.register(subparsers)
    ringcentral.register(subparsers)
    db.register(subparsers)
    dial.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``realtime-voice`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
