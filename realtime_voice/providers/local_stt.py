"""Offline streaming speech-to-text: Silero VAD endpointing + Moonshine on whole segments.

Moonshine is not a streaming model, so the stream is cut into segments by a VAD state
machine (`speech_segmenter.SpeechSegmenter`, pure and unit-tested on synthetic
probabilities) and each segment is transcribed in a worker thread. `LocalSpeechToText`
is the `SpeechToText` the call session uses; it emits `SpeechStarted` straight from
``send_audio`` so barge-in does not wait for a thread. Its event queue and stop
lifecycle are every recogniser's (`stt_stream.SpeechEventStream`).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from realtime_voice.providers.base import (
    PCM16,
    SpeechStarted,
    SttError,
    TranscriptResult,
    UtteranceEnd,
)
from realtime_voice.providers.moonshine import MoonshineRecognizer, Recognition
from realtime_voice.providers.pools import shared_pool
from realtime_voice.providers.speech_segmenter import (
    SILERO_WINDOW,
    SegmentCut,
    SegmenterEvent,
    SpeechOnset,
    SpeechSegmenter,
)
from realtime_voice.providers.stt_stream import SpeechEventStream
from realtime_voice.providers.vad import VoiceActivityDetector

__all__ = ["LocalSpeechToText", "SegmentRecognizer"]

log = logging.getLogger(__name__)

SAMPLE_RATE: Final = 16000
# Moonshine hallucinates on short buffers: no interim before this much speech.
_INTERIM_MIN_SPEECH_S = 1.0
_INTERIM_EVERY_S = 0.6
# Final segments waiting for a decode (each ≤ max_segment_s of audio). Falling this far
# behind means the machine is overloaded; the oldest is dropped (and logged) to bound memory.
_MAX_BACKLOG = 16
# send_audio handles big writes in slices so the sample buffer's bound holds.
_MAX_WRITE = SAMPLE_RATE


def _default_executor() -> concurrent.futures.Executor:
    """The process-wide decode pool."""
    return shared_pool("local-stt")


class SegmentRecognizer(Protocol):
    """What `LocalSpeechToText` needs from a recogniser (`MoonshineRecognizer` fits)."""

    def recognize(self, pcm16k: PCM16) -> Recognition:
        """Transcribe one whole segment of 16 kHz mono audio (blocking, thread-safe)."""
        ...


class _SampleBuffer:
    """The most recent samples of a stream, addressed by absolute sample index.

    Bounded: holds at most ``capacity`` samples; older ones are dropped. The backing
    array is twice that size so that compaction (one copy of the live samples) happens
    at most once per ``capacity`` samples appended.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._data = np.zeros(2 * capacity, dtype=np.int16)
        self._head = 0  # index in _data of the oldest live sample
        self._len = 0
        self._first = 0  # absolute index of the oldest live sample

    @property
    def end(self) -> int:
        """Absolute index one past the newest sample."""
        return self._first + self._len

    def append(self, samples: PCM16) -> None:
        n = samples.size
        if n > self._capacity:
            raise ValueError(f"write of {n} samples exceeds the buffer ({self._capacity})")
        overflow = self._len + n - self._capacity
        if overflow > 0:
            self.discard_before(self._first + overflow)
        if self._head + self._len + n > self._data.size:
            self._data[: self._len] = self._data[self._head : self._head + self._len]
            self._head = 0
        tail = self._head + self._len
        self._data[tail : tail + n] = samples
        self._len += n

    def discard_before(self, index: int) -> None:
        drop = min(max(index - self._first, 0), self._len)
        self._head += drop
        self._len -= drop
        self._first += drop

    def slice(self, start: int, end: int) -> PCM16:
        """A copy of samples ``[start, end)``, clipped to what is still held."""
        lo = max(start, self._first) - self._first
        hi = min(end, self.end) - self._first
        if hi <= lo:
            return np.zeros(0, dtype=np.int16)
        return self._data[self._head + lo : self._head + hi].copy()


@dataclass(frozen=True, slots=True)
class _Job:
    audio: PCM16
    final: bool
    speech_start: float
    speech_end: float
    end_of_turn: bool


