"""A bounded cache of synthesized audio for fixed lines (greeting, handoff, goodbye).

Lesson 4 of docs/LESSONS.md: the greeting must be ready the instant media starts. Fixed lines
are the same for every call, so their audio is kept per (text, wire format).
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncGenerator

from realtime_voice.audio.format import AudioFormat
from realtime_voice.providers.base import ReportsFallbacks, TextToSpeech

__all__ = ["LineCache"]


class LineCache:
    """LRU of whole-utterance audio, bounded by total bytes.

    Args:
        max_bytes: total audio kept (8 MB ≈ 17 minutes of mu-law).
        max_line_chars: longer texts are never cached (they are not fixed lines).
    """

    def __init__(self, *, max_bytes: int = 8 << 20, max_line_chars: int = 300) -> None:
        self._max_bytes = max_bytes
        self._max_chars = max_line_chars
        self._entries: collections.OrderedDict[tuple[str, AudioFormat, str], bytes] = (
            collections.OrderedDict()
        )
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, text: str, fmt: AudioFormat, voice: str = "") -> bytes | None:
        """Cached audio for ``text`` in ``fmt`` (and ``voice``), if any."""
        key = (text, fmt, voice)
        audio = self._entries.get(key)
        if audio is not None:
            self._entries.move_to_end(key)
        return audio

    def put(self, text: str, fmt: AudioFormat, audio: bytes, voice: str = "") -> None:
        """Remember ``audio``; evicts least recently used lines beyond the byte bound."""
        if len(text) > self._max_chars or len(audio) > self._max_bytes:
            return
        key = (text, fmt, voice)
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._entries[key] = audio
        self._bytes += len(audio)
        while self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)

    async def speak(
        self, tts: TextToSpeech, text: str, fmt: AudioFormat, voice: str = ""
    ) -> AsyncGenerator[bytes, None]:
        """Stream ``text``: from the cache when present, else from ``tts`` while filling it.

        A synthesis cut short (barge-in, error) is not cached, nor one a stand-in voice
        spoke any of (a `ReportsFallbacks` synthesiser whose primary failed): that audio
        would be what every later call hears, long after the primary is back.
        """
        audio = self.get(text, fmt, voice)
        if audio is not None:
            self.hits += 1
            yield audio
            return
        self.misses += 1
        stand_ins = _fallbacks(tts)
        parts: list[bytes] = []
        # Close the engine's stream at once on barge-in rather than at garbage collection.
        async with contextlib.aclosing(tts.synthesize(text)) as stream:
            async for chunk in stream:
                parts.append(chunk)
                yield chunk
        if _fallbacks(tts) == stand_ins:
            self.put(text, fmt, b"".join(parts), voice)


def _fallbacks(tts: TextToSpeech) -> int:
    return tts.fallbacks if isinstance(tts, ReportsFallbacks) else 0
