"""What ops see after a call: the Prometheus catalogue and the call's usage and cost.

One call on the paid path (the real Deepgram and OpenAI SDKs against the simulators), so
every stage is measured and every usage figure is non-zero.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from realtime_voice.metrics import METRIC_NAMES
from realtime_voice.server.app import VoiceServer
from realtime_voice.server.wiring import build_engines
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from realtime_voice.testing.deepgram_sim import DeepgramSimulator
from realtime_voice.testing.openai_sim import OpenAISimulator

from .conftest import e2e_settings, operator_headers

pytestmark = pytest.mark.e2e

DEEPGRAM_KEY = "sim-deepgram-key-metrics"
PRICES = {
    "price_stt_per_minute": 0.01,
    "price_tts_per_1k_chars": 0.03,
    "price_llm_input_per_1m_tokens": 0.15,
    "price_llm_output_per_1m_tokens": 0.6,
    "price_telephony_per_minute": 0.0085,
}


@pytest.fixture
async def paid_server() -> AsyncIterator[VoiceServer]:
    deepgram = DeepgramSimulator(api_key=DEEPGRAM_KEY)
    dg_http, dg_ws = await deepgram.start()
    openai = OpenAISimulator()
    openai.script("We have free parking behind the restaurant.")
    openai_url = await openai.start()
    settings = e2e_settings(
        deepgram_api_key=DEEPGRAM_KEY,
        deepgram_base_url=dg_http,
        deepgram_ws_url=dg_ws,
        openai_base_url=openai_url,
        openai_api_key="sk-test",
        **PRICES,
    )
    server = VoiceServer(settings, engines=build_engines(settings))
    await server.start()
    try:
        yield server
    finally:
        await server.stop(drain_timeout_s=2.0)
        await openai.close()
        await deepgram.close()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        got = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if got == wanted:
            return float(match.group(3))
    return 0.0


async def test_a_paid_call_is_measured_and_costed(paid_server: VoiceServer) -> None:
    base = f"http://127.0.0.1:{paid_server.http_port}"
    report = await SimulatedCaller(
        CallOptions(http_url=base, max_call_s=60.0, end_after_last_line_s=2.0)
    ).run([CallerLine("Do you have parking?")])
    assert any("parking" in (u.text or "").lower() for u in report.bot_utterances[1:])
    await paid_server.manager.wait_idle()
    await paid_server.recorder.flush()
    async with aiohttp.ClientSession(headers=operator_headers()) as http:
        async with http.get(f"{base}/api/calls/{report.call_id}") as resp:
            record: dict[str, Any] = await resp.json()
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await resp.text()

    # The call's usage and cost are stored with it.
    usage = record["usage"]
    assert usage["stt_audio_seconds"] > 1.0  # the caller's audio went to the recogniser
    assert usage["tts_characters"] >= len("We have free parking behind the restaurant.")
    assert usage["llm_requests"] >= 1 and usage["llm_prompt_tokens"] > 0
    assert usage["llm_completion_tokens"] > 0
    cost = usage["cost_usd"]
    expected_stt = usage["stt_audio_seconds"] / 60 * PRICES["price_stt_per_minute"]
    assert cost["stt"] == pytest.approx(expected_stt, abs=1e-6)
    assert cost["tts"] == pytest.approx(usage["tts_characters"] / 1000 * 0.03, abs=1e-6)
    assert cost["telephony"] == pytest.approx(usage["call_seconds"] / 60 * 0.0085, abs=1e-6)
    assert record["cost_usd"] == pytest.approx(cost["total"], abs=1e-6)
    assert record["cost_usd"] > 0

    # Every family of the catalogue is exposed.
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in text, name
    assert sample(text, "voice_calls_total") == 1
    assert sample(text, "voice_active_calls") == 0
    assert sample(text, "voice_calls_finished_total", outcome=record["outcome"]) == 1
    assert sample(text, "voice_turn_latency_seconds_count") >= 1
    assert sample(text, "voice_server_added_latency_seconds_count") >= 1
    for stage in ("stt_final", "llm_first_token", "tts_first_audio"):
        assert sample(text, "voice_stage_ttfb_seconds_count", stage=stage) >= 1, stage
    assert sample(text, "voice_frames_total", direction="in") > 50
    assert sample(text, "voice_frames_total", direction="out") > 50
    assert sample(text, "voice_dropped_frames_total") == 0
    assert sample(text, "voice_usage_total", kind="tts_characters") == usage["tts_characters"]
    assert sample(text, "voice_call_cost_dollars_count") == 1
    route = "/api/voice/inbound"
    assert sample(text, "voice_webhook_requests_total", route=route, method="POST", status="200")
    assert sample(text, "voice_recorder_spool_depth") == 0
    assert sample(text, "voice_recorder_records_total", fate="written") > 0
