"""RingCentral notifications webhook: response time under a steady 200 requests/s.

Starts the webhook (``POST /api/ringcentral/webhook`` with its background worker and an
in-memory call event sink) in its own process on loopback, then sends telephony session
notifications open-loop at a fixed rate (each request leaves at its scheduled time,
whatever the earlier ones are doing; in-flight requests are bounded) for a fixed time.
Each simulated call is Proceeding → Answered → Disconnected, with a share of duplicate
deliveries, as RingCentral does. Prints p50/p90/p99/max of the time from sending a
request to its full response, the achieved rate, errors, and the server's own count of
applied events (all accepted notifications must be applied).

Run: ``python loadtests/bench_webhook.py [--rate 200] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import socket
import statistics
import subprocess
import sys
import time

import aiohttp

TOKEN = "bench-verification-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def serve(port: int) -> None:
    """Server mode: the webhook alone, plus ``GET /stats`` for the driver."""
    from aiohttp import web

    from webhooks.ringcentral import (
        WEBHOOK_PATH,
        MemoryCallEventSink,
        RingCentralWebhook,
        add_ringcentral_routes,
    )

    sink = MemoryCallEventSink()
    webhook = RingCentralWebhook(verification_token=TOKEN, sink=sink)

    async def stats(request: web.Request) -> web.Response:
        await webhook.join()
        s = webhook.stats
        return web.json_response(
            {"accepted": s.accepted, "applied": s.applied, "duplicates": s.duplicates,
             "late": s.late, "sink_events": len(sink.events), "handshakes": s.handshakes}
        )

    app = web.Application()
    add_ringcentral_routes(app, webhook)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"ready {WEBHOOK_PATH}", flush=True)
    await asyncio.Event().wait()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


async def drive(
    port: int, rate: float, seconds: float, duplicates: float, max_inflight: int
) -> None:
    from realtime_voice.testing.ringcentral_notify import WebhookNotifier, validate_webhook

    url = f"http://127.0.0.1:{port}/api/ringcentral/webhook"
    rng = random.Random(7)
    handshake_ms = []
    for _ in range(50):
        result = await validate_webhook(url)
        assert result.ok, result.problems
        handshake_ms.append(result.elapsed_s * 1000)

    connector = aiohttp.TCPConnector(limit=max_inflight)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    late_starts = 0
    async with aiohttp.ClientSession(connector=connector) as http:
        notifier = WebhookNotifier(http, url, TOKEN)
        slots = asyncio.Semaphore(max_inflight)
        total = int(rate * seconds)
        plan: list[dict[str, object]] = []
        while len(plan) < total:
            tsid = notifier.new_call()
            for status, reason in (("Proceeding", None), ("Answered", None),
                                   ("Disconnected", "CallFinished")):
                note = notifier.event(tsid, status, reason)
                plan.append(note)
                if rng.random() < duplicates:
                    plan.append(note)  # RingCentral delivering the same uuid twice
        plan = plan[:total]
        bodies = [json.dumps(note).encode() for note in plan]

        async def one(body: bytes) -> None:
            nonlocal errors
            async with slots:
                started = time.perf_counter()
                try:
                    status = await notifier.send(body)
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    return
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[status] = statuses.get(status, 0) + 1

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tasks = []
        for i, body in enumerate(bodies):
            due = t0 + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.005:
                late_starts += 1
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - t0
        async with http.get(f"http://127.0.0.1:{port}/stats") as resp:
            server = await resp.json()

    print(f"{'requests sent':<42} {len(bodies):>8}  ({len(bodies) / elapsed:.1f}/s achieved)")
    print(f"{'statuses':<42} {json.dumps(statuses):>8}  errors={errors}")
    print(f"{'sends that left >5 ms behind schedule':<42} {late_starts:>8}")
    for label, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        name = f"notification response time {label} (ms)"
        print(f"{name:<42} {percentile(latencies, q):>8.2f}")
    print(f"{'notification response time max (ms)':<42} {max(latencies):>8.2f}")
    print(f"{'notification response time mean (ms)':<42} {statistics.fmean(latencies):>8.2f}")
    print(f"{'handshake p50 / max (ms, 50 raw requests)':<42} "
          f"{percentile(handshake_ms, 50):>8.2f} / {max(handshake_ms):.2f}")
    print(f"{'server: accepted / applied / duplicates':<42} "
          f"{server['accepted']:>8} / {server['applied']} / {server['duplicates']}")
    if server["accepted"] != server["applied"] + server["late"]:
        print("WARNING: accepted notifications were not all applied")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to send")
    parser.add_argument("--duplicates", type=float, default=0.05,
                        help="share of notifications delivered twice")
    parser.add_argument("--max-inflight", type=int, default=64, help="concurrent requests")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        asyncio.run(serve(args.serve))
        return
    shown = sys.argv[1:] if argv is None else argv
    print(" ".join(["$ python loadtests/bench_webhook.py", shlex.join(shown)]).rstrip())
    print(f"rate {args.rate:g}/s for {args.seconds:g} s, {args.duplicates:.0%} duplicates, "
          f"≤{args.max_inflight} in flight, loopback, server in its own process; "
          f"{os.cpu_count()} CPUs shared with whatever else runs")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit(f"webhook server did not start: {line!r}")
        asyncio.run(drive(port, args.rate, args.seconds, args.duplicates, args.max_inflight))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
