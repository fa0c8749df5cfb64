"""The operators' live API: the calls under way, their events pushed, and control.

- ``GET /api/calls/live``: ``{"calls": [{call_id, carrier, flow, state, started_at,
  duration_s, speaking, from_number, to_number}]}``, oldest first.
- ``GET /api/calls/live/events`` (``?call_id=`` optional): Server-Sent Events. First a
  ``snapshot`` (the body of ``/api/calls/live``), then ``call_started``, ``call_updated``
  (state, flow or who is speaking changed), ``transcript`` (``{call_id, role, text,
  final}``) and ``call_ended`` (``{call_id, outcome}``); a keep-alive comment every 15 s.
  A watcher that falls behind is dropped (the stream ends; ``EventSource`` reconnects and
  gets a fresh snapshot); past the feed's limit of watchers the answer is a 503.
- ``POST /api/calls/{call_id}/end`` and ``POST /api/calls/{call_id}/transfer`` (body
  ``{"to": "+1..."}`` optional: default the configured transfer number): 202 once asked,
  404 when no such call is live, 409 when it is already ending.
- ``GET /api/flows``: the conversation flows a call can be given (the talk page's picker).
- ``GET /api/stats/latency``: this process's turn-latency histograms (the call page's
  distribution plot), read from the Prometheus registry as JSON.

Every route awaits the `Authorizer` first; the two control routes as writes.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from ai_pipeline.flow_model import Flow
from ai_pipeline.responder import HangupAction, TransferAction, TransferTarget
from realtime_voice.session.live_feed import FeedFullError, LiveCallFeed, LiveEvent
from realtime_voice.session.manager import CallSessionManager
from webhooks.authorize import Authorizer
from webhooks.body import read_body
from webhooks.errors import json_error

__all__ = ["KEEPALIVE_S", "add_live_routes"]

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
"""Seconds between keep-alive comments on an idle event stream (proxies close idle ones)."""

_GONE_CHECK_S = 1.0
"""How often an idle event stream checks that its watcher is still connected."""
_MAX_BODY = 4 * 1024
_NUMBER = re.compile(r"^\+?[0-9]{2,15}$")
_HISTOGRAMS = {
    "turn": "voice_turn_latency_seconds",
    "server_added": "voice_server_added_latency_seconds",
}


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _sse(event: str, data: object) -> bytes:
    # One JSON line per event: JSON never holds a raw newline, so one "data:" line suffices.
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


def _flows_json(flows: Mapping[str, Flow]) -> dict[str, Any]:
    return {
        "flows": [
            {"name": flow.name, "title": flow.description or None,
             "params": dict(flow.parameters)}
            for flow in sorted(flows.values(), key=lambda f: f.name)
        ]
    }


def latency_histograms(registry: CollectorRegistry) -> dict[str, Any]:
    """The turn-latency histograms of ``registry`` as per-bucket (not cumulative) counts.

    ``{"unit": "seconds", "histograms": {"turn": {"buckets": [{"le": 0.1, "count": 2},
    ..., {"le": null, "count": 0}], "count": n, "sum": s}, "server_added": {...}}}``;
    the last bucket (``le`` null) is everything above the highest bound.
    """
    wanted = {metric: key for key, metric in _HISTOGRAMS.items()}
    out: dict[str, Any] = {}
    for family in registry.collect():
        key = wanted.get(family.name)
        if key is None:
            continue
        buckets: list[dict[str, Any]] = []
        total, summed, previous = 0.0, 0.0, 0.0
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bound = float(sample.labels["le"])
                buckets.append({"le": None if math.isinf(bound) else bound,
                                "count": int(sample.value - previous)})
                previous = sample.value
            elif sample.name.endswith("_count"):
                total = sample.value
            elif sample.name.endswith("_sum"):
                summed = sample.value
        out[key] = {"buckets": buckets, "count": int(total), "sum": round(summed, 4)}
    return {"unit": "seconds", "histograms": out}


def add_live_routes(
    app: web.Application,
    *,
    feed: LiveCallFeed,
    manager: CallSessionManager,
    auth: Authorizer,
    flows: Callable[[], Mapping[str, Flow]],
    registry: CollectorRegistry,
    transfer_number: str,
) -> None:
    """Add the live calls, control, flows and latency routes to ``app``.

    Register these before ``GET /api/calls/{call_id}`` (`add_calls_routes`): aiohttp
    matches in order, and ``/api/calls/live`` would otherwise be taken for a call id.

    Args:
        app: the HTTP control plane's application.
        feed: the live calls' events.
        manager: the live sessions (for control).
        auth: checks the operator's credentials.
        flows: the flows the responder knows, by name.
        registry: the process's Prometheus registry (`VoiceMetrics.registry`).
        transfer_number: where a transfer without ``to`` goes.
    """

    async def live_calls(request: web.Request) -> web.StreamResponse:
        await auth(request)
        return web.json_response({"calls": feed.snapshot()}, dumps=_dumps)

    async def live_events(request: web.Request) -> web.StreamResponse:
        await auth(request)
        call_id = request.query.get("call_id") or None
        if call_id is not None and len(call_id) > 128:
            return json_error(400, "bad_parameter", message="call_id is too long",
                              parameter="call_id")
        try:
            sub = feed.subscribe(call_id)
        except FeedFullError:
            return json_error(503, "too_many_watchers",
                              message=f"at most {feed.max_subscribers} live streams at once",
                              headers={"Retry-After": "5"})
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            # nginx and similar proxies would otherwise hold events back in a buffer.
            "X-Accel-Buffering": "no",
        })
        try:
            await response.prepare(request)
            # Subscribed before the snapshot is taken: nothing between the two is lost.
            await response.write(_sse("snapshot", {"calls": feed.snapshot(call_id)}))
            idle = 0.0
            while not _gone(request):
                try:
                    event = await sub.next(_GONE_CHECK_S)
                except EOFError:
                    break
                if event is not None:
                    idle = 0.0
                    await response.write(_event_bytes(event))
                    continue
                idle += _GONE_CHECK_S
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    await response.write(b": keep-alive\n\n")
        except ConnectionResetError:
            pass  # the watcher went away
        finally:
            sub.close()
        return response

    async def end_call(request: web.Request) -> web.StreamResponse:
        await auth(request, write=True)
        return _asked(request.match_info["call_id"], HangupAction(reason="operator_hangup"))

    async def transfer_call(request: web.Request) -> web.StreamResponse:
        await auth(request, write=True)
        call_id = request.match_info["call_id"]
        if manager.get(call_id) is None:
            return json_error(404, "not_found", message=f"no live call {call_id!r}")
        raw = await read_body(request, _MAX_BODY)
        if raw is None:
            return json_error(413, "body_too_large", message=f"body over {_MAX_BODY} bytes")
        target = transfer_number
        if raw.strip():
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return json_error(400, "bad_body", message="body must be JSON")
            if not isinstance(body, dict):
                return json_error(400, "bad_body", message="body must be a JSON object")
            to = body.get("to")
            if to is not None:
                if not isinstance(to, str) or not _NUMBER.match(to.strip()):
                    return json_error(400, "bad_parameter", parameter="to",
                                      message="to must be a phone number such as +15555550100")
                target = to.strip()
        return _asked(call_id, TransferAction(TransferTarget(phone_number=target)))

    def _asked(call_id: str, action: HangupAction | TransferAction) -> web.Response:
        session = manager.get(call_id)
        if session is None:
            return json_error(404, "not_found", message=f"no live call {call_id!r}")
        if not session.request_action(action):
            return json_error(409, "call_ending", message=f"call {call_id!r} is already ending")
        kind = "transfer" if isinstance(action, TransferAction) else "end"
        log.info("operator asked to %s call %s", kind, call_id)
        return web.json_response({"call_id": call_id, "action": kind}, status=202)

    async def list_flows(request: web.Request) -> web.StreamResponse:
        await auth(request)
        return web.json_response(_flows_json(flows()), dumps=_dumps)

    async def latency(request: web.Request) -> web.StreamResponse:
        await auth(request)
        return web.json_response(latency_histograms(registry))

    async def close_feed(app: web.Application) -> None:
        # Open event streams would hold the server's shutdown for its whole timeout.
        feed.close()

    app.router.add_get("/api/calls/live", live_calls)
    app.router.add_get("/api/calls/live/events", live_events)
    app.router.add_post("/api/calls/{call_id}/end", end_call)
    app.router.add_post("/api/calls/{call_id}/transfer", transfer_call)
    app.router.add_get("/api/flows", list_flows)
    app.router.add_get("/api/stats/latency", latency)
    app.on_shutdown.append(close_feed)


def _gone(request: web.Request) -> bool:
    # aiohttp does not cancel a handler whose client left; a write would tell, but only
    # at the next keep-alive. Looking at the socket frees the watcher's slot at once.
    transport = request.transport
    return transport is None or transport.is_closing()


def _event_bytes(event: LiveEvent) -> bytes:
    return _sse(event.kind, event.data)
