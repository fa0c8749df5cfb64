"""The recognisers' shared loop side: event overflow policy, end and failure, one stop."""

from __future__ import annotations

import asyncio

import pytest

from realtime_voice.providers.base import (
    SpeechEvent,
    SpeechStarted,
    SttError,
    TranscriptResult,
    UtteranceEnd,
)
from realtime_voice.providers.stt_stream import EVENT_QUEUE_SIZE, SpeechEventStream


class Stream(SpeechEventStream):
    """A stream whose `_stop` waits for a gate and counts its runs."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.begun = 0
        self.stops = 0

    def emit(self, event: SpeechEvent) -> None:
        self._emit(event)

    def fail(self, error: SttError) -> None:
        self._fail_events(error)

    def _begin_stop(self) -> None:
        self.begun += 1

    async def _stop(self) -> None:
        self.stops += 1
        await self.gate.wait()
        self._end_events()


def transcript(n: int, *, final: bool) -> TranscriptResult:
    return TranscriptResult(f"w{n}", final, final, 1.0, float(n), 0.1)


async def drain(stream: Stream) -> list[SpeechEvent]:
    return [event async for event in stream.events()]


async def test_events_end_after_stop_and_a_new_iteration_ends_at_once() -> None:
    stream = Stream()
    stream.emit(SpeechStarted(0.5))
    stream.emit(UtteranceEnd(1.0))
    await stream.stop()
    assert await drain(stream) == [SpeechStarted(0.5), UtteranceEnd(1.0)]
    assert await drain(stream) == []


async def test_interims_are_dropped_at_half_full_and_finals_one_short_of_full() -> None:
    stream = Stream()
    for n in range(EVENT_QUEUE_SIZE):
        stream.emit(transcript(n, final=False))
    assert stream.dropped_events == EVENT_QUEUE_SIZE // 2
    for n in range(EVENT_QUEUE_SIZE):
        stream.emit(transcript(n, final=True))
    # The last slot is the end marker's: stop still ends events().
    assert stream.dropped_events == EVENT_QUEUE_SIZE // 2 + EVENT_QUEUE_SIZE // 2 + 1
    await stream.stop()
    got = await drain(stream)
    assert len(got) == EVENT_QUEUE_SIZE - 1
    assert got[0] == transcript(0, final=False)
    assert got[-1] == transcript(EVENT_QUEUE_SIZE // 2 - 2, final=True)


async def test_a_failure_is_raised_after_the_events_before_it_and_ends_the_stream() -> None:
    stream = Stream()
    stream.emit(SpeechStarted(0.0))
    stream.fail(SttError("gone"))
    stream.emit(UtteranceEnd(1.0))  # after the end: never delivered
    got: list[SpeechEvent] = []
    with pytest.raises(SttError, match="gone"):
        async for event in stream.events():
            got.append(event)
    assert got == [SpeechStarted(0.0)]
    await stream.stop()  # the end marker is not queued after a failure
    assert await drain(stream) == []


async def test_stop_runs_once_and_every_caller_waits_for_it() -> None:
    stream = Stream()
    stream.gate.clear()
    stopping = asyncio.gather(stream.stop(), stream.stop())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not stopping.done()
    assert (stream.begun, stream.stops) == (1, 1)
    stream.gate.set()
    await stopping
    await stream.stop()
    assert (stream.begun, stream.stops) == (1, 1)


async def test_a_cancelled_stop_still_finishes() -> None:
    stream = Stream()
    stream.gate.clear()
    first = asyncio.create_task(stream.stop())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    stream.gate.set()
    await stream.stop()
    assert stream.stops == 1
    assert await drain(stream) == []
