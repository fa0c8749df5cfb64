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
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from realtime_voice.security.plivo_signature import plivo_signature_v3
from realtime_voice.testing.gateway_wire import GatewayWire
from realtime_voice.testing.gateway_wire_exotel import ExotelGatewayWire
from realtime_voice.testing.gateway_wire_plivo import PlivoGatewayWire
from realtime_voice.testing.gateway_wire_telnyx import TelnyxGatewayWire
from realtime_voice.testing.gateway_wire_vonage import VonageGatewayWire

__all__ = [
    "CARRIERS",
    "AnswerError",
    "AnswerRequest",
    "CarrierCall",
    "StreamAnswer",
    "answer_call",
    "answer_exotel",
    "answer_plivo",
    "answer_request",
    "answer_telnyx",
    "answer_vonage",
    "override_media_url",
    "read_answer",
]

CARRIERS = ("exotel", "telnyx", "plivo", "vonage")
"""The carriers whose calls are answered through their own webhook."""


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


@dataclass(frozen=True, slots=True)
class AnswerRequest:
    """The HTTP request a carrier makes to ask what to do with a call.

    Attributes:
        method: ``GET`` or ``POST``.
        path: the answer endpoint's path on the HTTP plane.
        fields: the query (GET) or form (POST) fields.
        headers: Basic credentials or a signature, where the carrier sends one.
    """

    method: str
    path: str
    fields: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


def answer_request(carrier: str, call: CarrierCall) -> AnswerRequest:
    """What ``carrier`` sends its answer endpoint for ``call``.

    Raises:
        ValueError: not one of `CARRIERS`.
    """
    if carrier == "exotel":
        fields = {"CallSid": call.call_id, "CallFrom": call.from_number,
                  "CallTo": call.to_number, "Direction": "incoming",
                  "sample-rate": str(call.sample_rate)}
        headers = basic_header(call.basic_auth) if call.basic_auth else {}
        return AnswerRequest("GET", "/api/voice/exotel/init", fields, headers)
    if carrier == "telnyx":
        fields = {"CallSid": call.call_id, "From": call.from_number, "To": call.to_number,
                  "CallStatus": "ringing", "Direction": "inbound"}
        return AnswerRequest("POST", "/api/voice/telnyx/incoming", fields)
    if carrier == "plivo":
        path = "/api/voice/plivo/incoming"
        fields = {"CallUUID": call.call_id, "From": call.from_number.lstrip("+"),
                  "To": call.to_number.lstrip("+"), "CallStatus": "ringing",
                  "Direction": "inbound", "Event": "StartApp"}
        headers = {}
        if call.signing_key is not None:
            nonce = secrets.token_hex(10)
            url = call.http_url.rstrip("/") + path
            headers = {
                "X-Plivo-Signature-V3-Nonce": nonce,
                "X-Plivo-Signature-V3": plivo_signature_v3(
                    call.signing_key, url, nonce, fields.items(), method="POST"
                ),
            }
        return AnswerRequest("POST", path, fields, headers)
    if carrier == "vonage":
        fields = {"uuid": call.call_id, "conversation_uuid": "CON-" + call.call_id,
                  "from": call.from_number.lstrip("+"), "to": call.to_number.lstrip("+")}
        return AnswerRequest("GET", "/api/voice/vonage/answer", fields)
    raise ValueError(f"no answer webhook for carrier {carrier!r} (expected one of {CARRIERS})")


def read_answer(carrier: str, call: CarrierCall, text: str) -> StreamAnswer:
    """The stream an answer names, and the carrier's wire for it.

    Raises:
        AnswerError: the answer names no stream (a refusal says why).
        ValueError: not one of `CARRIERS`.
    """
    if carrier == "exotel":
        return _read_exotel(call, text)
    if carrier == "telnyx":
        return _read_telnyx(call, text)
    if carrier == "plivo":
        return _read_plivo(call, text)
    if carrier == "vonage":
        return _read_vonage(call, text)
    raise ValueError(f"no answer webhook for carrier {carrier!r} (expected one of {CARRIERS})")


async def answer_call(
    http: aiohttp.ClientSession, carrier: str, call: CarrierCall
) -> StreamAnswer:
    """Ask the answer endpoint as ``carrier`` does, over real HTTP, and read the answer.

    Raises:
        AnswerError: not a 200 naming a stream.
    """
    request = answer_request(carrier, call)
    url = call.http_url.rstrip("/") + request.path
    get = request.method == "GET"
    async with http.request(
        request.method,
        url,
        headers=request.headers,
        params=request.fields if get else None,
        data=None if get else request.fields,
    ) as response:
        text = await response.text()
        if response.status != 200:
            raise AnswerError(
                f"{request.method} {url} answered HTTP {response.status}: {text[:300]}"
            )
    answer = read_answer(carrier, call, text)
    if carrier == "exotel" and request.headers:
        # Exotel presents the same Basic credentials on the stream's upgrade.
        answer = StreamAnswer(
            answer.media_url, answer.custom_parameters, answer.wire, request.headers
        )
    return answer


