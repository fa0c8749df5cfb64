"""Which carrier's codec serves which path of the media plane.

Every carrier stream but our own bridge follows one handshake (`MediaServer` runs it):
the carrier connects, sends a few JSON messages, and one of them parses into a
`StartEvent` naming the carrier's call id; the single-use stream token its answer
webhook minted for that call id comes in the URL query or in the start's custom
parameters. A route says only what differs per carrier: the codec (built from the URL
query, which may choose the audio format) and whether the carrier may authenticate by
HTTP Basic credentials instead (Exotel's static applet URL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from realtime_voice.audio.format import UnsupportedFormatError
from realtime_voice.protocols.base import MediaProtocol
from realtime_voice.protocols.exotel import ExotelProtocol
from realtime_voice.protocols.plivo import PlivoProtocol
from realtime_voice.protocols.telnyx import TelnyxProtocol
from realtime_voice.protocols.twilio import TwilioMediaStreamsProtocol
from realtime_voice.protocols.vonage import VonageProtocol

__all__ = [
    "EXOTEL_PATH",
    "EXOTEL_SEED_PATHS",
    "PLIVO_PATH",
    "TELNYX_PATH",
    "TWILIO_PATH",
    "VONAGE_PATH",
    "StreamRoute",
    "stream_routes",
]

TWILIO_PATH: Final = "/api/voice/twilio/ws"
EXOTEL_PATH: Final = "/api/voice/exotel/ws"
TELNYX_PATH: Final = "/api/voice/telnyx/ws"
PLIVO_PATH: Final = "/api/voice/plivo/ws"
VONAGE_PATH: Final = "/api/voice/vonage/ws"
EXOTEL_SEED_PATHS: Final = ("/was", "/media")
"""The paths the two Exotel systems this product grew from served (seed 002's Go voicebot:
``/was?sample-rate=16000``; seed 000's lead qualifier: ``/media``), so an Exotel flow
configured for either keeps working when pointed at this server."""


@dataclass(frozen=True, slots=True)
class StreamRoute:
    """One carrier stream endpoint.

    Attributes:
        carrier: the carrier's name (logs, metrics, the call-control registry).
        make_codec: builds the call's codec from the URL query.
        basic_auth: the carrier may present HTTP Basic credentials instead of a token.
    """

    carrier: str
    make_codec: Callable[[Mapping[str, str]], MediaProtocol]
    basic_auth: bool = False


def _exotel_codec(query: Mapping[str, str]) -> MediaProtocol:
    raw = query.get("sample-rate", "8000")
    try:
        rate = int(raw)
    except ValueError:
        raise UnsupportedFormatError(f"sample-rate={raw[:20]!r} is not a number") from None
    return ExotelProtocol(sample_rate=rate)


def stream_routes() -> dict[str, StreamRoute]:
    """The carrier stream paths of the media plane."""
    twilio = StreamRoute("twilio", lambda _query: TwilioMediaStreamsProtocol())
    exotel = StreamRoute("exotel", _exotel_codec, basic_auth=True)
    routes = {
        TWILIO_PATH: twilio,
        EXOTEL_PATH: exotel,
        TELNYX_PATH: StreamRoute("telnyx", lambda _query: TelnyxProtocol()),
        PLIVO_PATH: StreamRoute("plivo", lambda _query: PlivoProtocol()),
        # websocket:connected names the rate; the constructor's is only a fallback.
        VONAGE_PATH: StreamRoute("vonage", lambda _query: VonageProtocol()),
    }
    routes.update(dict.fromkeys(EXOTEL_SEED_PATHS, exotel))
    return routes
