"""The aiohttp application of the HTTP control plane.

aiohttp (rather than FastAPI on uvicorn) because one well-kept package gives us the server,
runs inside our own event loop beside the `websockets` media server (AppRunner, no second
loop or process), and is also the HTTP client the simulators and the ``call`` command use.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from realtime_voice.health import HealthReporter
from realtime_voice.metrics import VoiceMetrics
from realtime_voice.security.rate_limit import AddressRateLimiter
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.session.manager import CallSessionManager
from webhooks.inbound import InboundCallHandler
from webhooks.metrics_route import add_metrics_route, request_counter
from webhooks.rate_limit import rate_limit_middleware
from webhooks.ringcentral import RingCentralWebhook, add_ringcentral_routes
from webhooks.twilio_answer import TwilioAnswerHandler, add_twilio_routes

__all__ = ["build_http_app"]


def build_http_app(
    *,
    manager: CallSessionManager,
    tokens: StreamTokenIssuer,
    health: HealthReporter,
    media_url: Callable[[], str],
    verification_token: str | None,
    ringcentral: RingCentralWebhook | None = None,
    twilio: TwilioAnswerHandler | None = None,
    metrics: VoiceMetrics | None = None,
    limiter: AddressRateLimiter | None = None,
    trust_proxy_headers: bool = False,
) -> web.Application:
    """Routes: inbound answer, health, metrics; RingCentral notifications and Twilio TwiML.

    ``metrics`` defaults to a registry of its own over ``manager``. With a ``limiter``,
    every request but health and metrics is rate-limited per client address
    (`rate_limit_middleware`; ``trust_proxy_headers`` as there).
    """
    if metrics is None:
        metrics = VoiceMetrics(manager)
    # The request counter is outermost so refused requests are counted (as 429s) too.
    middlewares = [request_counter(metrics)]
    if limiter is not None:
        middlewares.append(rate_limit_middleware(limiter, trust_proxy_headers=trust_proxy_headers))
    app = web.Application(client_max_size=64 * 1024, middlewares=middlewares)

    async def health_handler(request: web.Request) -> web.Response:
        status, body = health.report()
        return web.json_response(body, status=status)

    inbound = InboundCallHandler(manager, tokens, media_url, verification_token)
    # aiohttp wants a coroutine function, not a callable object.
    app.router.add_post("/api/voice/inbound", inbound.handle)
    app.router.add_get("/api/voice/realtime/health", health_handler)
    add_metrics_route(app, metrics)
    if ringcentral is not None:
        add_ringcentral_routes(app, ringcentral)
    if twilio is not None:
        add_twilio_routes(app, twilio)
    return app
