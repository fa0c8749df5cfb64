"""The transport's floor: CPU per call-second of websockets alone at telephony rates.

Run: ``python loadtests/bench_websocket_floor.py [--calls 20] [--seconds 15]``

A bare websockets server (the library and asyncio loop the media plane uses, no
application code at all) holds ``--calls`` connections from a separate client process.
Every call carries what a phone call carries: the gateway sends a 160-byte message every
20 ms, and while the bot talks the server sends one every 20 ms. Printed, as server CPU
milliseconds per call-second (psutil, user + system):

- ``receive``: gateway → server only (the caller talking, the bot silent);
- ``send, timer per call``: server → gateway only, each call's sender sleeping for its
  own next frame (what the outbound pacer did before `FrameClock`);
- ``send, shared tick``: the same frames, every sender waiting on one `FrameClock`;
- ``both, shared tick``: the two directions at once (the bot talking over the caller).

What the server does beyond this (decoding, the Deepgram bridge, the conversation) adds
to these figures; none of it can go below them. So a CPU target per call-second is only
meaningful above ``receive`` plus the share of ``send`` for the time the bot talks.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import time
from dataclasses import dataclass
from importlib.metadata import version
from multiprocessing.synchronize import Event as EventType

import psutil
import websockets
from websockets.asyncio.server import ServerConnection

from realtime_voice.session.frame_clock import FrameClock

__all__ = ["main"]

FRAME = b"\xff" * 160
FRAME_S = 0.02


@dataclass(frozen=True)
class Mode:
    """One measured configuration."""

    name: str
    gateway_sends: bool
    server_sends: bool
    shared_tick: bool


MODES = (
    Mode("receive", gateway_sends=True, server_sends=False, shared_tick=False),
    Mode("send, timer per call", gateway_sends=False, server_sends=True, shared_tick=False),
    Mode("send, shared tick", gateway_sends=False, server_sends=True, shared_tick=True),
    Mode("both, shared tick", gateway_sends=True, server_sends=True, shared_tick=True),
)


async def _send_frames(ws: ServerConnection, ticks: FrameClock | None) -> None:
    start = time.monotonic()
    k = 0
    while True:
        k += 1
        due = start + k * FRAME_S
        if ticks is not None:
            await ticks.wait_until(due)
        elif (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        await ws.send(FRAME)


async def _serve(mode: Mode, port: multiprocessing.SimpleQueue[int], stop: EventType) -> None:
    ticks = FrameClock() if mode.shared_tick else None

    async def handler(ws: ServerConnection) -> None:
        sender = asyncio.create_task(_send_frames(ws, ticks)) if mode.server_sends else None
        try:
            async for _ in ws:
                pass
        except websockets.ConnectionClosed:
            pass
        finally:
            if sender is not None:
                sender.cancel()

    async with websockets.serve(handler, "127.0.0.1", 0, compression=None) as server:
        port.put(server.sockets[0].getsockname()[1])
        await asyncio.to_thread(stop.wait)


def _server_process(mode: Mode, port: multiprocessing.SimpleQueue[int], stop: EventType) -> None:
    asyncio.run(_serve(mode, port, stop))


async def _call(url: str, mode: Mode, seconds: float, offset_s: float) -> None:
    await asyncio.sleep(offset_s)  # calls are not all on the same millisecond
    async with websockets.connect(url, compression=None) as ws:

        async def drain() -> None:
            async for _ in ws:
                pass

        reader = asyncio.create_task(drain())
        start = time.monotonic()
        k = 0
        while time.monotonic() - start < seconds:
            k += 1
            wait = start + k * FRAME_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if mode.gateway_sends:
                await ws.send(FRAME)
        reader.cancel()


def _client_process(url: str, mode: Mode, calls: int, seconds: float) -> None:
    async def run() -> None:
        await asyncio.gather(
            *(_call(url, mode, seconds, FRAME_S * i / calls) for i in range(calls))
        )

    asyncio.run(run())


def measure(mode: Mode, calls: int, seconds: float) -> tuple[float, float]:
    """Server CPU ms per call-second (total, of it in the kernel) for ``mode``."""
    ctx = multiprocessing.get_context("spawn")
    port: multiprocessing.SimpleQueue[int] = ctx.SimpleQueue()
    stop = ctx.Event()
    server = ctx.Process(target=_server_process, args=(mode, port, stop))
    server.start()
    url = f"ws://127.0.0.1:{port.get()}"
    client = ctx.Process(target=_client_process, args=(url, mode, calls, seconds + 3.0))
    client.start()
    process = psutil.Process(server.pid)
    time.sleep(2.0)  # connections up and steady
    before = process.cpu_times()
    time.sleep(seconds)
    after = process.cpu_times()
    client.join()
    stop.set()
    server.join(10)
    user = after.user - before.user
    system = after.system - before.system
    per_call_s = seconds * calls / 1000.0
    return (user + system) / per_call_s, system / per_call_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per mode")
    args = parser.parse_args(argv)
    print(
        f"websockets {version('websockets')}, {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}; {args.calls} calls, {args.seconds:.0f} s per mode"
    )
    print(f"{'mode':<24}{'ms/call-s':>10}{'kernel':>8}")
    for mode in MODES:
        total, kernel = measure(mode, args.calls, args.seconds)
        print(f"{mode.name:<24}{total:>10.2f}{kernel:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
