"""The fixed-line audio cache: per text, wire format and voice; bounded; never caches a cut."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.providers.line_cache import LineCache

MULAW = AudioFormat()
PCM = AudioFormat(AudioEncoding.PCM16, 16000, 1)


class CountingTts:
    """Synthesizes text as its UTF-8 bytes in two chunks and counts the calls."""

    def __init__(self, tag: bytes = b"") -> None:
        self.calls = 0
        self.tag = tag

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        self.calls += 1
        data = self.tag + text.encode()
        yield data[: len(data) // 2]
        yield data[len(data) // 2 :]


async def collect(
    cache: LineCache, tts: CountingTts, text: str, fmt: AudioFormat, voice: str = ""
) -> bytes:
    return b"".join([chunk async for chunk in cache.speak(tts, text, fmt, voice)])


async def test_second_time_comes_from_the_cache() -> None:
    cache, tts = LineCache(), CountingTts()
    first = await collect(cache, tts, "Hello there.", MULAW)
    second = await collect(cache, tts, "Hello there.", MULAW)
    assert first == second == b"Hello there."
    assert tts.calls == 1 and cache.hits == 1


async def test_format_and_voice_are_part_of_the_key() -> None:
    cache = LineCache()
    thalia, andromeda = CountingTts(b"T:"), CountingTts(b"A:")
    assert await collect(cache, thalia, "Hi.", MULAW, "aura-2-thalia-en") == b"T:Hi."
    assert await collect(cache, andromeda, "Hi.", MULAW, "aura-2-andromeda-en") == b"A:Hi."
    assert await collect(cache, thalia, "Hi.", PCM, "aura-2-thalia-en") == b"T:Hi."
    assert (thalia.calls, andromeda.calls) == (2, 1)


async def test_a_cut_synthesis_is_not_cached() -> None:
    cache, tts = LineCache(), CountingTts()
    stream = cache.speak(tts, "Goodbye now.", MULAW)
    await anext(stream)
    await stream.aclose()  # barge-in after the first chunk
    assert cache.get("Goodbye now.", MULAW) is None


async def test_bounded_by_bytes_evicting_the_oldest() -> None:
    cache, tts = LineCache(max_bytes=20), CountingTts()
    await collect(cache, tts, "0123456789", MULAW)
    await collect(cache, tts, "abcdefghij", MULAW)
    await collect(cache, tts, "KLMNOPQRST", MULAW)
    assert cache.get("0123456789", MULAW) is None
    assert cache.get("KLMNOPQRST", MULAW) == b"KLMNOPQRST"
