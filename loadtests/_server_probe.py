"""What the load benchmarks read from the server: ``/metrics``, health, and its process.

- `Scrape` holds one ``GET /metrics`` (Prometheus text, parsed with ``prometheus_client``)
  and answers what the benchmarks need: a counter's total, and a histogram quantile over
  the observations made *between two scrapes* (bucket deltas, interpolated inside the
  bucket as Prometheus' ``histogram_quantile`` does).
- `ProcessSample` reads CPU seconds, RSS, threads and open files of a process (psutil).
- `slope` is the least-squares slope used for "per call" and "per hour" figures.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "ProcessSample",
    "Scrape",
    "cpu_seconds",
    "delta_quantile",
    "fit",
    "health",
    "slope",
    "wait_idle",
]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Scrape:
    """One scrape of ``/metrics``: sample name plus sorted labels → value."""

    values: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    @classmethod
    def fetch(cls, http_url: str) -> Scrape:
        """``GET {http_url}/metrics`` and parse it."""
        with _OPENER.open(f"{http_url}/metrics", timeout=10) as resp:
            text = resp.read().decode("utf-8")
        values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return cls(values)

    def has(self, name: str) -> bool:
        """Whether any sample of that name (e.g. ``x_bucket``, ``y_total``) is present."""
        return any(key[0] == name for key in self.values)

    def total(self, name: str) -> float | None:
        """The sum over all label sets of sample ``name`` (None when absent)."""
        found = [v for (n, _), v in self.values.items() if n == name]
        return sum(found) if found else None

    def buckets(self, histogram: str) -> list[tuple[float, float]]:
        """``(upper bound, cumulative count)`` of a histogram, summed over other labels."""
        by_le: dict[float, float] = {}
        for (name, labels), value in self.values.items():
            if name != f"{histogram}_bucket":
                continue
            le = float(dict(labels)["le"])
            by_le[le] = by_le.get(le, 0.0) + value
        return sorted(by_le.items())


def delta_quantile(before: Scrape, after: Scrape, histogram: str, q: float) -> float | None:
    """The ``q`` quantile of what ``histogram`` observed between two scrapes (seconds).

    Linear interpolation inside the bucket, like Prometheus' ``histogram_quantile``; a
    quantile in the ``+Inf`` bucket returns the highest finite bound. None when nothing
    was observed (or the histogram does not exist).
    """
    start = dict(before.buckets(histogram))
    rows = [(le, count - start.get(le, 0.0)) for le, count in after.buckets(histogram)]
    if not rows or rows[-1][1] <= 0:
        return None
    rank = q * rows[-1][1]
    lower, below = 0.0, 0.0
    for le, cumulative in rows:
        if cumulative >= rank:
            if math.isinf(le):
                return lower
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, cumulative
    return lower


def health(http_url: str) -> dict[str, object]:
    """``GET /api/voice/realtime/health`` (any status) as a dict."""
    try:
        with _OPENER.open(f"{http_url}/api/voice/realtime/health", timeout=10) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
    return body if isinstance(body, dict) else {}


def wait_idle(http_url: str, timeout_s: float = 60.0) -> bool:
    """Wait until the server reports no active call; False if it still has some."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if health(http_url).get("active_calls") == 0:
            return True
        time.sleep(0.25)
    return False


@dataclass(frozen=True)
class ProcessSample:
    """One reading of a process (and nothing of its children).

    ``cpu_s`` is user plus system time; ``system_s`` the kernel's share of it (socket
    writes and thread wake-ups show up there).
    """

    at: float
    cpu_s: float
    system_s: float
    rss_bytes: int
    threads: int
    open_files: int

    @classmethod
    def of(cls, pid: int) -> ProcessSample:
        """Read process ``pid`` now (open files: every file descriptor, sockets included)."""
        proc = psutil.Process(pid)
        with proc.oneshot():
            cpu = proc.cpu_times()
            return cls(
                at=time.monotonic(),
                cpu_s=cpu.user + cpu.system,
                system_s=cpu.system,
                rss_bytes=proc.memory_info().rss,
                threads=proc.num_threads(),
                open_files=proc.num_fds(),
            )


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU seconds used so far by these processes (those gone count as 0)."""
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares slope of ``ys`` over ``xs`` and its standard error.

    None with fewer than two distinct xs; the error is infinite with only two points.
    """
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    if n < 3:
        return b, math.inf
    residual = sum((y - my - b * (x - mx)) ** 2 for x, y in zip(xs, ys, strict=True))
    return b, math.sqrt(residual / (n - 2) / sxx)


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ``ys`` over ``xs`` (None with fewer than two distinct xs)."""
    fitted = fit(xs, ys)
    return None if fitted is None else fitted[0]
