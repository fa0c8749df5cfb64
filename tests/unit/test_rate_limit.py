"""The per-address token bucket and the client address it is keyed by."""

from __future__ import annotations

import dataclasses

import pytest

from realtime_voice.config import Settings
from realtime_voice.security.rate_limit import AddressRateLimiter, Refusal, client_address


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(per_minute: int = 60, burst: int = 3, **kw: int) -> tuple[AddressRateLimiter, Clock]:
    clock = Clock()
    return AddressRateLimiter(per_minute, burst, clock=clock, **kw), clock


def test_a_burst_passes_then_the_address_is_refused_with_a_retry_after() -> None:
    limit, _ = limiter(per_minute=60, burst=3)
    assert [limit.check("10.0.0.1") for _ in range(3)] == [None, None, None]
    assert limit.check("10.0.0.1") == Refusal(retry_after_s=1, first=True)
    assert limit.check("10.0.0.1") == Refusal(retry_after_s=1, first=False)
    assert limit.refused_total == 2
    # Another address has its own bucket.
    assert limit.check("10.0.0.2") is None


def test_tokens_come_back_at_the_configured_rate() -> None:
    limit, clock = limiter(per_minute=6, burst=1)  # one token every 10 s
    assert limit.check("10.0.0.1") is None
    refusal = limit.check("10.0.0.1")
    assert refusal is not None and refusal.retry_after_s == 10
    clock.now += 4
    refusal = limit.check("10.0.0.1")
    assert refusal is not None and refusal.retry_after_s == 6
    clock.now += 6
    assert limit.check("10.0.0.1") is None
    # Allowed again: the next refusal is a new spell, logged again.
    refusal = limit.check("10.0.0.1")
    assert refusal is not None and refusal.first


def test_memory_stays_bounded_by_the_address_cap() -> None:
    limit, _ = limiter(per_minute=60, burst=2, max_addresses=100)
    for n in range(5000):
        limit.check(f"10.0.{n // 256}.{n % 256}")
    assert limit.tracked == 100


def test_the_least_recently_seen_address_is_forgotten_first() -> None:
    limit, _ = limiter(per_minute=60, burst=1, max_addresses=2)
    assert limit.check("10.0.0.1") is None
    assert limit.check("10.0.0.2") is None
    assert limit.check("10.0.0.1") is not None  # .1 is now the most recent
    assert limit.check("10.0.0.3") is None  # evicts .2, not .1
    assert limit.check("10.0.0.1") is not None
    assert limit.check("10.0.0.2") is None  # forgotten: a fresh bucket


def test_idle_addresses_are_dropped_once_their_bucket_refilled() -> None:
    limit, clock = limiter(per_minute=60, burst=5)
    for n in range(10):
        limit.check(f"10.0.0.{n}")
    assert limit.tracked == 10
    clock.now += 60  # every bucket is full again
    for _ in range(10):
        limit.check("10.9.9.9")
    assert limit.tracked == 1


def test_ipv6_clients_share_a_bucket_per_64_network() -> None:
    limit, _ = limiter(per_minute=60, burst=2)
    assert limit.check("2001:db8:1:2::1") is None
    assert limit.check("2001:db8:1:2:ffff::7") is None
    assert limit.check("2001:db8:1:2::abcd") is not None
    assert limit.check("2001:db8:1:3::1") is None
    # An IPv4-mapped address is the IPv4 client it maps.
    assert limit.check("192.0.2.7") is None
    assert limit.check("::ffff:192.0.2.7") is None
    assert limit.check("192.0.2.7") is not None


def test_zero_turns_the_limit_off_and_bad_values_are_refused() -> None:
    settings = Settings()
    off = dataclasses.replace(settings, connections_per_ip_per_minute=0)
    assert AddressRateLimiter.from_settings(off) is None
    on = AddressRateLimiter.from_settings(settings)
    assert on is not None and (on.per_minute, on.burst) == (300, 60)
    with pytest.raises(ValueError):
        AddressRateLimiter(0, 1)


def test_the_peer_is_the_address_unless_proxy_headers_are_trusted() -> None:
    xff = ["203.0.113.9, 198.51.100.1"]
    assert client_address("10.0.0.5", xff, trust_proxy=False) == "10.0.0.5"
    # The right-most hop is the one our own proxy appended; the left is client-written.
    assert client_address("10.0.0.5", xff, trust_proxy=True) == "198.51.100.1"
    assert client_address("10.0.0.5", ["1.1.1.1", "198.51.100.2"], trust_proxy=True) == (
        "198.51.100.2"
    )
    for bad in ([], [""], ["not-an-ip"], [" , "]):
        assert client_address("10.0.0.5", bad, trust_proxy=True) == "10.0.0.5"
    assert client_address(None, [], trust_proxy=False) == "unknown"