async def answer_exotel(http: aiohttp.ClientSession, call: CarrierCall) -> StreamAnswer:
    """`answer_call` as Exotel's Voicebot applet (its dynamic URL)."""
    return await answer_call(http, "exotel", call)


async def answer_telnyx(http: aiohttp.ClientSession, call: CarrierCall) -> StreamAnswer:
    """`answer_call` as a Telnyx TeXML application."""
    return await answer_call(http, "telnyx", call)


async def answer_plivo(http: aiohttp.ClientSession, call: CarrierCall) -> StreamAnswer:
    """`answer_call` as Plivo's answer_url request (signed when ``signing_key`` is set)."""
    return await answer_call(http, "plivo", call)


async def answer_vonage(http: aiohttp.ClientSession, call: CarrierCall) -> StreamAnswer:
    """`answer_call` as Vonage's answer URL request."""
    return await answer_call(http, "vonage", call)


def _xml(text: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise AnswerError(f"the answer is not XML: {text[:300]}") from exc


def _websocket_url(url: object, text: str) -> str:
    if not isinstance(url, str) or not url.strip().startswith(("ws://", "wss://")):
        raise AnswerError(f"the answer names no WebSocket URL: {text[:300]}")
    return url.strip()


def _read_exotel(call: CarrierCall, text: str) -> StreamAnswer:
    try:
        answer: Any = json.loads(text)
    except ValueError as exc:
        raise AnswerError(f"the answer is not JSON: {text[:300]}") from exc
    url = answer.get("url") if isinstance(answer, dict) else None
    wire = ExotelGatewayWire(
        call.call_id, sample_rate=call.sample_rate, seed_000=call.seed_000, frames_per_message=5
    )
    return StreamAnswer(_websocket_url(url, text), dict(call.custom_parameters), wire)


def _read_telnyx(call: CarrierCall, text: str) -> StreamAnswer:
    root = _xml(text)
    reject = root.find("Reject")
    if reject is not None:
        raise AnswerError(f"the call was rejected ({reject.get('reason', 'no reason')})")
    stream = root.find("Connect/Stream")
    media_url = _websocket_url(stream.get("url") if stream is not None else None, text)
    wire = TelnyxGatewayWire(call.call_id, from_number=call.from_number, to_number=call.to_number)
    return StreamAnswer(media_url, dict(call.custom_parameters), wire)


def _read_plivo(call: CarrierCall, text: str) -> StreamAnswer:
    # The stream's extraHeaders are what Plivo passes on in start; the call's custom
    # parameters are added to them, as an answer XML configured with them would.
    root = _xml(text)
    hangup = root.find("Hangup")
    if hangup is not None:
        raise AnswerError(f"the call was refused ({hangup.get('reason', 'no reason')})")
    stream = root.find("Stream")
    if stream is None:
        raise AnswerError(f"the answer has no <Stream>: {text[:300]}")
    media_url = _websocket_url(stream.text, text)
    extra = stream.get("extraHeaders") or ""
    headers = dict(pair.split("=", 1) for pair in extra.split(",") if "=" in pair)
    wire = PlivoGatewayWire(call.call_id)
    return StreamAnswer(media_url, {**headers, **call.custom_parameters}, wire)


def _read_vonage(call: CarrierCall, text: str) -> StreamAnswer:
    try:
        ncco = json.loads(text)
        endpoint = next(
            e for action in ncco if action.get("action") == "connect"
            for e in action["endpoint"] if e.get("type") == "websocket"
        )
    except (ValueError, TypeError, KeyError, AttributeError, StopIteration) as exc:
        raise AnswerError(f"the NCCO has no websocket connect: {text[:300]}") from exc
    media_url = _websocket_url(endpoint.get("uri"), text)
    rate = 8000 if str(endpoint.get("content-type", "")).endswith("rate=8000") else 16000
    headers = {k: str(v) for k, v in (endpoint.get("headers") or {}).items()}
    wire = VonageGatewayWire(call.call_id, sample_rate=rate)
    return StreamAnswer(media_url, {**headers, **call.custom_parameters}, wire)
