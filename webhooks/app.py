"""The aiohttp application of the HTTP control plane.

aiohttp (rather than FastAPI on uvicorn) because one well-kept package gives us the server,
runs inside our own event loop beside the `websockets` media server (AppRunner, no second
loop or process), and is also the HTTP client the simulators and the ``call`` command use.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from realtime_voice.health import HealthReporter
from realtime_voice.metrics import render_metrics
from realtime_voice.session.manager import CallSessionManager
from webhooks.inbound import InboundCallHandler
from webhooks.ringcentral import RingCentralWebhook, add_ringcentral_routes
from webhooks.tokens import StreamTokenIssuer
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
) -> web.Application:
    """Routes: inbound answer, health, metrics; RingCentral notifications and Twilio TwiML."""
    app = web.Application(client_max_size=64 * 1024)

    async def health_handler(request: web.Request) -> web.Response:
        status, body = health.report()
        return web.json_response(body, status=status)

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(
            text=render_metrics(manager), content_type="text/plain", charset="utf-8",
            headers={"X-Prometheus-Format": "0.0.4"},
        )

    inbound = InboundCallHandler(manager, tokens, media_url, verification_token)
    # aiohttp wants a coroutine function, not a callable object.
    app.router.add_post("/api/voice/inbound", inbound.handle)
    app.router.add_get("/api/voice/realtime/health", health_handler)
    app.router.add_get("/metrics", metrics_handler)
    if ringcentral is not None:
        add_ringcentral_routes(app, ringcentral)
    if twilio is not None:
        add_twilio_routes(app, twilio)
    return app
