"""The shared 5 ms tick: pacers of many calls wake together, and only while needed.

On virtual time (`realtime_voice.testing.virtual_time`): tick times are exact and no
test sleeps for real.
"""

from __future__ import annotations

import asyncio
import itertools

from realtime_voice.audio.format import AudioFormat
from realtime_voice.session.frame_clock import FrameClock
from realtime_voice.session.pacer import OutboundPacer
from realtime_voice.testing.fake_leg import FakeLeg
from realtime_voice.testing.virtual_time import virtual_test


def bursts(times: list[float], gap_s: float = 0.005) -> int:
    ordered = sorted(times)
    return 1 + sum(b - a > gap_s for a, b in itertools.pairwise(ordered))


@virtual_test
async def test_calls_pacers_share_ticks_keep_their_slots_and_the_tick_stops_when_idle() -> None:
    loop = asyncio.get_running_loop()
    clock = FrameClock(clock=loop.time)  # a tick every 5 ms
    calls = 8
    legs = [FakeLeg() for _ in range(calls)]
    pacers = [OutboundPacer(leg, AudioFormat(), clock=loop.time, ticks=clock) for leg in legs]
    starts: list[float] = []
    for pacer in pacers:
        pacer.start()
        starts.append(loop.time())
        await pacer.put_audio(b"\x12" * 160 * 25)
        pacer.end_utterance(None)
        await asyncio.sleep(0.0025)  # the calls' speech starts spread over one frame
    for pacer in pacers:
        await pacer.wait_idle()

    sent = [[s.at for s in leg.sent if s.kind == "audio"] for leg in legs]
    for start, times in zip(starts, sent, strict=True):
        assert len(times) == 25
        # Never earlier than 60 ms ahead of the frame's real-time slot, and at most one
        # 5 ms tick after it (exact on virtual time).
        for k, t in enumerate(times):
            slot = max(0.0, k * 0.020 - 0.060)
            assert slot - 1e-9 <= t - start <= slot + 0.005 + 1e-9
    # Timers of their own wake the loop at 8 phases of every frame (about 8 + 8 x 21
    # bursts of sends); the shared tick has 4 phases per frame, so calls share wake-ups.
    assert bursts([t for times in sent for t in times], gap_s=0.001) <= 110
    # With nobody waiting the tick stops (an idle server does not keep waking).
    await asyncio.sleep(0.02)
    assert not clock.running and clock.waiting == 0
    for pacer in pacers:
        await pacer.close()


@virtual_test
async def test_cancelling_one_waiter_leaves_the_others_waiting() -> None:
    loop = asyncio.get_running_loop()
    clock = FrameClock(clock=loop.time)
    deadline = loop.time() + 0.05
    first = asyncio.create_task(clock.wait_until(deadline))
    second = asyncio.create_task(clock.wait_until(deadline))
    await asyncio.sleep(0.005)
    first.cancel()
    await second  # returns at the first tick after the deadline, not cancelled
    assert first.cancelled()
    assert loop.time() >= deadline


@virtual_test
async def test_a_passed_deadline_returns_at_once_without_starting_the_tick() -> None:
    loop = asyncio.get_running_loop()
    clock = FrameClock(clock=loop.time)
    await clock.wait_until(loop.time() - 1.0)
    assert not clock.running


async def test_each_loop_has_its_own_shared_clock() -> None:
    assert FrameClock.shared() is FrameClock.shared()
    other = await asyncio.to_thread(lambda: asyncio.run(_shared_in_new_loop()))
    assert other is not FrameClock.shared()


async def _shared_in_new_loop() -> FrameClock:
    return FrameClock.shared()
