"""``realtime-voice simulate NAME``: run one provider simulator on its own.

Each simulator lives in ``realtime_voice.testing.<name>_sim`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when chosen, so
one simulator's dependencies never affect another.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

__all__ = ["SIMULATORS", "register"]

SIMULATORS: dict[str, str] = {
    "deepgram": "Deepgram /v1/listen WebSocket and /v1/speak REST",
    "openai": "OpenAI-compatible /v1/chat/completions (server-sent events)",
    "ringcentral": "RingCentral OAuth + Call Control REST",
}


def register(subparsers: Any) -> None:
    """Add the ``simulate`` sub-command and one sub-parser per available simulator."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate", help="run a protocol-faithful provider simulator (for tests and load tests)"
    )
    sims = parser.add_subparsers(dest="simulator", required=True, metavar="SIMULATOR")
    for name, help_text in SIMULATORS.items():
        try:
            module = importlib.import_module(f"realtime_voice.testing.{name}_sim")
        except ModuleNotFoundError as exc:
            if exc.name != f"realtime_voice.testing.{name}_sim":
                raise
            continue  # not part of this build yet
        sub = sims.add_parser(name, help=help_text)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
