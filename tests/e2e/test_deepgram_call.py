"""Calls on the Deepgram path: the real SDK against the Deepgram simulator, real audio."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from realtime_voice.server.app import VoiceServer
from realtime_voice.server.wiring import build_engines
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from realtime_voice.testing.deepgram_sim import DeepgramSimulator

from .conftest import e2e_settings, operator_headers

pytestmark = pytest.mark.e2e

SIM_KEY = "sim-deepgram-key-123"


@pytest.fixture
async def simulator() -> AsyncIterator[DeepgramSimulator]:
    sim = DeepgramSimulator(api_key=SIM_KEY)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.close()


@pytest.fixture
def deepgram(simulator: DeepgramSimulator) -> tuple[str, str]:
    return simulator.http_url, simulator.ws_url


async def call_with_key(key: str, urls: tuple[str, str]) -> tuple[VoiceServer, str, dict]:
    settings = e2e_settings(
        deepgram_api_key=key, deepgram_base_url=urls[0], deepgram_ws_url=urls[1]
    )
    server = VoiceServer(settings, engines=build_engines(settings))
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.http_port}"
        async with aiohttp.ClientSession() as http, http.get(
            f"{base}/api/voice/realtime/health"
        ) as resp:
            health = await resp.json()
        report = await SimulatedCaller(
            CallOptions(http_url=base, max_call_s=60.0, end_after_last_line_s=2.0)
        ).run([CallerLine("What time do you open?")])
        await server.manager.wait_idle()
        await server.recorder.flush()
        async with aiohttp.ClientSession(headers=operator_headers()) as http, http.get(
            f"{base}/api/calls/{report.call_id}"
        ) as resp:
            record = await resp.json()
    finally:
        await server.stop(drain_timeout_s=2.0)
    answer = " ".join(u.text or "" for u in report.bot_utterances[1:])
    return server, re.sub(r"[^a-z ]+", " ", answer.lower()), {"health": health, **record}


async def test_call_through_deepgram_stt_and_aura(simulator: DeepgramSimulator) -> None:
    server, answer, record = await call_with_key(SIM_KEY, (simulator.http_url, simulator.ws_url))
    assert server.engines.stt_name == "deepgram" and server.engines.tts_name == "deepgram"
    # The caller's mu-law went to Deepgram as it came: 8 kHz G.711, one byte per sample.
    query = simulator.stats.last_listen_query
    assert (query["encoding"], query["sample_rate"]) == (["mulaw"], ["8000"])
    streamed_s = simulator.stats.audio_bytes / 8000
    assert abs(streamed_s - record["usage"]["stt_audio_seconds"]) < 1.0
    assert record["health"]["deepgram"] == "healthy"
    assert any(w in answer for w in ("open", "tuesday", "sunday", "hours")), answer
    caller_turns = [t for t in record["turns"] if t["speaker"] == "caller"]
    assert caller_turns and "open" in caller_turns[0]["text"].lower()
    assert not [e for e in record["events"] if e["kind"] == "error"]


async def test_a_bad_key_falls_back_to_the_offline_engines(deepgram: tuple[str, str]) -> None:
    _server, answer, record = await call_with_key("wrong-key-000", deepgram)
    # The caller still heard an answer: offline recognition and the offline voice took over.
    assert any(w in answer for w in ("open", "tuesday", "sunday", "hours")), answer
    errors = [e for e in record["events"] if e["kind"] == "error"]
    assert any(e["data"].get("code") == "stt_fallback" for e in errors)
    assert record["state"] == "ended"


async def test_barge_in_on_deepgram_waits_for_words(deepgram: tuple[str, str]) -> None:
    settings = e2e_settings(
        deepgram_api_key=SIM_KEY, deepgram_base_url=deepgram[0], deepgram_ws_url=deepgram[1]
    )
    server = VoiceServer(settings, engines=build_engines(settings))
    await server.start()
    try:
        report = await SimulatedCaller(
            CallOptions(
                http_url=f"http://127.0.0.1:{server.http_port}",
                max_call_s=60.0,
                transcribe_bot=False,
            )
        ).run(
            [
                CallerLine("What are your opening hours?"),
                CallerLine("Sorry, can I talk to a manager?", barge_in_after_s=0.8),
            ]
        )
        await server.manager.wait_idle()
    finally:
        await server.stop(drain_timeout_s=2.0)
    # Deepgram's SpeechStarted alone does not cut the bot; the words that follow do.
    assert report.clears
    assert any(u.interrupted for u in report.bot_utterances)
    assert report.transfer == {"phoneNumber": "+15555550100"}
