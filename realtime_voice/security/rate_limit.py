"""Per-address connection rate limits: a token bucket per client address, bounded memory.

Both planes refuse a flood from one address before doing any work for it: the media
server in its WebSocket handshake (HTTP 429 before any session exists), the HTTP control
plane in a middleware. Each plane owns one `AddressRateLimiter`, so the budget is per
address per plane.

Memory is bounded whatever the traffic: at most ``max_addresses`` buckets are tracked.
A bucket that has refilled completely carries no information (it behaves exactly like an
address never seen), so idle buckets are dropped as they are met; beyond the cap, the
least recently seen address is forgotten first. IPv6 clients are keyed by their /64
network, since one host commonly holds a whole /64 and could otherwise rotate through
it to escape the limit.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from realtime_voice.config import Settings

__all__ = [
    "DEFAULT_MAX_ADDRESSES",
    "AddressRateLimiter",
    "Refusal",
    "client_address",
]

DEFAULT_MAX_ADDRESSES = 10_000
"""Buckets tracked at most (about 1 MB); the least recently seen address goes first."""

_IDLE_SWEEP = 2
"""Idle buckets examined (from the oldest end) on each check: amortised eviction."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request.

    Attributes:
        retry_after_s: whole seconds until the address may try again (``Retry-After``).
        first: the first refusal since this address was last allowed, so a flood is
            logged once per spell rather than once per request.
    """

    retry_after_s: int
    first: bool


class _Bucket:
    __slots__ = ("refusing", "tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated
        self.refusing = False


class AddressRateLimiter:
    """A token bucket per client address: ``burst`` at once, then ``per_minute`` a minute.

    Args:
        per_minute: sustained rate each address may reach (tokens added per minute).
        burst: bucket size: requests an idle address may make at once.
        max_addresses: buckets tracked at most (memory bound).
        clock: monotonic seconds (injectable for tests).

    Raises:
        ValueError: a rate, burst or cap below 1.
    """

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        max_addresses: int = DEFAULT_MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1 or burst < 1 or max_addresses < 1:
            raise ValueError("per_minute, burst and max_addresses must be at least 1")
        self.per_minute = per_minute
        self.burst = burst
        self.max_addresses = max_addresses
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.refused_total = 0
        """Requests refused since start (all addresses)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressRateLimiter | None:
        """The limiter ``VOICE_CONNECTIONS_PER_IP_PER_MINUTE`` asks for; ``None`` when 0 (off)."""
        if settings.connections_per_ip_per_minute <= 0:
            return None
        return cls(settings.connections_per_ip_per_minute, settings.connection_burst_per_ip)

    @property
    def tracked(self) -> int:
        """Addresses currently holding a bucket."""
        return len(self._buckets)

    def check(self, address: str) -> Refusal | None:
        """Spend one token of ``address``'s bucket; a `Refusal` when it is empty."""
        now = self._clock()
        key = _limit_key(address)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
            self._refill(bucket, now)
        self._evict(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.refusing = False
            return None
        self.refused_total += 1
        first = not bucket.refusing
        bucket.refusing = True
        wait = (1.0 - bucket.tokens) / self._rate
        return Refusal(retry_after_s=max(1, math.ceil(wait)), first=first)

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self._rate)
        bucket.updated = now

    def _evict(self, now: float) -> None:
        # Oldest first: a bucket that has refilled by now forgets nothing by going.
        for _ in range(_IDLE_SWEEP):
            if len(self._buckets) <= 1:
                break
            key, oldest = next(iter(self._buckets.items()))
            if oldest.tokens + (now - oldest.updated) * self._rate < self.burst:
                break
            del self._buckets[key]
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)


def client_address(peer: str | None, forwarded_for: Iterable[str], *, trust_proxy: bool) -> str:
    """The address to account a request to.

    Without ``trust_proxy`` it is the TCP peer. With it, the last (right-most) entry of
    ``X-Forwarded-For``: the address the proxy directly in front of us saw and appended.
    Entries to its left were written by the client or by proxies we do not control and
    are ignored, since anyone can forge them. A missing or malformed header falls back to
    the peer.

    Args:
        peer: the TCP peer's address (``None`` when unknown, e.g. a Unix socket).
        forwarded_for: every ``X-Forwarded-For`` header value, in order.
        trust_proxy: ``VOICE_TRUST_PROXY_HEADERS``.
    """
    fallback = peer or "unknown"
    if not trust_proxy:
        return fallback
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    hops = [hop for hop in hops if hop]
    if not hops:
        return fallback
    try:
        return str(ipaddress.ip_address(hops[-1]))
    except ValueError:
        return fallback


def _limit_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
