"""Capacity: how many concurrent calls one server process holds before a service level breaks.

For each media protocol (RingCentral bridge, Twilio Media Streams, or a carrier: exotel,
telnyx, plivo, vonage, answered through its own webhook) a fresh `LocalStack`
(server, Deepgram and OpenAI simulators, each its own process; the Deepgram simulator in
its scripted load mode) takes steps of concurrent calls (default 10, 20, 30, 40, 50, 60,
80, 100, 120, 160, 200, 250, 300). Callers run in separate load-generator processes; each says
prerecorded utterances (``loadtests/audio``) with silence between them and waits for the
bot's answer to finish playing before speaking again. Each step ramps up, settles, holds
for ``--hold-s`` while being measured, then hangs up. The ramp stops at the first step
that breaks a service level:

- server-added turn latency p99 > 50 ms: ``voice_server_added_latency_seconds`` from the
  server's ``/metrics`` (end of the caller's turn as the server saw it → first bot frame
  sent, minus the waits on the model's first sentence and the voice's first audio),
  p99 of the observations inside the window (bucket deltas, interpolated). Servers
  without that histogram: the caller-side fallback, the growth of the callers' turn
  latency p99 over the first step's (provider delays do not change with load, so the
  growth is what the server added under load);
- outbound jitter p99 > 20 ms: each bot frame's lateness against its burst's 20 ms grid,
  measured by the callers (see `_load_caller`);
- any dropped frame (``voice_dropped_frames_total``), or any call that failed, closed
  abnormally, went unanswered or could not be held.

Printed per protocol: the step table, the highest sustained call count, server CPU
milliseconds per call-second (psutil on the server process only; simulators and callers
reported apart), and RSS and threads per call (least-squares slope over the steps).

Run: ``python loadtests/bench_capacity.py`` (about 10 minutes for both protocols);
``--steps 10,40 --hold-s 10`` for a quick look; ``--protocols twilio,exotel,telnyx,plivo,vonage``
compares the carriers in one run (give ``--warmup-s 30``: the Deepgram simulator caches each
reply per audio format, and a cold cache is the simulator's cost, not the server's).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load_caller import hist_quantile
from _load_steps import CALLER_LINES, StepPlan, StepResult, run_step, utterance_files
from _server_probe import delta_quantile, slope
from stack import LocalStack, add_stack_arguments, stack_options

__all__ = ["main"]

DEFAULT_STEPS = (10, 20, 30, 40, 50, 60, 80, 100, 120, 160, 200, 250, 300)
_SERVER_ADDED = "voice_server_added_latency_seconds"
_MiB = 1024 * 1024


@dataclass
class Row:
    """One step's figures and verdict."""

    calls: int
    held: float
    ended_by_server: int
    server_ms_per_call_s: float
    server_core: float
    server_system_share: float
    deepgram_core: float
    openai_core: float
    callers_core: float
    rss_mib: float
    threads: int
    added_p99_ms: float | None
    added_source: str
    jitter_p99_ms: float | None
    turn_p50_ms: float | None
    turn_p99_ms: float | None
    turns: int
    dropped: float | None
    late: float | None
    generator_p99_ms: float | None
    breaks: list[str]


