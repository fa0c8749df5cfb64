"""A `TextToSpeech` that falls back to another when the first fails, so the caller hears every line.

Typical use: Aura first, the offline TTS second. When the primary fails before any
audio, the fallback speaks the whole text; when it fails part-way and says how many
sentences it completed (`DeepgramTtsError.completed_pieces`), the fallback speaks the
sentences not yet heard, the interrupted one included (a sentence restarted is easier
to follow than one missing its end). After a failure the primary is skipped for
``cooldown_s``, so an outage does not add a failed request to every line.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from realtime_voice.providers.base import TextSplitter, TextToSpeech, TtsError, whole_text

__all__ = ["FallbackTextToSpeech"]

log = logging.getLogger(__name__)


class FallbackTextToSpeech:
    """Speak with ``primary``; on `TtsError`, finish the text with ``fallback``.

    Args:
        primary: the preferred synthesizer (e.g. `DeepgramTextToSpeech`).
        fallback: the one that takes over (e.g. `LocalTextToSpeech`), same wire format.
        cooldown_s: after a primary failure, use the fallback alone this long.
        clock: monotonic clock (injectable for tests).
        split_text: the primary's `TextSplitter`, so "pieces completed" counts the same
            pieces here.
    """

    def __init__(
        self,
        primary: TextToSpeech,
        fallback: TextToSpeech,
        *,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        split_text: TextSplitter = whole_text,
    ) -> None:
        self._split_text = split_text
        self.primary = primary
        self.fallback = fallback
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._skip_until = float("-inf")
        self.fallbacks = 0
        """Utterances (or their remainders) the fallback spoke."""

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        """Stream ``text``; see the module docstring for who speaks what.

        Raises:
            TtsError: the fallback failed too (or the primary failed mid-utterance
                without saying where).
        """
        remaining = text
        if self._clock() >= self._skip_until:
            sent = False
            try:
                async with contextlib.aclosing(_agen(self.primary.synthesize(text))) as stream:
                    async for chunk in stream:
                        sent = True
                        yield chunk
                return
            except TtsError as exc:
                self._skip_until = self._clock() + self._cooldown_s
                done = getattr(exc, "completed_pieces", None)
                if not sent:
                    log.warning("primary TTS failed before any audio (%s): fallback speaks", exc)
                elif done is not None:
                    remaining = " ".join(self._split_text(text)[done:])
                    log.warning(
                        "primary TTS failed after %d sentence(s) (%s): fallback speaks the rest",
                        done,
                        exc,
                    )
                else:
                    raise
        if not remaining.strip():
            return
        self.fallbacks += 1
        async with contextlib.aclosing(_agen(self.fallback.synthesize(remaining))) as stream:
            async for chunk in stream:
                yield chunk


async def _agen(stream: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """Any async iterator of bytes as an async generator (which `aclosing` can close)."""
    try:
        async for chunk in stream:
            yield chunk
    finally:
        # Engines' streams are async generators: close them now, not at collection.
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