class LocalSpeechToText(SpeechEventStream):
    """`SpeechToText` on embedded engines: Silero VAD endpointing, Moonshine decoding.

    Feed 16 kHz mono PCM (20 ms frames of 320 samples, though any size works). Segments
    are decoded one at a time per stream, in order, on a small thread pool; everything
    else runs on the event loop. Timestamps are seconds of audio received. `stop` drops
    queued segments, waits for a decode in flight and ends ``events()``.

    Args:
        recognizer: default: the process-wide `MoonshineRecognizer.shared`, loaded
            (off the event loop) by `start`.
        vad_threshold: Silero probability that counts as speech.
        speech_start_ms: speech needed before `SpeechStarted` (filters clicks).
        end_silence_ms: silence that ends a turn (the hangover).
        preroll_ms: audio kept before the detected onset.
        max_segment_s: longer speech is cut into finals with ``speech_final=False``.
        interim_results: also emit interim results while the caller speaks (costs
            a re-decode about every 0.6 s once 1 s is buffered).
        executor: where decodes run; default: a shared two-thread pool.

    Raises:
        ValueError: a parameter is out of range.
    """

    confirms_speech_start = True
    """Onsets need `speech_start_ms` of VAD speech: they are real speech."""

    _label = "offline STT"

    def __init__(
        self,
        recognizer: SegmentRecognizer | None = None,
        *,
        vad_threshold: float = 0.5,
        speech_start_ms: int = 64,
        end_silence_ms: int = 500,
        preroll_ms: int = 200,
        max_segment_s: float = 15.0,
        interim_results: bool = False,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        super().__init__()
        self._recognizer = recognizer
        # Built now (not in start) so bad parameters fail at construction. Silero's
        # window at 16 kHz is always 512 samples.
        self._segmenter = SpeechSegmenter(
            sample_rate=SAMPLE_RATE,
            window_samples=SILERO_WINDOW,
            threshold=vad_threshold,
            speech_start_ms=speech_start_ms,
            end_silence_ms=end_silence_ms,
            preroll_ms=preroll_ms,
            max_segment_s=max_segment_s,
        )
        self._interim = interim_results
        self._executor = executor if executor is not None else _default_executor()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._vad: VoiceActivityDetector | None = None
        self._buffer: _SampleBuffer | None = None
        self._backlog: collections.deque[_Job] = collections.deque()
        self._inflight: asyncio.Future[Recognition] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._started = False
        self._stopping = False
        self._last_interim = 0
        self._turn_has_text = False
        self.dropped_segments = 0
        """Final segments discarded because decoding fell `_MAX_BACKLOG` behind."""

    async def start(self) -> None:
        """Load the model (once per process) and the VAD, off the event loop.

        Raises:
            SttError: an engine is missing or fails to load, or start was already called.
        """
        if self._started or self._stopping:
            raise SttError("LocalSpeechToText.start() called twice or after stop()")
        self._started = True
        loop = asyncio.get_running_loop()
        # One-off loads go to the loop's default executor, not the decode pool, so a
        # new call never waits behind other calls' decodes.
        if self._recognizer is None:
            self._recognizer = await loop.run_in_executor(None, MoonshineRecognizer.shared)
        # Creating a Silero instance takes ~70 ms (it loads a model): not on the loop.
        vad = await loop.run_in_executor(None, VoiceActivityDetector, SAMPLE_RATE)
        if vad.window_samples != SILERO_WINDOW:
            raise SttError(f"unexpected Silero window of {vad.window_samples} samples")
        self._vad = vad
        self._buffer = _SampleBuffer(self._segmenter.max_retained + SILERO_WINDOW + _MAX_WRITE)
        self._loop = loop

    def send_audio(self, pcm: PCM16) -> None:
        """Process one frame of 16 kHz mono PCM: VAD, endpointing, maybe a decode.

        Never blocks: decodes go to the executor. `SpeechStarted` is queued from here.

        Raises:
            SttError: the stream was not started or is stopped.
        """
        if self._loop is None or self._vad is None or self._buffer is None:
            raise SttError("send_audio() before start()")
        if self._stopping:
            raise SttError("send_audio() after stop()")
        samples = np.asarray(pcm, dtype=np.int16).reshape(-1)
        for offset in range(0, samples.size, _MAX_WRITE):
            part = samples[offset : offset + _MAX_WRITE]
            self._buffer.append(part)
            for probability in self._vad.push(part):
                for event in self._segmenter.push(probability):
                    self._on_segmenter_event(event)
            self._buffer.discard_before(self._segmenter.retain_from)
        if self._interim:
            self._maybe_interim()

    async def finalize(self) -> None:
        """Transcribe any open segment now as an end of turn; wait for every result."""
        if self._loop is None or self._stopping or self._buffer is None:
            return
        cut = self._segmenter.flush()
        if cut is not None:
            # Include samples still waiting in the VAD's carry buffer.
            self._submit_cut(cut, audio_end=self._buffer.end)
        await self._idle.wait()

    # -- internals (all on the event loop) ------------------------------------------

    def _begin_stop(self) -> None:
        """At the first `stop`: refuse audio and drop queued segments at once."""
        self._stopping = True
        if self._backlog:
            log.debug("offline STT stopping: %d queued segment(s) dropped", len(self._backlog))
            self._backlog.clear()

    async def _stop(self) -> None:
        """Wait for a decode in flight, then end `events`."""
        await self._idle.wait()
        self._end_events()

    def _on_segmenter_event(self, event: SegmenterEvent) -> None:
        if isinstance(event, SpeechOnset):
            self._emit(SpeechStarted(event.sample / SAMPLE_RATE))
            self._last_interim = event.sample
        else:
            self._submit_cut(event, audio_end=event.audio_end)

    def _submit_cut(self, cut: SegmentCut, *, audio_end: int) -> None:
        assert self._buffer is not None
        job = _Job(
            audio=self._buffer.slice(cut.audio_start, audio_end),
            final=True,
            speech_start=cut.speech_start / SAMPLE_RATE,
            speech_end=cut.speech_end / SAMPLE_RATE,
            end_of_turn=cut.end_of_turn,
        )
        if len(self._backlog) >= _MAX_BACKLOG:
            self._backlog.popleft()
            self.dropped_segments += 1
            log.warning("offline STT is %d segments behind: oldest dropped", _MAX_BACKLOG)
        self._backlog.append(job)
        self._pump()

    def _maybe_interim(self) -> None:
        segment = self._segmenter.segment_start
        if segment is None or self._inflight is not None or self._backlog:
            return
        assert self._buffer is not None
        audio_start, speech_start = segment
        now = self._segmenter.position
        if now - speech_start < _INTERIM_MIN_SPEECH_S * SAMPLE_RATE:
            return
        if now - self._last_interim < _INTERIM_EVERY_S * SAMPLE_RATE:
            return
        self._last_interim = now
        end = self._buffer.end
        job = _Job(
            audio=self._buffer.slice(audio_start, end),
            final=False,
            speech_start=speech_start / SAMPLE_RATE,
            speech_end=end / SAMPLE_RATE,
            end_of_turn=False,
        )
        self._start_decode(job)

    def _pump(self) -> None:
        if self._inflight is None and self._backlog:
            self._start_decode(self._backlog.popleft())

    def _start_decode(self, job: _Job) -> None:
        assert self._loop is not None and self._recognizer is not None
        self._idle.clear()
        future = self._loop.run_in_executor(self._executor, self._recognizer.recognize, job.audio)
        self._inflight = future
        # Done-callbacks of a loop future run on the loop: the worker never touches
        # our state, it only completes the future.
        future.add_done_callback(lambda f: self._on_decoded(job, f))

    def _on_decoded(self, job: _Job, future: asyncio.Future[Recognition]) -> None:
        self._inflight = None
        result: Recognition | None = None
        if future.cancelled():
            log.debug("offline STT decode cancelled")
        elif (exc := future.exception()) is not None:
            log.error("offline STT decode failed: %s", exc)
        else:
            result = future.result()
        self._deliver(job, result)
        self._pump()
        if self._inflight is None:
            self._idle.set()

    def _deliver(self, job: _Job, result: Recognition | None) -> None:
        text = result.text if result is not None else ""
        if text:
            log.debug("offline STT %s: %r", "final" if job.final else "interim", text)
        elif job.final:
            log.debug("offline STT: segment of %.2f s had no words", job.audio.size / SAMPLE_RATE)
        if text and result is not None:
            self._emit(
                TranscriptResult(
                    text=text,
                    is_final=job.final,
                    speech_final=job.final and job.end_of_turn,
                    confidence=result.confidence,
                    start=job.speech_start,
                    duration=max(job.speech_end - job.speech_start, 0.0),
                )
            )
            if job.final:
                self._turn_has_text = True
        if job.final and job.end_of_turn:
            # A turn whose last piece was noise still ends if earlier pieces had words.
            if self._turn_has_text:
                self._emit(UtteranceEnd(job.speech_end))
            self._turn_has_text = False
