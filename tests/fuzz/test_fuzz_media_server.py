"""Fuzzing a live call on the real media server with random bridge frames.

A real `VoiceServer` (offline engines, loaded once per test process) answers one call per
example; the gateway side then sends random frames (garbage JSON, wrong types, binary
audio of any size, oversized frames, events out of order) and finally a ``stop``. The
server must keep the call going (answering bad frames with ``error`` frames) or close it
with a policy (1008) or too-big (1009) code: never an internal error (1011) or a dropped
connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from realtime_voice.server.app import VoiceServer
from tests.e2e.conftest import engines, make_server
from tests.fuzz import EXAMPLES
from tests.fuzz.test_fuzz_protocols import RC_FRAMES

__all__ = ["engines", "make_server"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.e2e

MAX_MESSAGE_BYTES = 64 * 1024
CLEAN_CLOSES = {1000, 1008, 1009}
_call_ids = itertools.count()

FRAMES = st.one_of(
    RC_FRAMES,
    st.just(b"\xff" * 160),  # a frame of mu-law silence, as a real gateway sends
    st.just(b"\x00" * (MAX_MESSAGE_BYTES + 1)),  # over the limit: 1009
)


@pytest.fixture
async def media_server(make_server: Callable[..., object]) -> VoiceServer:
    # Every example connects from 127.0.0.1: the per-address limit would refuse the deep
    # profile's hundreds of connections (the limit has its own tests).
    server = await make_server(  # type: ignore[misc]
        max_message_bytes=MAX_MESSAGE_BYTES, connections_per_ip_per_minute=0
    )
    assert isinstance(server, VoiceServer)
    return server


async def answer(server: VoiceServer, call_id: str) -> str:
    """Answer ``call_id`` through the inbound webhook; the media URL it hands out."""
    async with aiohttp.ClientSession() as http, http.post(
        f"http://127.0.0.1:{server.http_port}/api/voice/inbound",
        json={"event": "call.inbound", "body": {"id": call_id}},
    ) as resp:
        assert resp.status == 200, await resp.text()
        url: str = (await resp.json())["media"]["url"]
        return url


async def drain(ws: ClientConnection) -> list[str]:
    """Read until the server closes; the text frames it sent."""
    texts: list[str] = []
    try:
        async for message in ws:
            if isinstance(message, str):
                texts.append(message)
    except ConnectionClosed:
        pass
    return texts


@settings(max_examples=40 * EXAMPLES)
@given(frames=st.lists(FRAMES, min_size=1, max_size=10))
async def test_random_frames_never_crash_a_live_call(
    media_server: VoiceServer, frames: list[str | bytes]
) -> None:
    url = await answer(media_server, f"fuzz-call-{next(_call_ids)}")
    async with connect(url, max_size=None) as ws:
        reader = asyncio.get_running_loop().create_task(drain(ws))
        try:
            for frame in [*frames, json.dumps({"type": "stop"})]:
                await ws.send(frame)
        except ConnectionClosed:
            pass  # the server ended the call part-way (a stop, or a policy close)
        async with asyncio.timeout(30):
            texts = await reader
    assert ws.close_code in CLEAN_CLOSES, (ws.close_code, ws.close_reason)
    for text in texts:
        # Whatever the server says back is well-formed JSON.
        assert isinstance(json.loads(text), dict)
