"""The Deepgram simulator on the wire: handshake checks, control messages, Aura headers, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from realtime_voice.testing.deepgram_sim import DEFAULT_API_KEY, DeepgramSimulator, SimFaults

AUTH = {"Authorization": f"Token {DEFAULT_API_KEY}"}
QUERY = "model=nova-3&encoding=linear16&sample_rate=16000"


@pytest.fixture
async def sim() -> AsyncIterator[DeepgramSimulator]:
    simulator = DeepgramSimulator(faults=SimFaults(tick_results_ms=100))
    await simulator.start()
    yield simulator
    await simulator.close()


async def handshake_status(url: str, headers: dict[str, str]) -> int:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, additional_headers=headers):
            pass
    return caught.value.response.status_code


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        (QUERY, {}, 401),
        (QUERY, {"Authorization": "Token wrong"}, 401),
        (QUERY, {"Authorization": f"Bearer {DEFAULT_API_KEY}"}, 401),
        ("encoding=linear16&sample_rate=16000", AUTH, 400),
        (QUERY + "&colour=blue", AUTH, 400),
        ("model=nova-3&encoding=opus&sample_rate=16000", AUTH, 400),
        ("model=nova-3&encoding=mulaw", AUTH, 400),
        (QUERY + "&interim_results=maybe", AUTH, 400),
        (QUERY + "&utterance_end_ms=1000", AUTH, 400),
    ],
)
async def test_the_handshake_is_checked_like_deepgram(
    sim: DeepgramSimulator, query: str, headers: dict[str, str], status: int
) -> None:
    assert await handshake_status(f"{sim.ws_url}/v1/listen?{query}", headers) == status
    assert sim.stats.listen_connections == 0


async def test_refusal_knob_then_acceptance(sim: DeepgramSimulator) -> None:
    sim.faults.refuse_status, sim.faults.refuse_count = 503, 1
    url = f"{sim.ws_url}/v1/listen?{QUERY}"
    assert await handshake_status(url, AUTH) == 503
    async with connect(url, additional_headers=AUTH) as ws:
        await ws.send(json.dumps({"type": "CloseStream"}))
        async for _ in ws:
            pass
    assert sim.stats.listen_refused == 1 and sim.stats.listen_connections == 1


async def test_control_messages_results_and_metadata(sim: DeepgramSimulator) -> None:
    url = f"{sim.ws_url}/v1/listen?{QUERY}&keyterm=Bella+Vista&keyterm=pasta"
    async with connect(url, additional_headers=AUTH) as ws:
        await ws.send(json.dumps({"type": "KeepAlive"}))
        await ws.send(json.dumps({"type": "Hello"}))
        error = json.loads(await ws.recv())
        assert (error["type"], error["variant"]) == ("Error", "SchemaError")
        await ws.send(bytes(6400))  # 200 ms of linear16 silence: two 100 ms ticks
        await ws.send(json.dumps({"type": "CloseStream"}))
        messages = [json.loads(m) async for m in ws]
        assert ws.close_code == 1000
    kinds = [m["type"] for m in messages]
    assert kinds == ["Results", "Results", "Metadata"]
    assert [m["start"] for m in messages[:2]] == [0.0, 0.1]
    metadata = messages[-1]
    assert set(metadata) >= {"transaction_key", "request_id", "sha256", "created", "duration",
                             "channels"}  # fmt: skip
    assert metadata["duration"] == pytest.approx(0.2)
    assert sim.stats.keepalives == 1 and sim.stats.close_streams == 1
    assert sim.stats.last_listen_query["keyterm"] == ["Bella Vista", "pasta"]


async def test_a_silent_stream_is_closed_with_net0001(sim: DeepgramSimulator) -> None:
    sim.faults.idle_timeout_s = 0.2
    async with connect(f"{sim.ws_url}/v1/listen?{QUERY}", additional_headers=AUTH) as ws:
        with pytest.raises(ConnectionClosedError) as caught:
            await ws.recv()
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1011
    assert caught.value.rcvd.reason.startswith("NET-0001")
    assert sim.stats.idle_timeouts == 1


async def test_speak_checks_auth_and_query_and_sends_deepgram_headers(
    sim: DeepgramSimulator,
) -> None:
    url = f"{sim.http_url}/v1/speak"
    body = {"text": "Hello."}
    params = {"model": "aura-2-thalia-en", "encoding": "mulaw", "sample_rate": "8000",
              "container": "none"}  # fmt: skip
    async with aiohttp.ClientSession() as http:
        async with http.post(url, params=params, json=body) as reply:
            assert reply.status == 401
        async with http.post(url, params={**params, "encoding": "mp3"}, json=body,
                             headers=AUTH) as reply:  # fmt: skip
            assert reply.status == 400
        async with http.post(url, params=params, json={"text": " "}, headers=AUTH) as reply:
            assert reply.status == 400
        async with http.post(url, params=params, json=body, headers=AUTH) as reply:
            assert reply.status == 200
            audio = await reply.read()
            assert reply.headers["dg-model-name"] == "aura-2-thalia-en"
            assert reply.headers["dg-char-count"] == "6"
            assert reply.headers["dg-request-id"]
    assert len(audio) > 1600  # more than 0.2 s of 8 kHz mu-law


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_runs_alone_until_sigterm() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("realtime-voice")), "simulate", "deepgram",
        "--port", str(port),
        "--tick-results-ms", "100", "--idle-timeout-s", "3",
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONWARNINGS": "error"},
    )  # fmt: skip
    assert proc.stdout is not None
    banner = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert f"http://127.0.0.1:{port}" in banner and f"ws://127.0.0.1:{port}" in banner
    async with connect(f"ws://127.0.0.1:{port}/v1/listen?{QUERY}", additional_headers=AUTH) as ws:
        await ws.send(bytes(3200))
        assert json.loads(await ws.recv())["type"] == "Results"
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 0
