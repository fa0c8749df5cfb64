"""Provider-neutral speech interfaces: `SpeechToText`, `TextToSpeech` and their events.

The call logic only ever sees these types, never a provider's JSON (so the Deepgram
bridge and the offline engines are interchangeable).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from realtime_voice.audio.format import PCM16

__all__ = [
    "PCM16",
    "RecognizerSwitched",
    "ReportsFallbacks",
    "ReportsRecognizerFallback",
    "SpeechEvent",
    "SpeechStarted",
    "SpeechToText",
    "SttError",
    "TextSplitter",
    "TextToSpeech",
    "TranscriptResult",
    "TtsError",
    "UtteranceEnd",
    "WireAudioSink",
    "Word",
    "whole_text",
]

TextSplitter = Callable[[str], list[str]]
"""Cuts a line into the pieces a synthesiser speaks one at a time (sentences, clauses).

Sentence splitting is language work and lives in `ai_pipeline.text_split`; the wiring
hands its ``split_sentences`` to the synthesisers, so providers import nothing above them.
"""


def whole_text(text: str) -> list[str]:
    """The `TextSplitter` that keeps a line whole (nothing to say when it is blank)."""
    return [text] if text.strip() else []


class SttError(Exception):
    """The speech-to-text stream failed.

    Attributes:
        retryable: whether trying again could help (network drop) or not (bad key).
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class TtsError(Exception):
    """Speech synthesis failed."""


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its timing (seconds from the start of the stream)."""

    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True, slots=True)
class TranscriptResult:
    """An interim or final transcript of the caller's speech.

    Attributes:
        text: the transcript (may be empty on a final that heard nothing).
        is_final: this text for this span will not change again.
        speech_final: the speaker finished a turn here (endpoint detected).
        confidence: 0..1.
        start: seconds from the start of the stream.
        duration: seconds of audio this result covers.
        words: per-word timings, when the engine provides them.
    """

    text: str
    is_final: bool
    speech_final: bool
    confidence: float
    start: float
    duration: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The engine heard speech begin (used for barge-in).

    Attributes:
        timestamp: seconds from the start of the stream where speech began.
    """

    timestamp: float


@dataclass(frozen=True, slots=True)
class UtteranceEnd:
    """The caller has been quiet long enough after the last word: end of turn.

    Attributes:
        last_word_end: seconds from the start of the stream.
    """

    last_word_end: float


@dataclass(frozen=True, slots=True)
class RecognizerSwitched:
    """The call's recogniser failed and a stand-in took over (`FallbackSpeechToText`).

    Attributes:
        reason: what the failed recogniser said.
        mid_call: it failed during the call (what the caller said meanwhile is lost),
            rather than at start-up.
    """

    reason: str
    mid_call: bool


SpeechEvent = SpeechStarted | TranscriptResult | UtteranceEnd | RecognizerSwitched


class SpeechToText(Protocol):
    """A streaming recogniser for one call.

    Lifecycle: ``start()`` once, then ``send_audio`` per frame, ``finalize()`` to flush
    a pending utterance, ``stop()`` to end (idempotent; releases every thread and socket).
    ``events()`` yields results until the stream stops.
    """

    @property
    def confirms_speech_start(self) -> bool:
        """True when `SpeechStarted` already means real speech of a minimum length (our VAD
    rule), so it may interrupt the bot at once; False when it fires on any sound
    (Deepgram's VAD event), so barge-in waits for words that are not a back-channel."""
        ...

    async def start(self) -> None:
        """Open the stream (connect, load state). Raises `SttError` on failure."""
        ...

    def send_audio(self, pcm: PCM16) -> None:
        """Queue one frame of 16 kHz mono PCM. Never blocks the event loop."""
        ...

    async def finalize(self) -> None:
        """Flush: transcribe whatever speech is pending as a final result."""
        ...

    async def stop(self) -> None:
        """End the stream and release everything. Safe to call twice."""
        ...

    def events(self) -> AsyncIterator[SpeechEvent]:
        """Speech events in order; ends after ``stop()``."""
        ...


@runtime_checkable
class WireAudioSink(Protocol):
    """A recogniser that can also take the call's own wire bytes (no decode, no resample).

    The session hands such a recogniser each 20 ms frame as the gateway sent it, in
    place of `SpeechToText.send_audio`, whenever `accepts_wire` says the call's format
    is what the stream was opened for.
    """

    def accepts_wire(self, encoding: str, sample_rate: int) -> bool:
        """Whether `send_wire` takes bytes of this encoding (AudioEncoding value) and rate."""
        ...

    def send_wire(self, payload: bytes, *, silent: bool = False) -> None:
        """Queue wire bytes as they came from the gateway. Never blocks.

        ``silent`` says the frame is below the call's silence threshold: a recogniser may
        batch long silences into fewer, larger messages (a voiced frame goes at once).
        """
        ...


class TextToSpeech(Protocol):
    """A synthesiser bound to one call's wire format."""

    def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """Stream audio for ``text`` in the call's wire codec, as it is produced.

        The first bytes come as soon as the first sentence (or clause) is ready.
        Consume it inside ``contextlib.aclosing`` (or ``aclose`` it) so that barge-in
        stops the work at once rather than at garbage collection.

        Raises:
            TtsError: synthesis failed.
        """
        ...


@runtime_checkable
class ReportsRecognizerFallback(Protocol):
    """A recogniser that may be running on its stand-in engine."""

    on_fallback: bool
    """The stand-in is the one listening now (the primary, typically paid, is not)."""

    fallback_reason: str
    """What the primary said when it failed (empty while it listens)."""


@runtime_checkable
class ReportsFallbacks(Protocol):
    """A synthesiser that hands lines to a stand-in engine when its own fails."""

    fallbacks: int
    """Lines (or their remainders) the stand-in spoke so far."""
