"""The outbound pacer against a virtual clock driven by the event loop's own time."""

from __future__ import annotations

import asyncio
import json

from websockets.exceptions import ConnectionClosedError

from realtime_voice.audio.format import AudioFormat
from realtime_voice.protocols.ringcentral_bridge import RingCentralBridgeProtocol
from realtime_voice.session.pacer import OutboundPacer


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, str | bytes]] = []

    async def __call__(self, message: str | bytes) -> None:
        self.sent.append((asyncio.get_running_loop().time(), message))

    def audio(self) -> list[tuple[float, bytes]]:
        return [(t, m) for t, m in self.sent if isinstance(m, bytes)]

    def controls(self) -> list[dict[str, object]]:
        return [json.loads(m) for _, m in self.sent if isinstance(m, str)]


def make_pacer(rec: Recorder, **kw: int) -> OutboundPacer:
    loop = asyncio.get_running_loop()
    return OutboundPacer(
        rec, RingCentralBridgeProtocol(), AudioFormat(), clock=loop.time, **kw
    )


async def test_frames_are_20ms_paced_with_bounded_lead_and_mark_after() -> None:
    rec = Recorder()
    pacer = make_pacer(rec)
    pacer.start()
    t0 = asyncio.get_running_loop().time()
    await pacer.put_audio(bytes(range(256)) * 5 + b"\x01" * 20)  # 1300 bytes: 8 frames + 20
    pacer.end_utterance("response_1_done")
    await pacer.wait_idle()
    frames = rec.audio()
    assert len(frames) == 9
    assert all(len(f) == 160 for _, f in frames)
    # The padded tail is mu-law silence.
    assert frames[-1][1][20:] == b"\xff" * 140
    # Frame k never leaves more than 60 ms before its real-time slot.
    for k, (t, _) in enumerate(frames):
        assert t - t0 >= k * 0.020 - 0.060 - 1e-3
    # ...and the stream takes about real time (not sent in one burst).
    assert frames[-1][0] - t0 >= 8 * 0.020 - 0.060 - 1e-3
    assert rec.controls() == [{"type": "mark", "name": "response_1_done"}]
    assert rec.sent[-1][1] == '{"type":"mark","name":"response_1_done"}'
    await pacer.close()


async def test_clear_drops_queue_at_once_and_sends_clear() -> None:
    rec = Recorder()
    pacer = make_pacer(rec)
    five_sent = asyncio.Event()
    pacer.on_frame_sent = lambda: pacer.stats.frames_sent >= 5 and five_sent.set()  # type: ignore[func-returns-value]
    pacer.start()
    await pacer.put_audio(b"\x10" * 160 * 100)  # 2 s of audio
    pacer.end_utterance("response_1_done")
    await five_sent.wait()
    dropped = await pacer.clear()
    assert dropped > 80
    assert not pacer.busy
    sent_at_clear = pacer.stats.frames_sent
    await pacer.wait_idle()
    await asyncio.sleep(0.1)
    assert pacer.stats.frames_sent == sent_at_clear
    controls = rec.controls()
    assert controls == [{"type": "clear"}]  # the dropped mark is never sent
    await pacer.close()


async def test_producer_waits_when_queue_is_full() -> None:
    rec = Recorder()
    pacer = make_pacer(rec, max_queued_ms=200)
    pacer.start()
    first_sent = asyncio.Event()
    pacer.on_frame_sent = first_sent.set
    producer = asyncio.create_task(pacer.put_audio(b"\x20" * 160 * 50))
    await first_sent.wait()
    # One second of audio cannot fit in a 200 ms queue: the producer is held back.
    assert not producer.done()
    assert pacer.queued_ms <= 200
    await producer
    await pacer.wait_idle()
    assert pacer.stats.frames_sent == 50
    await pacer.close()


async def test_close_is_idempotent_and_stops_task() -> None:
    rec = Recorder()
    pacer = make_pacer(rec)
    pacer.start()
    await pacer.put_audio(b"\x30" * 160 * 10)
    await pacer.close()
    await pacer.close()
    count = len(rec.sent)
    await asyncio.sleep(0.1)
    assert len(rec.sent) == count


async def test_close_after_the_gateway_vanished_mid_audio_does_not_raise() -> None:
    failed = asyncio.Event()

    async def send(message: str | bytes) -> None:
        failed.set()
        raise ConnectionClosedError(None, None)  # what a dropped connection's send raises

    loop = asyncio.get_running_loop()
    pacer = OutboundPacer(send, RingCentralBridgeProtocol(), AudioFormat(), clock=loop.time)
    pacer.start()
    await pacer.put_audio(b"\x30" * 160 * 3)
    await failed.wait()  # the pacer's task died on its first send
    await pacer.close()  # ending the call goes on: no exception
    assert pacer.stats.frames_sent == 0
