"""SIP leg under load: N concurrent SIPp PCMU calls beside N Twilio WebSocket calls, one server.

One `LocalStack` server process (``realtime-voice serve``, offline engines by default, a
temp SQLite database, ``VOICE_SIP_LISTEN`` on a free loopback port) takes, for each N of
``--steps`` (default: ``--calls``):

- **Phase A, SIP.** SIPp (``-t t1``, ``-l N -m N``) places N calls with
  ``loadtests/sipp/uac_pcmu_load.xml``: plain RTP, PCMU, the caller's spoken question
  (``realtime_voice.testing.speech.caller_audio``) between stretches of silence,
  looped, so the bot answers again and again. Once the server holds N calls and
  ``--settle-s`` has passed, a window of ``--hold-s`` is measured; SIPp hangs up after it.
- **Phase B, Twilio.** N Twilio Media Streams callers of ``bench_capacity``'s load
  generator (`_load_steps.run_step`), the same hold, on the same server.

Figures, each taken inside the window only:

- CPU ms per call-second: the server process's user+system CPU (psutil) / (N × window).
- send jitter p99: SIP: the bot's RTP captured on ``lo`` (an ``AF_PACKET`` socket, kernel
  timestamps; tcpdump is not needed, but CAP_NET_RAW is - without it "n/a"): each
  packet's lateness against its stream's RTP-timestamp grid, anchored on the stream's
  earliest packet. Twilio: the callers' measure (each frame's lateness against its
  burst's 20 ms grid, `_load_caller`). Both are what the far end sees of the send clock.
- loss in/out: SIP: in, ``voice_rtp_lost_packets_total`` / ``voice_rtp_packets_total
  {received}`` (the callers' packets the server never played); out, the ticks the
  server's `MediaClock` skipped (RTP timestamp steps over one frame, seen in the
  capture) over the frames due. Twilio: TCP loses nothing; ``voice_dropped_frames_total``.
- turn latency p50/p95: the server's ``voice_turn_latency_seconds`` (its end-of-turn
  decision → first bot frame sent: recognition is not in it), bucket deltas
  interpolated; ">" when the quantile is past the last bucket (10 s).
- caller wait p50/p95: what the caller waits, end of its speech → the bot's first audio.
  SIP: from the capture (the last loud SIPp packet before 0.4 s of quiet → the next
  loud bot packet after 0.3 s of bot quiet). Twilio: the callers' own measure.
- calls ok/failed: SIPp's verdict per call; the Twilio callers' (failed set-ups and
  abnormal closes).

Run: ``python loadtests/bench_sip_load.py --calls 10 --hold-s 20`` (about a minute per
N), ``--steps 10,20`` for several N, ``--engines simulated`` for the Deepgram and OpenAI
simulators instead of the offline engines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load_caller import hist_quantile
from _load_steps import CALLER_LINES, StepPlan, run_step, utterance_files
from _server_probe import ProcessSample, Scrape, health, wait_idle
from rtp_capture import CaptureFigures, LoopbackCapture, analyse_capture, server_rtp_ports
from stack import LocalStack, add_stack_arguments, stack_options

from realtime_voice.audio.g711 import ulaw_to_pcm16
from realtime_voice.testing.sipp import (
    SippError,
    free_port,
    run_sipp,
    sipp_available,
    write_ulaw_wav,
)
from realtime_voice.testing.speech import caller_audio

__all__ = ["Row", "main"]

SCENARIO = Path(__file__).resolve().parent / "sipp" / "uac_pcmu_load.xml"
QUESTION = "What time do you open?"
_TURN = "voice_turn_latency_seconds"


@dataclass
class Row:
    """One line of the table."""

    path: str
    calls: int
    cpu_ms_per_call_s: float | None
    jitter: str
    loss: str
    turn: str
    turns: int
    caller_wait: str
    ok: int
    failed: int
    notes: list[str]


# ------------------------------------------------------------------ server figures


def _quantile(before: Scrape, after: Scrape, histogram: str, q: float) -> tuple[float, bool]:
    """The ``q`` quantile (s) of what ``histogram`` observed between two scrapes, and
    whether it lies past the last finite bucket (then the value is that bound)."""
    start = dict(before.buckets(histogram))
    rows = [(le, count - start.get(le, 0.0)) for le, count in after.buckets(histogram)]
    total = rows[-1][1] if rows else 0.0
    rank = q * total
    lower, below = 0.0, 0.0
    for le, cumulative in rows:
        if cumulative >= rank:
            if math.isinf(le):
                return lower, True
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0), False
        lower, below = le, cumulative
    return lower, True


def _turns(before: Scrape, after: Scrape) -> tuple[str, int]:
    count = int((after.total(f"{_TURN}_count") or 0) - (before.total(f"{_TURN}_count") or 0))
    if count <= 0:
        return "-", 0
    parts = []
    for q in (0.5, 0.95):
        value, capped = _quantile(before, after, _TURN, q)
        parts.append((">" if capped else "") + f"{1000 * value:.0f}")
    return "/".join(parts), count


def _p50_p95_ms(values_s: Sequence[float]) -> str:
    if not values_s:
        return "-"
    p50, p95 = np.percentile(np.asarray(values_s) * 1000, [50, 95])
    return f"{p50:.0f}/{p95:.0f}"


def _labelled(scrape: Scrape, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in scrape.values.items() if n == name and wanted <= set(ls))


def _delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return _labelled(after, name, **labels) - _labelled(before, name, **labels)


# ------------------------------------------------------------------ phase A: SIP


def make_caller_wav(path: Path, lead_s: float, gap_s: float) -> Path:
    """The SIPp caller's loop: ``lead_s`` of silence, the question, ``gap_s`` of silence."""
    speech = ulaw_to_pcm16(asyncio.run(caller_audio(QUESTION)))
    lead = np.zeros(int(lead_s * 8000), dtype=np.int16)
    gap = np.zeros(int(gap_s * 8000), dtype=np.int16)
    return write_ulaw_wav(path, np.concatenate([lead, speech, gap]))