def _quantile_ms(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def evaluate(result: StepResult, baseline_p99_ms: float | None, args: argparse.Namespace) -> Row:
    """Figures of one step and the service levels it broke."""
    m = result.callers
    plan = result.plan
    window = result.window_s
    added = delta_quantile(result.before, result.after, _SERVER_ADDED, 0.99)
    turn_p99 = _quantile_ms(m.turn_latencies_s, 0.99)
    if added is not None:
        added_ms: float | None = added * 1000
        source = "server"
    elif result.after.has(f"{_SERVER_ADDED}_bucket"):
        added_ms, source = None, "server (no turn)"
    else:
        growth = None if turn_p99 is None or baseline_p99_ms is None else turn_p99 - baseline_p99_ms
        added_ms, source = (None if growth is None else max(growth, 0.0)), "callers (growth)"
    jitter = hist_quantile(m.jitter_hist, 0.99)
    generator = hist_quantile(m.clock_lateness_hist, 0.99)
    dropped = result.counter_delta("voice_dropped_frames_total")
    breaks = []
    if added_ms is not None and added_ms > args.max_added_ms:
        breaks.append(f"server-added p99 {added_ms:.0f} ms")
    if jitter is not None and jitter > args.max_jitter_ms:
        breaks.append(f"jitter p99 {jitter:.0f} ms")
    if dropped:
        breaks.append(f"{dropped:.0f} dropped frames")
    if m.calls_failed or m.abnormal_closes:
        breaks.append(f"{m.calls_failed} failed, {m.abnormal_closes} abnormal closes")
    if m.unanswered_turns:
        breaks.append(f"{m.unanswered_turns} unanswered turns")
    # Calls the server ends (a booking done, a transfer) are placed again at once.
    if m.live_calls_mean < 0.95 * plan.calls:
        breaks.append(f"only {m.live_calls_mean:.0f} calls held on average")
    if generator is not None and generator > args.max_jitter_ms:
        breaks.append(f"load generator late p99 {generator:.0f} ms (CPU starved)")
    calls = max(plan.calls, 1)
    return Row(
        calls=plan.calls,
        held=m.live_calls_mean,
        ended_by_server=m.calls_ended_by_server,
        server_ms_per_call_s=1000 * result.server_cpu_s / (calls * window),
        server_core=result.server_cpu_s / window,
        server_system_share=result.server_system_share,
        deepgram_core=result.deepgram_cpu_s / window,
        openai_core=result.openai_cpu_s / window,
        callers_core=result.callers_cpu_s / window,
        rss_mib=result.server_after.rss_bytes / _MiB,
        threads=result.server_after.threads,
        added_p99_ms=added_ms,
        added_source=source,
        jitter_p99_ms=jitter,
        turn_p50_ms=_quantile_ms(m.turn_latencies_s, 0.5),
        turn_p99_ms=turn_p99,
        turns=m.turns,
        dropped=dropped,
        late=result.counter_delta("voice_late_frames_total"),
        generator_p99_ms=generator,
        breaks=breaks,
    )


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: Sequence[Row], *, header: bool = True) -> None:
    """The step table."""
    if header:
        print(
            f"{'calls':>5} {'held':>4} {'ended':>5} {'srv ms/call-s':>13} {'srv core':>8} "
            f"{'sims':>5} "
            f"{'callers':>7} {'RSS MiB':>7} {'thr':>4} {'added p99':>9} {'jitter p99':>10} "
            f"{'turn p50/p99 ms':>15} {'turns':>5} {'drop':>4} {'late':>4} {'gen p99':>7}  "
            "verdict",
            flush=True,
        )
    for r in rows:
        verdict = "ok" if not r.breaks else "BREAK: " + "; ".join(r.breaks)
        print(
            f"{r.calls:>5} {r.held:>4.0f} {r.ended_by_server:>5} "
            f"{r.server_ms_per_call_s:>13.2f} {r.server_core:>8.0%} "
            f"{r.deepgram_core + r.openai_core:>5.0%} {r.callers_core:>7.0%} "
            f"{r.rss_mib:>7.0f} {r.threads:>4} "
            f"{_fmt(r.added_p99_ms, '.1f'):>9} {_fmt(r.jitter_p99_ms):>10} "
            f"{_fmt(r.turn_p50_ms) + '/' + _fmt(r.turn_p99_ms):>15} {r.turns:>5} "
            f"{_fmt(r.dropped):>4} {_fmt(r.late):>4} {_fmt(r.generator_p99_ms):>7}  {verdict}",
            flush=True,
        )


