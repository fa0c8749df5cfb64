"""Which carrier's codec serves which path of the media plane.

Every carrier stream but our own bridge follows one handshake (`MediaServer` runs it):
the carrier connects, sends a few JSON messages, and one of them parses into a
`StartEvent` naming the carrier's call id; the single-use stream token its answer
webhook minted for that call id comes in the URL query or in the start's custom
parameters. A route says only what differs per carrier: the codec (built from the URL
query, which may choose the audio format) and whether the carrier may authenticate by
HTTP Basic credentials instead (Exotel's static applet URL), and whether only the
console's page may open it (the browser leg: `console_origin_refusal`; its socket says
``end`` before every close, `BrowserSocket`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from realtime_voice.audio.format import UnsupportedFormatError
from realtime_voice.protocols.base import MediaProtocol
from realtime_voice.protocols.browser import BrowserProtocol
from realtime_voice.protocols.exotel import ExotelProtocol
from realtime_voice.protocols.plivo import PlivoProtocol
from realtime_voice.protocols.telnyx import TelnyxProtocol
from realtime_voice.protocols.twilio import TwilioMediaStreamsProtocol
from realtime_voice.protocols.vonage import VonageProtocol

__all__ = [
    "BROWSER_PATH",
    "EXOTEL_PATH",
    "EXOTEL_SEED_PATHS",
    "PLIVO_PATH",
    "TELNYX_PATH",
    "TWILIO_PATH",
    "VONAGE_PATH",
    "BrowserSocket",
    "StreamRoute",
    "console_origin_refusal",
    "stream_routes",
]

TWILIO_PATH: Final = "/api/voice/twilio/ws"
EXOTEL_PATH: Final = "/api/voice/exotel/ws"
TELNYX_PATH: Final = "/api/voice/telnyx/ws"
PLIVO_PATH: Final = "/api/voice/plivo/ws"
VONAGE_PATH: Final = "/api/voice/vonage/ws"
BROWSER_PATH: Final = "/api/voice/browser/ws"
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
        console_origin: only the console's page may connect (`console_origin_refusal`).
    """

    carrier: str
    make_codec: Callable[[Mapping[str, str]], MediaProtocol]
    basic_auth: bool = False
    console_origin: bool = False


def _exotel_codec(query: Mapping[str, str]) -> MediaProtocol:
    raw = query.get("sample-rate", "8000")
    try:
        rate = int(raw)
    except ValueError:
        raise UnsupportedFormatError(f"sample-rate={raw[:20]!r} is not a number") from None
    return ExotelProtocol(sample_rate=rate)


def _same_machine(name: str | None) -> str | None:
    # The server prints a 127.0.0.1 console URL and defaults to a ws://localhost media
    # URL: every loopback name is one host.
    if name is not None and (name in ("localhost", "::1") or name.startswith("127.")):
        return "loopback"
    return name


def _origin_of(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


def console_origin_refusal(
    origin: str | None,
    host: str | None,
    allowed_origins: tuple[str, ...],
    public_http_url: str | None,
) -> str | None:
    """Why a browser-leg upgrade's ``Origin`` is not the console's, or ``None`` when it is.

    Browsers always send ``Origin`` on a WebSocket upgrade, so it is required here: a page
    on another site must not open a call with a token it got hold of. The console's
    origin is any of VOICE_ALLOWED_ORIGINS when set, else the origin of
    VOICE_PUBLIC_HTTP_URL when set, else any origin on the host name of the upgrade's
    ``Host`` (the console on :8000 and media on :8001 of one host; ``localhost``,
    ``127.0.0.1`` and ``::1`` count as one).

    Args:
        origin: the ``Origin`` header, if any.
        host: the ``Host`` header, if any.
        allowed_origins: VOICE_ALLOWED_ORIGINS (lower case, no trailing slash).
        public_http_url: VOICE_PUBLIC_HTTP_URL.
    """
    if not origin or not origin.strip():
        return "the browser leg needs an Origin header"
    given = origin.strip().rstrip("/").lower()
    if allowed_origins:
        ok = given in allowed_origins
        rule = "VOICE_ALLOWED_ORIGINS"
    elif public_http_url:
        ok = given == _origin_of(public_http_url)
        rule = "the origin of VOICE_PUBLIC_HTTP_URL"
    else:
        try:
            page = urlsplit(given)
            ok = page.scheme in ("http", "https") and page.hostname is not None and (
                _same_machine(page.hostname) == _same_machine(urlsplit(f"//{host or ''}").hostname)
            )
        except ValueError:  # a malformed port or IPv6 literal
            ok = False
        rule = "this host"
    if ok:
        return None
    return f"Origin {origin[:100]!r} is not the console's ({rule})"


class BrowserSocket:
    """The browser leg's socket: ``end`` with the reason right before the close.

    The page shows why its call ended (docs/PROTOCOLS.md §8); a carrier needs no word.

    Args:
        ws: the accepted connection.
        codec: the call's codec (formats the ``end``).
    """

    def __init__(self, ws: ServerConnection, codec: BrowserProtocol) -> None:
        self._ws = ws
        self._codec = codec
        self.send = ws.send

    @property
    def close_code(self) -> int | None:
        """The close code once the connection closed."""
        return self._ws.close_code

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Say ``end`` (if the page is still there), then close."""
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(self._codec.format_end(reason))
        await self._ws.close(code, reason)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Messages until the connection closes."""
        return self._ws.__aiter__()


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
        # The start must name the call the URL's token is for.
        BROWSER_PATH: StreamRoute(
            "browser", lambda query: BrowserProtocol(query.get("call_id")), console_origin=True
        ),
    }
    routes.update(dict.fromkeys(EXOTEL_SEED_PATHS, exotel))
    return routes
