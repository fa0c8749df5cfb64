"""Whole calls: real sockets, real synthesized speech, the offline engines on both ends.

The bot's side is transcribed by the caller's own recogniser, so assertions are on key
words (tolerant), never on exact text.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Callable

import aiohttp
import numpy as np
import pytest

from realtime_voice.audio.g711 import pcm16_to_ulaw
from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.call_report import CallReport
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller

from .conftest import operator_headers

pytestmark = pytest.mark.e2e


def words(text: str | None) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", (text or "").lower())


async def place(server: VoiceServer, lines: list[CallerLine], **options: object) -> CallReport:
    settings: dict[str, object] = {"max_call_s": 60.0, "end_after_last_line_s": 2.0, **options}
    opts = CallOptions(
        http_url=f"http://127.0.0.1:{server.http_port}",
        **settings,  # type: ignore[arg-type]
    )
    report = await SimulatedCaller(opts).run(lines)
    await server.manager.wait_idle()
    return report


async def test_hours_question_then_goodbye_hangs_up(server: VoiceServer) -> None:
    report = await place(
        server,
        [CallerLine("What time do you open?"), CallerLine("Thank you, goodbye.")],
    )
    assert [m.name for m in report.marks_received][:1] == ["greeting_done"]
    greeting = words(report.bot_utterances[0].text)
    assert "bella vista" in greeting or "help" in greeting
    answer = words(report.bot_utterances[1].text)
    assert any(w in answer for w in ("open", "tuesday", "sunday", "hours")), answer
    latency = report.turn_latencies_s[0]
    assert latency is not None and latency > 0
    # Goodbye: a closing line, then hang-up after it played, then a normal close.
    assert report.hangup_reason == "completed"
    assert report.ended_by == "server_hangup"
    assert report.close_code == 1000
    assert report.transfer is None
    assert not report.errors
    assert server.manager.stats()["completed_calls"] == 1
    # The call, its turns and its events are in the database and on the read API.
    await server.recorder.flush()
    async with aiohttp.ClientSession(headers=operator_headers()) as http, http.get(
        f"http://127.0.0.1:{server.http_port}/api/calls/{report.call_id}"
    ) as resp:
        assert resp.status == 200
        record = await resp.json()
    assert record["state"] == "ended"
    assert record["end_reason"] == "completed"
    speakers = [t["speaker"] for t in record["turns"]]
    assert speakers[:2] == ["bot", "caller"]
    assert "open" in words(record["turns"][1]["text"])
    kinds = {e["kind"] for e in record["events"]}
    assert "state_change" in kinds


async def test_manager_request_is_transferred_after_the_handoff_line(
    server: VoiceServer,
) -> None:
    report = await place(server, [CallerLine("Can I speak to a manager please?")])
    assert report.transfer == {"phoneNumber": "+15555550100"}
    handoff = words(report.bot_utterances[-1].text)
    assert "transfer" in handoff or "manager" in handoff, handoff
    # The transfer came only after the handoff line's mark was sent (its audio finished).
    events = [e.what for e in report.call_events]
    transfer_at = next(i for i, e in enumerate(events) if "transfer" in e.lower())
    assert any(e.startswith("mark response_") for e in events[:transfer_at]), events
    assert report.close_code == 1000


async def test_talking_over_the_transfer_line_still_transfers(server: VoiceServer) -> None:
    # The handoff line is cut by barge-in before the transfer runs: the caller must not be
    # left on a silent line; the transfer goes ahead on their next turn.
    report = await place(
        server,
        [
            CallerLine("Can I speak to a manager please?"),
            CallerLine("Wait, what time do you open?", barge_in_after_s=0.8),
        ],
    )
    assert report.clears, "no clear frame: the handoff line was not interrupted"
    assert report.transfer == {"phoneNumber": "+15555550100"}
    assert report.close_code == 1000


async def test_caller_talking_over_the_bot_interrupts_it(server: VoiceServer) -> None:
    report = await place(
        server,
        [
            CallerLine("What are your opening hours?"),
            CallerLine("Sorry, actually can I talk to a manager?", barge_in_after_s=0.8),
        ],
    )
    assert report.clears, "no clear frame: the bot was not interrupted"
    interrupted = [u for u in report.bot_utterances if u.interrupted]
    assert interrupted, "no bot utterance was cut short"
    latency = report.barge_in_latencies_s[0]
    assert latency is not None
    # The interrupting turn was understood and acted on.
    assert report.transfer == {"phoneNumber": "+15555550100"}


async def test_a_click_while_the_bot_talks_does_not_interrupt(server: VoiceServer) -> None:
    rng = np.random.default_rng(7)
    click = pcm16_to_ulaw((rng.standard_normal(320) * 8000).astype(np.int16))  # 40 ms burst
    report = await place(
        server,
        [
            CallerLine("What are your opening hours?"),
            CallerLine(audio=click, text="<click>", barge_in_after_s=0.8),
        ],
        end_after_last_line_s=4.0,
    )
    assert not report.clears
    assert not any(u.interrupted for u in report.bot_utterances)
    assert any(m.name.startswith("response_") for m in report.marks_received)


async def test_twilio_call_answers_and_ends_by_closing_the_stream(server: VoiceServer) -> None:
    report = await place(
        server,
        [CallerLine("When are you open?"), CallerLine("That's all, bye.")],
        protocol="twilio",
    )
    assert report.marks_received and report.marks_received[0].name == "greeting_done"
    answer = words(report.bot_utterances[1].text)
    assert any(w in answer for w in ("open", "tuesday", "sunday", "hours")), answer
    # Twilio has no hang-up message: the stream is closed normally after the last words.
    assert report.close_code == 1000
    assert report.hangup_reason is None
    assert not report.unexpected


async def test_dtmf_zero_reaches_a_human(server: VoiceServer) -> None:
    report = await place(server, [CallerLine(dtmf="0")])
    assert report.transfer == {"phoneNumber": "+15555550100"}


def _call_threads() -> list[str]:
    """Threads other than the bounded worker pools (the shared engines' pools and the
    loop's executor start workers lazily, when a job finds none idle, up to their size:
    how many have started depends on how jobs happened to overlap, not on a leak)."""
    pool_worker = re.compile(r"(asyncio|local-tts|local-stt|call-recorder)_\d+")
    return sorted(t.name for t in threading.enumerate() if not pool_worker.fullmatch(t.name))


async def test_calls_leave_no_threads_tasks_or_sockets(server: VoiceServer) -> None:
    # One call first: thread pools of the shared engines start their workers lazily.
    await place(server, [CallerLine("Hello there.")], transcribe_bot=False)
    threads_before = _call_threads()
    fds_before = len(os.listdir("/proc/self/fd"))
    tasks_before = len(asyncio.all_tasks())
    # Three calls at once: what one call leaks, three leak together, and concurrent calls
    # are where a shared pool or registry would keep something (and it takes a third of
    # the time of three calls in a row).
    reports = await asyncio.gather(*(
        place(server, [CallerLine("What time do you open?")], transcribe_bot=False)
        for _ in range(3)
    ))
    assert [report.close_code for report in reports] == [1000, 1000, 1000]
    assert server.manager.active_calls == 0
    assert _call_threads() == threads_before
    assert len(asyncio.all_tasks()) <= tasks_before
    assert len(os.listdir("/proc/self/fd")) <= fds_before


async def test_silent_caller_is_reprompted_then_the_call_ends_politely(
    make_server: Callable[..., object],
) -> None:
    server = await make_server(silence_reprompt_s=1.0, silence_max_reprompts=1)  # type: ignore[misc]
    assert isinstance(server, VoiceServer)
    report = await place(server, [], end_after_last_line_s=20.0, max_call_s=40.0)
    marks = [m.name for m in report.marks_received]
    # Greeting, one re-prompt, then the goodbye; the bot hangs up for silence.
    assert marks[0] == "greeting_done"
    assert len(marks) == 3
    assert report.hangup_reason == "silence"
    assert report.close_code == 1000