def summarize(protocol: str, rows: Sequence[Row]) -> None:
    """Highest sustained count, CPU per call-second, RSS and threads per call."""
    if not rows:
        return
    good = [r for r in rows if not r.breaks]
    best = max((r.calls for r in good), default=0)
    print(f"\n{protocol}: highest sustained call count: {best}")
    # CPU per call-second is a property of the server, reported even when every step broke.
    top = max(good, key=lambda r: r.calls) if good else rows[0]
    mean_ms = sum(r.server_ms_per_call_s for r in good or rows[:1]) / len(good or rows[:1])
    print(
        f"  server CPU: {top.server_ms_per_call_s:.2f} ms per call-second at {top.calls} "
        f"calls (mean over passing steps {mean_ms:.2f}); {top.server_core:.0%} of a core, "
        f"{top.server_system_share:.0%} of it in the kernel"
    )
    print(
        f"  beside it at {top.calls} calls: Deepgram simulator {top.deepgram_core:.0%} of a "
        f"core, OpenAI simulator {top.openai_core:.0%}, load generators "
        f"{top.callers_core:.0%}"
    )
    print(
        f"  server-added latency p99 from {top.added_source} over {top.turns} turns "
        "(with under 100 turns, p99 is the worst turn)"
    )
    measured = good if len(good) >= 2 else rows
    xs = [float(r.calls) for r in measured]
    rss = slope(xs, [r.rss_mib * 1024 for r in measured])
    threads = slope(xs, [float(r.threads) for r in measured])
    print(
        f"  per call (slope over {len(measured)} steps): RSS {_fmt(rss, '.0f')} KiB, "
        f"threads {_fmt(threads, '.2f')}"
    )
    broken = next((r for r in rows if r.breaks), None)
    if broken is not None:
        print(f"  first break at {broken.calls} calls: {'; '.join(broken.breaks)}")


def run_protocol(protocol: str, args: argparse.Namespace, out: Path) -> list[Row]:
    """Ramp one protocol on a fresh stack; the rows measured."""
    utterances = utterance_files(CALLER_LINES)
    rows: list[Row] = []
    with LocalStack(
        out / protocol,
        **stack_options(args),
        max_calls=max(args.steps) + 50,
    ) as stack:
        print(
            f"\n== {protocol}: server pid {stack.server_pid}, logs in {stack.out_dir}", flush=True
        )

        def plan(calls: int, hold_s: float, settle_s: float) -> StepPlan:
            return StepPlan(
                protocol=protocol,  # type: ignore[arg-type]
                calls=calls,
                hold_s=hold_s,
                ramp_rate=args.ramp_rate,
                settle_s=settle_s,
                callers_per_process=args.callers_per_process,
                utterances=utterances,
            )

        # Warm-up (not reported): imports, the simulator's speech cache, first-call costs.
        run_step(stack, plan(8, args.warmup_s, 2.0))
        baseline: float | None = None
        for calls in args.steps:
            result = run_step(stack, plan(calls, args.hold_s, args.settle_s))
            row = evaluate(result, baseline, args)
            if baseline is None:
                baseline = row.turn_p99_ms
            if not result.idle_after:
                row.breaks.append("calls still live after hang-up")
            rows.append(row)
            print_table([row], header=len(rows) == 1)
            if row.breaks and not args.keep_going:
                break
    return rows


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--protocols", default="ringcentral,twilio", help="comma-separated")
    parser.add_argument(
        "--steps",
        type=lambda s: [int(x) for x in s.split(",")],
        default=list(DEFAULT_STEPS),
        help="concurrent calls per step, comma-separated",
    )
    parser.add_argument("--hold-s", type=float, default=20.0, help="measured seconds per step")
    parser.add_argument("--settle-s", type=float, default=4.0, help="wait after the ramp")
    parser.add_argument("--warmup-s", type=float, default=8.0, help="unreported warm-up step")
    parser.add_argument("--ramp-rate", type=float, default=25.0, help="calls started per second")
    parser.add_argument("--callers-per-process", type=int, default=100)
    add_stack_arguments(parser)
    parser.add_argument("--max-added-ms", type=float, default=50.0, help="service level")
    parser.add_argument("--max-jitter-ms", type=float, default=20.0, help="service level")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at a break")
    parser.add_argument("--out", type=Path, help="logs and databases (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the tables and summaries."""
    args = _parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="rv-capacity-"))
    command = shlex.join(["python", "loadtests/bench_capacity.py", *(argv or sys.argv[1:])])
    print(f"command: {command}")
    print(
        f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; engines: {args.engines}"
    )
    results: dict[str, list[Row]] = {}
    for protocol in args.protocols.split(","):
        results[protocol] = run_protocol(protocol, args, out)
    print("\n== summary")
    for protocol, rows in results.items():
        print(f"\n-- {protocol}")
        print_table(rows)
        summarize(protocol, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
