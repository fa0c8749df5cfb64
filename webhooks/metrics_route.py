"""``GET /metrics`` and the middleware that counts every HTTP request by route and status."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from realtime_voice.metrics import CONTENT_TYPE, VoiceMetrics

__all__ = ["add_metrics_route", "request_counter"]


def add_metrics_route(app: web.Application, metrics: VoiceMetrics) -> None:
    """Serve ``metrics`` at ``GET /metrics`` in the Prometheus text format."""

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get("/metrics", metrics_handler)


def request_counter(metrics: VoiceMetrics) -> Middleware:
    """A middleware counting requests in ``voice_webhook_requests_total``.

    The route label is the route's template (``/api/calls/{call_id}``), or ``unmatched``:
    raw paths would let anyone create unbounded label values by probing URLs.
    """

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = _route_of(request)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            metrics.webhook_request(route, request.method, exc.status)
            raise
        except Exception:
            metrics.webhook_request(route, request.method, 500)
            raise
        metrics.webhook_request(route, request.method, response.status)
        return response

    return count


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical
