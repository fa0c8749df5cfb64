"""`CallSession` on fakes: a fake leg, a scripted recogniser, tone speech, a scripted responder.

Every test runs on virtual time (`realtime_voice.testing.virtual_time`): no sockets, no
real sleeps, the same order of events on every run. Each call ends with its record
checked as a user of the calls API would see it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ai_pipeline.responder import HangupAction, SayText, TransferAction, TransferTarget
from realtime_voice.config import Settings
from realtime_voice.legs.base import DtmfEvent, ProtocolError, StartEvent
from realtime_voice.providers.line_cache import LineCache
from realtime_voice.session.engines import SpeechEngines
from realtime_voice.session.session import CallSession
from realtime_voice.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    EventRecord,
    Record,
    TurnRecord,
)
from realtime_voice.testing.fake_leg import FakeLeg
from realtime_voice.testing.fake_responder import ScriptedResponder, SilentScriptedResponder
from realtime_voice.testing.fake_speech import (
    Fail,
    Noise,
    Said,
    ScriptedSpeechToText,
    Step,
    ToneTextToSpeech,
    TurnEnd,
)
from realtime_voice.testing.virtual_time import run, virtual_test

GREETING = "Hello, thanks for calling Bella's. How can I help you today?"  # 10 words: 2 s
LONG_GREETING = " ".join(["word"] * 25)  # 5 s of tone
DESK = TransferTarget(phone_number="+15555550100")


@dataclass
class Call:
    """One call under test and everything around it."""

    session: CallSession
    leg: FakeLeg
    stt: ScriptedSpeechToText
    tts: ToneTextToSpeech
    responder: SilentScriptedResponder
    records: list[Record] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None

    def turns(self) -> list[tuple[str, str, bool]]:
        """(speaker, text, interrupted) of every recorded turn."""
        return [
            (r.speaker, r.text, r.interrupted) for r in self.records if isinstance(r, TurnRecord)
        ]

    def events(self, kind: str) -> list[dict[str, Any]]:
        """The data of every recorded event of ``kind``."""
        return [
            dict(r.data or {})
            for r in self.records
            if isinstance(r, EventRecord) and r.kind == kind
        ]

    def end(self) -> CallEnd:
        """The call's end record (exactly one, and the last record)."""
        ends = [r for r in self.records if isinstance(r, CallEnd)]
        assert len(ends) == 1 and self.records[-1] is ends[0]
        assert isinstance(self.records[0], CallStart)
        return ends[0]

    async def ended(self, within_s: float = 300) -> CallEnd:
        """Wait (virtual time) for the call to end; its complete record."""
        await asyncio.wait_for(self.session.wait_ended(), within_s)
        if self.runner is not None:
            await self.runner
        return self.end()


async def place_call(
    script: Sequence[Step] = (),
    responder: SilentScriptedResponder | None = None,
    *,
    confirms_speech_start: bool = True,
    fallback: Sequence[Step] | None = None,
    fail_start: bool = False,
    settings: Settings | None = None,
    leg: FakeLeg | None = None,
) -> Call:
    """Connect a call, start it and deliver the carrier's ``start``."""
    leg = leg or FakeLeg()
    tts = ToneTextToSpeech(leg.audio_format)
    stt = ScriptedSpeechToText(
        script, confirms_speech_start=confirms_speech_start, fail_start=fail_start
    )
    standby = ScriptedSpeechToText(fallback) if fallback is not None else None
    responder = responder or ScriptedResponder(greeting_text=GREETING)
    records: list[Record] = []
    engines = SpeechEngines(
        make_stt=lambda fmt: stt,
        make_tts=lambda fmt, voice=None: tts,
        responder=responder,
        stt_name="deepgram",
        tts_name="local",
        line_cache=LineCache(),
        make_fallback_stt=(lambda fmt: standby) if standby is not None else None,
    )
    call = Call(
        session=CallSession(
            call_id="call-1",
            session_id="sess-1",
            from_number="+14155550123",
            to_number="+16505550100",
            leg=leg,
            settings=settings or Settings(silence_reprompt_s=30.0),
            engines=engines,
            records=_ListSink(records),
        ),
        leg=leg,
        stt=stt,
        tts=tts,
        responder=responder,
        records=records,
    )
    await call.session.start()
    call.runner = asyncio.get_running_loop().create_task(leg.run(call.session))
    leg.receive(StartEvent(custom_parameters={"flow": "test"}))
    return call


class _ListSink:
    """Keeps records in a list (the session's journal writes here)."""

    def __init__(self, records: list[Record]) -> None:
        self._records = records

    def record(self, record: Record) -> None:
        self._records.append(record)


