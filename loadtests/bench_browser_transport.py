"""The browser leg's transport, measured: a WebSocket of 16 kHz PCM versus WebRTC (issue #15).

Run: ``python loadtests/bench_browser_transport.py [--seconds 30] [--calls 1,4]``
(needs Debian's ``/usr/bin/chromium`` and the ``webrtc-bench`` extra: ``pip install -e
'.[webrtc-bench]'``, i.e. aiortc; ``--help`` lists the knobs).

One run, both variants, the same machine and the same headless Chromium, each call an
echo: whatever the page sends comes straight back and is played.

- **websocket**: the product's own path. The page captures the (fake) microphone with the
  real ``webhooks/static/js/capture-worklet.js`` (served from there, not copied), sends its
  20 ms frames of 16 kHz PCM16 as binary messages to a ``websockets`` echo server (the
  product media server's options, permessage-deflate included), and plays what comes back
  through the real ``playback-worklet.js`` (60 ms start, 120 ms cap).
- **webrtc**: the page's ``getUserMedia`` track into an ``RTCPeerConnection``; aiortc is
  the server peer and sends the received track back (Opus both ways, what Chrome offers);
  signalling is one HTTP POST of the offer. The echoed track plays through an ``<audio>``
  element and is tapped through WebAudio.

Both use softphone.js's ``getUserMedia`` constraints (echo cancellation, noise suppression,
automatic gain on). The microphone is a WAV of 200 ms tone bursts every 1.5 s.

Printed per variant and number of concurrent calls:

- **mouth-to-ear round trip**: a tap on the microphone and a tap on what is played, both
  AudioWorklets on the page's one AudioContext clock, time each burst's onset to the
  sample; the delay between the two is the transport's round trip (capture, framing,
  network, the server, jitter buffers, playout into the WebAudio graph; not the sound
  card's output latency, which is the same for both). Median, p95, max.
- **CPU per call-second**: the echo server runs as its own process (its CPU is its own;
  psutil, user + system), and Chromium's process tree is summed the same way, over the
  window in which the bursts are measured.
- **echo**: the loudest 10 ms of the captured track between bursts (where only the echoed
  signal plays), which shows whether the captured track carries any of what was played.
  A fake device has no acoustic path, so this says nothing about a loudspeaker; the page
  also reports the track's echo-cancellation settings and chrome://media-internals'
  ``ChromeWideEchoCancellation`` (whether the AEC's reference is all of Chromium's
  playout, WebAudio included, or only WebRTC's).

Internally the same file is the echo servers (``--serve websocket|webrtc``), started as
subprocesses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import platform
import shlex
import socket
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import psutil  # type: ignore[import-untyped]

from realtime_voice.testing.browser_page import CHROMIUM, chromium_args

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
PAGE_DIR = Path(__file__).resolve().parent / "browser_transport"
PRODUCT_JS = ROOT / "webhooks" / "static" / "js"
SCRIPT = Path(__file__).resolve()

MIC_RATE = 48_000
TONE_HZ = 1000.0
BURST_S = 0.2
PERIOD_S = 1.5
BURST_AT_S = 0.5  # where in each period the burst starts
BURST_PEAK = 0.5  # -6 dBFS: loud, yet leaves AGC room before its limiter
RAMP_S = 0.002  # a short raised-cosine edge: a sharp onset without a click's splatter
MAX_DELAY_S = 1.0  # a played onset later than this is not the echo of that burst
WAIT_SLACK_MS = 20_000

VARIANTS = ("websocket", "webrtc")


# -- the microphone -------------------------------------------------------------------


def write_microphone(path: Path, seconds: float) -> int:
    """A WAV of tone bursts for Chromium's fake microphone; returns the burst count.

    Chromium loops the file, so it holds a whole number of periods.
    """
    periods = max(2, round(seconds / PERIOD_S))
    n = int(MIC_RATE * PERIOD_S)
    period = np.zeros(n, dtype=np.float64)
    k = int(MIC_RATE * BURST_S)
    t = np.arange(k) / MIC_RATE
    burst = BURST_PEAK * np.sin(2 * np.pi * TONE_HZ * t)
    r = int(MIC_RATE * RAMP_S)
    edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
    burst[:r] *= edge
    burst[-r:] *= edge[::-1]
    start = int(MIC_RATE * BURST_AT_S)
    period[start : start + k] = burst
    pcm = np.tile(np.round(period * 32767).astype(np.int16), periods)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MIC_RATE)
        out.writeframes(pcm.tobytes())
    return periods


# -- the echo servers (subprocesses) -------------------------------------------------


async def serve_websocket() -> None:
    """Echo every message straight back: the transport with no application at all."""
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    # The product media server's options (realtime_voice/server/media.py), compression
    # left at websockets' default as there: Chrome then negotiates permessage-deflate,
    # and its cost belongs in the figure.
    async with serve(echo, "127.0.0.1", 0, max_queue=64, ping_interval=20,
                     ping_timeout=20, close_timeout=5) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"READY {port}", flush=True)
        await asyncio.Future()


async def serve_webrtc() -> None:
    """aiortc as the server peer: each call's received audio track is sent back."""
    from aiohttp import web
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    pcs: set[RTCPeerConnection] = set()
    cors = {"Access-Control-Allow-Origin": "*"}

    async def offer(request: web.Request) -> web.Response:
        params = json.loads(await request.text())
        # No ICE servers: aiortc's default is Google's STUN, which this machine cannot
        # reach, and both peers are local anyway.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pcs.add(pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                # The echo: the sender pulls the decoded frames and re-encodes them, the
                # work a bot on aiortc does (Opus decode for STT, encode for TTS).
                pc.addTrack(track)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await pc.close()
                pcs.discard(pc)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=params["sdp"], type=params["type"]))
        await pc.setLocalDescription(await pc.createAnswer())
        local = pc.localDescription
        return web.json_response({"sdp": local.sdp, "type": local.type}, headers=cors)

    app = web.Application()
    app.router.add_post("/offer", offer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = loopback_socket()
    await web.SockSite(runner, sock).start()
    print(f"READY {sock.getsockname()[1]}", flush=True)
    try:
        await asyncio.Future()
    finally:
        await asyncio.gather(*(pc.close() for pc in pcs))
        await runner.cleanup()


def loopback_socket() -> socket.socket:
    """A listening socket on a free loopback port (its number known before serving)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class EchoServer:
    """One echo server in its own process, so that its CPU is its own."""

    def __init__(self, variant: str, proc: asyncio.subprocess.Process, port: int) -> None:
        self.variant = variant
        self.proc = proc
        self.port = port
        self.ps = psutil.Process(proc.pid)

    @classmethod
    async def start(cls, variant: str) -> EchoServer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), "--serve", variant,
            stdout=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        if len(line) != 2 or line[0] != "READY":
            proc.kill()
            raise RuntimeError(f"the {variant} echo server did not start: {line!r}")
        return cls(variant, proc, int(line[1]))

    @property
    def url(self) -> str:
        if self.variant == "websocket":
            return f"ws://127.0.0.1:{self.port}/"
        return f"http://127.0.0.1:{self.port}/offer"

    def cpu_s(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


# -- Chromium's CPU -----------------------------------------------------------------


def chromium_cpu(exclude: set[int]) -> dict[int, float]:
    """CPU seconds so far of every Chromium process under this one (Playwright's driver
    and the echo servers left out)."""
    out: dict[int, float] = {}
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        if proc.pid in exclude:
            continue
        with contextlib.suppress(psutil.Error):
            if "chrom" not in proc.name():
                continue
            times = proc.cpu_times()
            out[proc.pid] = float(times.user + times.system)
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    # A process born inside the window counts whole; none should be (pages open first).
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


# -- analysis ---------------------------------------------------------------------


@dataclass
class PageResult:
    """What one page measured."""

    delays_s: list[float]
    bursts: int
    echo_db: float  # the captured track while the echo plays, re the played peak (bound)
    floor_dbfs: float  # the captured track where nothing plays or is spoken
    data: dict[str, Any]


@dataclass
class RunResult:
    """One variant at one number of concurrent calls."""

    variant: str
    calls: int
    wall_s: float
    server_cpu_s: float
    chromium_cpu_s: float
    pages: list[PageResult] = field(default_factory=list)
    error: str | None = None

    @property
    def delays_ms(self) -> list[float]:
        return sorted(1000 * d for p in self.pages for d in p.delays_s)

    @property
    def bursts(self) -> int:
        return sum(p.bursts for p in self.pages)

    def per_call_s(self, cpu_s: float) -> float:
        """CPU milliseconds per call-second."""
        call_s = self.calls * self.wall_s
        return 1000 * cpu_s / call_s if call_s > 0 else math.nan


def envelope(batches: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The tap's 10 ms peak envelope as (block start times, peaks)."""
    times: list[np.ndarray] = []
    peaks: list[np.ndarray] = []
    for b in batches:
        values = np.asarray(b["values"], dtype=np.float64)
        times.append(b["start"] + b["step"] * np.arange(values.size))
        peaks.append(values)
    if not times:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(times), np.concatenate(peaks)


def analyse_page(data: dict[str, Any]) -> PageResult:
    live_at = float(data["liveAt"] or 0.0)
    # A burst begun before media flowed both ways was only partly sent: not a sample.
    mic = sorted(t for t in data["onsets"]["mic"] if t >= live_at)
    played = sorted(data["onsets"]["played"])
    delays: list[float] = []
    used = 0
    for m in mic:
        # The first played onset after this burst began is its echo (bursts are 1.5 s
        # apart, the round trip is far below MAX_DELAY_S).
        while used < len(played) and played[used] <= m:
            used += 1
        if used < len(played) and played[used] - m < MAX_DELAY_S:
            delays.append(played[used] - m)
            used += 1
    # Would the captured track carry the played signal? A fake device has no acoustic
    # path, so it should not; if it did, the echo of each burst would show in the
    # microphone while it plays. Its span that the microphone's own burst (and 30 ms of
    # its decay) leaves free is measured against the played burst's peak: an upper
    # bound, since the microphone burst's decay tail still falls inside it. Where no
    # sound belongs at all (150 ms after a burst's end to just before the next) gives
    # the captured track's floor.
    t, peak = envelope(data["env"]["mic"])
    tp, peak_played = envelope(data["env"]["played"])
    echo_db = -math.inf
    floor = 0.0
    for i, m in enumerate(mic):
        p_at = next((p for p in played if 0 < p - m < MAX_DELAY_S), None)
        if p_at is not None:
            window = (t >= max(p_at, m + BURST_S + 0.03)) & (t < p_at + BURST_S)
            heard = (tp >= p_at) & (tp < p_at + BURST_S)
            if window.any() and heard.any() and peak_played[heard].max() > 0:
                ratio = peak[window].max() / peak_played[heard].max()
                echo_db = max(echo_db, 20 * math.log10(ratio) if ratio > 0 else -math.inf)
        end = mic[i + 1] - 0.06 if i + 1 < len(mic) else m + PERIOD_S - 0.06
        quiet = (t >= m + BURST_S + 0.15) & (t < end)
        if quiet.any():
            floor = max(floor, float(peak[quiet].max()))
    floor_dbfs = 20 * math.log10(floor) if floor > 0 else -math.inf
    return PageResult(delays, len(mic), echo_db, floor_dbfs, data)


# -- a run ------------------------------------------------------------------------


async def run_variant(browser: Any, base_url: str, variant: str, calls: int, bursts: int,
                      threshold: float) -> RunResult:
    server = await EchoServer.start(variant)
    contexts: list[Any] = []
    pages: list[Any] = []
    result = RunResult(variant, calls, 0.0, 0.0, 0.0)
    try:
        for _ in range(calls):
            context = await browser.new_context(base_url=base_url, permissions=["microphone"])
            contexts.append(context)
            page = await context.new_page()
            page.set_default_timeout(WAIT_SLACK_MS)
            await page.goto("/")
            await page.wait_for_selector("body[data-ready]", state="attached")
            pages.append(page)
        states = await asyncio.gather(*(
            page.evaluate("(a) => window.bench.start(a)",
                          {"variant": variant, "url": server.url, "threshold": threshold})
            for page in pages
        ))
        if any(s != "live" for s in states):
            errors = [await page.evaluate("window.bench.error") for page in pages]
            result.error = "; ".join(sorted({str(e) for e in errors if e}))
            return result
        exclude = {server.proc.pid}
        cpu0, chrome0, t0 = server.cpu_s(), chromium_cpu(exclude), time.monotonic()
        # The window is as long as the bursts take: each page counts its own (no sleeps).
        timeout = int(bursts * PERIOD_S * 1000) + WAIT_SLACK_MS
        await asyncio.gather(*(
            page.wait_for_function(
                "(n) => window.bench.burstsSinceLive() >= n",
                arg=bursts, polling=100, timeout=timeout)
            for page in pages
        ))
        # The last burst's echo is still on its way; give it up to MAX_DELAY_S.
        with contextlib.suppress(Exception):
            await asyncio.gather(*(
                page.wait_for_function(
                    "window.bench.onsets.played.length >= window.bench.onsets.mic.length",
                    polling=50, timeout=int(MAX_DELAY_S * 1000))
                for page in pages
            ))
        result.wall_s = time.monotonic() - t0
        result.server_cpu_s = server.cpu_s() - cpu0
        result.chromium_cpu_s = cpu_delta(chrome0, chromium_cpu(exclude))
        for page in pages:
            result.pages.append(analyse_page(await page.evaluate("window.bench.collect()")))
    finally:
        for page in pages:
            with contextlib.suppress(Exception):
                await page.evaluate("window.bench.stop()")
        for context in contexts:
            with contextlib.suppress(Exception):
                await context.close()
        await server.stop()
    return result


async def chrome_wide_aec(browser: Any) -> str:
    """chrome://media-internals' ChromeWideEchoCancellation: when enabled, the AEC runs
    in the audio service against all of Chromium's playout to the device."""
    page = await browser.new_page()
    try:
        await page.goto("chrome://media-internals")
        await page.get_by_text("Audio", exact=True).first.click()
        await page.wait_for_function(
            "document.body.innerText.includes('ChromeWideEchoCancellation')", timeout=10_000)
        text: str = await page.evaluate("document.body.innerText")
        after = text.split("ChromeWideEchoCancellation", 1)[1].strip().splitlines()
        return after[0].strip().strip('"') if after else "?"
    except Exception as error:  # a diagnostic only: the figures stand without it
        return f"unknown ({type(error).__name__})"
    finally:
        await page.close()


def static_app() -> Any:
    """The page and its scripts: the bench's own under /bench, the product's worklets
    under /js straight from webhooks/static/js (the real files, not copies)."""
    from aiohttp import web

    async def index(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(PAGE_DIR / "index.html")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_static("/bench/", PAGE_DIR)
    app.router.add_static("/js/", PRODUCT_JS)
    return app


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def fmt(value: float, digits: int = 0) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.{digits}f}"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def report(results: list[RunResult], facts: dict[str, str], argv: list[str]) -> None:
    print()
    print("command: " + shlex.join([Path(sys.executable).name, *argv]))
    for key, value in facts.items():
        print(f"{key}: {value}")
    print()
    header = (f"{'variant':<10} {'calls':>5} {'bursts':>10} {'median':>6} {'p95':>5} {'max':>5} "
              f"{'server CPU':>10} {'Chromium CPU':>12} {'played in mic':>13} {'mic floor':>9}")
    print(header)
    print(f"{'':<10} {'':>5} {'heard/sent':>10} {'ms':>6} {'ms':>5} {'ms':>5} "
          f"{'ms/call-s':>10} {'ms/call-s':>12} {'dB, bound':>13} {'dBFS':>9}")
    print("-" * len(header))
    for r in results:
        if r.error:
            print(f"{r.variant:<10} {r.calls:>5}  FAILED: {r.error}")
            continue
        d = r.delays_ms
        heard = f"{len(d)}/{r.bursts}"
        echo = max((p.echo_db for p in r.pages), default=-math.inf)
        floor = max((p.floor_dbfs for p in r.pages), default=-math.inf)
        print(f"{r.variant:<10} {r.calls:>5} {heard:>10} "
              f"{fmt(statistics.median(d) if d else math.nan):>6} {fmt(pct(d, 0.95)):>5} "
              f"{fmt(max(d) if d else math.nan):>5} {fmt(r.per_call_s(r.server_cpu_s), 1):>10} "
              f"{fmt(r.per_call_s(r.chromium_cpu_s), 1):>12} {fmt(echo, 1):>13} {fmt(floor, 1):>9}")
    print()
    for r in results:
        if r.error or not r.pages:
            continue
        first = r.pages[0].data
        line = [f"{r.variant} x{r.calls}: window {r.wall_s:.1f} s, "
                f"context {first['sampleRate']} Hz"]
        if r.variant == "websocket" and first.get("playbackStats"):
            s = first["playbackStats"]
            line.append(f"playback buffer {s['bufferedMs']:.0f} ms, underruns {s['underruns']}, "
                        f"dropped {s['droppedMs']:.0f} ms (page 1)")
        if r.variant == "webrtc" and first.get("rtc"):
            rtc = first["rtc"]
            inbound = rtc.get("inbound") or {}
            outbound = rtc.get("outbound") or {}
            jb = inbound.get("jitterBufferMs")
            line.append(f"send {outbound.get('codec')}; receive {inbound.get('codec')}; "
                        f"Chrome jitter buffer {fmt(jb if jb is not None else math.nan)} ms; "
                        f"lost {inbound.get('packetsLost')}; concealed "
                        f"{inbound.get('concealedSamples')} of "
                        f"{inbound.get('totalSamplesReceived')} samples (page 1)")
        print("; ".join(line))


async def run(args: argparse.Namespace, argv: list[str]) -> int:
    from aiohttp import web
    from playwright.async_api import async_playwright

    calls_list = [int(c) for c in args.calls.split(",") if c.strip()]
    load_before = os.getloadavg()
    results: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="rv-transport-") as tmp:
        mic = Path(tmp) / "mic.wav"
        bursts = write_microphone(mic, args.seconds)
        runner = web.AppRunner(static_app(), access_log=None)
        await runner.setup()
        sock = loopback_socket()
        port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=str(CHROMIUM),
                    args=[
                        *chromium_args(mic),
                        # Host candidates as IP addresses, not mDNS names aiortc would have
                        # to resolve (the page has microphone permission, which usually
                        # exposes them anyway).
                        "--disable-features=WebRtcHideLocalIpsWithMdns",
                    ],
                )
                try:
                    aec = await chrome_wide_aec(browser)
                    for calls in calls_list:
                        for variant in args.variants.split(","):
                            print(f"... {variant} x{calls}: {bursts} bursts "
                                  f"({bursts * PERIOD_S:.0f} s)", flush=True)
                            results.append(await run_variant(
                                browser, f"http://127.0.0.1:{port}", variant, calls, bursts,
                                args.threshold))
                    chromium_version = browser.version
                finally:
                    await browser.close()
        finally:
            await runner.cleanup()
    load_after = os.getloadavg()
    settings: dict[str, Any] = {}
    capabilities: Any = None
    for r in results:
        if r.pages:
            settings = r.pages[0].data.get("trackSettings") or {}
            capabilities = (r.pages[0].data.get("trackCapabilities") or {}).get("echoCancellation")
            break
    facts = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} "
                   f"{platform.release()}; load average {load_before[0]:.2f} before, "
                   f"{load_after[0]:.2f} after (1 min)",
        "software": f"Chromium {chromium_version}, Python {platform.python_version()}, "
                    f"websockets {package_version('websockets')}, aiortc "
                    f"{package_version('aiortc')}, av {package_version('av')}",
        "mic": f"{TONE_HZ:.0f} Hz bursts of {BURST_S * 1000:.0f} ms every {PERIOD_S} s at "
               f"{20 * math.log10(BURST_PEAK):.0f} dBFS, onset threshold {args.threshold}",
        "mic track": f"echoCancellation={settings.get('echoCancellation')!r} (capabilities "
                     f"{capabilities!r}), noiseSuppression={settings.get('noiseSuppression')!r}, "
                     f"autoGainControl={settings.get('autoGainControl')!r}",
        "chrome://media-internals ChromeWideEchoCancellation": aec,
    }
    report(results, facts, argv)
    return 0 if results and all(r.error is None and r.delays_ms for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="bench_browser_transport.py",
        description="Round-trip latency, CPU and echo of the browser leg over a WebSocket "
                    "of 16 kHz PCM versus WebRTC (aiortc), in headless Chromium.")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="audio per call and variant (default 30: 20 bursts)")
    parser.add_argument("--calls", default="1,4",
                        help="comma-separated numbers of concurrent calls (default 1,4)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated, of websocket,webrtc (default both)")
    parser.add_argument("--threshold", type=float, default=0.05,
                        help="onset threshold, linear full scale (default 0.05, -26 dBFS)")
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve == "websocket":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_websocket())
        return 0
    if args.serve == "webrtc":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_webrtc())
        return 0
    if not CHROMIUM.exists():
        parser.error(f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
    for name in args.variants.split(","):
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}")
    if "webrtc" in args.variants.split(","):
        try:
            import aiortc  # noqa: F401
        except ImportError:
            parser.error("the webrtc variant needs aiortc: pip install -e '.[webrtc-bench]'")
    return asyncio.run(run(args, [str(SCRIPT.relative_to(ROOT)), *argv]))


if __name__ == "__main__":
    sys.exit(main())
