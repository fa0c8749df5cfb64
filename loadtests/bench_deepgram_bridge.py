"""Figures of the Deepgram bridge against the Deepgram simulator (real SDK, real sockets).

Run: ``python loadtests/bench_deepgram_bridge.py [--streams 100] [--seconds 10]``

The simulator runs as a separate process (``realtime-voice simulate deepgram``) so its
work does not share this process's event loop or GIL; the bridges run here, as in the
server. Figures printed:

1. threads per live call (the bridge's own, and the process total including websockets'
   background reader of each socket);
2. µs per 20 ms frame to hand audio to the bridge (``send_audio``: linear16 16 kHz, and
   mu-law 8 kHz which resamples and encodes), with the socket draining concurrently;
3. bridge-added latency: the simulator stamps each result with CLOCK_MONOTONIC at the
   moment it sends it (``--tick-results-ms`` mode: ``tick N sent_ns=…``); the consumer of
   ``events()`` subtracts that from its own clock on receipt. p50/p99 with 1 stream and
   with ``--streams`` concurrent streams, each fed real-time audio in lockstep (all
   streams get a frame on the same 20 ms tick: burstier than real calls) and each
   getting a result per 100 ms of audio (several times Deepgram's own rate, so the
   figure is pessimistic);
4. time to recover from a forced 1011 close: drop noticed → new socket open, and drop
   noticed → first result from the new socket (replay included);
5. Aura first-byte overhead: time to the first audio byte through `DeepgramTextToSpeech`
   minus the same request made with a bare aiohttp POST, both against a simulator that
   holds every answer back by ``--speak-delay-ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import re
import shlex
import socket
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp
import numpy as np

from ai_pipeline.text_split import split_sentences
from realtime_voice.audio.format import MULAW_8K
from realtime_voice.providers.base import TranscriptResult
from realtime_voice.providers.deepgram_client import create_async_client, create_client
from realtime_voice.providers.deepgram_options import DeepgramSttOptions
from realtime_voice.providers.deepgram_stt import DeepgramSpeechToText
from realtime_voice.providers.deepgram_tts import DeepgramTextToSpeech
from realtime_voice.testing.deepgram_sim import DEFAULT_API_KEY

__all__ = ["main"]

FRAME = 320
_STAMP = re.compile(r"sent_ns=(\d+)")
_LINE = "Thank you for calling, how can I help you today?"  # one sentence: one request


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def simulator(*flags: str) -> AsyncIterator[tuple[str, str]]:
    """A simulator process; yields ``(http_url, ws_url)``."""
    port = _free_port()
    exe = str(Path(sys.executable).with_name("realtime-voice"))
    proc = await asyncio.create_subprocess_exec(
        exe, "simulate", "deepgram", "--port", str(port), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    await asyncio.wait_for(proc.stdout.readline(), 60)
    try:
        yield f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    finally:
        proc.terminate()
        await proc.wait()


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _noise() -> np.ndarray[tuple[int], np.dtype[np.int16]]:
    return np.random.default_rng(3).integers(-3000, 3000, FRAME).astype(np.int16)


async def _drain(stt: DeepgramSpeechToText) -> None:
    async for _ in stt.events():
        pass


async def bench_threads(http: str, ws: str) -> None:
    client = create_client(DEFAULT_API_KEY, base_url=http, ws_url=ws)
    before = threading.active_count()
    streams = [DeepgramSpeechToText(client) for _ in range(10)]
    for stt in streams:
        await stt.start()
    drains = [asyncio.get_running_loop().create_task(_drain(stt)) for stt in streams]
    during = threading.active_count()
    own = sum(len(stt.threads) for stt in streams) / len(streams)
    for stt in streams:
        await stt.stop()
    await asyncio.gather(*drains)
    after = threading.active_count()
    print(f"threads per live call: {own:.0f} of the bridge's own (worker + reader), "
          f"{(during - before) / len(streams):.0f} in all (websockets' sync client adds its "
          f"reader and keepalive-ping threads per socket); "
          f"after stop: {after - before:+d}")  # fmt: skip


async def bench_send(http: str, ws: str, frames: int) -> None:
    client = create_client(DEFAULT_API_KEY, base_url=http, ws_url=ws)
    pcm = _noise()
    for label, options in (
        ("linear16 16 kHz", DeepgramSttOptions()),
        (
            "mu-law 8 kHz (resample + encode)",
            DeepgramSttOptions(encoding="mulaw", sample_rate=8000),
        ),
    ):
        stt = DeepgramSpeechToText(client, options, max_queued_frames=frames)
        await stt.start()
        drain = asyncio.get_running_loop().create_task(_drain(stt))
        per_batch: list[float] = []
        for _ in range(frames // 50):
            started = time.perf_counter_ns()
            for _ in range(50):
                stt.send_audio(pcm)
            per_batch.append((time.perf_counter_ns() - started) / 50 / 1000)
            await asyncio.sleep(0)  # let the worker drain, as the loop would between messages
        await stt.stop()
        await drain
        print(f"send_audio, {label}: median {statistics.median(per_batch):.1f} µs/frame, "
              f"p99 {_pct(per_batch, 0.99):.1f} µs (batches of 50; dropped "
              f"{stt.metrics.dropped_frames})")  # fmt: skip


async def _latency(http: str, ws: str, streams: int, seconds: float) -> list[float]:
    client = create_client(DEFAULT_API_KEY, base_url=http, ws_url=ws)
    bridges = [DeepgramSpeechToText(client) for _ in range(streams)]
    await asyncio.gather(*(stt.start() for stt in bridges))
    latencies: list[float] = []

    async def consume(stt: DeepgramSpeechToText) -> None:
        async for event in stt.events():
            if isinstance(event, TranscriptResult):
                received = time.monotonic_ns()
                match = _STAMP.search(event.text)
                if match:
                    latencies.append((received - int(match.group(1))) / 1e6)

    consumers = [asyncio.get_running_loop().create_task(consume(stt)) for stt in bridges]
    pcm = _noise()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for tick in range(round(seconds * 50)):
        for stt in bridges:
            stt.send_audio(pcm)
        delay = start + (tick + 1) * 0.02 - loop.time()
        await asyncio.sleep(max(delay, 0.0))
    await asyncio.gather(*(stt.stop() for stt in bridges))
    await asyncio.gather(*consumers)
    dropped = sum(stt.metrics.dropped_frames for stt in bridges)
    if dropped:
        print(f"  (warning: {dropped} frames dropped by full inboxes)")
    return latencies


async def bench_latency(streams: int, seconds: float) -> None:
    async with simulator("--tick-results-ms", "100") as (http, ws):
        for count in (1, streams):
            values = await _latency(http, ws, count, seconds)
            print(f"bridge-added latency, {count} stream(s), {len(values)} results: "
                  f"p50 {_pct(values, 0.5):.2f} ms, p99 {_pct(values, 0.99):.2f} ms, "
                  f"max {max(values):.2f} ms")  # fmt: skip


async def _recover_once(close_after_s: float) -> tuple[float, float] | None:
    """One forced close; returns (drop → new socket, drop → first new result) in ms."""
    flags = ("--tick-results-ms", "100", "--close-after-audio-s", str(close_after_s),
             "--close-connections", "1")  # fmt: skip
    async with simulator(*flags) as (http, ws):
        client = create_client(DEFAULT_API_KEY, base_url=http, ws_url=ws)
        stt = DeepgramSpeechToText(client)
        await stt.start()
        loop = asyncio.get_running_loop()
        marks: dict[str, float] = {}

        async def consume() -> None:
            async for event in stt.events():
                if isinstance(event, TranscriptResult) and "opened" in marks:
                    marks.setdefault("result", time.perf_counter())

        async def watch() -> None:
            # The bridge reports a drop and a reconnect only through its counters.
            while "opened" not in marks:
                metrics = stt.metrics
                if metrics.errors:
                    marks.setdefault("noticed", time.perf_counter())
                if metrics.reconnects:
                    marks["opened"] = time.perf_counter()
                await asyncio.sleep(0.001)

        tasks = [loop.create_task(consume()), loop.create_task(watch())]
        pcm = _noise()
        start = loop.time()
        for tick in range(round((close_after_s + 2.0) * 50)):
            stt.send_audio(pcm)
            await asyncio.sleep(max(start + (tick + 1) * 0.02 - loop.time(), 0.0))
        await stt.stop()
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if not {"noticed", "opened", "result"} <= marks.keys():
        return None
    noticed = marks["noticed"]
    return (marks["opened"] - noticed) * 1000, (marks["result"] - noticed) * 1000


async def bench_recovery(runs: int) -> None:
    cases = (
        (6.0, "a stable socket (up ≥ 5 s): immediate reconnect"),
        (1.0, "a young socket (up 1 s): tenacity backoff first"),
    )
    for close_after_s, kind in cases:
        found = [r for r in [await _recover_once(close_after_s) for _ in range(runs)] if r]
        if not found:
            print(f"recovery, {kind}: no reconnect seen")
            continue
        to_open = statistics.median(r[0] for r in found)
        to_result = statistics.median(r[1] for r in found)
        print(f"recovery from a forced 1011 close of {kind} ({len(found)} runs): "
              f"drop noticed → new socket median {to_open:.1f} ms, "
              f"→ first result from it median {to_result:.1f} ms")  # fmt: skip


async def bench_aura(delay_ms: int, runs: int) -> None:
    async with simulator("--speak-first-byte-delay-ms", str(delay_ms)) as (http, _ws):
        handle = create_async_client(DEFAULT_API_KEY, base_url=http)
        tts = DeepgramTextToSpeech(MULAW_8K, handle.client, split_text=split_sentences)
        params = {"model": "aura-2-thalia-en", "encoding": "mulaw", "sample_rate": "8000",
                  "container": "none"}  # fmt: skip
        headers = {"Authorization": f"Token {DEFAULT_API_KEY}"}
        bare: list[float] = []
        ours: list[float] = []
        async with aiohttp.ClientSession() as http_session:

            async def bare_first_byte() -> float:
                started = time.perf_counter()
                async with http_session.post(
                    f"{http}/v1/speak", params=params, json={"text": _LINE}, headers=headers
                ) as reply:
                    await reply.content.readany()
                    first = time.perf_counter() - started
                    await reply.read()
                return first * 1000

            async def our_first_byte() -> float:
                started = time.perf_counter()
                async with contextlib.aclosing(tts.synthesize(_LINE)) as stream:
                    await anext(stream)
                    first = time.perf_counter() - started
                    async for _ in stream:
                        pass
                return first * 1000

            for run in range(runs + 1):
                # Alternate the order so drifts in the simulator's load hit both alike.
                if run % 2:
                    b_ms, o_ms = await bare_first_byte(), await our_first_byte()
                else:
                    o_ms, b_ms = await our_first_byte(), await bare_first_byte()
                if run:  # the first round warms connections and the voice
                    bare.append(b_ms)
                    ours.append(o_ms)
        await handle.aclose()
    overhead = [a - b for a, b in zip(ours, bare, strict=True)]
    print(f"Aura first byte with the simulator holding answers {delay_ms} ms: bare POST "
          f"median {statistics.median(bare):.1f} ms, DeepgramTextToSpeech median "
          f"{statistics.median(ours):.1f} ms; overhead median "
          f"{statistics.median(overhead):.1f} ms, p90 {_pct(overhead, 0.9):.1f} ms "
          f"({runs} runs)")  # fmt: skip


async def _main(args: argparse.Namespace) -> None:
    # Hardly any results here: these two measure the audio path alone.
    async with simulator("--tick-results-ms", "60000") as (http, ws):
        await bench_threads(http, ws)
        await bench_send(http, ws, args.frames)
    await bench_latency(args.streams, args.seconds)
    await bench_recovery(args.recovery_runs)
    await bench_aura(args.speak_delay_ms, args.aura_runs)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the figures."""
    logging.basicConfig(level=logging.WARNING, format="  (log) %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--recovery-runs", type=int, default=3)
    parser.add_argument("--aura-runs", type=int, default=20)
    parser.add_argument("--speak-delay-ms", type=int, default=200)
    args = parser.parse_args(argv)
    command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
    print(f"$ {command}")
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPU(s)")  # fmt: skip
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
