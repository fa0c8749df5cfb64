"""One load-generator process: N concurrent callers in one event loop, figures on stdout.

Started by `bench_capacity` and `soak` (one or more per step, so the callers never
share the server's core accounting or event loop), with a JSON job on the command line::

    python loadtests/_load_worker.py '{"http_url": ..., "protocol": "twilio", "calls": 40,
        "ramp_s": 2.0, "window": [t0, t1], "utterances": ["loadtests/audio/x.ulaw"], ...}'

Calls start evenly spread over ``ramp_s``; every call is hung up at the end of the
window (``stop``, then the WebSocket close). The last line on stdout is the JSON of the
`Measurements`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load_caller import CallSlot, FrameClock, Measurements, SlotConfig

__all__ = ["run_job"]

_CLOCK_GROUPS = 10  # 2 ms apart: the server never gets every call's frame at once


async def run_job(job: dict[str, Any], utterances: tuple[bytes, ...]) -> Measurements:
    """Run the callers of one job; returns what they measured inside the window."""
    window = (float(job["window"][0]), float(job["window"][1]))
    length = job.get("call_length_s")
    config = SlotConfig(
        http_url=job["http_url"],
        protocol=job["protocol"],
        utterances=utterances,
        window=window,
        call_length_s=None if length is None else float(length),
    )
    m = Measurements()
    clock = FrameClock(_CLOCK_GROUPS, m, window)
    clock.start()
    calls = int(job["calls"])
    ramp_s = float(job.get("ramp_s", 0.0))
    first = int(job.get("first_index", 0))
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=15), trust_env=False
    ) as http:
        slots = [CallSlot(config, clock, http, m, first + i) for i in range(calls)]
        tasks: list[asyncio.Task[None]] = []
        t0 = time.monotonic()
        for index, slot in enumerate(slots):
            start = t0 + ramp_s * index / max(calls, 1)
            await asyncio.sleep(max(0.0, start - time.monotonic()))
            tasks.append(asyncio.create_task(slot.run()))
        live: list[int] = []
        while (now := time.monotonic()) < window[1]:
            if now >= window[0]:
                live.append(sum(slot.live for slot in slots))
            await asyncio.sleep(min(0.5, max(window[1] - now, 0.0)))
        m.live_calls_mean = sum(live) / len(live) if live else 0.0
        for slot in slots:
            slot.stop()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        m.errors += [f"caller crashed: {r!r}" for r in results if isinstance(r, Exception)]
    await clock.aclose()
    return m


def main() -> int:
    """Run the job given as the only argument; print the measurements as JSON."""
    job = json.loads(sys.argv[1])
    utterances = tuple(Path(p).read_bytes() for p in job["utterances"])
    measurements = asyncio.run(run_job(job, utterances))
    print(json.dumps(measurements.as_json()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
