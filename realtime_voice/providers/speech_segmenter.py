"""The offline STT's endpointing: VAD window probabilities in, speech onsets and cuts out.

`SpeechSegmenter` is the state machine that turns Silero's per-window speech
probabilities into the two things a whole-segment recogniser needs: a `SpeechOnset` as
soon as speech has lasted long enough to count (the barge-in signal), and a `SegmentCut`
when a segment is complete (the speaker stopped, or the segment reached its length
limit). It is pure (no audio, no clock, no threads), so it is unit-tested on synthetic
probabilities, and shared by `local_stt.LocalSpeechToText` and the Deepgram simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = [
    "SILERO_WINDOW",
    "SegmentCut",
    "SegmenterEvent",
    "SpeechOnset",
    "SpeechSegmenter",
]

_SAMPLE_RATE: Final = 16000
SILERO_WINDOW: Final = 512
"""Samples per Silero VAD window at 16 kHz (32 ms)."""
# Silero's probability dips inside words; ending only below threshold - 0.15 (the usual
# Silero hysteresis) keeps one word from being cut in two.
_HYSTERESIS: Final = 0.15
# Past this share of max_segment_s a segment is cut at the first dip below threshold,
# so long monologues are split between words rather than mid-word at the hard limit.
_SOFT_CUT_SHARE: Final = 0.8


@dataclass(frozen=True, slots=True)
class SpeechOnset:
    """Speech has lasted long enough to count: the barge-in signal.

    Attributes:
        sample: stream sample index where the speech began.
    """

    sample: int


@dataclass(frozen=True, slots=True)
class SegmentCut:
    """A segment is complete and should be transcribed.

    Attributes:
        audio_start: first sample to transcribe (pre-roll included).
        audio_end: sample after the last one to transcribe.
        speech_start: where the VAD heard speech begin.
        speech_end: where the VAD last heard speech.
        end_of_turn: the speaker stopped (hangover elapsed, or flushed); False when the
            segment was cut at the length limit while speech goes on.
    """

    audio_start: int
    audio_end: int
    speech_start: int
    speech_end: int
    end_of_turn: bool


SegmenterEvent = SpeechOnset | SegmentCut


class SpeechSegmenter:
    """The endpointing state machine: VAD window probabilities in, onsets and cuts out.

    Pure: no audio, no clock, no threads. Positions are sample indexes derived from the
    number of windows pushed, so results are reproducible.

    Args:
        sample_rate: samples per second of the stream.
        window_samples: samples per VAD window (512 for Silero at 16 kHz).
        threshold: probability at or above which a window is speech.
        speech_start_ms: consecutive speech needed before an onset (filters clicks).
        end_silence_ms: silence (below threshold - 0.15) that ends a turn.
        preroll_ms: audio kept before the onset (and after the last speech).
        max_segment_s: longest segment handed to the recogniser.

    Raises:
        ValueError: a parameter is out of range.
    """

    def __init__(
        self,
        *,
        sample_rate: int = _SAMPLE_RATE,
        window_samples: int = SILERO_WINDOW,
        threshold: float = 0.5,
        speech_start_ms: int = 64,
        end_silence_ms: int = 500,
        preroll_ms: int = 200,
        max_segment_s: float = 15.0,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
        if sample_rate <= 0 or window_samples <= 0:
            raise ValueError("sample_rate and window_samples must be positive")
        if speech_start_ms < 0 or end_silence_ms <= 0 or preroll_ms < 0:
            raise ValueError("speech_start_ms, preroll_ms ≥ 0 and end_silence_ms > 0 required")
        if max_segment_s < 1.0:
            raise ValueError(f"max_segment_s must be at least 1 s, not {max_segment_s}")
        window_ms = window_samples * 1000 / sample_rate
        self._window = window_samples
        self._threshold = threshold
        self._low = max(threshold - _HYSTERESIS, 0.0)
        self._start_windows = max(1, math.ceil(speech_start_ms / window_ms))
        self._end_windows = max(1, math.ceil(end_silence_ms / window_ms))
        self._preroll = preroll_ms * sample_rate // 1000
        self._tail = min(preroll_ms, end_silence_ms) * sample_rate // 1000
        self._max_samples = int(max_segment_s * sample_rate)
        self._soft_samples = int(self._max_samples * _SOFT_CUT_SHARE)
        self.reset()

    def reset(self) -> None:
        """Back to silence at sample 0."""
        self._pos = 0
        self._in_speech = False
        self._run = 0
        self._run_start = 0
        self._silence = 0
        self._audio_start = 0
        self._speech_start = 0
        self._speech_end = 0
        self._last_cut_end = 0

    @property
    def position(self) -> int:
        """Samples covered by the windows pushed so far."""
        return self._pos

    @property
    def in_speech(self) -> bool:
        """A segment is open."""
        return self._in_speech

    @property
    def segment_start(self) -> tuple[int, int] | None:
        """``(audio_start, speech_start)`` of the open segment, if any."""
        return (self._audio_start, self._speech_start) if self._in_speech else None

    @property
    def retain_from(self) -> int:
        """Earliest sample a future cut can still include (older audio may be freed)."""
        if self._in_speech:
            return self._audio_start
        onset = self._run_start if self._run else self._pos
        return max(onset - self._preroll, self._last_cut_end, 0)

    @property
    def max_retained(self) -> int:
        """Upper bound of ``position - retain_from`` (for sizing audio buffers)."""
        return max(self._max_samples, self._preroll + self._start_windows * self._window)

    def push(self, probability: float) -> list[SegmenterEvent]:
        """Advance by one VAD window.

        Args:
            probability: the VAD's speech probability for the window.

        Returns:
            At most an onset or a cut (in that order), usually nothing.
        """
        start = self._pos
        self._pos += self._window
        if not self._in_speech:
            return self._push_silent(probability, start)
        if probability >= self._low:
            self._speech_end = self._pos
            self._silence = 0
        else:
            self._silence += 1
        if self._silence >= self._end_windows:
            return [self._cut(end_of_turn=True)]
        length = self._pos - self._audio_start
        # Cut before the next window would take the segment past the limit.
        if length + self._window > self._max_samples or (
            length >= self._soft_samples and probability < self._threshold
        ):
            return [self._cut(end_of_turn=False)]
        return []

    def flush(self) -> SegmentCut | None:
        """Close the open segment now (end of turn), if there is one.

        An onset still shorter than ``speech_start_ms`` is dropped as noise.
        """
        self._run = 0
        if not self._in_speech:
            return None
        self._speech_end = max(self._speech_end, self._pos)
        cut = SegmentCut(self._audio_start, self._pos, self._speech_start, self._speech_end, True)
        self._in_speech = False
        self._last_cut_end = self._pos
        return cut

    def _push_silent(self, probability: float, start: int) -> list[SegmenterEvent]:
        if probability < self._threshold:
            self._run = 0
            return []
        if self._run == 0:
            self._run_start = start
        self._run += 1
        if self._run < self._start_windows:
            return []
        self._in_speech = True
        self._run = 0
        self._silence = 0
        self._speech_start = self._run_start
        self._speech_end = self._pos
        self._audio_start = max(self._run_start - self._preroll, self._last_cut_end, 0)
        return [SpeechOnset(self._run_start)]

    def _cut(self, *, end_of_turn: bool) -> SegmentCut:
        if end_of_turn:
            end = min(self._pos, self._speech_end + self._tail)
            self._in_speech = False
        else:
            # Speech goes on: the next segment starts right here, without pre-roll
            # (that audio belongs to the segment just cut).
            end = self._pos
        cut = SegmentCut(self._audio_start, end, self._speech_start, self._speech_end, end_of_turn)
        self._last_cut_end = end
        self._silence = 0
        if not end_of_turn:
            self._audio_start = self._speech_start = self._speech_end = end
        return cut
