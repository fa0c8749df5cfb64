"""Endpointing state machine of the offline STT, driven by synthetic VAD probabilities.

Windows are 512 samples (32 ms at 16 kHz), as Silero's. With the defaults: onset after
2 windows of speech, end of turn after 16 windows (512 ms) of silence, 200 ms (3200
samples) of pre-roll and tail.
"""

from __future__ import annotations

import itertools
import random

import pytest

from realtime_voice.providers.speech_segmenter import (
    SegmentCut,
    SegmenterEvent,
    SpeechOnset,
    SpeechSegmenter,
)

W = 512
PREROLL = 3200
SPEECH = 0.9
SILENCE = 0.05


def feed(seg: SpeechSegmenter, probs: list[float]) -> list[tuple[int, SegmenterEvent]]:
    """Push probabilities; return (window index, event) pairs."""
    out: list[tuple[int, SegmenterEvent]] = []
    for i, p in enumerate(probs):
        out += [(i, e) for e in seg.push(p)]
    return out


def test_silence_gives_nothing() -> None:
    seg = SpeechSegmenter()
    assert feed(seg, [SILENCE] * 500) == []
    assert seg.flush() is None


def test_one_loud_window_is_not_an_onset() -> None:
    seg = SpeechSegmenter()
    assert feed(seg, [SILENCE] * 20 + [SPEECH] + [SILENCE] * 40) == []
    assert not seg.in_speech


def test_onset_after_speech_start_ms_at_the_first_speech_window() -> None:
    seg = SpeechSegmenter()
    events = feed(seg, [SILENCE] * 20 + [SPEECH] * 2)
    assert events == [(21, SpeechOnset(20 * W))]


def test_turn_ends_after_hangover_with_preroll_and_tail() -> None:
    seg = SpeechSegmenter()
    probs = [SILENCE] * 20 + [SPEECH] * 50 + [SILENCE] * 15
    events = feed(seg, probs)
    assert [type(e) for _, e in events] == [SpeechOnset]  # 15 quiet windows: not yet
    events = feed(seg, [SILENCE])
    assert len(events) == 1
    cut = events[0][1]
    assert cut == SegmentCut(
        audio_start=20 * W - PREROLL,
        audio_end=70 * W + PREROLL,
        speech_start=20 * W,
        speech_end=70 * W,
        end_of_turn=True,
    )
    assert not seg.in_speech


def test_pause_shorter_than_hangover_keeps_one_segment() -> None:
    seg = SpeechSegmenter()
    probs = [SPEECH] * 30 + [SILENCE] * 12 + [SPEECH] * 30 + [SILENCE] * 16
    events = feed(seg, probs)
    cuts = [e for _, e in events if isinstance(e, SegmentCut)]
    assert len(cuts) == 1
    assert (cuts[0].speech_start, cuts[0].speech_end) == (0, 72 * W)


def test_hysteresis_between_thresholds() -> None:
    seg = SpeechSegmenter(threshold=0.5)
    # 0.4 is below the onset threshold: never starts speech.
    assert feed(seg, [0.4] * 100) == []
    # ...but above threshold - 0.15, so once speaking it keeps the segment open.
    events = feed(seg, [SPEECH] * 3 + [0.4] * 40)
    assert [type(e) for _, e in events] == [SpeechOnset]
    events = feed(seg, [0.3] * 16)  # below 0.35 counts as silence
    assert [type(e) for _, e in events] == [SegmentCut]


def test_long_speech_is_cut_at_max_segment_without_overlap() -> None:
    seg = SpeechSegmenter(max_segment_s=15.0)
    probs = [SILENCE] * 10 + [SPEECH] * 1000 + [SILENCE] * 16  # 32 s of speech
    events = feed(seg, probs)
    onsets = [e for _, e in events if isinstance(e, SpeechOnset)]
    cuts = [e for _, e in events if isinstance(e, SegmentCut)]
    assert len(onsets) == 1
    assert [c.end_of_turn for c in cuts] == [False, False, True]
    for cut in cuts:
        assert cut.audio_end - cut.audio_start <= 15 * 16000
    for first, second in itertools.pairwise(cuts):
        assert second.audio_start == first.audio_end  # contiguous: nothing lost or repeated
    assert cuts[-1].speech_end == 1010 * W


def test_long_speech_prefers_a_dip_after_80_percent() -> None:
    seg = SpeechSegmenter(max_segment_s=15.0)
    dip_at = 400  # 12.8 s into the speech: past 80 % of 15 s
    probs = [SPEECH] * dip_at + [0.45] + [SPEECH] * 100
    events = feed(seg, probs)
    cuts = [(i, e) for i, e in events if isinstance(e, SegmentCut)]
    assert len(cuts) == 1
    index, cut = cuts[0]
    assert index == dip_at and not cut.end_of_turn
    assert cut.audio_end == (dip_at + 1) * W


def test_preroll_never_reaches_into_the_previous_segment() -> None:
    seg = SpeechSegmenter()
    probs = [SPEECH] * 20 + [SILENCE] * 16 + [SPEECH] * 20 + [SILENCE] * 16
    cuts = [e for _, e in feed(seg, probs) if isinstance(e, SegmentCut)]
    assert len(cuts) == 2
    assert cuts[1].audio_start >= cuts[0].audio_end
    assert cuts[0].audio_start == 0  # pre-roll clipped at the stream start


def test_flush_closes_an_open_segment_at_the_current_position() -> None:
    seg = SpeechSegmenter()
    feed(seg, [SILENCE] * 10 + [SPEECH] * 30)
    cut = seg.flush()
    assert cut == SegmentCut(10 * W - PREROLL, 40 * W, 10 * W, 40 * W, True)
    assert not seg.in_speech
    assert seg.flush() is None


def test_flush_drops_a_pending_onset() -> None:
    seg = SpeechSegmenter()
    feed(seg, [SILENCE] * 10 + [SPEECH])  # one window: not yet an onset
    assert seg.flush() is None
    # The run was forgotten: one more loud window is again just one window.
    assert feed(seg, [SPEECH]) == []


def test_retained_audio_is_bounded() -> None:
    seg = SpeechSegmenter(max_segment_s=3.0)
    rng = random.Random(7)
    probs = [rng.choice([SPEECH, SILENCE, 0.4]) for _ in range(5000)]
    probs += [SPEECH] * 500 + [SILENCE] * 500
    for p in probs:
        for event in seg.push(p):
            if isinstance(event, SegmentCut):
                assert event.audio_start >= 0 and event.audio_end <= seg.position
        assert 0 <= seg.position - seg.retain_from <= seg.max_retained
        start = seg.segment_start
        if start is not None:
            assert start[0] == seg.retain_from  # the open segment's audio is kept


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.0},
        {"threshold": 1.0},
        {"end_silence_ms": 0},
        {"speech_start_ms": -1},
        {"preroll_ms": -5},
        {"max_segment_s": 0.5},
        {"window_samples": 0},
    ],
)
def test_bad_parameters_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SpeechSegmenter(**kwargs)  # type: ignore[arg-type]
