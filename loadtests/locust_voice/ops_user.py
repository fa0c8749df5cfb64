"""The ops user: a load balancer's health checks and a Prometheus scrape, all run long.

Every ``--ops-interval`` seconds an `OpsUser` polls, in turn, the health endpoint of the
HTTP control plane, the health endpoint of the media plane (what a WebSocket-aware load
balancer checks; its address is ``--media-url``) and ``GET /metrics``. Health must
answer 200 with ``status`` ``healthy`` or ``degraded`` (503 ``unhealthy`` means the
server cannot take calls: a failure); metrics must be Prometheus text with at least one
``voice_`` sample.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from locust import constant_pacing, task
from locust.contrib.fasthttp import FastHttpUser

from locust_voice.options import read_options

__all__ = ["HEALTH_PATH", "METRICS_PATH", "OpsUser", "prometheus_problem"]

HEALTH_PATH = "/api/voice/realtime/health"
METRICS_PATH = "/metrics"
_SAMPLE = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*(\{.*\})?\s+\S+(\s+-?\d+)?$")


def prometheus_problem(text: str) -> str | None:
    """What is wrong with a Prometheus text exposition, or None when it looks right."""
    samples = 0
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not _SAMPLE.match(line):
            return "a line is not a Prometheus sample"
        samples += line.startswith("voice_")
    return None if samples else "no voice_ samples"


class OpsUser(FastHttpUser):
    """Ops tooling polling health on both planes and scraping metrics."""

    fixed_count = 1

    def on_start(self) -> None:
        """Read the poll interval and where the media plane is."""
        options = read_options(self.environment)
        self._pacing: Callable[[FastHttpUser], float] = constant_pacing(options.ops_interval)
        self._media_health = _media_health_url(options.media_url)

    def wait_time(self) -> float:
        """Seconds to wait so polls start ``--ops-interval`` apart."""
        return self._pacing(self)

    @task
    def poll(self) -> None:
        """Health on the HTTP plane, health on the media plane, then ``GET /metrics``."""
        with self.client.get(
            HEALTH_PATH, name=f"{HEALTH_PATH} (http)", catch_response=True
        ) as response:
            _judge_health(response)
        if self._media_health is not None:
            with self.client.get(
                self._media_health, name=f"{HEALTH_PATH} (media)", catch_response=True
            ) as response:
                _judge_health(response)
        with self.client.get(METRICS_PATH, name=METRICS_PATH, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            problem = prometheus_problem(response.text or "")
            if problem is not None:
                response.failure(problem)
            else:
                response.success()


def _media_health_url(media_url: str) -> str | None:
    """The media plane's health URL from its WebSocket base URL (None when not given)."""
    if not media_url:
        return None
    parts = urlsplit(media_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return urlunsplit((scheme, parts.netloc, HEALTH_PATH, "", ""))


def _judge_health(response: Any) -> None:
    # Any: locust's ResponseContextManager.success/failure are not annotated.
    if response.status_code != 200:
        response.failure(f"HTTP {response.status_code}")
        return
    try:
        status = response.json().get("status")
    except (ValueError, AttributeError):
        response.failure("health is not a JSON object")
        return
    if status not in ("healthy", "degraded"):
        response.failure(f"status {status!r}")
    else:
        response.success()
