"""Speech fakes: a recogniser that follows a script, a synthesiser that yields tones.

`ScriptedSpeechToText` plays a script of what the caller does, timed from the moment
the recogniser starts: `Said` (speech onset, then a final transcript ``duration``
later), `TurnEnd` (a separate end-of-turn signal), `Noise` (an onset with no words: a
cough, a click), `Fail` (the stream breaks). `ToneTextToSpeech` answers every line
with a tone of a length set by its word count, in the call's wire codec, so a test
knows exactly how many frames each line takes. Both are meant for
`realtime_voice.testing.virtual_time`: their timing is ``asyncio.sleep`` on the loop's
clock.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from realtime_voice.audio import codec
from realtime_voice.audio.format import MULAW_8K, PCM16, AudioFormat
from realtime_voice.providers.base import (
    SpeechEvent,
    SpeechStarted,
    SttError,
    TranscriptResult,
    TtsError,
    UtteranceEnd,
)

__all__ = ["Fail", "Noise", "Said", "ScriptedSpeechToText", "ToneTextToSpeech", "TurnEnd"]


@dataclass(frozen=True, slots=True)
class Said:
    """The caller says ``text``, starting ``at`` seconds after the recogniser started.

    Attributes:
        text: the final transcript.
        at: speech onset, seconds from the recogniser's start.
        duration: onset → final transcript (with ``speech_final``).
        confidence: of the final.
        ends_turn: the final carries ``speech_final`` (False: more of the turn follows,
            or a `TurnEnd` ends it).
    """

    text: str
    at: float
    duration: float = 0.8
    confidence: float = 0.9
    ends_turn: bool = True


@dataclass(frozen=True, slots=True)
class TurnEnd:
    """The recogniser's separate end-of-turn signal (`UtteranceEnd`) at ``at``."""

    at: float


@dataclass(frozen=True, slots=True)
class Noise:
    """A sound with no words at ``at`` (an onset, then an empty final)."""

    at: float
    duration: float = 0.1


@dataclass(frozen=True, slots=True)
class Fail:
    """The recognition stream breaks at ``at`` (`SttError`)."""

    at: float
    message: str = "scripted recogniser failure"


Step = Said | Noise | Fail | TurnEnd


class ScriptedSpeechToText:
    """A `SpeechToText` that follows a script (see the module docstring).

    Args:
        script: what happens, in time order.
        confirms_speech_start: onsets are confirmed speech (our VAD) or any sound
            (Deepgram's), which decides whether an onset alone may cut the bot.
        fail_start: `start` raises `SttError` (a bad key, an outage).
    """

    def __init__(
        self,
        script: Sequence[Step] = (),
        *,
        confirms_speech_start: bool = True,
        fail_start: bool = False,
    ) -> None:
        self.script = list(script)
        self.confirms_speech_start = confirms_speech_start
        self._fail_start = fail_start
        self.frames = 0
        """PCM frames received."""
        self.started_at: float | None = None
        """``loop.time()`` at `start`: the script's zero."""
        self.stopped = asyncio.Event()

    async def start(self) -> None:
        """Start the script's clock (or fail, if told to)."""
        if self._fail_start:
            raise SttError("scripted start failure", retryable=False)
        self.started_at = asyncio.get_running_loop().time()

    def send_audio(self, pcm: PCM16) -> None:
        """Count the frame."""
        self.frames += 1

    async def finalize(self) -> None:
        """Nothing is pending in a script."""

    async def stop(self) -> None:
        """End the event stream."""
        self.stopped.set()

    async def events(self) -> AsyncIterator[SpeechEvent]:
        """The script's events at their times; ends when stopped."""
        for step in self.script:
            await self._until(step.at)
            if isinstance(step, Fail):
                raise SttError(step.message, retryable=True)
            if isinstance(step, TurnEnd):
                yield UtteranceEnd(last_word_end=step.at)
                continue
            yield SpeechStarted(timestamp=step.at)
            await self._until(step.at + step.duration)
            text = step.text if isinstance(step, Said) else ""
            confidence = step.confidence if isinstance(step, Said) else 0.0
            yield TranscriptResult(
                text=text,
                is_final=True,
                speech_final=step.ends_turn if isinstance(step, Said) else True,
                confidence=confidence,
                start=step.at,
                duration=step.duration,
            )
        await self.stopped.wait()

    async def _until(self, offset: float) -> None:
        assert self.started_at is not None, "start() first"
        delay = self.started_at + offset - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass
class ToneTextToSpeech:
    """A `TextToSpeech` that says each line as a tone of ``ms_per_word`` per word.

    Attributes:
        audio_format: the wire format of the bytes yielded.
        ms_per_word: tone length per word (a multiple of 20 keeps lines frame-aligned).
        first_audio_s: wait before the first bytes of each line (synthesis latency).
        fail_on: a line containing this text raises `TtsError`.
        lines: every line asked for, in order.
    """

    audio_format: AudioFormat = MULAW_8K
    ms_per_word: int = 200
    first_audio_s: float = 0.0
    fail_on: str | None = None
    lines: list[str] = field(default_factory=list)

    def frames_for(self, text: str) -> int:
        """How many 20 ms frames ``text`` takes."""
        return len(text.split()) * self.ms_per_word // 20

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """The tone for ``text``, in 100 ms chunks."""
        self.lines.append(text)
        if self.fail_on is not None and self.fail_on in text:
            raise TtsError(f"scripted synthesis failure on {text!r}")
        if self.first_audio_s > 0:
            await asyncio.sleep(self.first_audio_s)
        rate = self.audio_format.sample_rate
        samples = len(text.split()) * self.ms_per_word * rate // 1000
        t = np.arange(samples) / rate
        tone: PCM16 = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16)
        chunk = rate // 10
        for start in range(0, samples, chunk):
            yield codec.encode(tone[start : start + chunk], self.audio_format)
