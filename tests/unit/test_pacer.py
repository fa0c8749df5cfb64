"""The outbound pacer on virtual time: exact frame times, no real sleeps."""

from __future__ import annotations

import asyncio

import pytest

from realtime_voice.audio.format import AudioFormat
from realtime_voice.session.pacer import OutboundPacer
from realtime_voice.testing.fake_leg import FakeLeg
from realtime_voice.testing.virtual_time import virtual_test


def make_pacer(leg: FakeLeg, **kw: int) -> OutboundPacer:
    loop = asyncio.get_running_loop()
    return OutboundPacer(leg, AudioFormat(), clock=loop.time, **kw)


def audio_times(leg: FakeLeg) -> list[float]:
    return [s.at for s in leg.sent if s.kind == "audio"]


@virtual_test
async def test_frames_are_20ms_paced_with_bounded_lead_and_mark_after() -> None:
    leg = FakeLeg()
    pacer = make_pacer(leg)
    pacer.start()
    t0 = asyncio.get_running_loop().time()
    await pacer.put_audio(bytes(range(256)) * 5 + b"\x01" * 20)  # 1300 bytes: 8 frames + 20
    pacer.end_utterance("response_1_done")
    await pacer.wait_idle()
    assert len(leg.frames) == 9
    assert all(len(f) == 160 for f in leg.frames)
    # The padded tail is mu-law silence.
    assert leg.frames[-1][20:] == b"\xff" * 140
    # The first three frames go at once (the 60 ms lead); frame k then leaves exactly
    # 60 ms before its real-time slot: not earlier, and (on virtual time) not later.
    offsets = [round(t - t0, 6) for t in audio_times(leg)]
    assert offsets == [max(0.0, round(k * 0.020 - 0.060, 6)) for k in range(9)]
    assert leg.kinds() == ["audio", "mark"]
    assert leg.sent[-1].detail == "response_1_done"
    await pacer.close()


@virtual_test
async def test_clear_drops_queue_at_once_and_sends_clear() -> None:
    leg = FakeLeg()
    pacer = make_pacer(leg)
    pacer.start()
    await pacer.put_audio(b"\x10" * 160 * 100)  # 2 s of audio
    pacer.end_utterance("response_1_done")
    await asyncio.sleep(0.1)  # 100 ms in: 5 frames played, 3 more sent ahead
    assert pacer.stats.frames_sent == 8
    dropped = await pacer.clear()
    # 92 frames never go out; the one already taken off the queue to wait for its slot
    # is stopped by the clear's generation check rather than counted here.
    assert dropped == 91
    assert not pacer.busy
    await pacer.wait_idle()
    await asyncio.sleep(1.0)
    assert pacer.stats.frames_sent == 8
    assert leg.kinds() == ["audio", "clear"]  # the dropped mark is never sent
    await pacer.close()


@virtual_test
async def test_producer_waits_when_queue_is_full() -> None:
    leg = FakeLeg()
    pacer = make_pacer(leg, max_queued_ms=200)
    pacer.start()
    producer = asyncio.create_task(pacer.put_audio(b"\x20" * 160 * 50))
    await asyncio.sleep(0.1)
    # One second of audio cannot fit in a 200 ms queue: the producer is held back.
    assert not producer.done()
    assert pacer.queued_ms <= 200
    await producer
    await pacer.wait_idle()
    assert pacer.stats.frames_sent == 50
    await pacer.close()


@virtual_test
async def test_close_is_idempotent_and_stops_task() -> None:
    leg = FakeLeg()
    pacer = make_pacer(leg)
    pacer.start()
    await pacer.put_audio(b"\x30" * 160 * 10)
    await pacer.close()
    await pacer.close()
    count = len(leg.sent)
    await asyncio.sleep(1.0)
    assert len(leg.sent) == count


class _VanishedLeg(FakeLeg):
    """A leg whose connection dropped: every send raises, as a closed socket's does."""

    async def send_audio(self, frame: bytes) -> None:
        raise ConnectionResetError("the gateway went away")


@virtual_test
async def test_close_after_the_gateway_vanished_mid_audio_does_not_raise() -> None:
    pacer = make_pacer(_VanishedLeg())
    pacer.start()
    await pacer.put_audio(b"\x30" * 160 * 3)
    await asyncio.sleep(0.1)  # the pacer's task died on its first send
    await pacer.close()  # ending the call goes on: no exception
    assert pacer.stats.frames_sent == 0


@pytest.mark.parametrize("lead_ms", [0, 20, 60])
@virtual_test
async def test_the_lead_is_what_the_leg_allows(lead_ms: int) -> None:
    leg = FakeLeg(playout_lead_ms=lead_ms)
    pacer = make_pacer(leg, max_lead_ms=lead_ms)
    pacer.start()
    t0 = asyncio.get_running_loop().time()
    await pacer.put_audio(b"\x40" * 160 * 10)
    pacer.end_utterance(None)
    await pacer.wait_idle()
    lead = lead_ms / 1000
    offsets = [round(t - t0, 6) for t in audio_times(leg)]
    assert offsets == [max(0.0, round(k * 0.020 - lead, 6)) for k in range(10)]
    await pacer.close()
