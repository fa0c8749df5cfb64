"""Aura TTS with the real SDK against the simulator; the offline TTS taking over when it fails."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("moonshine_cpp")
pytest.importorskip("onnxruntime")

from ai_pipeline.text_split import split_sentences
from realtime_voice.audio.format import MULAW_8K, AudioEncoding, AudioFormat
from realtime_voice.providers.deepgram_client import AsyncClientHandle, create_async_client
from realtime_voice.providers.deepgram_errors import DeepgramTtsError
from realtime_voice.providers.deepgram_tts import DeepgramTextToSpeech
from realtime_voice.providers.fallback_tts import FallbackTextToSpeech
from realtime_voice.providers.line_cache import LineCache
from realtime_voice.providers.local_tts import LocalTextToSpeech, synthesize_all
from realtime_voice.testing.deepgram_sim import DEFAULT_API_KEY, DeepgramSimulator, SimFaults
from realtime_voice.testing.speech import transcribe_mulaw

GREETING = "Thank you for calling the restaurant. How can I help you?"
TWO = "Hello there. Our kitchen is open every day from noon until ten in the evening."


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


@contextlib.asynccontextmanager
async def aura(
    faults: SimFaults | None = None,
) -> AsyncIterator[tuple[DeepgramSimulator, AsyncClientHandle]]:
    sim = DeepgramSimulator(faults=faults)
    await sim.start()
    handle = create_async_client(DEFAULT_API_KEY, base_url=sim.http_url, ws_url=sim.ws_url)
    try:
        yield sim, handle
    finally:
        await handle.aclose()
        await sim.close()


async def test_aura_speaks_the_call_codec_and_the_words_come_back() -> None:
    async with aura() as (sim, handle):
        tts = DeepgramTextToSpeech(MULAW_8K, handle.client, split_text=split_sentences)
        audio = await synthesize_all(tts, GREETING)
    assert sim.stats.last_speak_query == {
        "container": "none", "encoding": "mulaw", "model": "aura-2-thalia-en",
        "sample_rate": "8000",
    }  # fmt: skip
    assert 1.0 < MULAW_8K.bytes_to_seconds(len(audio)) < 6.0
    heard = words(await transcribe_mulaw(audio))
    assert "calling the restaurant" in heard and "help" in heard


async def test_one_request_per_sentence_and_linear16_keeps_whole_samples() -> None:
    pcm16 = AudioFormat(AudioEncoding.PCM16, 16000, 1)
    async with aura() as (sim, handle):
        tts = DeepgramTextToSpeech(pcm16, handle.client, split_text=split_sentences)
        chunks = [chunk async for chunk in tts.synthesize(TWO)]
    assert sim.stats.speak_requests == sim.stats.speak_completed == 2
    assert tts.requests == 2
    assert all(len(chunk) % 2 == 0 for chunk in chunks)
    assert sim.stats.last_speak_query["encoding"] == "linear16"


async def test_closing_the_stream_mid_utterance_closes_the_http_response() -> None:
    long_line = "This is a long sentence that takes several seconds to say out loud on the phone."
    async with aura(SimFaults(speak_realtime=True)) as (sim, handle):
        tts = DeepgramTextToSpeech(MULAW_8K, handle.client, split_text=split_sentences)
        async with contextlib.aclosing(tts.synthesize(long_line)) as stream:
            first = await anext(stream)
        assert first
        await sim.wait_for(lambda s: s.speak_aborted == 1)
    assert sim.stats.speak_completed == 0


async def test_a_failure_before_the_first_byte_is_retried() -> None:
    async with aura(SimFaults(speak_fail_status=503, speak_fail_count=1)) as (sim, handle):
        tts = DeepgramTextToSpeech(MULAW_8K, handle.client, split_text=split_sentences)
        audio = await synthesize_all(tts, "One moment please.")
    assert audio
    assert (sim.stats.speak_failed, sim.stats.speak_completed) == (1, 1)
    assert tts.retries == 1


async def test_a_rejected_request_is_not_retried() -> None:
    async with aura(SimFaults(speak_fail_status=400)) as (sim, handle):
        tts = DeepgramTextToSpeech(MULAW_8K, handle.client, split_text=split_sentences)
        with pytest.raises(DeepgramTtsError) as caught:
            await synthesize_all(tts, "One moment please.")
    assert caught.value.retryable is False and caught.value.status == 400
    assert caught.value.completed_pieces == 0
    assert sim.stats.speak_requests == 1


async def test_the_offline_tts_speaks_when_aura_answers_500() -> None:
    async with aura(SimFaults(speak_fail_status=500)) as (sim, handle):
        speaker = FallbackTextToSpeech(
            DeepgramTextToSpeech(MULAW_8K, handle.client),
            LocalTextToSpeech(MULAW_8K),
            split_text=split_sentences,
        )
        audio = await synthesize_all(speaker, GREETING)
    assert sim.stats.speak_failed == 2  # the first attempt and its retry
    assert speaker.fallbacks == 1
    heard = words(await transcribe_mulaw(audio))
    assert "calling the restaurant" in heard and "help" in heard


async def test_a_stream_cut_mid_utterance_is_finished_by_the_offline_tts() -> None:
    # "Hello there." is about 6 kB of mu-law: it fits; the second sentence is cut.
    async with aura(SimFaults(speak_abort_after_bytes=12_000)) as (sim, handle):
        primary = DeepgramTextToSpeech(MULAW_8K, handle.client, split_text=split_sentences)
        speaker = FallbackTextToSpeech(
            primary, LocalTextToSpeech(MULAW_8K), split_text=split_sentences
        )
        audio = await synthesize_all(speaker, TWO)
    assert sim.stats.speak_cut == 1 and sim.stats.speak_completed == 1
    assert speaker.fallbacks == 1
    heard = words(await transcribe_mulaw(audio))
    assert "hello" in heard and "kitchen" in heard and "evening" in heard


async def test_a_silent_aura_falls_back_within_the_first_byte_deadline() -> None:
    async with aura(SimFaults(speak_first_byte_delay_ms=5_000)) as (sim, handle):
        primary = DeepgramTextToSpeech(
            MULAW_8K,
            handle.client,
            attempts=1,
            first_byte_timeout_s=0.3,
            split_text=split_sentences,
        )
        speaker = FallbackTextToSpeech(
            primary, LocalTextToSpeech(MULAW_8K), split_text=split_sentences
        )
        audio = await synthesize_all(speaker, "One moment please.")
        assert audio and speaker.fallbacks == 1
        # Inside the cool-down the next line goes straight to the fallback.
        await synthesize_all(speaker, "Thank you.")
        assert sim.stats.speak_requests == 1 and speaker.fallbacks == 2


async def test_a_fixed_line_finished_by_the_fallback_is_not_cached() -> None:
    # The cut line is half Aura, then the whole sentence again in the offline voice: it
    # must never be what every later call hears. Once Aura is back, its audio is cached.
    cache = LineCache()
    async with aura(SimFaults(speak_abort_after_bytes=2_000)) as (sim, handle):
        speaker = FallbackTextToSpeech(
            DeepgramTextToSpeech(MULAW_8K, handle.client),
            LocalTextToSpeech(MULAW_8K),
            cooldown_s=0.0,
            split_text=split_sentences,
        )
        mixed = b"".join([c async for c in cache.speak(speaker, GREETING, MULAW_8K)])
        assert sim.stats.speak_cut == 1 and speaker.fallbacks == 1
        assert cache.get(GREETING, MULAW_8K) is None
        sim.faults.speak_abort_after_bytes = None
        clean = b"".join([c async for c in cache.speak(speaker, GREETING, MULAW_8K)])
    assert speaker.fallbacks == 1
    assert cache.get(GREETING, MULAW_8K) == clean != mixed
