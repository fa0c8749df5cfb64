"""Locust scenarios for realtime-voice (see docs/LOAD_TESTING.md).

User classes (pick some by name on the command line; all of them by default):

- ``RingCentralCaller``: inbound webhook, then the RingCentral bridge protocol;
- ``TwilioCaller``: TwiML webhook, then Twilio Media Streams;
- ``ExotelCaller``, ``TelnyxCaller``, ``PlivoCaller``, ``VonageCaller``: each carrier's
  answer webhook, then its stream protocol (``locust_voice/carrier_callers.py``);
- ``WebhookUser`` (one): RingCentral notifications and inbound answers at a steady rate;
- ``OpsUser`` (one): health on both planes and ``/metrics``.

Callers stream prerecorded utterances at real time and report, per protocol, each turn's
end of speech → first bot audio (``turn``), barge-in → ``clear`` (``barge_in``), the
greeting and the whole call (``call``) as locust request statistics.

Run against a server you started (``-H`` is its HTTP control plane)::

    locust -f loadtests/locustfile.py --headless -u 10 -r 2 -t 2m \\
        -H http://127.0.0.1:8000 --media-url ws://127.0.0.1:8001

or let ``python loadtests/run_load.py`` start a local stack and run it for you.
"""

from __future__ import annotations

from typing import Any

import locust.stats
from locust import events
from locust_voice.carrier_callers import ExotelCaller, PlivoCaller, TelnyxCaller, VonageCaller
from locust_voice.ops_user import OpsUser
from locust_voice.options import add_options
from locust_voice.ringcentral_caller import RingCentralCaller
from locust_voice.twilio_caller import TwilioCaller
from locust_voice.webhook_user import WebhookUser

__all__ = [
    "ExotelCaller",
    "OpsUser",
    "PlivoCaller",
    "RingCentralCaller",
    "TelnyxCaller",
    "TwilioCaller",
    "VonageCaller",
    "WebhookUser",
]


def _three_significant_digits(response_time: float) -> int:
    # Locust keeps two significant digits by default (1234 ms is stored as 1200), too
    # coarse for turn latencies around a second; three keep 10 ms steps there. One
    # process, no workers, so the larger histogram costs nothing on the wire.
    if response_time < 1000:
        return round(response_time)
    if response_time < 10000:
        return int(round(response_time, -1))
    return int(round(response_time, -2))


locust.stats.bucket_response_time = _three_significant_digits


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _voice_options(parser: Any, **_: Any) -> None:
    add_options(parser)
