"""Fuzzing live calls on the real media server over each carrier's stream path.

For Exotel, Telnyx, Plivo and Vonage, every example answers a call through the carrier's
own webhook, opens the stream the answer names, sends the carrier's opening, then random
messages (the carrier's event names with random bodies, garbage text, binary of any size,
oversized messages) and finally the carrier's hang-up. The server must keep the call
going or close it with a policy (1008) or too-big (1009) code, or normally (1000): never
an internal error (1011), a dropped connection or an exception in the server's log. (Vonage
has no hang-up message: its stream, like Vonage, closes from our side at the end.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.carrier_answers import CARRIERS, CarrierCall, answer_call
from tests.e2e.conftest import engines, make_server
from tests.fuzz import EXAMPLES

__all__ = ["engines", "make_server"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.e2e

MAX_MESSAGE_BYTES = 64 * 1024
CLEAN_CLOSES = {1000, 1008, 1009}
EVENTS = (
    "connected", "start", "media", "dtmf", "mark", "stop", "clear", "error",
    "playedStream", "clearedAudio", "websocket:connected", "websocket:dtmf",
    "websocket:notify", "websocket:cleared", "bogus",
)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=12),
    st.sampled_from(["", "AAAA", "/w==", "!!", "5", "#", "inbound", "outbound"]),
)
_BODIES = st.dictionaries(
    st.sampled_from(["payload", "digit", "name", "chunk", "track", "stream_sid", "streamId",
                     "stream_id", "sequence_number", "timestamp", "media_format"]),
    st.one_of(_SCALARS, st.dictionaries(st.text(max_size=8), _SCALARS, max_size=3)),
    max_size=4,
)
_EVENT_MESSAGES = st.builds(
    lambda event, body, nested: json.dumps(
        {"event": event, **body, **({"media": nested} if nested else {})}
    ),
    st.sampled_from(EVENTS), _BODIES, _BODIES,
)
MESSAGES = st.one_of(
    _EVENT_MESSAGES,
    st.text(max_size=40),
    st.binary(max_size=700),
    st.just(b"\x00" * 640),  # a frame of silence in Vonage's binary PCM
    st.just("x" * (MAX_MESSAGE_BYTES + 1)),  # over the limit: 1009
)


@pytest.fixture
async def media_server(make_server: Callable[..., object]) -> VoiceServer:
    server = await make_server(  # type: ignore[misc]
        max_message_bytes=MAX_MESSAGE_BYTES, connections_per_ip_per_minute=0
    )
    assert isinstance(server, VoiceServer)
    return server


class _Crashes(logging.Handler):
    """Every log record with an exception attached: a crash the server caught."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@pytest.fixture
def crashes() -> Iterator[_Crashes]:
    handler = _Crashes()
    logger = logging.getLogger("realtime_voice")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def drain(ws: ClientConnection) -> None:
    """Read until the server closes."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


@pytest.mark.parametrize("carrier", CARRIERS)
@settings(max_examples=15 * EXAMPLES)
@given(messages=st.lists(MESSAGES, min_size=1, max_size=8))
async def test_random_messages_never_crash_a_carrier_call(
    media_server: VoiceServer, crashes: _Crashes, carrier: str, messages: list[str | bytes]
) -> None:
    call = CarrierCall(
        f"http://127.0.0.1:{media_server.http_port}",
        "v3:" + uuid.uuid4().hex if carrier == "telnyx" else str(uuid.uuid4()),
        "+15555551234",
        "+15555555678",
    )
    async with aiohttp.ClientSession() as http:
        answer = await answer_call(http, carrier, call)
    async with connect(answer.media_url, max_size=None, proxy=None) as ws:
        reader = asyncio.get_running_loop().create_task(drain(ws))
        wire: Any = answer.wire
        try:
            for message in [*wire.opening(answer.custom_parameters), *messages, wire.stop()]:
                await ws.send(message)
            if carrier == "vonage":
                await ws.close()
        except ConnectionClosed:
            pass  # the server ended the call part-way (a stop, or a policy close)
        async with asyncio.timeout(30):
            await reader
    assert ws.close_code in CLEAN_CLOSES, (carrier, ws.close_code, ws.close_reason)
    await media_server.manager.wait_idle()
    assert not crashes.records, [r.getMessage() for r in crashes.records]
