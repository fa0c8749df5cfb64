"""How the simulated caller gets each carrier's call answered: the carrier's own webhook.

A real carrier asks the server's answer endpoint what to do with a call (Exotel's applet
URL, Telnyx's TeXML, Plivo's answer XML, Vonage's NCCO) and then opens the stream the
answer names. These functions do exactly that over real HTTP and return where to
connect and the `GatewayWire` that speaks the carrier's side of the stream.
"""

from __future__ import annotations

import base64
import json
import secrets
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from realtime_voice.security.plivo_signature import plivo_signature_v3
from realtime_voice.testing.gateway_wire import GatewayWire
from realtime_voice.testing.gateway_wire_exotel import ExotelGatewayWire
from realtime_voice.testing.gateway_wire_plivo import PlivoGatewayWire
from realtime_voice.testing.gateway_wire_telnyx import TelnyxGatewayWire
from realtime_voice.testing.gateway_wire_vonage import VonageGatewayWire

__all__ = [
    "AnswerError",
    "CarrierCall",
    "StreamAnswer",
    "answer_exotel",
    "answer_plivo",
    "answer_telnyx",
    "answer_vonage",
    "override_media_url",
]


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
        signing_key: the carrier's key for signing the answer request where the
            server checks it with the same secret (Plivo's auth token).
    """

    http_url: str
    call_id: str
    from_number: str
    to_number: str
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    sample_rate: int = 8000
    basic_auth: tuple[str, str] | None = None
    seed_000: bool = False
    signing_key: str | None = None


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


async def _fetch(
    http: aiohttp.ClientSession, method: str, url: str, **request: object
) -> str:
    async with http.request(method, url, **request) as response:  # type: ignore[arg-type]
        text = await response.text()
        if response.status != 200:
            raise AnswerError(f"{method} {url} answered HTTP {response.status}: {text[:300]}")
    return text


def _xml(text: str, url: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise AnswerError(f"{url} answered something that is not XML: {text[:300]}") from exc


def _websocket_url(url: object, where: str, text: str) -> str:
    if not isinstance(url, str) or not url.strip().startswith(("ws://", "wss://")):
        raise AnswerError(f"{where} names no WebSocket URL: {text[:300]}")
    return url.strip()


async def answer_telnyx(http: aiohttp.ClientSession, call: CarrierCall) -> StreamAnswer:
    """POST the TeXML request as Telnyx does and read ``<Connect><Stream url=...>``.

    Raises:
        AnswerError: not a 200 with a stream (a ``<Reject>`` says why).
    """
    url = f"{call.http_url.rstrip('/')}/api/voice/telnyx/incoming"
    form = {"CallSid": call.call_id, "From": call.from_number, "To": call.to_number,
            "CallStatus": "ringing", "Direction": "inbound"}
    text = await _fetch(http, "POST", url, data=form)
    root = _xml(text, url)
    reject = root.find("Reject")
    if reject is not None:
        raise AnswerError(f"the call was rejected ({reject.get('reason', 'no reason')})")
    stream = root.find("Connect/Stream")
    media_url = _websocket_url(stream.get("url") if stream is not None else None, url, text)
    wire = TelnyxGatewayWire(call.call_id, from_number=call.from_number, to_number=call.to_number)
    return StreamAnswer(media_url, dict(call.custom_parameters), wire)


async def answer_plivo(http: aiohttp.ClientSession, call: CarrierCall) -> StreamAnswer:
    """POST Plivo's answer_url request and read ``<Stream>URL</Stream>``.

    The stream's ``extraHeaders`` are what Plivo passes on in ``start``; the call's
    custom parameters are added to them, as an answer XML configured with them would.

    Raises:
        AnswerError: not a 200 with a stream (a ``<Hangup>`` says why).
    """
    url = f"{call.http_url.rstrip('/')}/api/voice/plivo/incoming"
    form = {"CallUUID": call.call_id, "From": call.from_number.lstrip("+"),
            "To": call.to_number.lstrip("+"), "CallStatus": "ringing", "Direction": "inbound",
            "Event": "StartApp"}
    headers = {}
    if call.signing_key is not None:
        nonce = secrets.token_hex(10)
        headers = {
            "X-Plivo-Signature-V3-Nonce": nonce,
            "X-Plivo-Signature-V3": plivo_signature_v3(
                call.signing_key, url, nonce, form.items(), method="POST"
            ),
        }
    text = await _fetch(http, "POST", url, data=form, headers=headers)
    root = _xml(text, url)
    hangup = root.find("Hangup")
    if hangup is not None:
        raise AnswerError(f"the call was refused ({hangup.get('reason', 'no reason')})")
    stream = root.find("Stream")
    media_url = _websocket_url(stream.text if stream is not None else None, url, text)
    assert stream is not None
    headers = dict(
        pair.split("=", 1) for pair in (stream.get("extraHeaders") or "").split(",") if "=" in pair
    )
    wire = PlivoGatewayWire(call.call_id)
    return StreamAnswer(media_url, {**headers, **call.custom_parameters}, wire)


async def answer_vonage(http: aiohttp.ClientSession, call: CarrierCall) -> StreamAnswer:
    """GET the answer URL as Vonage does and read the NCCO's websocket endpoint.

    Raises:
        AnswerError: not a 200 with a ``connect`` to a websocket.
    """
    url = f"{call.http_url.rstrip('/')}/api/voice/vonage/answer"
    params = {"uuid": call.call_id, "conversation_uuid": "CON-" + call.call_id,
              "from": call.from_number.lstrip("+"), "to": call.to_number.lstrip("+")}
    text = await _fetch(http, "GET", url, params=params)
    try:
        ncco = json.loads(text)
        endpoint = next(
            e for action in ncco if action.get("action") == "connect"
            for e in action["endpoint"] if e.get("type") == "websocket"
        )
    except (ValueError, TypeError, KeyError, AttributeError, StopIteration) as exc:
        raise AnswerError(f"{url} answered no websocket connect: {text[:300]}") from exc
    media_url = _websocket_url(endpoint.get("uri"), url, text)
    rate = 8000 if str(endpoint.get("content-type", "")).endswith("rate=8000") else 16000
    headers = {k: str(v) for k, v in (endpoint.get("headers") or {}).items()}
    wire = VonageGatewayWire(call.call_id, sample_rate=rate)
    return StreamAnswer(media_url, {**headers, **call.custom_parameters}, wire)