def _wait_active(http_url: str, calls: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        active = health(http_url).get("active_calls")
        if isinstance(active, int) and active >= calls:
            return True
        time.sleep(0.1)
    return False


async def _sip_phase(
    stack: LocalStack, sip_port: int, calls: int, args: argparse.Namespace, wav: Path
) -> Row:
    notes: list[str] = []
    ramp_s = calls / args.sip_rate
    # Each call lasts past the window's end however late in the ramp it was answered.
    call_s = ramp_s + args.settle_s + args.hold_s + 3.0
    workdir = stack.out_dir / f"sipp-{calls}"
    sipp = asyncio.create_task(
        run_sipp(
            SCENARIO,
            f"127.0.0.1:{sip_port}",
            calls=calls,
            concurrent=calls,
            rate=args.sip_rate,
            service="bot",
            duration_ms=int(1000 * call_s),
            files={"caller.ulaw.wav": wav},
            timeout_s=call_s + ramp_s + 60.0,
            workdir=workdir,
            name="sip",
        )
    )
    capture = LoopbackCapture()
    try:
        if not await asyncio.to_thread(_wait_active, stack.http_url, calls, ramp_s + 20.0):
            notes.append(f"SIP: the server never held {calls} calls")
        await asyncio.sleep(args.settle_s)  # the greetings play; not measured
        before, cpu_before = await asyncio.to_thread(_sample, stack)
        captured = capture.start()
        await asyncio.sleep(args.hold_s)  # the measured window
        after, cpu_after = await asyncio.to_thread(_sample, stack)
        capture.stop()
        result = await sipp
    finally:
        capture.stop()
        if not sipp.done():
            sipp.cancel()
            with contextlib.suppress(asyncio.CancelledError, SippError):
                await sipp
    window = cpu_after.at - cpu_before.at
    cpu_ms = 1000 * (cpu_after.cpu_s - cpu_before.cpu_s) / (calls * window)
    caller_wait = "-"
    figures: CaptureFigures | None = None
    if captured:
        ports = server_rtp_ports(result.messages_log)
        figures = analyse_capture(capture.packets, ports)
        lateness = figures.lateness_ms
        jitter = f"{np.percentile(lateness, 99):.1f}" if lateness else "-"
        caller_wait = _p50_p95_ms(figures.caller_waits_s)
        notes.append(
            f"SIP {calls}: captured {figures.bot_packets} bot RTP packets of "
            f"{figures.bot_streams} streams ({figures.bot_seq_gaps} missing from the capture, "
            f"kernel drops {capture.kernel_drops}), lateness max "
            f"{max(lateness, default=0.0):.1f} ms, {figures.skipped_ticks} skipped ticks; "
            f"{figures.caller_seq_gaps} SIPp packets missing; "
            f"{len(figures.caller_waits_s)} caller waits"
        )
    else:
        jitter = "n/a"
        notes.append(f"SIP send jitter n/a: {capture.error}")
    notes.append(
        f"SIP {calls}: server {(cpu_after.cpu_s - cpu_before.cpu_s) / window:.0%} of a core"
    )
    received = _delta(before, after, "voice_rtp_packets_total", direction="received")
    lost = _delta(before, after, "voice_rtp_lost_packets_total")
    loss = f"{100 * lost / (received + lost):.2f}%" if received + lost > 0 else "-"
    if figures is not None and figures.bot_packets:
        # The frames the server's clock skipped never reach the caller: outbound loss.
        loss += (
            f"/{100 * figures.skipped_ticks / (figures.bot_packets + figures.skipped_ticks):.1f}%"
        )
    turn, turns = _turns(before, after)
    if result.failed != 0 or result.returncode != 0:
        notes.append(f"SIP {calls}: sipp rc={result.returncode}, logs in {workdir}")
    if not await asyncio.to_thread(wait_idle, stack.http_url):
        notes.append(f"SIP {calls}: calls still live after the hang-up")
    return Row("sip (SIPp PCMU)", calls, cpu_ms, jitter, loss, turn, turns, caller_wait,
               max(result.successful, 0), max(result.failed, 0), notes)  # fmt: skip


def _sample(stack: LocalStack) -> tuple[Scrape, ProcessSample]:
    return Scrape.fetch(stack.http_url), ProcessSample.of(stack.server_pid)


# ------------------------------------------------------------------ phase B: Twilio


def _twilio_phase(stack: LocalStack, calls: int, args: argparse.Namespace) -> Row:
    plan = StepPlan(
        protocol="twilio",
        calls=calls,
        hold_s=args.hold_s,
        ramp_rate=args.ramp_rate,
        settle_s=args.settle_s,
        callers_per_process=100,
        utterances=utterance_files(CALLER_LINES),
    )
    result = run_step(stack, plan)
    m = result.callers
    jitter = hist_quantile(m.jitter_hist, 0.99)
    dropped = result.counter_delta("voice_dropped_frames_total")
    turn, turns = _turns(result.before, result.after)
    failed = m.calls_failed + m.abnormal_closes
    notes = [f"twilio {calls}: {e}" for e in m.errors[:5]]
    notes.append(f"twilio {calls}: server {result.server_cpu_s / result.window_s:.0%} of a core")
    if not result.idle_after:
        notes.append(f"twilio {calls}: calls still live after the hang-up")
    return Row(
        "twilio (WebSocket)", calls, 1000 * result.server_cpu_s / (calls * result.window_s),
        "-" if jitter is None else f"{jitter:.1f}",
        "-" if dropped is None else f"{dropped:.0f} dropped", turn, turns,
        _p50_p95_ms(m.turn_latencies_s), max(m.calls_placed - m.abnormal_closes, 0), failed, notes,
    )  # fmt: skip


# ------------------------------------------------------------------ table and main


def print_table(rows: Sequence[Row]) -> None:
    """The one table (and each row's notes under it)."""
    header = (
        f"{'path':<19} | {'N':>3} | {'CPU ms/call-s':>13} | {'send jitter p99 ms':>18} | "
        f"{'loss in/out':>13} | {'turn p50/p95 ms':>15} | {'turns':>5} | "
        f"{'caller wait p50/p95':>19} | calls ok/failed"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        cpu = "-" if r.cpu_ms_per_call_s is None else f"{r.cpu_ms_per_call_s:.2f}"
        print(
            f"{r.path:<19} | {r.calls:>3} | {cpu:>13} | {r.jitter:>18} | {r.loss:>13} | "
            f"{r.turn:>15} | {r.turns:>5} | {r.caller_wait:>19} | {r.ok}/{r.failed}",
            flush=True,
        )
    for r in rows:
        for note in r.notes:
            print(f"  note: {note}")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=10, help="concurrent calls per path")
    parser.add_argument(
        "--steps",
        type=lambda s: [int(x) for x in s.split(",")],
        help="several N, comma-separated (overrides --calls)",
    )
    parser.add_argument("--hold-s", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait before measuring")
    parser.add_argument("--sip-rate", type=float, default=10.0, help="SIPp calls per second")
    parser.add_argument("--ramp-rate", type=float, default=10.0, help="Twilio calls per second")
    parser.add_argument("--lead-s", type=float, default=4.0, help="silence before the question")
    parser.add_argument("--gap-s", type=float, default=6.0, help="silence after the question")
    parser.add_argument("--out", type=Path, help="logs and databases (default: a temp dir)")
    add_stack_arguments(parser)
    parser.set_defaults(engines="offline")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run both phases for each N; print the table. Exit 1 if any call failed."""
    args = _parse_args(argv)
    if not sipp_available():
        print("sipp is not installed (apt-get install sip-tester)", file=sys.stderr)
        return 2
    steps = args.steps or [args.calls]
    out = args.out or Path(tempfile.mkdtemp(prefix="rv-sip-load-"))
    out.mkdir(parents=True, exist_ok=True)
    command = ["python", "loadtests/bench_sip_load.py", *(argv or sys.argv[1:])]
    print(f"command: {shlex.join(command)}")
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; engines: {args.engines}; out: {out}",
        flush=True,
    )
    wav = make_caller_wav(out / "caller.ulaw.wav", args.lead_s, args.gap_s)
    sip_port = free_port()
    options = stack_options(args)
    options["server_env"] = {"VOICE_SIP_LISTEN": f"127.0.0.1:{sip_port}",
                             **options["server_env"]}  # fmt: skip
    rows: list[Row] = []
    with LocalStack(out / "stack", **options, max_calls=max(steps) + 20) as stack:
        _wait_listening(sip_port, 30.0)
        print(f"server pid {stack.server_pid}, SIP on 127.0.0.1:{sip_port}", flush=True)
        for calls in steps:
            rows.append(asyncio.run(_sip_phase(stack, sip_port, calls, args, wav)))
            rows.append(_twilio_phase(stack, calls, args))
    print()
    print_table(rows)
    return 1 if any(r.failed for r in rows) else 0


def _wait_listening(port: int, timeout_s: float) -> None:
    # The health check passes before the SIP listener is up (it starts last).
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


if __name__ == "__main__":
    raise SystemExit(main())
