"""Call report: utterance splitting, transcript and summary formatting."""

from __future__ import annotations

import pytest

from realtime_voice.testing.call_report import (
    BotUtterance,
    CallerLineReport,
    CallReport,
    MarkRecord,
    TimelineEvent,
    UtteranceTracker,
    format_event,
)
from realtime_voice.testing.playback import PlayedAudio, ReachedMark

FRAME = b"\x01" * 160


def _frames(start: float, count: int) -> list[PlayedAudio]:
    return [PlayedAudio(start + i * 0.02, start + (i + 1) * 0.02, FRAME) for i in range(count)]


def test_mark_ends_an_utterance_with_all_its_audio() -> None:
    tracker = UtteranceTracker()
    assert tracker.feed(_frames(1.0, 10)) == []
    assert tracker.speaking
    (done,) = tracker.feed([ReachedMark("greeting_done", 1.2)])
    assert (done.start, done.end) == pytest.approx((1.0, 1.2))
    assert done.audio == FRAME * 10
    assert done.mark == "greeting_done"
    assert not done.interrupted
    assert not tracker.speaking


def test_clear_marks_the_utterance_interrupted() -> None:
    tracker = UtteranceTracker()
    tracker.feed(_frames(0.0, 5))
    (cut,) = tracker.clear()
    assert cut.interrupted
    assert cut.duration_s == pytest.approx(0.1)
    assert tracker.clear() == []


def test_a_long_silent_gap_splits_utterances_without_marks() -> None:
    tracker = UtteranceTracker(gap_s=0.5)
    closed = tracker.feed(_frames(0.0, 5) + _frames(0.3, 5) + _frames(2.0, 5))
    # 0.1 -> 0.3 is a short underrun inside one utterance; 0.4 -> 2.0 is a new one.
    assert len(closed) == 1
    assert (closed[0].start, closed[0].end) == pytest.approx((0.0, 0.4))
    (last,) = tracker.flush()
    assert last.start == pytest.approx(2.0)
    assert [u.start for u in tracker.finished] == pytest.approx([0.0, 2.0])


def test_mark_on_silence_closes_nothing() -> None:
    tracker = UtteranceTracker()
    assert tracker.feed([ReachedMark("m", 0.0)]) == []


def test_utterance_description_flags_interruptions() -> None:
    heard = BotUtterance(0.0, 2.0, b"", text="We open at nine.")
    assert heard.describe() == "We open at nine."
    cut = BotUtterance(0.0, 1.5, b"", interrupted=True, text="We open at")
    assert cut.describe() == "We open at [interrupted]"
    untranscribed = BotUtterance(0.0, 1.5, b"")
    assert untranscribed.describe() == "(1.5 s of speech)"
    assert BotUtterance(0.0, 0.4, b"", text="").describe() == "(0.4 s, nothing recognised)"


def test_format_event_aligns_time_and_speaker() -> None:
    assert format_event(TimelineEvent(3.42, "BOT", "Thank you")) == "[   3.42] BOT    Thank you"
    assert format_event(TimelineEvent(61.1, "CALLER", "hi")) == "[  61.10] CALLER hi"


def _report() -> CallReport:
    report = CallReport(call_id="call-1", protocol="ringcentral")
    report.bot_utterances = [
        BotUtterance(0.4, 3.0, b"", mark="greeting_done", text="Thanks for calling."),
        BotUtterance(5.6, 6.5, b"", interrupted=True, text="We open"),
        BotUtterance(8.0, 9.0, b"", mark="response_2_done", text="Sure."),
    ]
    report.caller_lines = [
        CallerLineReport(
            0, "speech", "what time do you open", start=3.8, end=5.0, turn_latency_s=0.6
        ),
        CallerLineReport(
            1,
            "speech",
            "book a table",
            barge_in=True,
            start=6.2,
            end=7.4,
            turn_latency_s=0.55,
            barge_in_latency_s=0.3,
        ),
        CallerLineReport(2, "dtmf", "5", start=9.5, end=9.5),
    ]
    report.call_events = [
        TimelineEvent(3.0, "CALL", "mark greeting_done played"),
        TimelineEvent(6.5, "CALL", "clear (bot audio dropped)"),
        TimelineEvent(10.0, "CALL", "hangup (completed)"),
    ]
    report.marks_received = [MarkRecord("greeting_done", 2.9, 3.0)]
    report.clears = [6.5]
    report.hangup_reason = "completed"
    report.close_code = 1000
    report.ended_by = "server_hangup"
    report.duration_s = 10.2
    return report


def test_transcript_interleaves_both_sides_in_time_order() -> None:
    lines = _report().format_transcript().splitlines()
    assert lines == [
        "[   0.40] BOT    Thanks for calling.",
        "[   3.00] CALL   mark greeting_done played",
        "[   3.80] CALLER what time do you open",
        "[   5.60] BOT    We open [interrupted]",
        "[   6.20] CALLER book a table",
        "[   6.50] CALL   clear (bot audio dropped)",
        "[   8.00] BOT    Sure.",
        "[   9.50] CALLER DTMF 5",
        "[  10.00] CALL   hangup (completed)",
    ]


def test_latency_lists_follow_the_caller_lines() -> None:
    report = _report()
    assert report.turn_latencies_s == [0.6, 0.55, None]
    assert report.barge_in_latencies_s == [0.3]
    assert report.bot_text == "Thanks for calling. We open Sure."


def test_summary_names_outcome_latencies_and_close() -> None:
    summary = _report().summary()
    assert "ended by server hangup, close code 1000" in summary
    assert "turn latency per line: 0.60 s, 0.55 s, none (median 0.57 s, max 0.60 s)" in summary
    assert "barge-in to clear: 0.30 s" in summary
    assert "bot hung up: completed" in summary
    assert "bot utterances: 3 (1 interrupted), marks: 1, clears: 1" in summary


def test_summary_lists_error_frames_and_transfer() -> None:
    report = CallReport(call_id="c", protocol="ringcentral")
    report.errors = [{"type": "error", "code": "bad_message", "message": "no type"}]
    report.transfer = {"phoneNumber": "+15550100"}
    summary = report.summary()
    assert 'transfer: {"phoneNumber": "+15550100"}' in summary
    assert "error frames: 1" in summary
    assert '"code": "bad_message"' in summary
