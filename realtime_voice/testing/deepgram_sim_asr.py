"""Endpointing for the Deepgram simulator: Silero VAD + `SpeechSegmenter` over one stream.

The simulator transcribes what it hears with the offline recogniser (Moonshine), which
works on whole segments; this module cuts the stream into those segments exactly the
way the offline STT does, and keeps just enough audio to hand each one over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime_voice.providers.base import PCM16
from realtime_voice.providers.speech_segmenter import SegmentCut, SpeechOnset, SpeechSegmenter
from realtime_voice.providers.vad import VoiceActivityDetector

__all__ = ["SAMPLE_RATE", "Segment", "StreamSegmenter"]

SAMPLE_RATE = 16000


@dataclass(frozen=True, slots=True)
class Segment:
    """Audio to transcribe, with its place in the stream (seconds).

    Attributes:
        audio: 16 kHz samples (pre-roll included).
        speech_start: where the VAD heard speech begin.
        speech_end: where it last heard speech.
        end_of_turn: the speaker stopped (endpoint), rather than a length cut.
    """

    audio: PCM16
    speech_start: float
    speech_end: float
    end_of_turn: bool


class StreamSegmenter:
    """VAD + endpointing for one stream; returns onsets (seconds) and segments.

    Args:
        vad: a fresh Silero detector at 16 kHz (one per stream: it is recurrent).
        end_silence_ms: silence that ends a turn (Deepgram's ``endpointing``).
        speech_start_ms: speech needed before an onset counts.
    """

    def __init__(
        self, vad: VoiceActivityDetector, *, end_silence_ms: int, speech_start_ms: int = 64
    ) -> None:
        self._vad = vad
        self._segmenter = SpeechSegmenter(
            sample_rate=SAMPLE_RATE,
            window_samples=vad.window_samples,
            end_silence_ms=end_silence_ms,
            speech_start_ms=speech_start_ms,
        )
        self._buffer = np.zeros(0, dtype=np.int16)
        self._first = 0  # stream index of _buffer[0]
        self._received = 0

    @property
    def position(self) -> float:
        """Seconds of audio received."""
        return self._received / SAMPLE_RATE

    @property
    def in_speech(self) -> bool:
        """A segment is open (speech heard and not yet ended)."""
        return self._segmenter.in_speech

    @property
    def open_speech(self) -> tuple[float, PCM16] | None:
        """``(speech_start, audio so far)`` of the open segment, for an interim result."""
        opened = self._segmenter.segment_start
        if opened is None:
            return None
        audio_start, speech_start = opened
        return speech_start / SAMPLE_RATE, self._slice(audio_start, self._received)

    def push(self, pcm: PCM16) -> list[float | Segment]:
        """Feed 16 kHz samples; return onsets (as stream seconds) and complete segments."""
        self._buffer = np.concatenate((self._buffer, pcm))
        self._received += pcm.size
        out: list[float | Segment] = []
        for probability in self._vad.push(pcm):
            for event in self._segmenter.push(probability):
                if isinstance(event, SpeechOnset):
                    out.append(event.sample / SAMPLE_RATE)
                else:
                    out.append(self._segment(event, event.audio_end))
        drop = self._segmenter.retain_from - self._first
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._first += drop
        return out

    def flush(self) -> Segment | None:
        """End the open segment now (Finalize / CloseStream), if there is one."""
        cut = self._segmenter.flush()
        return None if cut is None else self._segment(cut, self._received)

    def _segment(self, cut: SegmentCut, audio_end: int) -> Segment:
        return Segment(
            audio=self._slice(cut.audio_start, audio_end),
            speech_start=cut.speech_start / SAMPLE_RATE,
            speech_end=cut.speech_end / SAMPLE_RATE,
            end_of_turn=cut.end_of_turn,
        )

    def _slice(self, start: int, end: int) -> PCM16:
        lo = max(start - self._first, 0)
        hi = max(end - self._first, lo)
        return self._buffer[lo:hi].copy()
