"""`SpeechInput`: the caller's audio on its way to the recogniser, decided in one place.

Each inbound payload is re-framed to 20 ms and measured (silent or voiced). If the
recogniser listening now takes the call's wire bytes as they are (Deepgram opened for
mu-law 8 kHz), the frames go as wire bytes: no decode, no resample. Otherwise they are
decoded and resampled to 16 kHz PCM. The choice is re-made whenever it can change: a
new wire format, or a `RecognizerSwitched` hand-over to the offline engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from realtime_voice.audio.format import AudioFormat
from realtime_voice.audio.processor import AudioProcessor
from realtime_voice.providers.base import (
    RecognizerSwitched,
    ReportsRecognizerFallback,
    SpeechStarted,
    SpeechToText,
    TranscriptResult,
    UtteranceEnd,
    WireAudioSink,
)
from realtime_voice.session.stats import CallStats

__all__ = ["SpeechInput", "SpeechListener"]

log = logging.getLogger(__name__)


class SpeechListener(Protocol):
    """Who hears what the recogniser made of the caller: the `Conversation`."""

    async def on_speech_started(self) -> None:
        """Speech began."""
        ...

    async def on_transcript(self, result: TranscriptResult) -> None:
        """An interim or final transcript."""
        ...

    def on_turn_end(self) -> None:
        """The recogniser's separate end-of-turn signal."""
        ...

    def on_recognizer_replaced(self, reason: str) -> None:
        """The recogniser failed mid-call and a stand-in took over."""
        ...


class SpeechInput:
    """Feeds one call's inbound audio to its recogniser and counts it.

    Args:
        audio_format: the call's wire format.
        silence_threshold: RMS below which a frame counts as silent.
        stats: the call's counters (frames, bytes, silent frames).
        billed: whether the primary recogniser is a paid one (its frames are billed
            while it, not the offline stand-in, listens).
        clock: monotonic clock for ``last_voiced_at``.
    """

    def __init__(
        self,
        audio_format: AudioFormat,
        *,
        silence_threshold: float,
        stats: CallStats,
        billed: bool,
        clock: Callable[[], float],
    ) -> None:
        self._format = audio_format
        self._processor = AudioProcessor(
            audio_format, target_rate=16000, silence_threshold=silence_threshold
        )
        self._stats = stats
        self._paid_primary = billed
        self._billed = False
        self._clock = clock
        self._stt: SpeechToText | None = None
        self._wire_sink: WireAudioSink | None = None
        self.billed_frames = 0
        """Frames a paid recogniser heard (what Deepgram bills by)."""
        self.last_voiced_at: float | None = None
        """When the last audible caller frame arrived."""

    @property
    def recognizer(self) -> SpeechToText | None:
        """The call's recogniser, once started."""
        return self._stt

    @property
    def confirms_speech_start(self) -> bool:
        """The recogniser's speech onsets are confirmed speech (see `SpeechToText`)."""
        stt = self._stt
        return stt is not None and stt.confirms_speech_start

    def use(self, stt: SpeechToText) -> None:
        """Make ``stt`` (started) the call's recogniser."""
        self._stt = stt
        self.reroute()

    def reroute(self) -> None:
        """Re-decide wire bytes or PCM, and billing, for the recogniser listening now."""
        stt = self._stt
        fmt = self._format
        self._wire_sink = None
        if (
            isinstance(stt, WireAudioSink)
            and fmt.channels == 1
            and stt.accepts_wire(fmt.encoding.value, fmt.sample_rate)
        ):
            self._wire_sink = stt
        on_fallback = isinstance(stt, ReportsRecognizerFallback) and stt.on_fallback
        self._billed = self._paid_primary and stt is not None and not on_fallback

    def set_format(self, fmt: AudioFormat) -> None:
        """The call's wire format changed (a ``config`` message)."""
        self._format = fmt
        self._processor.set_format(fmt)
        # The recogniser's stream keeps its encoding: new bytes may need converting.
        self.reroute()

    def feed(self, payload: bytes) -> None:
        """One inbound payload (any length) of the call's wire format."""
        stats = self._stats
        stats.bytes_in += len(payload)
        sink = self._wire_sink
        voiced = False
        if sink is not None:
            wire_frames = self._processor.process_wire(payload)
            count = len(wire_frames)
            for wire_frame in wire_frames:
                if wire_frame.is_silence:
                    stats.silent_frames_in += 1
                else:
                    voiced = True
                sink.send_wire(wire_frame.wire, silent=wire_frame.is_silence)
        else:
            frames = self._processor.process(payload)
            count = len(frames)
            stt = self._stt
            for frame in frames:
                if frame.is_silence:
                    stats.silent_frames_in += 1
                else:
                    voiced = True
                if stt is not None:
                    stt.send_audio(frame.pcm)
        stats.frames_in += count
        if voiced:
            self.last_voiced_at = self._clock()
        if self._billed:
            self.billed_frames += count

    async def listen(self, listener: SpeechListener) -> None:
        """Deliver the recogniser's events to ``listener`` until the stream ends.

        A hand-over to the stand-in re-routes the audio before the listener hears of it.

        Raises:
            SttError: the recogniser failed for good.
        """
        stt = self._stt
        assert stt is not None, "use() a recogniser first"
        async for event in stt.events():
            if isinstance(event, SpeechStarted):
                await listener.on_speech_started()
            elif isinstance(event, TranscriptResult):
                await listener.on_transcript(event)
            elif isinstance(event, UtteranceEnd):
                listener.on_turn_end()
            elif isinstance(event, RecognizerSwitched) and event.mid_call:
                self.reroute()
                listener.on_recognizer_replaced(event.reason)
