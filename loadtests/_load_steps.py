"""Run one step of simulated calls against a `LocalStack` and measure it (capacity and soak).

A step starts ``calls`` callers in load-generator processes (`_load_worker`), lets them
ramp up and settle, then measures a window: the server's ``/metrics`` and its process
(CPU, RSS, threads, open files) at both ends of the window, the simulators' and the
callers' CPU, and what the callers measured inside it. Afterwards every call is hung up
and the server is given time to go idle.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _load_caller import Measurements, Protocol
from _server_probe import ProcessSample, Scrape, cpu_seconds, wait_idle
from stack import LocalStack

__all__ = ["CALLER_LINES", "StepPlan", "StepResult", "run_step", "utterance_files"]

_WORKER = Path(__file__).resolve().parent / "_load_worker.py"
_AUDIO_DIR = Path(__file__).resolve().parent / "audio"

CALLER_LINES = ("what_time_open", "book_table", "parking")
"""The utterances the benchmark callers say in turn (none asks for a manager or says
goodbye, so calls go on)."""


@dataclass(frozen=True)
class StepPlan:
    """What one step does.

    Attributes:
        protocol: the media protocol the callers speak.
        calls: concurrent calls to hold.
        hold_s: length of the measurement window.
        ramp_rate: calls started per second while ramping up.
        settle_s: wait after the ramp before measuring (greetings play, caches fill).
        callers_per_process: calls one load-generator process carries.
        utterances: files of 8 kHz mu-law the callers say in turn.
        call_length_s: callers hang up and call again after this long (None: never).
        first_index: spreads the utterance each caller starts with.
    """

    protocol: Protocol
    calls: int
    hold_s: float
    ramp_rate: float
    settle_s: float
    callers_per_process: int
    utterances: tuple[Path, ...]
    call_length_s: float | None = None
    first_index: int = 0


@dataclass
class StepResult:
    """What one step measured."""

    plan: StepPlan
    window_s: float
    callers: Measurements
    before: Scrape
    after: Scrape
    server_before: ProcessSample
    server_after: ProcessSample
    deepgram_cpu_s: float
    openai_cpu_s: float
    callers_cpu_s: float
    idle_after: bool

    @property
    def server_cpu_s(self) -> float:
        """Server CPU seconds spent inside the window."""
        return self.server_after.cpu_s - self.server_before.cpu_s

    @property
    def server_system_share(self) -> float:
        """The kernel's share of the server's CPU inside the window (0..1)."""
        system = self.server_after.system_s - self.server_before.system_s
        return system / self.server_cpu_s if self.server_cpu_s > 0 else 0.0

    def counter_delta(self, name: str) -> float | None:
        """How much a server counter grew inside the window (None: not exposed)."""
        after = self.after.total(name)
        if after is None:
            return None
        return after - (self.before.total(name) or 0.0)


def _spawn_workers(
    stack: LocalStack, plan: StepPlan, window: tuple[float, float], log_dir: Path
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    processes = max(1, math.ceil(plan.calls / plan.callers_per_process))
    ramp_s = plan.calls / plan.ramp_rate
    workers = []
    for index in range(processes):
        share = plan.calls // processes + (1 if index < plan.calls % processes else 0)
        job: dict[str, Any] = {
            "http_url": stack.http_url,
            "protocol": plan.protocol,
            "calls": share,
            "ramp_s": ramp_s,
            "window": list(window),
            "utterances": [str(p) for p in plan.utterances],
            "call_length_s": plan.call_length_s,
            "first_index": plan.first_index + index * plan.callers_per_process,
        }
        log = log_dir / f"worker-{plan.protocol}-{plan.calls}-{index}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(_WORKER), json.dumps(job)],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        workers.append((proc, log))
    return workers


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def run_step(
    stack: LocalStack,
    plan: StepPlan,
    on_tick: Callable[[], None] | None = None,
    tick_s: float = 5.0,
) -> StepResult:
    """Run one step (see the module docstring); blocks for its whole length.

    Args:
        stack: the running stack.
        plan: the step.
        on_tick: called every ``tick_s`` inside the window (the soak samples the server).
        tick_s: its period.
    """
    start = time.monotonic()
    window = (
        start + plan.calls / plan.ramp_rate + plan.settle_s,
        start + plan.calls / plan.ramp_rate + plan.settle_s + plan.hold_s,
    )
    workers = _spawn_workers(stack, plan, window, stack.out_dir)
    worker_pids = [proc.pid for proc, _ in workers]
    deepgram = [stack.deepgram_pid] if stack.deepgram_pid is not None else []
    openai = [stack.openai_pid] if stack.openai_pid is not None else []
    try:
        _sleep_until(window[0])
        before = Scrape.fetch(stack.http_url)
        server_before = ProcessSample.of(stack.server_pid)
        before_cpu = [cpu_seconds(pids) for pids in (deepgram, openai, worker_pids)]
        next_tick = window[0]
        while on_tick is not None and next_tick < window[1]:
            on_tick()
            next_tick += tick_s
            _sleep_until(min(next_tick, window[1]))
        _sleep_until(window[1])
        after = Scrape.fetch(stack.http_url)
        server_after = ProcessSample.of(stack.server_pid)
        after_cpu = [cpu_seconds(pids) for pids in (deepgram, openai, worker_pids)]
        parts = [_worker_output(proc, log) for proc, log in workers]
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return StepResult(
        plan=plan,
        window_s=server_after.at - server_before.at,
        callers=Measurements.merge(parts),
        before=before,
        after=after,
        server_before=server_before,
        server_after=server_after,
        deepgram_cpu_s=after_cpu[0] - before_cpu[0],
        openai_cpu_s=after_cpu[1] - before_cpu[1],
        callers_cpu_s=after_cpu[2] - before_cpu[2],
        idle_after=wait_idle(stack.http_url),
    )


def _worker_output(proc: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=120)
    lines = out.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"load generator exited with {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def utterance_files(names: Sequence[str]) -> tuple[Path, ...]:
    """The prerecorded caller utterances ``loadtests/audio/<name>.ulaw`` (8 kHz mu-law).

    They are the locust callers' files (``loadtests/make_caller_audio.py`` writes them).

    Raises:
        FileNotFoundError: one is missing.
    """
    paths = tuple(_AUDIO_DIR / f"{name}.ulaw" for name in names)
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: run python loadtests/make_caller_audio.py")
    return paths
