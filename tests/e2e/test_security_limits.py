"""Security limits over real sockets (docs/SECURITY.md): per-address rate limits on both
planes, the Origin allow-list, and stream tokens that are expired, replayed or bound to
another call. Token refusals already covered in test_media_plane.py (missing, garbage,
another call's token and replay on the bridge) are not repeated here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.server.app import VoiceServer

pytestmark = pytest.mark.e2e

MakeServer = Callable[..., object]


async def start(make_server: MakeServer, **overrides: object) -> VoiceServer:
    server = await make_server(**overrides)
    assert isinstance(server, VoiceServer)
    return server


def media_url(server: VoiceServer, path: str = "/api/voice/realtime/ws/call", **query: str) -> str:
    suffix = f"?{urlencode(query)}" if query else ""
    return f"ws://127.0.0.1:{server.media_port}{path}{suffix}"


async def close_of(ws: ClientConnection) -> tuple[int | None, str]:
    """Drain until the server closes: its close code and reason."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass
    return ws.close_code, ws.close_reason


async def handshake_status(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    """Open a WebSocket: 101 if the upgrade was accepted, else the refusal's status."""
    try:
        async with connect(url, additional_headers=headers) as ws:
            await close_of(ws)
            return 101, {}, ""
    except InvalidStatus as exc:
        response = exc.response
        return response.status_code, dict(response.headers.raw_items()), response.body.decode()


async def test_a_media_flood_from_one_address_gets_429_before_any_session(
    make_server: MakeServer,
) -> None:
    server = await start(
        make_server,
        connections_per_ip_per_minute=60,
        connection_burst_per_ip=3,
        trust_proxy_headers=True,
    )
    flooder = {"X-Forwarded-For": "198.51.100.7"}
    url = media_url(server)  # no token: refused with 1008 after the upgrade
    for _ in range(3):
        assert (await handshake_status(url, flooder))[0] == 101
    status, headers, body = await handshake_status(url, flooder)
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert "too many connections" in json.loads(body)["error"]
    # The right-most hop is the address: a forged left-most entry changes nothing.
    spoofed = {"X-Forwarded-For": "203.0.113.50, 198.51.100.7"}
    assert (await handshake_status(url, spoofed))[0] == 429
    # Other addresses, and the load balancer's health check, are unaffected.
    assert (await handshake_status(url, {"X-Forwarded-For": "198.51.100.8"}))[0] == 101
    async with aiohttp.ClientSession() as http, http.get(
        f"http://127.0.0.1:{server.media_port}/api/voice/realtime/health", headers=flooder
    ) as resp:
        assert resp.status == 200
    assert server.manager.total_calls == 0
    # Ops see each refusal by reason (the tokenless upgrades were refused after it).
    assert refused(server, "rate_limited") == 2
    assert refused(server, "token") == 4


async def test_an_http_flood_gets_429_while_health_and_metrics_stay_up(
    make_server: MakeServer,
) -> None:
    server = await start(make_server, connections_per_ip_per_minute=60, connection_burst_per_ip=2)
    base = f"http://127.0.0.1:{server.http_port}"
    payload = {"event": "call.inbound", "body": {"id": "call-flood"}}
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.post(f"{base}/api/voice/inbound", json=payload) as resp:
                statuses.append(resp.status)
                last_headers, last_body = resp.headers, await resp.text()
        assert statuses == [200, 200, 429]
        assert int(last_headers["Retry-After"]) >= 1
        assert "too many requests" in json.loads(last_body)["error"]
        for path in ("/api/voice/realtime/health", "/metrics"):
            for _ in range(5):
                async with http.get(base + path) as resp:
                    assert resp.status == 200, path
        async with http.get(f"{base}/metrics") as resp:
            metrics = await resp.text()
        # Refusals are visible to ops.
        counted = 'voice_webhook_requests_total{method="POST",route="/api/voice/inbound",'
        assert counted + 'status="429"} 1.0' in metrics
    # Without proxy trust a forged X-Forwarded-For is not an escape.
    async with aiohttp.ClientSession() as http, http.post(
        f"{base}/api/voice/inbound", json=payload, headers={"X-Forwarded-For": "192.0.2.1"}
    ) as resp:
        assert resp.status == 429


async def test_zero_turns_the_rate_limit_off(make_server: MakeServer) -> None:
    server = await start(make_server, connections_per_ip_per_minute=0, connection_burst_per_ip=1)
    async with aiohttp.ClientSession() as http:
        for n in range(5):
            async with http.post(
                f"http://127.0.0.1:{server.http_port}/api/voice/inbound",
                json={"event": "call.inbound", "body": {"id": f"call-{n}"}},
            ) as resp:
                assert resp.status == 200
    for _ in range(3):
        assert (await handshake_status(media_url(server), {}))[0] == 101


async def test_the_origin_allow_list(make_server: MakeServer) -> None:
    server = await start(make_server, allowed_origins=("https://console.example.com",))
    url = media_url(server)
    status, _, body = await handshake_status(url, {"Origin": "https://evil.example"})
    assert status == 403
    assert "https://evil.example" in json.loads(body)["error"]
    assert (await handshake_status(url, {"Origin": "https://Console.example.com"}))[0] == 101
    assert (await handshake_status(url, {}))[0] == 101  # gateways send no Origin
    assert refused(server, "origin") == 1


async def test_an_expired_token_is_refused_on_the_bridge(server: VoiceServer) -> None:
    expired = past_issuer(server).mint("call-late")
    async with connect(media_url(server, call_id="call-late", token=expired)) as ws:
        assert await close_of(ws) == (1008, "token expired")
    assert server.manager.total_calls == 0


async def test_twilio_tokens_expired_replayed_or_for_another_call_are_refused(
    server: VoiceServer,
) -> None:
    sid, other = "CA" + "a" * 32, "CA" + "b" * 32
    good = server.tokens.mint(sid)
    for call_sid, token, reason in (
        (sid, past_issuer(server).mint(sid), "token expired"),
        (other, good, "token bad_signature"),
    ):
        async with connect(media_url(server, "/api/voice/twilio/ws")) as ws:
            await twilio_start(ws, call_sid, token)
            assert await close_of(ws) == (1008, reason)
    async with connect(media_url(server, "/api/voice/twilio/ws")) as ws:
        await twilio_start(ws, sid, good)
        await ws.send(json.dumps({"event": "stop", "sequenceNumber": "3", "streamSid": "MZ1"}))
        assert (await close_of(ws))[0] == 1000
    async with connect(media_url(server, "/api/voice/twilio/ws")) as ws:
        await twilio_start(ws, sid, good)
        assert await close_of(ws) == (1008, "token reused")
    await asyncio.wait_for(server.manager.wait_idle(), 30)
    assert server.manager.total_calls == 1


def refused(server: VoiceServer, reason: str) -> float:
    """``voice_media_refused_total`` for ``reason`` as /metrics shows it."""
    wanted = f'voice_media_refused_total{{reason="{reason}"}} '
    for line in server.metrics.render().decode().splitlines():
        if line.startswith(wanted):
            return float(line.removeprefix(wanted))
    return 0.0


def past_issuer(server: VoiceServer) -> StreamTokenIssuer:
    """An issuer with the server's secret whose clock is two TTLs behind: expired tokens."""
    ttl = server.settings.stream_token_ttl_s
    return StreamTokenIssuer(
        server.settings.stream_secret, ttl_s=ttl, clock=lambda: time.time() - 2 * ttl
    )


async def twilio_start(ws: ClientConnection, call_sid: str, token: str) -> None:
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    await ws.send(json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
        "start": {"streamSid": "MZ1", "accountSid": "AC1", "callSid": call_sid,
                  "tracks": ["inbound"], "customParameters": {"token": token},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                  "channels": 1}},
    }))  # fmt: skip
