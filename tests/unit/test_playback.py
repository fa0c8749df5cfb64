"""The gateway playback model: real-time play-out, marks, clear."""

from __future__ import annotations

import pytest

from realtime_voice.testing.playback import GatewayPlayback, PlayedAudio, ReachedMark

FRAME = bytes(range(160))  # 20 ms of mu-law at 8 kHz


def test_frames_play_back_to_back_at_real_time() -> None:
    playback = GatewayPlayback()
    # Three frames arrive at once (the server's lead): they play one after another.
    starts = [playback.enqueue_audio(FRAME, 1.0) for _ in range(3)]
    assert starts == pytest.approx([1.0, 1.02, 1.04])
    assert playback.playing(1.05)
    assert playback.queued_seconds(1.01) == pytest.approx(0.05)

    assert playback.advance(1.019) == []
    (first,) = playback.advance(1.02)
    assert isinstance(first, PlayedAudio)
    assert first.start == 1.0 and first.audio == FRAME
    assert first.end == pytest.approx(1.02)
    rest = playback.advance(2.0)
    assert [(e.start, e.end) for e in rest if isinstance(e, PlayedAudio)] == [
        pytest.approx((1.02, 1.04)),
        pytest.approx((1.04, 1.06)),
    ]
    assert not playback.playing(1.06)


def test_frame_after_an_underrun_starts_when_it_arrives() -> None:
    playback = GatewayPlayback()
    playback.enqueue_audio(FRAME, 0.0)
    assert playback.enqueue_audio(FRAME, 0.5) == pytest.approx(0.5)
    events = playback.advance(1.0)
    assert [e.start for e in events if isinstance(e, PlayedAudio)] == pytest.approx([0.0, 0.5])


def test_mark_is_reached_when_the_audio_before_it_has_played() -> None:
    playback = GatewayPlayback()
    for _ in range(5):
        playback.enqueue_audio(FRAME, 0.0)
    assert playback.enqueue_mark("greeting_done", 0.0) == pytest.approx(0.1)
    assert not any(isinstance(e, ReachedMark) for e in playback.advance(0.09))
    last = playback.advance(0.1)[-1]
    assert isinstance(last, ReachedMark)
    assert last.name == "greeting_done"
    assert last.at == pytest.approx(0.1)


def test_mark_on_an_idle_line_is_reached_at_once() -> None:
    playback = GatewayPlayback()
    assert playback.enqueue_mark("m", 3.0) == 3.0
    assert playback.advance(3.0) == [ReachedMark("m", 3.0)]


def test_events_come_out_in_queue_order() -> None:
    playback = GatewayPlayback()
    playback.enqueue_audio(FRAME, 0.0)
    playback.enqueue_mark("a", 0.0)
    playback.enqueue_audio(FRAME, 0.0)
    playback.enqueue_mark("b", 0.0)
    kinds = [e.name if isinstance(e, ReachedMark) else "audio" for e in playback.advance(1.0)]
    assert kinds == ["audio", "a", "audio", "b"]


def test_clear_drops_queued_audio_and_returns_pending_marks() -> None:
    playback = GatewayPlayback()
    for _ in range(50):  # one second queued
        playback.enqueue_audio(FRAME, 0.0)
    playback.enqueue_mark("response_1_done", 0.0)
    playback.enqueue_audio(FRAME, 0.0)
    playback.enqueue_mark("response_2_done", 0.0)

    assert playback.clear(0.25) == ["response_1_done", "response_2_done"]
    assert not playback.playing(0.25)
    # What played before the clear is still reported, cut exactly at the clear.
    played = [e for e in playback.advance(0.25) if isinstance(e, PlayedAudio)]
    assert len(played) == 13  # 12 whole frames and the played half of the 13th
    assert played[0].start == 0.0
    assert played[-1].end == pytest.approx(0.25)
    assert sum(len(e.audio) for e in played) == 2000
    # Nothing more ever plays from before the clear.
    assert playback.advance(5.0) == []


def test_audio_after_a_clear_starts_immediately() -> None:
    playback = GatewayPlayback()
    for _ in range(50):
        playback.enqueue_audio(FRAME, 0.0)
    playback.clear(0.3)
    assert playback.enqueue_audio(FRAME, 0.3) == pytest.approx(0.3)
    assert playback.play_end == pytest.approx(0.32)


def test_partial_frame_is_cut_on_a_sample_boundary() -> None:
    playback = GatewayPlayback(bytes_per_second=32000, sample_width=2)  # PCM16 16 kHz
    playback.enqueue_audio(bytes(640), 0.0)
    playback.clear(0.0100001)
    (cut,) = playback.advance(0.02)
    assert isinstance(cut, PlayedAudio)
    assert len(cut.audio) == 320


def test_idle_playback_is_not_playing() -> None:
    playback = GatewayPlayback()
    assert not playback.playing(0.0)
    assert playback.queued_seconds(0.0) == 0.0
    assert playback.clear(0.0) == []
    assert playback.advance(10.0) == []


def test_rejects_nonsense_rates() -> None:
    with pytest.raises(ValueError):
        GatewayPlayback(bytes_per_second=0)
