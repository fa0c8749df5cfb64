"""End of caller speech → first bot audio byte, with the offline engines, over real sockets.

Starts ``realtime-voice serve`` as its own process (so the caller's work does not share the
server's event loop or core accounting), places simulated RingCentral-bridge calls whose
caller lines are synthesized speech streamed at real time, and prints the median and max
over the measured turns. Also prints barge-in (speech onset → ``clear``) for a few
interruptions.

Run: ``python loadtests/bench_turn_latency.py [--turns 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller

LINES = [
    "What time do you open?",
    "Are you open on Sunday?",
    "What are your opening hours on Saturday?",
    "When do you close tonight?",
    "What are your hours?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("server did not become healthy")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--barge-ins", type=int, default=3)
    args = parser.parse_args()

    http_port, media_port = free_port(), free_port()
    env = {
        **os.environ,
        "VOICE_HTTP_HOST": "127.0.0.1",
        "VOICE_MEDIA_HOST": "127.0.0.1",
        "VOICE_HTTP_PORT": str(http_port),
        "VOICE_MEDIA_PORT": str(media_port),
        "VOICE_PUBLIC_MEDIA_URL": f"ws://127.0.0.1:{media_port}",
        "VOICE_LOG_LEVEL": "warning",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    exe = shutil.which("realtime-voice", path=str(Path(sys.executable).parent))
    cmd = [exe, "serve"] if exe else [
        sys.executable, "-c", "import sys; from realtime_voice.cli import main; sys.exit(main())",
        "serve",
    ]
    with tempfile.TemporaryDirectory() as cwd:
        # A benchmark script, not server code: a blocking spawn before the calls is fine.
        proc = subprocess.Popen(cmd, env=env, cwd=cwd)  # noqa: ASYNC220
        try:
            await wait_healthy(
                f"http://127.0.0.1:{http_port}/api/voice/realtime/health", proc, 120
            )
            latencies: list[float] = []
            options = CallOptions(
                http_url=f"http://127.0.0.1:{http_port}",
                transcribe_bot=False,
                end_after_last_line_s=1.0,
            )
            while len(latencies) < args.turns:
                need = min(len(LINES), args.turns - len(latencies))
                report = await SimulatedCaller(dataclasses.replace(options, call_id="")).run(
                    [CallerLine(text) for text in LINES[:need]]
                )
                latencies += [t for t in report.turn_latencies_s if t is not None]
            barge: list[float] = []
            for _ in range(args.barge_ins):
                report = await SimulatedCaller(dataclasses.replace(options, call_id="")).run(
                    [
                        CallerLine("What are your opening hours?"),
                        CallerLine("Sorry, are you open on Sunday?", barge_in_after_s=0.8),
                    ]
                )
                barge += [t for t in report.barge_in_latencies_s if t is not None]
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    ms = [t * 1000 for t in latencies]
    print(f"command: python loadtests/bench_turn_latency.py --turns {args.turns}")
    print(f"machine: {os.cpu_count()} CPUs; offline engines (Moonshine + Silero, piper joe)")
    print(
        f"end of caller speech -> first bot audio byte over {len(ms)} turns: "
        f"median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms, min {min(ms):.0f} ms"
    )
    print("  (includes the end-of-turn silence the VAD waits for: VOICE_END_OF_TURN_SILENCE_MS)")
    if barge:
        bms = [t * 1000 for t in barge]
        print(
            f"barge-in: caller audio start -> clear received over {len(bms)}: "
            f"median {statistics.median(bms):.0f} ms, max {max(bms):.0f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
