"""The HTTP control plane's per-address rate limit (a middleware over `AddressRateLimiter`)."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from realtime_voice.security.rate_limit import AddressRateLimiter, client_address
from webhooks.errors import json_error

__all__ = ["UNLIMITED_PATHS", "rate_limit_middleware"]

log = logging.getLogger(__name__)

UNLIMITED_PATHS = frozenset({"/api/voice/realtime/health", "/metrics"})
"""Never rate-limited: the load balancer and Prometheus poll them from a few addresses,
and both only read counters, holding nothing per request (docs/SECURITY.md)."""


def rate_limit_middleware(
    limiter: AddressRateLimiter, *, trust_proxy_headers: bool = False
) -> Middleware:
    """A middleware answering 429 (``Retry-After``, a JSON message) to a flooding address.

    It runs before the handler reads the body, so a refused request costs no more than
    its headers. Every path counts except `UNLIMITED_PATHS`, unknown ones included (a
    scanner probing URLs is limited like anyone else).

    Args:
        limiter: the control plane's bucket per address.
        trust_proxy_headers: take the address from ``X-Forwarded-For`` (its right-most
            hop, see `client_address`).
    """

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNLIMITED_PATHS:
            return await handler(request)
        address = client_address(
            request.remote,
            request.headers.getall("X-Forwarded-For", []),
            trust_proxy=trust_proxy_headers,
        )
        refusal = limiter.check(address)
        if refusal is None:
            return await handler(request)
        if refusal.first:
            # Once per spell: a flood must not become a flood of log lines.
            log.warning(
                "http requests from %s over %d/min: refusing with 429",
                address,
                limiter.per_minute,
            )
        return json_error(
            429,
            "too many requests from this address: "
            f"limit {limiter.per_minute} per minute, burst {limiter.burst} "
            "(VOICE_CONNECTIONS_PER_IP_PER_MINUTE)",
            headers={"Retry-After": str(refusal.retry_after_s)},
        )

    return limit
