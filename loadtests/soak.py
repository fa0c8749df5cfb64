"""Soak: calls start and end continuously for a long time; memory, threads and files stay flat.

A `LocalStack` (server plus simulators, each its own process) takes ``--calls`` concurrent
callers for ``--duration`` (30 minutes by default). Each caller hangs up after
``--call-length-s`` and calls again at once (call starts are spread, so calls end and
begin all the time), talking as in the capacity benchmark: prerecorded utterances, each
after the bot's previous answer finished playing.

Every ``--sample-s`` seconds the server process's RSS, thread count and open file
descriptors (sockets included) are read. After the run it prints the least-squares
slope of each per hour, with its standard error, over the samples after the warm-up (the
first half of the run by default: allocator arenas and caches fill early, a curve that
flattens, where a leak keeps growing with every call), and a verdict per quantity:
``flat`` when the slope is at most `LIMITS` (RSS 8 MiB/h, threads 2/h, open files
10/h), ``growing`` when it exceeds them by more than two standard errors, else
``inconclusive`` (too short or too noisy a run: run longer). The counts move with the
calls live at each sample; the fit averages that out. Also printed: calls placed and
failed, turn latency, jitter and the server-added latency p99 over the run. Exit status
0 only when all are flat.

Run: ``python loadtests/soak.py`` (30 min); ``--duration 5m`` for a short look.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load_caller import hist_quantile
from _load_steps import CALLER_LINES, StepPlan, run_step, utterance_files
from _server_probe import ProcessSample, delta_quantile, fit
from stack import LocalStack, add_stack_arguments, stack_options

__all__ = ["Trend", "main", "trend"]

_MiB = 1024 * 1024


class Trend:
    """The fitted trend of one quantity over the soak.

    Attributes:
        name: what it is.
        unit: its unit.
        per_hour: least-squares slope, units per hour.
        error: the slope's standard error, units per hour.
        limit: the slope (per hour) above which it counts as growing.
        first: mean of the first quarter of the samples.
        last: mean of the last quarter.
        verdict: ``flat`` (slope at most the limit: a falling count is no leak),
            ``growing`` (above it by more than two standard errors) or ``inconclusive``
            (the run is too short or too noisy to tell: run longer).
    """

    def __init__(
        self, name: str, unit: str, hours: Sequence[float], values: Sequence[float], limit: float
    ) -> None:
        self.name = name
        self.unit = unit
        fitted = fit(hours, values)
        self.per_hour, self.error = fitted if fitted is not None else (0.0, math.inf)
        quarter = max(len(values) // 4, 1)
        self.first = sum(values[:quarter]) / quarter
        self.last = sum(values[-quarter:]) / quarter
        self.limit = limit
        if self.per_hour <= limit:
            self.verdict = "flat"
        elif self.per_hour - 2 * self.error > limit:
            self.verdict = "growing"
        else:
            self.verdict = "inconclusive"

    def line(self) -> str:
        """One printed line."""
        return (
            f"  {self.name:<10} {self.per_hour:+8.2f} ± {self.error:.2f} {self.unit}/h "
            f"(limit {self.limit:g}); first quarter {self.first:.1f}, last quarter "
            f"{self.last:.1f}: {self.verdict}"
        )


LIMITS = {"RSS": 8.0, "threads": 2.0, "open files": 10.0}
"""Slopes per hour above which a quantity counts as growing. 8 MiB/h is ~190 MiB a day.
Threads and files move by a few with the calls live at each sample (about 4 threads and
5 descriptors per call), so their limits sit above that noise yet far below any per-call
leak: 20 calls of 30 s place ~2,400 calls an hour, so one thread lost per 1,000 calls or
one descriptor per 200 would exceed them."""


def trend(samples: Sequence[ProcessSample], since: float) -> list[Trend]:
    """Trends of RSS (MiB), threads and open files over the samples taken after ``since``."""
    kept = [s for s in samples if s.at >= since] or list(samples)
    hours = [(s.at - kept[0].at) / 3600 for s in kept]
    return [
        Trend("RSS", "MiB", hours, [s.rss_bytes / _MiB for s in kept], LIMITS["RSS"]),
        Trend("threads", "", hours, [float(s.threads) for s in kept], LIMITS["threads"]),
        Trend("open files", "", hours, [float(s.open_files) for s in kept], LIMITS["open files"]),
    ]


def _duration(text: str) -> float:
    """``90``, ``90s``, ``5m`` or ``1h`` → seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--protocol", choices=("ringcentral", "twilio"), default="ringcentral")
    parser.add_argument("--calls", type=int, default=20, help="concurrent calls (default 20)")
    parser.add_argument(
        "--call-length-s", type=float, default=30.0, help="each call's length (default 30)"
    )
    parser.add_argument(
        "--duration", type=_duration, default=1800.0, help="e.g. 30m (default), 5m, 1h"
    )
    parser.add_argument("--sample-s", type=float, default=5.0, help="sampling period")
    parser.add_argument(
        "--warmup-s",
        type=float,
        help="samples left out of the trend (default: the first half of the run, at least 60 s)",
    )
    add_stack_arguments(parser)
    parser.add_argument("--out", type=Path, help="logs and database (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak and print the trends; exit status 1 when one is not flat."""
    args = _parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="rv-soak-"))
    print(f"command: {shlex.join(['python', 'loadtests/soak.py', *(argv or sys.argv[1:])])}")
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"{args.calls} concurrent {args.protocol} calls of {args.call_length_s:g} s "
        f"for {args.duration / 60:g} min; engines: {args.engines}",
        flush=True,
    )
    samples: list[ProcessSample] = []
    with LocalStack(
        out,
        **stack_options(args),
        max_calls=args.calls * 2 + 50,
    ) as stack:
        started = time.monotonic()
        last_print = started

        def sample() -> None:
            nonlocal last_print
            reading = ProcessSample.of(stack.server_pid)
            samples.append(reading)
            if reading.at - last_print >= 60:
                last_print = reading.at
                print(
                    f"  {(reading.at - started) / 60:5.1f} min: RSS "
                    f"{reading.rss_bytes / _MiB:.1f} MiB, {reading.threads} threads, "
                    f"{reading.open_files} open files",
                    flush=True,
                )

        plan = StepPlan(
            protocol=args.protocol,
            calls=args.calls,
            hold_s=args.duration,
            ramp_rate=max(args.calls / args.call_length_s, 1.0),
            settle_s=2.0,
            callers_per_process=100,
            utterances=utterance_files(CALLER_LINES),
            call_length_s=args.call_length_s,
        )
        result = run_step(stack, plan, on_tick=sample, tick_s=args.sample_s)
        print(f"logs in {stack.out_dir}")
    m = result.callers
    turns = sorted(m.turn_latencies_s)
    added = delta_quantile(result.before, result.after, "voice_server_added_latency_seconds", 0.99)
    print(f"\ncalls placed {m.calls_placed}, failed {m.calls_failed}, abnormal closes "
          f"{m.abnormal_closes}, ended by the server {m.calls_ended_by_server}; turns {m.turns}, "
          f"unanswered {m.unanswered_turns}")  # fmt: skip
    if turns:
        p50, p99 = turns[len(turns) // 2], turns[min(len(turns) - 1, int(0.99 * len(turns)))]
        print(f"turn latency (callers): p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
              f"server-added p99 {'-' if added is None else f'{added * 1000:.1f}'} ms; "
              f"jitter p99 {hist_quantile(m.jitter_hist, 0.99)} ms")  # fmt: skip
    print(f"server CPU {1000 * result.server_cpu_s / (args.calls * result.window_s):.2f} ms "
          f"per call-second; {len(samples)} samples")  # fmt: skip
    # Caches and allocator arenas fill over the first minutes (a curve that flattens); a
    # leak grows with every call, at the same rate to the end. Fit the second half.
    warmup_s = args.warmup_s if args.warmup_s is not None else max(60.0, args.duration / 2)
    print("RSS MiB at each fifth of the run: " + " ".join(
        f"{samples[min(len(samples) - 1, len(samples) * k // 5)].rss_bytes / _MiB:.1f}"
        for k in range(1, 6)
    ))  # fmt: skip
    trends = trend(samples, started + warmup_s)
    print(f"trends (least squares) after the first {warmup_s:g} s:")
    for item in trends:
        print(item.line())
    verdicts = {item.verdict for item in trends}
    overall = "flat" if verdicts == {"flat"} else ("growing" if "growing" in verdicts
                                                  else "inconclusive")  # fmt: skip
    print(f"verdict: {overall}")
    return 0 if overall == "flat" else 1


if __name__ == "__main__":
    raise SystemExit(main())
