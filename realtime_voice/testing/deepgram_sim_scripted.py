"""The Deepgram simulator's load mode: energy endpointing and scripted transcripts.

Real recognition (Moonshine + Silero in the simulator) costs far more CPU per stream
than the server it is meant to load, so hundreds of concurrent calls would measure the
simulator. In this mode a stream is endpointed on signal energy alone and each
utterance is "recognised" as the next sentence of a configured list, round robin (so
the server's flows still get realistic text). Everything else is Deepgram's protocol as
the real-recognition mode speaks it: ``SpeechStarted`` at speech onset, interim
``Results`` while the caller talks, a final with ``speech_final`` once the silence
reaches the ``endpointing`` the client asked for, ``UtteranceEnd`` after
``utterance_end_ms`` of audio without speech, empty finals over long silences,
``from_finalize`` answers to ``Finalize``.

`ScriptedTranscriber` is pure (no I/O, no clock: stream time is audio received). Its
per-message cost is a few numpy operations on the whole message plus one small Python
step per 20 ms window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from realtime_voice.providers.base import PCM16
from realtime_voice.testing.deepgram_sim_messages import (
    ModelInfo,
    speech_started_message,
    transcript_message,
    utterance_end_message,
)
from realtime_voice.testing.deepgram_sim_query import ListenQuery

__all__ = ["DEFAULT_SENTENCES", "ScriptedSpeech", "ScriptedTranscriber", "load_sentences"]

DEFAULT_SENTENCES: Final[tuple[str, ...]] = (
    "What time do you open on Saturday?",
    "Where are you located?",
    "I'd like to book a table for four.",
    "Tomorrow at 7 pm.",
    "The name is Taylor.",
    "Do you have any gluten free pasta?",
    "Is there parking nearby?",
    "Are you open on Sunday?",
)
"""What callers "say" unless told otherwise: restaurant questions (the default flow),
a booking, and two questions only the language model can answer."""

_WINDOW_S: Final = 0.02
_CONFIDENCE: Final = 0.98
_FIRST_INTERIM_S: Final = 0.4  # Deepgram's first interim follows the onset quickly
_INTERIM_EVERY_S: Final = 1.0
_NO_ENDPOINTING_END_S: Final = 0.5  # with endpointing=false, finals still come after a pause
_SILENCE_FINAL_S: Final = 3.0  # an empty final covers long silences, as Deepgram does


@dataclass(frozen=True)
class ScriptedSpeech:
    """Configuration of the load mode.

    Attributes:
        sentences: transcripts handed out in turn; stream N starts at sentence N.
        threshold: RMS (0..1 of full scale) above which a 20 ms window is speech.
        speech_start_ms: speech needed before an onset counts.
    """

    sentences: tuple[str, ...] = DEFAULT_SENTENCES
    threshold: float = 0.01
    speech_start_ms: int = 60

    def __post_init__(self) -> None:
        if not self.sentences or not all(s.strip() for s in self.sentences):
            raise ValueError("scripted transcripts need at least one non-empty sentence")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be between 0 and 1, not {self.threshold}")


class ScriptedTranscriber:
    """Energy endpointing with scripted text for one ``/v1/listen`` stream.

    Args:
        speech: the load-mode configuration.
        query: the stream's validated options (rate, endpointing, interim results...).
        model: the stream's model identification, repeated in every Results message.
        first: index of this stream's first sentence.
    """

    def __init__(
        self, speech: ScriptedSpeech, query: ListenQuery, model: ModelInfo, first: int = 0
    ) -> None:
        self._sentences = speech.sentences
        self._next = first % len(speech.sentences)
        self._query = query
        self._model = model
        rate = query.audio_format.sample_rate
        self._rate = rate
        self._window = max(int(rate * _WINDOW_S), 1)
        # Compare mean squares with the squared threshold: no square root per window.
        self._loud = (speech.threshold * 32768.0) ** 2
        self._onset_windows = max(round(speech.speech_start_ms / 1000 / _WINDOW_S), 1)
        endpointing = query.endpointing_ms
        end_s = endpointing / 1000 if endpointing is not None else _NO_ENDPOINTING_END_S
        self._end_windows = max(round(end_s / _WINDOW_S), 1)
        self._gap_s = (query.utterance_end_ms or 0) / 1000
        self._carry = np.zeros(0, dtype=np.int16)
        self._windows = 0  # complete windows seen
        self._loud_run = 0
        self._quiet_run = 0
        self._speech_start: float | None = None  # open utterance
        self._last_loud_end = 0.0
        self._next_interim = 0.0
        self._interims = 0
        self._last_final_end = 0.0
        self._pending_utterance_end: float | None = None

    @property
    def position(self) -> float:
        """Seconds of audio received (whole windows)."""
        return self._windows * _WINDOW_S

    @property
    def in_speech(self) -> bool:
        """An utterance is open."""
        return self._speech_start is not None

    def push(self, pcm: PCM16) -> list[dict[str, Any]]:
        """Feed samples at the stream's rate; return the messages now due, in order."""
        samples = np.concatenate((self._carry, pcm)) if self._carry.size else pcm
        count = samples.size // self._window
        used = count * self._window
        self._carry = samples[used:].copy()
        if not count:
            return []
        frames = samples[:used].astype(np.float32).reshape(count, self._window)
        loud = np.einsum("ij,ij->i", frames, frames) / self._window > self._loud
        out: list[dict[str, Any]] = []
        for is_loud in loud.tolist():
            self._windows += 1
            self._step(bool(is_loud), out)
        return out

    def finalize(self) -> list[dict[str, Any]]:
        """``Finalize``: close the open utterance now (``from_finalize``), else an empty final."""
        out: list[dict[str, Any]] = []
        if self._speech_start is not None:
            self._final(out, from_finalize=True, speech_final=False)
        else:
            self._empty_final(out, from_finalize=True)
        return out

    def close(self) -> list[dict[str, Any]]:
        """``CloseStream``: the final of an utterance still open, if any."""
        out: list[dict[str, Any]] = []
        if self._speech_start is not None:
            self._final(out, from_finalize=False, speech_final=False)
        return out

    # ------------------------------------------------------------------ internals

    def _step(self, loud: bool, out: list[dict[str, Any]]) -> None:
        now = self.position
        if self._speech_start is None:
            self._loud_run = self._loud_run + 1 if loud else 0
            if self._loud_run >= self._onset_windows:
                self._open(now - self._loud_run * _WINDOW_S, now, out)
            elif not self._loud_run:
                self._idle(now, out)
            return
        if loud:
            self._last_loud_end = now
            self._quiet_run = 0
        else:
            self._quiet_run += 1
        if self._quiet_run >= self._end_windows:
            speech_final = self._query.endpointing_ms is not None
            self._final(out, from_finalize=False, speech_final=speech_final)
        elif self._query.interim_results and now >= self._next_interim:
            self._interim(now, out)

    def _open(self, start: float, now: float, out: list[dict[str, Any]]) -> None:
        self._speech_start = start
        self._last_loud_end = now
        self._quiet_run = 0
        self._interims = 0
        self._next_interim = start + _FIRST_INTERIM_S
        # Speech resumed within the gap: no UtteranceEnd for the previous utterance.
        self._pending_utterance_end = None
        if self._query.vad_events:
            out.append(speech_started_message(start))

    def _idle(self, now: float, out: list[dict[str, Any]]) -> None:
        due = self._pending_utterance_end
        if due is not None and now >= due + self._gap_s:
            self._pending_utterance_end = None
            out.append(utterance_end_message(due))
        if now - self._last_final_end >= _SILENCE_FINAL_S:
            self._empty_final(out, from_finalize=False)

    def _interim(self, now: float, out: list[dict[str, Any]]) -> None:
        assert self._speech_start is not None
        self._interims += 1
        self._next_interim = now + _INTERIM_EVERY_S
        words = self._sentences[self._next].split()
        # The words "heard so far": two more per interim, never the whole sentence.
        shown = " ".join(words[: min(2 * self._interims, max(len(words) - 1, 1))])
        out.append(self._results(shown, self._last_final_end, now, final=False))

    def _final(self, out: list[dict[str, Any]], *, from_finalize: bool, speech_final: bool) -> None:
        assert self._speech_start is not None
        end = self.position
        text = self._sentences[self._next]
        self._next = (self._next + 1) % len(self._sentences)
        out.append(
            self._results(
                text,
                self._last_final_end,
                end,
                final=True,
                speech_final=speech_final,
                from_finalize=from_finalize,
            )
        )
        self._last_final_end = end
        if self._gap_s and not from_finalize:
            self._pending_utterance_end = self._last_loud_end
        self._speech_start = None
        self._loud_run = 0

    def _empty_final(self, out: list[dict[str, Any]], *, from_finalize: bool) -> None:
        end = max(self.position, self._last_final_end)
        out.append(
            self._results("", self._last_final_end, end, final=True, from_finalize=from_finalize)
        )
        self._last_final_end = end

    def _results(
        self,
        text: str,
        start: float,
        end: float,
        *,
        final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> dict[str, Any]:
        speech_start = self._speech_start if self._speech_start is not None else start
        words_end = self._last_loud_end if final else end
        return transcript_message(
            self._model,
            text,
            _CONFIDENCE,
            punctuate=self._query.punctuate,
            start=start,
            end=end,
            words_start=max(speech_start, start),
            words_end=max(words_end, speech_start),
            is_final=final,
            speech_final=speech_final,
            from_finalize=from_finalize,
        )


def load_sentences(lines: Sequence[str]) -> tuple[str, ...]:
    """Sentences from the lines of a text file: blank lines and ``#`` comments skipped."""
    return tuple(s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#"))
