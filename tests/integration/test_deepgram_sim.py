"""The Deepgram simulator on the wire: handshake checks, control messages, Aura headers, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from realtime_voice.audio import codec
from realtime_voice.audio.format import MULAW_8K
from realtime_voice.providers.base import PCM16, SpeechEvent, SpeechStarted, TranscriptResult
from realtime_voice.providers.deepgram_client import create_client
from realtime_voice.providers.deepgram_stt import DeepgramSpeechToText
from realtime_voice.providers.local_tts import default_synthesizer
from realtime_voice.testing.deepgram_sim import (
    DEFAULT_API_KEY,
    DeepgramSimulator,
    ScriptedSpeech,
    SimFaults,
)

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


# ---------------------------------------------------------------------- load mode

SCRIPT = ("Hello there.", "Book a table for two, please.")


def loud(seconds: float, rate: int = 16000) -> np.ndarray:
    """A voice-level signal (a 220 Hz tone at about -15 dBFS): speech to an energy detector."""
    t = np.arange(round(seconds * rate)) / rate
    return (6000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def quiet(seconds: float, rate: int = 16000) -> np.ndarray:
    return np.zeros(round(seconds * rate), dtype=np.int16)


async def test_scripted_mode_through_the_sdk_speaks_deepgram_in_order() -> None:
    audio = np.concatenate([
        quiet(0.3), loud(0.04), quiet(0.5),  # a 40 ms blip is not speech
        loud(0.6), quiet(0.14), loud(0.5), quiet(1.4),  # a pause shorter than endpointing
        loud(0.8), quiet(1.4),
    ])  # fmt: skip
    frames = [audio[i : i + 320] for i in range(0, audio.size, 320)]
    async with DeepgramSimulator(scripted=ScriptedSpeech(sentences=SCRIPT)) as sim:
        stt = DeepgramSpeechToText(
            create_client(DEFAULT_API_KEY, base_url=sim.http_url, ws_url=sim.ws_url)
        )
        await stt.start()
        events: list[SpeechEvent] = []

        async def collect() -> None:
            async for event in stt.events():
                events.append(event)

        collector = asyncio.create_task(collect())
        for frame in frames:
            stt.send_audio(frame)
            await asyncio.sleep(0.005)  # four times real time
        await sim.wait_for(lambda s: s.audio_bytes == audio.size * 2)
        await stt.stop()
        await asyncio.wait_for(collector, 15)

    spoken = [e for e in events if isinstance(e, TranscriptResult) and e.text]
    finals = [e for e in spoken if e.is_final]
    assert [f.text for f in finals] == list(SCRIPT)
    assert all(f.speech_final for f in finals)
    for final in finals:
        assert [w.word for w in final.words] == final.text.split()
        assert final.start <= final.words[0].start <= final.words[-1].end
        assert final.words[-1].end <= final.start + final.duration + 1e-6
    onsets = [e.timestamp for e in events if isinstance(e, SpeechStarted)]
    assert onsets == pytest.approx([0.84, 3.48], abs=0.03)
    # Per utterance: SpeechStarted, interims that are prefixes of the final, the final
    # (speech_final), then UtteranceEnd.
    kinds = []
    for event in events:
        if isinstance(event, TranscriptResult):
            if event.text:
                kinds.append("final" if event.is_final else "interim")
        else:
            kinds.append(type(event).__name__)
    shape = re.compile(r"^(SpeechStarted (interim )+final UtteranceEnd ?){2}$")
    assert shape.match(" ".join(kinds) + " "), kinds
    for interim in (e for e in spoken if not e.is_final):
        assert any(f.text.startswith(interim.text) for f in finals)


async def test_scripted_mode_finalize_on_mulaw_without_punctuation() -> None:
    query = "model=nova-3&encoding=mulaw&sample_rate=8000"
    async with (
        DeepgramSimulator(scripted=ScriptedSpeech(sentences=SCRIPT)) as sim,
        connect(f"{sim.ws_url}/v1/listen?{query}", additional_headers=AUTH) as ws,
    ):
        await ws.send(codec.encode(loud(0.5, 8000), MULAW_8K))
        await ws.send(json.dumps({"type": "Finalize"}))
        final = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "CloseStream"}))
        rest = [json.loads(m) async for m in ws]
    assert (final["type"], final["is_final"], final["from_finalize"]) == ("Results", True, True)
    assert final["channel"]["alternatives"][0]["transcript"] == "hello there"
    assert [m["type"] for m in rest] == ["Metadata"]
    assert rest[0]["duration"] == pytest.approx(0.5)


class CountingSynthesizer:
    """The real offline voice, counting what it is asked to say."""

    def __init__(self) -> None:
        self.voice = default_synthesizer()
        self.texts: list[str] = []

    @property
    def sample_rate(self) -> int:
        return self.voice.sample_rate

    def synthesize_pcm(self, text: str) -> Iterator[PCM16]:
        self.texts.append(text)
        return self.voice.synthesize_pcm(text)


async def test_speech_cache_synthesizes_each_text_once() -> None:
    voice = CountingSynthesizer()
    url_params = {"model": "aura-2-thalia-en", "encoding": "mulaw", "sample_rate": "8000",
                  "container": "none"}  # fmt: skip
    async with (
        DeepgramSimulator(synthesizer=voice, speech_cache=True) as sim,
        aiohttp.ClientSession() as http,
    ):
        answers = []
        for text in ("Hello.", "Hello.", "Goodbye."):
            async with http.post(
                f"{sim.http_url}/v1/speak", params=url_params, json={"text": text}, headers=AUTH
            ) as reply:
                assert reply.status == 200
                answers.append(await reply.read())
    assert voice.texts == ["Hello.", "Goodbye."]
    assert answers[0] == answers[1] and len(answers[0]) > 1600
    assert sim.stats.speak_completed == 3