def bot_lines(call: Call) -> list[str]:
    """What the bot said, as recorded."""
    return [text for speaker, text, _ in call.turns() if speaker == "bot"]


# ------------------------------------------------------------------ greeting and turns


@virtual_test
async def test_greeting_plays_to_its_mark_then_the_caller_hangs_up() -> None:
    call = await place_call()
    await asyncio.sleep(5)
    call.leg.hang_up_far_end()
    end = await call.ended()
    assert call.turns() == [("bot", GREETING, False)]
    assert call.leg.kinds() == ["audio", "mark"]
    assert len(call.leg.frames) == call.tts.frames_for(GREETING)
    assert (end.state, end.end_reason, end.outcome) == ("ended", "caller_hangup", "completed")
    assert end.metrics is not None and end.metrics["frames_out"] == len(call.leg.frames)
    assert call.leg.closed == ("caller_hangup", 1000)
    assert call.stt.stopped.is_set()


@virtual_test
async def test_finals_are_assembled_into_one_turn_and_answered() -> None:
    responder = ScriptedResponder(
        greeting_text=GREETING,
        replies={"table for two": [SayText("Sure, what time?")]},
    )
    script = [
        Said("I'd like a table", at=3.0, duration=0.6, ends_turn=False),
        Said("for two tonight", at=3.8, duration=0.6, ends_turn=False),
        TurnEnd(at=5.0),
    ]
    call = await place_call(script, responder)
    await asyncio.sleep(10)
    call.leg.hang_up_far_end()
    end = await call.ended()
    assert [t.text for t in responder.turns] == ["I'd like a table for two tonight"]
    assert call.turns() == [
        ("bot", GREETING, False),
        ("caller", "I'd like a table for two tonight", False),
        ("bot", "Sure, what time?", False),
    ]
    assert end.metrics is not None and end.metrics["turns"] == 1
    assert len(end.metrics["response_latencies_ms"]) == 1


@virtual_test
async def test_a_caller_who_goes_on_talking_drops_the_unheard_answer_and_keeps_the_words() -> None:
    responder = ScriptedResponder(greeting_text=GREETING, line_delay_s=1.0)
    script = [Said("I want", at=3.0, duration=0.4), Said("to book a table", at=3.8, duration=0.6)]
    call = await place_call(script, responder)
    await asyncio.sleep(10)
    call.leg.hang_up_far_end()
    await call.ended()
    # The first answer was still being made (no audio yet) when the caller went on.
    assert [t.text for t in responder.turns] == ["I want", "I want to book a table"]
    assert [t for t in call.turns() if t[0] == "caller"] == [
        ("caller", "I want", False),
        ("caller", "I want to book a table", False),
    ]
    assert call.session.stats.turns == 1
    assert bot_lines(call) == [GREETING, "I see."]


# ------------------------------------------------------------------ barge-in


@virtual_test
async def test_words_over_the_bot_cut_it_and_the_record_keeps_what_was_heard() -> None:
    responder = ScriptedResponder(greeting_text=LONG_GREETING)
    call = await place_call([Said("stop please", at=2.0, duration=0.5)], responder)
    await asyncio.sleep(8)
    call.leg.hang_up_far_end()
    end = await call.ended()
    kinds = call.leg.kinds()
    assert kinds[:3] == ["audio", "clear", "audio"]
    cut_at = next(s.at for s in call.leg.sent if s.kind == "clear")
    assert cut_at - call.stt.started_at == pytest.approx(2.0)  # at the onset, not later
    speaker, heard, interrupted = call.turns()[0]
    assert (speaker, interrupted) == ("bot", True)
    # 2 s of the 5 s greeting had played; the 60 ms the gateway held beyond that is
    # not counted as heard.
    assert heard == " ".join(["word"] * 10)
    (barge,) = call.events("barge_in")
    assert barge["played_ms"] == pytest.approx(2000, abs=20)  # within a frame of the truth
    assert call.turns()[1:] == [("caller", "stop please", False), ("bot", "I see.", False)]
    assert end.metrics is not None and end.metrics["barge_ins"] == 1


@virtual_test
async def test_a_blip_or_a_back_channel_does_not_interrupt_the_bot() -> None:
    responder = ScriptedResponder(greeting_text=LONG_GREETING)
    # Deepgram-style onsets fire on any sound: only words may cut the bot.
    script = [Noise(at=1.0), Said("uh-huh", at=2.0, duration=0.3)]
    call = await place_call(script, responder, confirms_speech_start=False)
    await asyncio.sleep(8)
    call.leg.hang_up_far_end()
    end = await call.ended()
    assert "clear" not in call.leg.kinds()
    assert call.turns() == [("bot", LONG_GREETING, False)]
    assert responder.turns == []
    assert end.metrics is not None and end.metrics["barge_ins"] == 0


