"""Fault injection end to end: every failure leaves a call that goes on or ends cleanly.

Each test places a real call (real sockets, synthesized speech, the offline engines or
the Deepgram and OpenAI simulators behind the real SDKs), injects one fault with the
simulators' knobs, and checks what the caller and an operator would: the caller's turn
was answered (or the call ended politely), the call is in the database with its turns,
events and outcome, and the call left nothing behind: no session in the manager, no
bridge thread, no pending task, nothing logged with a traceback (see `fault_rig`).

Faults are triggered by events, never by timing: "when the caller starts speaking" is
the simulated caller's timeline event, and the simulators' knobs count audio or bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from realtime_voice.providers.deepgram_client import create_client
from realtime_voice.providers.deepgram_options import DeepgramSttOptions, ReconnectPolicy
from realtime_voice.providers.deepgram_stt import DeepgramSpeechToText
from realtime_voice.storage import CallStore
from realtime_voice.storage.models import Call
from realtime_voice.testing.call_report import CallReport, TimelineEvent
from realtime_voice.testing.caller import CallerLine
from realtime_voice.testing.deepgram_sim import SimFaults
from realtime_voice.testing.openai_sim import Faults
from realtime_voice.testing.openai_sim_wire import split_tokens
from realtime_voice.testing.speech import caller_audio
from tests.integration.db_fixtures import (
    Outage,
    database_url,
    is_postgres,
    migrated_url,
    outage,
)

from .fault_rig import GREETING, SIM_KEY, MakeRig, Rig, SpeakingGateway, make_rig

# Fixtures, imported for pytest.
__all__ = ["database_url", "make_rig", "migrated_url", "outage"]

pytestmark = pytest.mark.e2e

# The persona flow answers a greeting with one short line, so Deepgram calls stay short.
# (Assertions do not depend on how a recogniser heard the words, except where the words
# are the point.)
PERSONA = {"flow": "persona"}
HELLO = "Hello there."

# The restaurant flow (the default) sends "parking" to the chat model.
PARKING = "Do you have parking?"
# A line checked word for word after the switch to the offline recogniser: one it hears the
# same wherever the line falls on its VAD window grid (tests/integration/test_local_stt.py
# proves that; "Hello there." is not such a line).
REPEATED = PARKING
PARKING_ANSWER = "Yes, right behind us."
GRACEFUL = "Sorry, could you say that again?"


def says(text: str) -> CallerLine:
    """The caller says ``text`` soon after the bot stops (calls stay short)."""
    return CallerLine(text, pause_before_s=0.3)


def turns(call: Call) -> list[tuple[str, str]]:
    """The call's turns as (speaker, text), in order."""
    return [(t.speaker, t.text) for t in sorted(call.turns, key=lambda t: t.seq)]


def errors(call: Call) -> list[dict[str, object]]:
    """The data of the call's ``error`` events, in order."""
    return [e.data or {} for e in sorted(call.events, key=lambda e: e.seq) if e.kind == "error"]


def reply(call: Call) -> str:
    """The bot's answer to the caller's first turn."""
    said = turns(call)
    caller = next((i for i, (speaker, _) in enumerate(said) if speaker == "caller"), None)
    assert caller is not None and said[caller][1], f"no caller turn: {said}"
    answers = [text for speaker, text in said[caller + 1 :] if speaker == "bot"]
    assert answers and answers[0], f"the caller's turn was not answered: {said}"
    return answers[0]


def ended_by_the_caller(report: CallReport, call: Call) -> None:
    """The caller hung up normally and the record says so."""
    assert report.ended_by == "caller_hangup" and report.close_code == 1000
    assert (call.state, call.end_reason) == ("ended", "caller_hangup")
    assert call.outcome and call.ended_at is not None


