"""What recording costs a call: CPU per call-minute and bytes per call-minute, on vs off.

Run: ``python loadtests/bench_recording.py [--calls 20] [--seconds 30] [--runs 3]``

``--calls`` simulated calls each carry ``--seconds`` of audio both ways: every 20 ms one
caller frame goes through the leg's listener (as `WebSocketLeg.run` delivers it) and one
bot frame through ``send_audio`` (as the pacer sends it). "Off" runs the bare legs;
"on" wraps each in a `RecordingLeg` whose tap feeds the one `RecordingWriter` thread,
which writes real WAV files to a temporary directory. The audio is fed as fast as the
CPU allows (a virtual clock moves 20 ms per step, so the timelines are those of real
calls); after each simulated second the feeder waits for the writer to catch up, so no
frame is dropped and the writer's work is all counted. CPU is the process's CPU time
(every thread) from the first frame to the last file closed; the cost of recording is
"on" less "off", per call-minute, and how much of it the event loop's own thread spent
(the taps; the rest is the writer thread). Both wire formats the server records are measured:
mu-law 8 kHz (the gateways, Twilio, most carriers) and L16 16 kHz (Vonage, SIP). Each
figure is the median of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

import numpy as np

from ai_pipeline.responder import TransferTarget
from realtime_voice.audio.codec import encode
from realtime_voice.audio.format import AudioEncoding, AudioFormat
from realtime_voice.legs.base import CLOSE_NORMAL, CallLeg, LegListener, MediaEvent, ProtocolError
from realtime_voice.legs.recording import RecordingLeg
from realtime_voice.protocols.base import AudioEvent
from realtime_voice.storage.recording import RecordingWriter
from realtime_voice.storage.recording_wav import RecordingFiles

__all__ = ["main"]

FORMATS = {
    "mulaw/8k": AudioFormat(),
    "l16/16k": AudioFormat(AudioEncoding.PCM16, 16000),
}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Done:
    """An already finished awaitable: what a socket's send costs us here (nothing)."""

    def __await__(self):  # type: ignore[no-untyped-def]
        return iter(())


_DONE = _Done()


class _BareLeg:
    """A leg with no transport: the frames go nowhere; `run` delivers nothing."""

    name = "bench"
    playout_lead_ms = 60

    def __init__(self, fmt: AudioFormat) -> None:
        self.audio_format = fmt
        self.listening = asyncio.Event()
        self.closed = asyncio.Event()

    def send_audio(self, frame: bytes) -> Awaitable[None]:
        return _DONE

    def send_mark(self, name: str) -> Awaitable[None]:
        return _DONE

    def clear(self) -> Awaitable[None]:
        return _DONE

    def send_error(self, code: str, message: str) -> Awaitable[None]:
        return _DONE

    async def transfer(self, target: TransferTarget) -> None:
        return None

    async def hang_up(self, reason: str) -> None:
        return None

    async def run(self, listener: LegListener) -> None:
        self.listener = listener
        self.listening.set()
        await self.closed.wait()  # a call's receive loop lasts until the call ends

    def disconnect_reason(self) -> str:
        return "caller_disconnected"

    async def close(self, reason: str, *, code: int = CLOSE_NORMAL) -> bool | None:
        self.closed.set()
        return None


class _Session:
    """The listener: takes each event and does nothing with it."""

    is_ended = False

    async def handle(self, event: MediaEvent) -> None:
        return None

    async def on_rejected(self, error: ProtocolError) -> None:
        return None

    def on_inactive(self, idle_s: float) -> None:
        return None