@virtual_test
async def test_a_keypress_while_the_bot_talks_is_answered_not_lost() -> None:
    responder = ScriptedResponder(
        greeting_text=LONG_GREETING, replies={"[dtmf 1]": [SayText("Option one, got it.")]}
    )
    call = await place_call((), responder)
    await asyncio.sleep(1.0)
    call.leg.receive(DtmfEvent("1"))
    await asyncio.sleep(6)
    call.leg.hang_up_far_end()
    await call.ended()
    assert [t.dtmf for t in responder.turns] == ["1"]
    assert call.turns()[0][2] is True  # the greeting was cut
    assert bot_lines(call)[1] == "Option one, got it."
    assert call.events("dtmf") == [{"digit": "1"}]


# ------------------------------------------------------------------ recognition fallback


@virtual_test
async def test_a_recogniser_failing_mid_call_hands_over_and_the_caller_is_asked_again() -> None:
    responder = ScriptedResponder(
        greeting_text=GREETING, replies={"book": [SayText("Booking it.")]}
    )
    call = await place_call(
        [Fail(at=3.0)], responder, fallback=[Said("book a table", at=3.0, duration=0.5)]
    )
    await asyncio.sleep(12)
    call.leg.hang_up_far_end()
    end = await call.ended()
    (switch,) = call.events("error")
    assert switch["code"] == "stt_fallback"
    assert bot_lines(call) == [
        GREETING,
        "Sorry, I missed that. Could you say it again?",
        "Booking it.",
    ]
    assert end.end_reason == "caller_hangup"
    assert end.metrics is not None and end.metrics["errors"] == 1
    # Deepgram heard the call until it failed; the offline stand-in is not billed.
    assert end.usage is not None


@virtual_test
async def test_a_recogniser_that_cannot_start_leaves_the_call_on_the_stand_in() -> None:
    call = await place_call(fail_start=True, fallback=[Said("hello", at=3.0)])
    await asyncio.sleep(8)
    call.leg.hang_up_far_end()
    end = await call.ended()
    assert [e["code"] for e in call.events("error")] == ["stt_fallback"]
    assert bot_lines(call) == [GREETING, "I see."]
    assert end.state == "ended"


@virtual_test
async def test_a_recogniser_failing_with_no_stand_in_ends_the_call_with_an_apology() -> None:
    call = await place_call([Fail(at=3.0)])
    end = await call.ended()
    assert bot_lines(call)[-1].startswith("I'm sorry, we're having technical difficulties")
    assert (end.state, end.end_reason) == ("failed", "stt_failed")
    assert call.leg.closed == ("stt_failed", 1011)


# ------------------------------------------------------------------ silence


@virtual_test
async def test_a_silent_caller_is_reprompted_then_the_call_ends_after_the_goodbye() -> None:
    responder = ScriptedResponder(greeting_text=GREETING)
    settings = Settings(silence_reprompt_s=5.0, silence_max_reprompts=2)
    call = await place_call((), responder, settings=settings)
    end = await call.ended()
    assert responder.silences == [False, False, True]
    assert bot_lines(call) == [
        GREETING,
        "Are you still there?",
        "Are you still there?",
        "I'll let you go. Goodbye.",
    ]
    assert [e["final"] for e in call.events("silence")] == [False, False, True]
    hangup = next(s for s in call.leg.sent if s.kind == "hangup")
    assert hangup.detail == "silence"
    assert hangup.at >= call.leg.played_until()  # after the goodbye was heard
    assert (end.state, end.end_reason) == ("ended", "silence")


@virtual_test
async def test_speech_resets_the_silence_count() -> None:
    responder = ScriptedResponder(greeting_text=GREETING)
    settings = Settings(silence_reprompt_s=5.0, silence_max_reprompts=1)
    # Silent after the greeting (one re-prompt), then talks, then silent again.
    call = await place_call(
        [Said("still here", at=8.0, duration=0.4)], responder, settings=settings
    )
    end = await call.ended()
    assert responder.silences == [False, False, True]
    assert end.end_reason == "silence"


# ------------------------------------------------------------------ transfer and hang-up