def quick_deepgram(rig: Rig, **bridge: Any) -> None:
    """Calls on ``rig`` get Deepgram bridges with ``bridge`` options (shorter timeouts)."""
    sim = rig.deepgram
    assert sim is not None
    client = create_client(SIM_KEY, base_url=sim.http_url, ws_url=sim.ws_url)
    options = DeepgramSttOptions()
    rig.server.engines.make_stt = lambda fmt: DeepgramSpeechToText(
        client, options.for_call(fmt), **bridge
    )


def when_caller_speaks(action: Callable[[], object]) -> Callable[[TimelineEvent], None]:
    """A timeline listener that runs ``action()`` once, as the caller's first line starts."""
    done = False

    def listener(event: TimelineEvent) -> None:
        nonlocal done
        if event.who == "CALLER" and not done:
            done = True
            action()

    return listener


# ---------------------------------------------------------------------- Deepgram STT


async def test_deepgram_closing_mid_utterance_reconnects_and_the_turn_is_answered(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(deepgram=SimFaults(close_connections=1))
    sim = rig.deepgram
    assert sim is not None

    def close_mid_sentence() -> None:
        # 0.6 s of audio into the 1.4 s sentence (16 kHz PCM: 32,000 bytes a second).
        sim.faults.close_after_audio_s = sim.stats.audio_bytes / 32_000 + 0.6

    report, call = await rig.call(
        [says("Who am I speaking with today?")],
        params=PERSONA,
        on_event=when_caller_speaks(close_mid_sentence),
    )
    assert sim.stats.fault_closes == 1 and sim.stats.listen_connections == 2
    # The words before and after the close were both recognised: the audio was replayed.
    assert "speaking" in turns(call)[1][1].lower(), turns(call)
    assert reply(call).startswith("I'm Priya"), turns(call)
    assert errors(call) == []
    ended_by_the_caller(report, call)


async def test_deepgram_refusing_the_stream_hands_the_call_to_the_offline_recogniser(
    make_rig: MakeRig,
) -> None:
    # 503 is retried with backoff until the budget runs out (a 401 is not retried at all:
    # test_deepgram_call.py has that case). Short waits: the budget is what is tested.
    rig = await make_rig(deepgram=SimFaults(refuse_status=503))
    quick_deepgram(rig, reconnect=ReconnectPolicy(initial_s=0.05, max_wait_s=0.2))
    report, call = await rig.call([says(HELLO)], params=PERSONA)
    assert rig.deepgram is not None
    assert rig.deepgram.stats.listen_refused == ReconnectPolicy().max_attempts
    assert rig.deepgram.stats.listen_connections == 0
    assert reply(call)
    fallback = errors(call)
    assert [e["code"] for e in fallback] == ["stt_fallback"]
    assert "HTTP 503" in str(fallback[0]["message"])
    ended_by_the_caller(report, call)


async def test_deepgram_stalling_switches_to_the_offline_recogniser(make_rig: MakeRig) -> None:
    rig = await make_rig(deepgram=SimFaults(stall=True))
    sim = rig.deepgram
    assert sim is not None
    # The bridge's stall timeout is 10 s; 1 s here, so the test waits two stalls, not 20 s.
    quick_deepgram(rig, stall_timeout_s=1.0)
    report, call = await rig.call([says(REPEATED), says(REPEATED)], params=PERSONA)
    # Deepgram took the audio and said nothing on two connections: the call goes on with
    # the offline recogniser, the caller is asked to repeat what was lost, and the repeat
    # is heard and answered. The record says what happened.
    assert sim.stats.listen_connections == 2
    said = turns(call)
    missed = ("bot", "Sorry, I missed that. Could you say it again?")
    assert missed in said, said
    after = said[said.index(missed) + 1 :]
    assert after[0] == ("caller", REPEATED), said
    assert after[1][0] == "bot" and after[1][1], said
    assert [e.get("code") for e in errors(call)] == ["stt_fallback"]
    ended_by_the_caller(report, call)


# ---------------------------------------------------------------------- the chat model


async def test_llm_slower_than_the_deadline_gets_the_graceful_line(make_rig: MakeRig) -> None:
    rig = await make_rig(llm=Faults(first_token_delay_ms=30_000), llm_deadline_s=1.0)
    assert rig.llm is not None
    rig.llm.script(PARKING_ANSWER)
    report, call = await rig.call([says(PARKING)])
    # No dead air: at the deadline the caller hears the graceful line, and the model's
    # request is dropped (the simulator saw the client hang up), not left running.
    assert reply(call) == GRACEFUL
    assert [r.outcome for r in rig.llm.requests] == ["client_disconnected"]
    ended_by_the_caller(report, call)


async def test_llm_rate_limited_is_retried_and_answers(make_rig: MakeRig) -> None:
    rig = await make_rig(llm=Faults(rate_limit_times=1, retry_after_s=0.2))
    assert rig.llm is not None
    rig.llm.script(PARKING_ANSWER)
    report, call = await rig.call([says(PARKING)])
    assert [r.status for r in rig.llm.requests] == [429, 200]
    assert reply(call) == PARKING_ANSWER
    ended_by_the_caller(report, call)


async def test_llm_500_gets_the_graceful_line_and_the_call_goes_on(make_rig: MakeRig) -> None:
    # The request and its retry fail. (test_flows_e2e.py also has the next turn answered.)
    rig = await make_rig(llm=Faults(server_error_times=2))
    assert rig.llm is not None
    report, call = await rig.call([says(PARKING)])
    assert [r.status for r in rig.llm.requests] == [500, 500]
    assert reply(call) == GRACEFUL
    assert errors(call) == []  # a failed model is the flow's business, not a call error
    ended_by_the_caller(report, call)


async def test_llm_failing_mid_stream_keeps_the_sentence_already_said(make_rig: MakeRig) -> None:
    said = "We have free parking behind the restaurant."
    # The role chunk, the first sentence, and two pieces of the next: then the error.
    after = 1 + len(split_tokens(said)) + 2
    rig = await make_rig(llm=Faults(mid_stream_error_times=1, mid_stream_error_after=after))
    assert rig.llm is not None
    rig.llm.script(f"{said} It is open all night and it costs nothing.")
    report, call = await rig.call([says(PARKING)])
    assert [(r.outcome, r.chunks_sent) for r in rig.llm.requests] == [("error_event", after)]
    # What was said stays said (and recorded); the broken sentence is dropped, no retry
    # repeats the first one, and the call carries on.
    assert reply(call) == said
    ended_by_the_caller(report, call)


# ---------------------------------------------------------------------- Aura TTS


async def test_aura_cut_mid_sentence_is_finished_by_the_offline_voice(make_rig: MakeRig) -> None:
    rig = await make_rig(deepgram=SimFaults())
    sim = rig.deepgram
    assert sim is not None

    def cut_aura() -> None:
        sim.faults.speak_abort_after_bytes = 1_000  # an eighth of a second into each line

    report, call = await rig.call(
        [says(HELLO)], params=PERSONA, on_event=when_caller_speaks(cut_aura)
    )
    assert sim.stats.speak_cut >= 1
    assert reply(call)
    # The caller heard the whole answer (the offline voice finished it), not Aura's first
    # eighth of a second: about two seconds of speech.
    spoken_after = report.caller_lines[0].end or 0.0
    heard_s = sum(u.duration_s for u in report.bot_utterances if u.start >= spoken_after)
    assert heard_s > 1.0, report.format_transcript()
    ended_by_the_caller(report, call)


# ---------------------------------------------------------------------- the database


async def test_database_lost_mid_call_spools_and_lands_when_it_returns(
    make_rig: MakeRig, outage: Outage, migrated_url: str
) -> None:
    if not is_postgres(migrated_url):
        pytest.skip("needs TEST_DATABASE_URL: PostgreSQL behind a TCP proxy that is cut")
    rig = await make_rig(database_url=outage.url)
    cuts: list[asyncio.Task[None]] = []

    def cut_database() -> None:
        cuts.append(asyncio.get_running_loop().create_task(outage.begin()))

    report = await rig.place(
        [says(HELLO)],
        params=PERSONA,
        on_event=when_caller_speaks(cut_database),
    )
    await asyncio.gather(*cuts)
    assert report.ended_by == "caller_hangup" and report.close_code == 1000
    recorder = rig.server.recorder
    await recorder.flush()
    assert recorder.status == "down" and recorder.spool_depth > 0
    direct = CallStore(migrated_url)  # the database itself, not through the proxy
    try:
        before = await direct.get_call(report.call_id)
        assert before is not None and before.state == "in_progress"
        assert turns(before) == [("bot", GREETING)]
        await outage.end()
        await recorder.wait_replayed()
        call = await direct.get_call(report.call_id)
    finally:
        direct.close()
    assert call is not None
    # Everything said after the cut landed, in order, and the call's end with it.
    assert [speaker for speaker, _ in turns(call)] == ["bot", "caller", "bot"]
    assert turns(call)[0] == ("bot", GREETING) and reply(call)
    assert rig.server.recorder.status == "healthy" and recorder.spool_depth == 0
    assert recorder.counters.dropped == recorder.counters.failed == 0
    ended_by_the_caller(report, call)


# ---------------------------------------------------------------------- the caller


async def test_caller_vanishing_mid_reply_ends_the_call_and_cancels_tts_and_llm(
    make_rig: MakeRig,
) -> None:
    # Aura streams at real time and the model is slow, so both are mid-answer when the
    # caller's connection drops without a close frame.
    rig = await make_rig(
        deepgram=SimFaults(speak_realtime=True), llm=Faults(), llm_token_delay_ms=80
    )
    assert rig.deepgram is not None and rig.llm is not None
    first = "We have free parking behind the restaurant."
    rig.llm.script(" ".join([first] * 4))
    url = await rig.answer("call-vanish")
    question = await caller_audio(PARKING)
    async with SpeakingGateway.open(url, {"greeting_text": GREETING}) as gateway:
        await gateway.wait_for(lambda: "greeting_done" in gateway.marks())
        gateway.say(question)
        await gateway.wait_for(lambda: gateway.audio_frames_after_mark("greeting_done") >= 25)
        gateway.vanish()
    await rig.released("call-vanish")
    call = await rig.stored("call-vanish")
    sim = rig.deepgram
    await sim.wait_for(lambda s: s.speak_completed + s.speak_aborted == s.speak_requests)
    assert sim.stats.speak_aborted >= 1  # the Aura request in flight was closed
    assert [r.outcome for r in rig.llm.requests] == ["client_disconnected"]
    assert (call.state, call.end_reason) == ("ended", "connection_lost_1006")
    assert call.outcome and call.ended_at is not None
    # The record keeps what the caller heard before the line dropped, marked interrupted.
    last = max(call.turns, key=lambda t: t.seq)
    assert last.speaker == "bot" and last.interrupted
    assert first.startswith(last.text), last.text


async def test_caller_hanging_up_mid_sentence_ends_the_call(make_rig: MakeRig) -> None:
    rig = await make_rig()
    url = await rig.answer("call-hang-up")
    sentence = await caller_audio("I would like to book a table for four people tonight.")
    async with SpeakingGateway.open(url, {"greeting_text": GREETING}) as gateway:
        await gateway.wait_for(lambda: "greeting_done" in gateway.marks())
        gateway.say(sentence)
        await gateway.wait_for(lambda: gateway.speech_frames_sent >= 50)  # one second in
        await gateway.ws.close(1000, "caller hung up")
    await rig.released("call-hang-up")
    call = await rig.stored("call-hang-up")
    assert (call.state, call.end_reason) == ("ended", "caller_disconnected")
    assert call.outcome and call.ended_at is not None
    # Half a sentence is not a turn: nothing was answered after the caller left.
    assert turns(call) == [("bot", GREETING)]
