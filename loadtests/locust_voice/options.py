"""The extra ``locust`` command-line options the voice users read.

Registered on locust's parser by `add_options` (the locustfile wires it to
``events.init_command_line_parser``); ``loadtests/run_load.py`` passes them through.
(Locust prints ``--help`` before it loads a locustfile, so they are listed in
docs/LOAD_TESTING.md, not there.) `read_options` returns them typed, with the same
defaults when locust runs without a parser (as a library).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from locust.env import Environment

from locust_voice.scripts import SCRIPTS

__all__ = ["VoiceOptions", "add_options", "read_options"]


@dataclass(frozen=True)
class VoiceOptions:
    """The voice users' settings (see `add_options` for each one's meaning)."""

    call_script: str = "restaurant"
    flow: str = ""
    greeting_timeout: float = 10.0
    turn_timeout: float = 10.0
    barge_in_timeout: float = 3.0
    webhook_rate: float = 2.0
    ops_interval: float = 2.0
    rc_verification_token: str = ""
    media_url: str = ""


_DEFAULTS = VoiceOptions()


_HELP = {
    "call_script": "what each simulated caller says (restaurant: a whole call of about 45 s "
    "with one barge-in; short: two barge-ins, about 15 s)",
    "flow": "custom parameter 'flow' of each call (empty: the server's default)",
    "greeting_timeout": "seconds from the media start to the greeting's first audio",
    "turn_timeout": "seconds from the end of the caller's speech to the bot's first audio",
    "barge_in_timeout": "seconds from talking over the bot to its 'clear'",
    "webhook_rate": "requests per second of each WebhookUser (constant throughput)",
    "ops_interval": "seconds between two polls of each OpsUser",
    "rc_verification_token": "Verification-Token header for the webhooks (the server's "
    "RC_WEBHOOK_VERIFICATION_TOKEN, if set)",
    "media_url": "the media plane's base URL (ws://HOST:PORT), for the ops user's "
    "media-plane health check (skipped when empty)",
}


def add_options(parser: Any) -> None:
    """Add the voice options to locust's argument parser (a ``configargparse`` parser)."""
    group: argparse._ArgumentGroup = parser.add_argument_group("realtime-voice users")
    for field in dataclasses.fields(VoiceOptions):
        default = getattr(_DEFAULTS, field.name)
        group.add_argument(
            "--" + field.name.replace("_", "-"),
            type=type(default),
            default=default,
            choices=sorted(SCRIPTS) if field.name == "call_script" else None,
            help=_HELP[field.name],
        )


def read_options(environment: Environment) -> VoiceOptions:
    """The voice options of this run (defaults when locust parsed no command line)."""
    parsed = environment.parsed_options
    if parsed is None:
        return _DEFAULTS
    return VoiceOptions(
        **{
            name: getattr(parsed, name, getattr(_DEFAULTS, name))
            for name in (field.name for field in dataclasses.fields(VoiceOptions))
        }
    )