@pytest.mark.parametrize("platform", [None, True, False])
def test_a_transfer_goes_only_after_its_last_words_were_heard(platform: bool | None) -> None:
    async def body() -> None:
        responder = ScriptedResponder(
            greeting_text=GREETING,
            replies={
                "human": [SayText("Let me connect you to our front desk."), TransferAction(DESK)]
            },
        )
        leg = FakeLeg(platform_result=platform)
        call = await place_call([Said("a human please", at=3.0)], responder, leg=leg)
        end = await call.ended()
        transfer = next(s for s in leg.sent if s.kind == "transfer")
        assert transfer.detail == "+15555550100"
        last_mark = [s for s in leg.sent if s.kind == "mark"][-1]
        assert transfer.at >= leg.played_until() >= last_mark.at
        assert leg.kinds()[-2:] == ["mark", "transfer"]
        assert bot_lines(call)[-1] == "Let me connect you to our front desk."
        assert (end.state, end.end_reason, end.outcome) == ("ended", "transferred", "transferred")
        (escalation,) = [r for r in call.records if isinstance(r, CallUpdate) and r.escalated]
        assert escalation.transfer_target == "+15555550100"
        transfers = call.events("transfer")
        assert transfers[0] == {"target": {"phoneNumber": "+15555550100"}}
        if platform is None:
            assert len(transfers) == 1
        else:
            assert transfers[1] == {"platform_done": platform}
        assert leg.closed == ("transferred", 1000)

    run(body())


@virtual_test
async def test_a_hang_up_goes_only_after_the_goodbye_was_heard() -> None:
    responder = ScriptedResponder(
        greeting_text=GREETING,
        replies={"bye": [SayText("Thanks for calling, goodbye!"), HangupAction("completed")]},
    )
    call = await place_call([Said("ok bye", at=3.0)], responder)
    end = await call.ended()
    hangup = next(s for s in call.leg.sent if s.kind == "hangup")
    assert hangup.at >= call.leg.played_until()
    assert call.leg.kinds()[-2:] == ["mark", "hangup"]
    assert (end.end_reason, end.outcome) == ("completed", "completed")


@virtual_test
async def test_shutdown_cuts_the_bot_says_goodbye_and_hangs_up() -> None:
    responder = ScriptedResponder(greeting_text=LONG_GREETING)
    call = await place_call((), responder)
    await asyncio.sleep(1)
    await call.session.say_goodbye_and_end("server_shutdown")
    end = await call.ended()
    assert call.turns()[0][2] is True
    assert bot_lines(call)[-1].startswith("I'm sorry, we have to end this call now")
    assert call.leg.kinds()[-1] == "hangup"
    assert end.end_reason == "server_shutdown"


# ------------------------------------------------------------------ other endings


@virtual_test
async def test_a_caller_hanging_up_mid_sentence_keeps_the_heard_part_in_the_record() -> None:
    call = await place_call((), ScriptedResponder(greeting_text=LONG_GREETING))
    await asyncio.sleep(1.0)
    call.leg.hang_up_far_end()
    end = await call.ended()
    ((speaker, heard, interrupted),) = call.turns()
    assert (speaker, interrupted) == ("bot", True)
    assert heard == " ".join(["word"] * 5)  # the first second of it
    assert end.end_reason == "caller_hangup"


@virtual_test
async def test_a_dropped_connection_ends_the_call_with_its_reason() -> None:
    call = await place_call()
    await asyncio.sleep(3)
    call.leg.disconnect("connection_lost_1006")
    assert call.runner is not None
    await call.runner
    await call.session.end(call.leg.disconnect_reason())
    end = call.end()
    assert (end.state, end.end_reason) == ("ended", "connection_lost_1006")


@virtual_test
async def test_a_silent_far_end_times_out() -> None:
    call = await place_call()
    await asyncio.sleep(3)
    call.leg.go_idle(30.0)
    end = await call.ended()
    assert end.end_reason == "inactivity_timeout"


@virtual_test
async def test_too_many_bad_messages_end_the_call_as_failed() -> None:
    call = await place_call(settings=Settings(max_errors=3))
    for n in range(3):
        call.leg.receive(ProtocolError("bad_message", f"garbage {n}"))
    end = await call.ended()
    assert [s.detail for s in call.leg.sent if s.kind == "error"] == ["bad_message"] * 3
    assert (end.state, end.end_reason) == ("failed", "too_many_errors")
    assert call.leg.closed == ("too_many_errors", 1008)
    assert len(call.events("error")) == 3


@virtual_test
async def test_a_duplicate_start_is_rejected_and_the_call_goes_on() -> None:
    call = await place_call()
    call.leg.receive(StartEvent())
    await asyncio.sleep(4)
    call.leg.hang_up_far_end()
    end = await call.ended()
    assert [s.detail for s in call.leg.sent if s.kind == "error"] == ["bad_message"]
    assert bot_lines(call) == [GREETING]
    assert end.end_reason == "caller_hangup"
