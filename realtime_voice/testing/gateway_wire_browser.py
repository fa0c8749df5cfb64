"""The console page's side of a browser leg, as a pure codec, and how it gets its call.

`BrowserGatewayWire` is the `GatewayWire` of `realtime_voice.protocols.browser`: it
formats what the softphone sends (``start``, binary PCM16 16 kHz, ``dtmf``, the ``mark``
echo once audio has played, ``hangup``) and parses what the server sends back
(``started``, binary 640-byte frames, ``mark``, ``clear``, ``error``, ``transfer``,
``end``) into `ServerMessage` values. `mint_browser_call` is the page's
``POST /api/browser/calls`` with the operator's bearer token, and `open_browser_leg`
its wait for ``started`` before the microphone streams (as `softphone.js` does).

The `GatewayWire` audio API is mu-law 8 kHz in 160-byte frames, the browser leg PCM16
at 16 kHz: `audio` decodes and upsamples, `parse` downsamples and encodes, each with a
`StreamingResampler` that keeps its filter state for the whole call.

``end`` (sent before every close) parses into `BotHangup` with its reason, so a report's
``hangup_reason`` is the server's end reason (``transferred`` after a transfer).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from websockets.asyncio.client import ClientConnection

from realtime_voice.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.testing.gateway_wire import (
    BotAudio,
    BotClear,
    BotError,
    BotHangup,
    BotMark,
    BotTransfer,
    ServerMessage,
    Unexpected,
    check_digit,
)

__all__ = [
    "BROWSER_CALLS_PATH",
    "BrowserCall",
    "BrowserGatewayWire",
    "BrowserLegError",
    "mint_browser_call",
    "open_browser_leg",
    "origin_of",
]

BROWSER_CALLS_PATH: Final = "/api/browser/calls"
SAMPLE_RATE: Final = 16000
FRAME_BYTES: Final = 640


class BrowserLegError(Exception):
    """The mint or the ``start``/``started`` handshake failed; the message says how."""


@dataclass(frozen=True, slots=True)
class BrowserCall:
    """What ``POST /api/browser/calls`` answered.

    Attributes:
        call_id: ``browser-<uuid>``.
        url: the media URL with its query (call id and token).
        token: the single-use stream token.
        expires_in: the token's lifetime in seconds.
    """

    call_id: str
    url: str
    token: str
    expires_in: float


def origin_of(url: str) -> str:
    """The origin (``scheme://host[:port]``) of ``url``, as a browser sends it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def mint_browser_call(
    http: aiohttp.ClientSession,
    http_url: str,
    token: str | None,
    custom_parameters: Mapping[str, str] | None = None,
) -> BrowserCall:
    """Ask the HTTP plane for a browser call, as the console page does.

    Args:
        http: the client session.
        http_url: the server's HTTP plane.
        token: the operator's bearer token (``None``: no ``Authorization``).
        custom_parameters: ``flow`` goes in the body's ``flow``, the rest in ``params``.

    Raises:
        BrowserLegError: not a 201 naming a call.
    """
    params = dict(custom_parameters or {})
    body: dict[str, Any] = {}
    if "flow" in params:
        body["flow"] = params.pop("flow")
    if params:
        body["params"] = params
    headers = {"Origin": origin_of(http_url)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = http_url.rstrip("/") + BROWSER_CALLS_PATH
    async with http.post(url, json=body, headers=headers) as response:
        text = await response.text()
        if response.status != 201:
            raise BrowserLegError(f"POST {url} answered HTTP {response.status}: {text[:300]}")
    try:
        answer = json.loads(text)
        return BrowserCall(
            str(answer["call_id"]), str(answer["url"]), str(answer["token"]),
            float(answer["expires_in"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BrowserLegError(f"POST {url} answered something else: {text[:300]}") from exc


async def open_browser_leg(ws: ClientConnection, wire: BrowserGatewayWire) -> dict[str, Any]:
    """Send ``start`` and wait for ``started`` (the caller bounds the wait).

    Returns:
        The ``started`` message.

    Raises:
        BrowserLegError: the server answered anything else first.
        websockets.exceptions.ConnectionClosed: the server refused the call (its close
            code says why: 1008 for a bad token).
    """
    await ws.send(wire.start())
    message = await ws.recv()
    try:
        obj = json.loads(message) if isinstance(message, str) else None
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or obj.get("event") != "started":
        raise BrowserLegError(f"expected started, got {str(message)[:200]!r}")
    wire.started = True
    return obj


class BrowserGatewayWire:
    """The console page's side of one browser leg.

    Args:
        call_id: the minted call id (the token is bound to it).
    """

    def __init__(self, call_id: str) -> None:
        """Create the wire for one call."""
        self.call_id = call_id
        self.started = False
        """Set by `open_browser_leg`: ``opening`` then sends nothing more."""
        self._up = StreamingResampler(8000, SAMPLE_RATE)
        self._down = StreamingResampler(SAMPLE_RATE, 8000)

    def start(self) -> str:
        """``{"event":"start","call_id":...,"sample_rate":16000}``."""
        return json.dumps({"event": "start", "call_id": self.call_id, "sample_rate": SAMPLE_RATE})

    def opening(self, custom_parameters: Mapping[str, str]) -> list[str]:
        """The ``start``, unless `open_browser_leg` sent it (the mint fixed the parameters)."""
        return [] if self.started else [self.start()]

    def audio(self, frame: bytes, timestamp_ms: int) -> bytes:
        """One mu-law 8 kHz frame as binary PCM16LE at 16 kHz (no timestamp on the wire)."""
        return self._up.process(ulaw_to_pcm16(frame)).astype("<i2").tobytes()

    def dtmf(self, digit: str) -> str:
        """``{"event":"dtmf","digit":...}``.

        Raises:
            ValueError: not a keypad digit.
        """
        return json.dumps({"event": "dtmf", "digit": check_digit(digit)})

    def mark(self, name: str) -> str:
        """``{"event":"mark","name":...}``: the audio before the server's mark has played."""
        return json.dumps({"event": "mark", "name": name})

    def stop(self) -> str:
        """``{"event":"hangup"}``."""
        return '{"event":"hangup"}'

    def parse(self, message: str | bytes) -> ServerMessage:
        """Parse one server message.

        Returns:
            The typed message (audio as mu-law 8 kHz), or `Unexpected` naming what is
            wrong with it.
        """
        if isinstance(message, bytes):
            if len(message) != FRAME_BYTES:
                return Unexpected(
                    f"binary frame of {len(message)} bytes, the page plays {FRAME_BYTES}",
                    repr(message[:32]),
                )
            pcm = np.frombuffer(message, dtype="<i2").astype(np.int16)
            return BotAudio(pcm16_to_ulaw(self._down.process(pcm)))
        try:
            obj = json.loads(message)
        except ValueError as exc:
            return Unexpected(f"text frame is not JSON ({exc})", message)
        if not isinstance(obj, dict):
            return Unexpected("text frame is not a JSON object", message)
        event = obj.get("event")
        if event == "mark":
            name = obj.get("name")
            if isinstance(name, str) and name:
                return BotMark(name)
            return Unexpected("mark without a non-empty name", message)
        if event == "clear":
            return BotClear()
        if event == "transfer":
            to = obj.get("to")
            if isinstance(to, str) and to:
                return BotTransfer({"phoneNumber": to})
            return Unexpected("transfer without a 'to' number", message)
        if event == "end":
            reason = obj.get("reason")
            return BotHangup(reason if isinstance(reason, str) else "")
        if event == "error":
            return BotError(str(obj.get("code", "")), str(obj.get("message", "")), obj)
        return Unexpected(f"unknown event {event!r}", message)
