"""Deepgram health: an authenticated request to the REST host, cached, never waited on."""

from __future__ import annotations

import socket

from realtime_voice.providers.deepgram_health import DeepgramHealth
from realtime_voice.testing.deepgram_sim import DEFAULT_API_KEY, DeepgramSimulator


def status(health: DeepgramHealth) -> str:
    """Read the property afresh (each read may start a background check)."""
    return health.status


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_healthy_then_cached_then_rechecked_in_the_background() -> None:
    clock = Clock()
    async with DeepgramSimulator() as sim:
        health = DeepgramHealth(DEFAULT_API_KEY, sim.http_url, interval_s=30.0, clock=clock)
        assert status(health) == "degraded"  # not checked yet: a check starts
        await sim.wait_for(lambda s: s.projects_requests == 1)
        assert await health.refresh() == "healthy"
        assert status(health) == "healthy"
        clock.now += 10.0
        assert status(health) == "healthy"
        assert sim.stats.projects_requests == 2  # the first status read + refresh only
        clock.now += 30.0
        assert status(health) == "healthy"  # stale: answered from cache, rechecked behind
        await sim.wait_for(lambda s: s.projects_requests == 3)
        await health.aclose()


async def test_a_refused_key_is_down() -> None:
    async with DeepgramSimulator() as sim:
        health = DeepgramHealth("wrong-key", sim.http_url)
        assert await health.refresh() == "down"
        assert "401" in health.detail


async def test_an_unreachable_host_is_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    health = DeepgramHealth(DEFAULT_API_KEY, f"http://127.0.0.1:{port}", timeout_s=2.0)
    assert await health.refresh() == "down"
    assert "unreachable" in health.detail


async def test_no_key_is_offline_and_never_checks() -> None:
    async with DeepgramSimulator() as sim:
        health = DeepgramHealth(None, sim.http_url)
        assert status(health) == "offline"
        assert await health.refresh() == "offline"
        assert sim.stats.projects_requests == 0