def _frames(fmt: AudioFormat, n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    pcm = np.clip(rng.normal(0, 3000, n * fmt.samples_per_frame), -32768, 32767)
    encoded = encode(pcm.astype(np.int16), fmt)
    size = fmt.frame_bytes
    return [encoded[i * size:(i + 1) * size] for i in range(n)]


async def _one_run(
    fmt: AudioFormat, calls: int, seconds: int, record: bool
) -> tuple[float, float, int]:
    """CPU seconds of the process and of the event loop's thread, and bytes recorded."""
    caller_frames = _frames(fmt, 250, 1)
    bot_frames = _frames(fmt, 250, 2)
    clock = _Clock()
    with tempfile.TemporaryDirectory(prefix="bench-rec-") as tmp:
        files = RecordingFiles(Path(tmp))
        writer = RecordingWriter(files, clock=clock)
        writer.start()
        legs: list[CallLeg] = []
        listeners: list[LegListener] = []
        receiving: list[asyncio.Task[None]] = []
        for n in range(calls):
            bare = _BareLeg(fmt)
            leg: CallLeg = RecordingLeg(bare, writer.tap(f"call-{n}")) if record else bare
            receiving.append(asyncio.create_task(leg.run(_Session())))
            await bare.listening.wait()
            legs.append(leg)
            listeners.append(bare.listener)
        cpu0, loop0 = time.process_time(), time.thread_time()
        for step in range(seconds * 50):
            clock.now += 0.02
            caller = AudioEvent(caller_frames[step % 250])
            bot = bot_frames[step % 250]
            for leg, listener in zip(legs, listeners, strict=True):
                await listener.handle(caller)
                await leg.send_audio(bot)
            if step % 50 == 49:
                await writer.flush()  # keep the writer's queue short: nothing dropped
        for leg in legs:
            await leg.close("ended")
        await asyncio.gather(*receiving)
        loop_cpu = time.thread_time() - loop0
        await writer.close()
        cpu = time.process_time() - cpu0
        if writer.dropped_frames:
            raise RuntimeError(f"{writer.dropped_frames} frame(s) dropped: the figures are off")
        size = sum(entry.stat().st_size for entry in os.scandir(tmp))
        if record and size < calls * seconds * fmt.sample_rate * 4:
            raise RuntimeError(f"only {size} bytes recorded: the figures are off")
    return cpu, loop_cpu, size


async def _bench(calls: int, seconds: int, runs: int) -> None:
    minutes = calls * seconds / 60
    print(f"{calls} calls x {seconds} s = {minutes:.1f} call-minutes per run, "
          f"median of {runs} runs")
    print(f"{'format':<10} {'CPU off':>8} {'CPU on':>8} {'recording, all threads':>24} "
          f"{'of it on the loop':>18} {'bytes/call-minute':>18}")
    for label, fmt in FORMATS.items():
        off: list[float] = []
        on: list[float] = []
        loop_off: list[float] = []
        loop_on: list[float] = []
        sizes: list[int] = []
        for _ in range(runs):
            # Interleaved, so background load hits both alike.
            cpu, loop_cpu, _ = await _one_run(fmt, calls, seconds, record=False)
            off.append(cpu)
            loop_off.append(loop_cpu)
            cpu, loop_cpu, size = await _one_run(fmt, calls, seconds, record=True)
            on.append(cpu)
            loop_on.append(loop_cpu)
            sizes.append(size)
        per_minute_ms = (statistics.median(on) - statistics.median(off)) / minutes * 1000
        loop_ms = (statistics.median(loop_on) - statistics.median(loop_off)) / minutes * 1000
        share = per_minute_ms / 60_000 * 100
        print(f"{label:<10} {statistics.median(off):>7.3f}s {statistics.median(on):>7.3f}s "
              f"{per_minute_ms:>7.1f} ms/call-min ({share:.2f}%) "
              f"{loop_ms:>8.1f} ms/call-min {statistics.median(sizes) / minutes:>18,.0f}")


def main(argv: list[str] | None = None) -> int:
    """Parse the options and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.calls < 1 or args.seconds < 1 or args.runs < 1:
        parser.error("--calls, --seconds and --runs must be positive")
    print(f"python loadtests/bench_recording.py {shlex.join(argv or sys.argv[1:])}")
    print(f"{platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs")
    asyncio.run(_bench(args.calls, args.seconds, args.runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
