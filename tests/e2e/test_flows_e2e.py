"""The shipped conversation flows and the LLM path, end to end through real audio.

The caller speaks synthesized audio that the server must recognise; the bot's replies
are transcribed back by the caller's own recogniser. Assertions on what the caller heard
are on key words (tolerant); the server's own record of each turn is exact text, so it
is what shows which way the flow went.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from realtime_voice.server.app import VoiceServer
from realtime_voice.server.wiring import build_engines
from realtime_voice.testing.call_report import CallReport
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from realtime_voice.testing.openai_sim import ALWAYS, Faults, OpenAISimulator

from .conftest import e2e_settings, operator_headers

pytestmark = pytest.mark.e2e

TRANSFER = {"phoneNumber": "+15555550100"}
RAJESH = {
    "flow": "real_estate",
    "lead_name": "Rajesh",
    "property_type": "3BHK",
    "location": "Whitefield",
    "budget": "8000000",
    "source": "Facebook Ads",
}


def words(text: str | None) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", (text or "").lower())


async def place(
    server: VoiceServer, lines: list[CallerLine], **params: str
) -> tuple[CallReport, dict[str, Any]]:
    """One call with the given custom parameters; the report and the stored record."""
    base = f"http://127.0.0.1:{server.http_port}"
    opts = CallOptions(
        http_url=base, max_call_s=60.0, end_after_last_line_s=2.0, custom_parameters=params
    )
    report = await SimulatedCaller(opts).run(lines)
    await server.manager.wait_idle()
    await server.recorder.flush()
    async with (
        aiohttp.ClientSession(headers=operator_headers()) as http,
        http.get(f"{base}/api/calls/{report.call_id}") as resp,
    ):
        assert resp.status == 200
        record: dict[str, Any] = await resp.json()
    return report, record


def bot_turns(record: dict[str, Any]) -> list[str]:
    return [t["text"] for t in record["turns"] if t["speaker"] == "bot"]


def heard(report: CallReport) -> list[str]:
    return [words(u.text) for u in report.bot_utterances]


async def test_real_estate_lead_moves_from_intro_to_qualification(
    server: VoiceServer,
) -> None:
    report, record = await place(
        server,
        [
            CallerLine("Yes, sure."),
            CallerLine("It's for my family."),
            CallerLine("Within three months."),
        ],
        **RAJESH,
    )
    said = bot_turns(record)
    assert record["flow"] == "real_estate"
    assert said[0].startswith("Hi Rajesh, this is Alex calling from PropertyHub")
    assert "property" in heard(report)[0], heard(report)
    # intro → discovery (purpose asked) → timeline asked → qualification read-back.
    assert "own use" in said[1] and "investment" in said[1], said
    assert "when are you ideally looking" in said[2], said
    assert said[3].startswith("Excellent. So to confirm"), said
    assert "for your family" in said[3] and "within 3 months" in said[3], said
    assert "confirm" in heard(report)[3], heard(report)
    assert record["outcome"] in ("qualified", "follow_up", "not_interested")


async def test_service_centre_answers_hours_then_transfers_to_a_manager(
    server: VoiceServer,
) -> None:
    report, record = await place(
        server,
        [
            CallerLine("What are your opening hours?"),
            CallerLine("Can I speak to a manager please?"),
        ],
        flow="service_appointments",
    )
    assert record["flow"] == "service_appointments"
    answer = heard(report)[1]
    assert any(w in answer for w in ("monday", "friday", "saturday", "open")), answer
    assert "Monday to Friday" in bot_turns(record)[1]
    assert report.transfer == TRANSFER
    assert record["end_reason"] == "transferred"
    assert record["escalated"] is True


async def test_restaurant_books_a_table_and_records_the_booking(server: VoiceServer) -> None:
    report, record = await place(
        server,
        [
            CallerLine("Can I get a table for four on Saturday at 7 pm under Garcia?"),
            CallerLine("Yes, that's right."),
        ],
    )
    said = bot_turns(record)
    confirm = next(t for t in said if "Is that right?" in t)
    assert "table for 4" in confirm and "Saturday" in confirm, said
    heard_all = " ".join(heard(report))
    assert "book" in heard_all and "saturday" in heard_all, heard_all
    assert record["outcome"] == "booked"


async def test_persona_greeting_text_is_said_first(server: VoiceServer) -> None:
    greeting = "Good evening, you have reached Sunrise Travel."
    report, record = await place(
        server, [CallerLine("Hello.")], flow="persona", greeting_text=greeting
    )
    assert bot_turns(record)[0] == greeting
    first = heard(report)[0]
    assert "sunrise" in first or "travel" in first, first
    assert record["custom_parameters"]["greeting_text"] == greeting


async def llm_call(
    sim: OpenAISimulator, lines: list[CallerLine]
) -> tuple[CallReport, dict[str, Any]]:
    """A call on a server whose responder uses the simulated OpenAI-compatible model."""
    base_url = await sim.start()
    settings = e2e_settings(openai_base_url=base_url, openai_api_key="sk-test")
    server = VoiceServer(settings, engines=build_engines(settings))
    await server.start()
    try:
        return await place(server, lines)
    finally:
        await server.stop(drain_timeout_s=2.0)
        await sim.close()


async def test_llm_answers_what_no_template_covers() -> None:
    sim = OpenAISimulator()
    sim.script("We have free parking behind the restaurant.")
    report, record = await llm_call(sim, [CallerLine("Do you have parking?")])
    assert any(r.status == 200 for r in sim.requests)
    assert "parking" in bot_turns(record)[1], bot_turns(record)
    assert "parking" in heard(report)[1], heard(report)


async def test_llm_failure_gets_the_graceful_line_and_the_call_goes_on() -> None:
    sim = OpenAISimulator(faults=Faults(server_error_times=ALWAYS))
    report, record = await llm_call(
        sim, [CallerLine("Do you have parking?"), CallerLine("What time do you open?")]
    )
    assert sim.requests and all(r.status == 500 for r in sim.requests)
    said = bot_turns(record)
    # No dead air: the question got the flow's fallback line, and the next one an answer.
    assert said[1] == "Sorry, could you say that again?", said
    assert heard(report)[1].strip(), heard(report)
    answer = heard(report)[2]
    assert any(w in answer for w in ("open", "tuesday", "sunday", "hours")), answer
    assert record["state"] == "ended"
