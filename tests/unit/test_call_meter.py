"""The per-call usage meter and its cost estimate."""

from __future__ import annotations

import pytest

from realtime_voice.call_meter import CallMeter, CallUsage, Prices
from realtime_voice.config import load_settings


def test_a_five_minute_call_at_list_prices() -> None:
    # 5 minutes of caller audio streamed, 12 answers of ~80 characters, 6 of them from
    # the model with a 1,500-token prompt and 40-token answers.
    usage = CallUsage(
        call_seconds=300,
        stt_audio_seconds=300,
        tts_characters=12 * 80,
        llm_requests=6,
        llm_prompt_tokens=6 * 1500,
        llm_completion_tokens=6 * 40,
    )
    cost = usage.cost_breakdown(Prices())
    assert cost["stt"] == pytest.approx(5 * 0.0077)
    assert cost["tts"] == pytest.approx(0.96 * 0.030)
    assert cost["llm"] == pytest.approx(9000 / 1e6 * 0.15 + 240 / 1e6 * 0.60)
    assert cost["telephony"] == 0
    assert cost["total"] == pytest.approx(cost["stt"] + cost["tts"] + cost["llm"])


def test_prices_come_from_the_settings() -> None:
    settings = load_settings(
        {"VOICE_PRICE_TELEPHONY_PER_MINUTE": "0.01", "VOICE_PRICE_STT_PER_MINUTE": "0.0125"},
        dotenv=None,
    )
    prices = Prices.from_settings(settings)
    assert prices.telephony_per_minute == 0.01 and prices.stt_per_minute == 0.0125
    record = CallUsage(call_seconds=60, stt_audio_seconds=60).as_record(prices)
    assert record["cost_usd"] == {
        "stt": 0.0125, "tts": 0.0, "llm": 0.0, "telephony": 0.01, "total": 0.0225
    }


def test_the_meter_keeps_the_first_wait_of_each_turn() -> None:
    now = [100.0]
    meter = CallMeter(lambda: now[0])
    first = meter.llm_request_started()
    now[0] += 0.4
    meter.llm_first_token(first)
    retry = meter.llm_request_started()  # a second request in the same turn
    now[0] += 0.2
    meter.llm_first_token(retry)
    assert meter.llm_started_at == 100.0
    assert meter.llm_first_token_s == pytest.approx(0.4)
    meter.llm_usage(100, 20)
    meter.llm_usage(50, 10)
    assert (meter.usage.llm_requests, meter.usage.llm_prompt_tokens) == (2, 150)
    meter.new_turn()
    assert meter.llm_started_at is None and meter.llm_first_token_s is None
    assert meter.usage.llm_completion_tokens == 30  # usage is per call, not per turn


def test_a_failed_request_is_reported_as_an_llm_error() -> None:
    meter = CallMeter()
    seen: list[str] = []
    meter.on_error = seen.append
    meter.llm_failed()
    assert seen == ["llm"]
