"""How the simulated caller gets each carrier's call answered: the carrier's own webhook.

A real carrier asks the server's answer endpoint what to do with a call (Exotel's applet
URL, Telnyx's TeXML, Plivo's answer XML, Vonage's NCCO) and then opens the stream the
answer names. These functions do exactly that over real HTTP and return where to
connect and the `GatewayWire` that speaks the carrier's side of the stream.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from realtime_voice.testing.gateway_wire import GatewayWire
from realtime_voice.testing.gateway_wire_exotel import ExotelGatewayWire

__all__ = ["AnswerError", "CarrierCall", "StreamAnswer", "answer_exotel", "override_media_url"]


class AnswerError(Exception):
    """The answer endpoint failed or answered something that is not a stream."""


@dataclass(frozen=True, slots=True)
class CarrierCall:
    """The call as the carrier describes it to the answer endpoint.

    Attributes:
        http_url: the server's HTTP control plane.
        call_id: the carrier's call id.
        from_number: the caller.
        to_number: the number called.
        custom_parameters: what the carrier passes on to the stream (flow, persona...).
        sample_rate: the stream's rate where the carrier lets the answer choose.
        basic_auth: ``(user, password)`` the carrier presents (Exotel's applet URL).
        seed_000: Exotel only: open as seed 000's client did (lead context in
            ``customField`` on ``connected``).
    """

    http_url: str
    call_id: str
    from_number: str
    to_number: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    sample_rate: int = 8000
    basic_auth: tuple[str, str] | None = None
    seed_000: bool = False


@dataclass(frozen=True, slots=True)
class StreamAnswer:
    """Where the carrier connects and how it speaks.

    Attributes:
        media_url: the stream URL from the answer (with its query: the token).
        custom_parameters: what the opening messages carry.
        wire: the carrier's side of the stream protocol.
        headers: extra headers on the WebSocket upgrade (Basic credentials).
    """

    media_url: str
    custom_parameters: dict[str, str]
    wire: GatewayWire
    headers: dict[str, str] = field(default_factory=dict)


def basic_header(credentials: tuple[str, str]) -> dict[str, str]:
    """``Authorization: Basic ...`` for ``(user, password)``."""
    raw = f"{credentials[0]}:{credentials[1]}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def override_media_url(answered: str, override: str | None) -> str:
    """The answer's URL, or ``override``'s scheme, host and path with the answer's query."""
    if not override:
        return answered
    parts = urlsplit(override)
    query = parts.query or urlsplit(answered).query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


async def answer_exotel(http: aiohttp.ClientSession, call: CarrierCall) -> StreamAnswer:
    """Ask the Voicebot applet's dynamic URL for the stream, as Exotel does (GET).

    Raises:
        AnswerError: not a 200 with a ``url``.
    """
    url = f"{call.http_url.rstrip('/')}/api/voice/exotel/init"
    params = {
        "CallSid": call.call_id,
        "CallFrom": call.from_number,
        "CallTo": call.to_number,
        "Direction": "incoming",
        "sample-rate": str(call.sample_rate),
    }
    headers = basic_header(call.basic_auth) if call.basic_auth else {}
    async with http.get(url, params=params, headers=headers) as response:
        text = await response.text()
        if response.status != 200:
            raise AnswerError(f"GET {url} answered HTTP {response.status}: {text[:300]}")
    try:
        stream_url = json.loads(text)["url"]
    except (ValueError, KeyError, TypeError) as exc:
        raise AnswerError(f"GET {url} answered no stream url: {text[:300]}") from exc
    if not isinstance(stream_url, str) or not stream_url.startswith(("ws://", "wss://")):
        raise AnswerError(f"GET {url} answered a url that is not a WebSocket: {text[:300]}")
    wire = ExotelGatewayWire(
        call.call_id, sample_rate=call.sample_rate, seed_000=call.seed_000, frames_per_message=5
    )
    return StreamAnswer(stream_url, dict(call.custom_parameters), wire, headers)
