"""The browser leg's turn latency beside the terminal caller's, against one server.

End of caller speech → first bot audio, for the same questions in the same run, three ways:

- **terminal**: ``realtime-voice call``'s `SimulatedCaller` on the RingCentral bridge
  protocol (8 kHz mu-law): end of the caller's audio sent → first bot audio byte received;
- **browser wire**: the same caller speaking the browser leg's protocol (16 kHz PCM16,
  PROTOCOLS.md §8, minted through ``POST /api/browser/calls``): same points of measure;
- **browser page**: Debian's Chromium on the console's talk page (the real `softphone.js`,
  its capture and playback worklets, jitter buffer included). The caller's question is
  mixed into the page's microphone track; the latency runs from the end of that audio to
  the first bot sound the page sends to its speakers. This is the figure a person at the
  console gets, minus the sound card.

The server is ``realtime-voice serve`` in its own process on the offline engines
(Moonshine + Silero, piper), restaurant flow. Run::

    python loadtests/bench_browser_latency.py [--calls 2]

Needs ``/usr/bin/chromium`` for the page variant (skipped, and said so, without it).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench_turn_latency import LINES, free_port, wait_healthy

from realtime_voice.testing.browser_page import (
    CHROMIUM,
    SPEAK_INTO_MICROPHONE,
    TAP_SPEAKERS,
    caller_voice_b64,
    chromium_args,
    write_microphone,
)
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller

TOKEN = "bench-browser-latency-token-0123456789"
FLOW = "restaurant"


async def simulated_turns(options: CallOptions, calls: int) -> list[float]:
    """Latencies of the simulated caller's turns over ``calls`` calls of every line."""
    out: list[float] = []
    for _ in range(calls):
        report = await SimulatedCaller(dataclasses.replace(options, call_id="")).run(
            [CallerLine(text) for text in LINES]
        )
        out += [t for t in report.turn_latencies_s if t is not None]
    return out


async def page_turns(http_url: str, calls: int) -> list[float]:
    """Latencies of the talk page's turns over ``calls`` calls of every line."""
    from playwright.async_api import async_playwright

    voices = [await caller_voice_b64(text) for text in LINES]
    out: list[float] = []
    with tempfile.TemporaryDirectory(prefix="rv-bench-mic-") as tmp:
        # The fake device must read a file; silence, so only the mixed voice is heard.
        mic = Path(tmp) / "silence.wav"
        write_microphone(mic, 5.0)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=chromium_args(mic))
            try:
                for _ in range(calls):
                    out += await _one_page_call(browser, http_url, voices)
            finally:
                await browser.close()
    return out


async def _one_page_call(browser: object, http_url: str, voices: Sequence[str]) -> list[float]:
    # Predicates below are functions, not expressions: the console's CSP forbids eval.
    context = await browser.new_context(  # type: ignore[attr-defined]
        base_url=http_url, permissions=["microphone"])
    await context.add_init_script(TAP_SPEAKERS)
    await context.add_init_script(SPEAK_INTO_MICROPHONE)
    page = await context.new_page()
    page.set_default_timeout(30_000)
    await page.goto(f"/login?token={TOKEN}&next=/")
    await page.wait_for_selector("body[data-ready]")
    await page.select_option("#flow", FLOW)
    await page.click("#call")
    await page.wait_for_function("() => window.__say !== undefined")
    latencies: list[float] = []
    await _wait_quiet(page)  # the greeting, played to its end
    for voice in voices:
        ended_at = await page.evaluate("(b64) => window.__say(b64)", voice)
        await page.wait_for_function("() => window.__firstLoud !== null")
        heard_at = await page.evaluate("window.__firstLoud")
        latencies.append((heard_at - ended_at) / 1000)
        await _wait_quiet(page)
    await page.click("#hangup")
    await context.close()
    return latencies


async def _wait_quiet(page: object, quiet_ms: int = 1200) -> None:
    """Until the bot has spoken and then been silent for ``quiet_ms``."""
    await page.wait_for_function("() => window.__loudAt > 0")  # type: ignore[attr-defined]
    await page.wait_for_function(  # type: ignore[attr-defined]
        "(quiet) => performance.now() - window.__loudAt > quiet", arg=quiet_ms, polling=100)


def _chromium_present() -> bool:
    return CHROMIUM.exists()


def summary(name: str, values: Sequence[float], note: str) -> str:
    """One row: median, p90, min and max in milliseconds."""
    if not values:
        return f"{name:<14} no turns measured ({note})"
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    return (f"{name:<14} n={len(ms):<3} median {statistics.median(ms):5.0f} ms  "
            f"p90 {p90:5.0f} ms  min {ms[0]:5.0f}  max {ms[-1]:5.0f}   {note}")


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2,
                        help=f"calls per variant, each asking the {len(LINES)} questions")
    args = parser.parse_args(argv)
    have_chromium = _chromium_present()

    http_port, media_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="rv-bench-browser-") as data_dir:
        env = {
            **os.environ,
            "VOICE_HTTP_HOST": "127.0.0.1", "VOICE_MEDIA_HOST": "127.0.0.1",
            "VOICE_HTTP_PORT": str(http_port), "VOICE_MEDIA_PORT": str(media_port),
            "VOICE_PUBLIC_MEDIA_URL": f"ws://127.0.0.1:{media_port}",
            "VOICE_API_TOKEN": TOKEN, "VOICE_DATA_DIR": data_dir,
            "VOICE_DATABASE_URL": f"sqlite:///{data_dir}/calls.db",
            "VOICE_LOG_LEVEL": "warning", "NO_PROXY": "127.0.0.1,localhost",
        }
        exe = shutil.which("realtime-voice", path=str(Path(sys.executable).parent))
        cmd = [exe, "serve"] if exe else [sys.executable, "-m", "realtime_voice", "serve"]
        # A benchmark script, not server code: a blocking spawn before the calls is fine.
        proc = subprocess.Popen(cmd, env=env, cwd=data_dir)  # noqa: ASYNC220
        try:
            http_url = f"http://127.0.0.1:{http_port}"
            await wait_healthy(f"{http_url}/api/voice/realtime/health", proc, 120)
            base = CallOptions(http_url=http_url, transcribe_bot=False,
                               end_after_last_line_s=1.0,
                               custom_parameters={"flow": FLOW}, api_token=TOKEN)
            started = time.monotonic()
            terminal = await simulated_turns(base, args.calls)
            wire = await simulated_turns(dataclasses.replace(base, protocol="browser"),
                                         args.calls)
            page = await page_turns(http_url, args.calls) if have_chromium else []
            took = time.monotonic() - started
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    print(f"command: python loadtests/bench_browser_latency.py --calls {args.calls}")
    print(f"machine: {os.cpu_count()} CPUs; offline engines; flow {FLOW}; {took:.0f} s")
    print("end of caller speech -> first bot audio:")
    print(summary("terminal", terminal, "bridge protocol, 8 kHz mu-law; first byte received"))
    print(summary("browser wire", wire, "browser protocol, 16 kHz PCM; first byte received"))
    print(summary("browser page", page,
                  "Chromium talk page; first sound to the speakers (jitter buffer included)"
                  if have_chromium else "no /usr/bin/chromium"))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
