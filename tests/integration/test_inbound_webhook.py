"""POST /api/voice/inbound over real HTTP (docs/PROTOCOLS.md §1)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from realtime_voice.health import HealthReporter
from realtime_voice.security.tokens import StreamTokenIssuer
from realtime_voice.session.manager import CallSessionManager
from webhooks.app import build_http_app


class _Engines:
    deepgram_status = "offline"


BODY = {
    "event": "call.inbound",
    "body": {
        "id": "call-123",
        "from": {"phoneNumber": "+15555551234"},
        "to": {"phoneNumber": "+15555555678"},
    },
}


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, StreamTokenIssuer]]:
    marker = request.node.get_closest_marker("server_options")
    options = marker.kwargs if marker else {}
    manager = CallSessionManager(max_calls=options.get("max_calls", 10))
    tokens = StreamTokenIssuer("k" * 32)
    app = build_http_app(
        manager=manager,
        tokens=tokens,
        health=HealthReporter(manager, _Engines()),
        media_url=lambda: "ws://localhost:8001",
        verification_token=options.get("verification_token"),
    )
    srv = TestServer(app)
    await srv.start_server()
    try:
        yield str(srv.make_url("")), tokens
    finally:
        await srv.close()


async def post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with aiohttp.ClientSession() as http, http.post(
        url + "/api/voice/inbound", data=data, headers=headers or {}
    ) as resp:
        return resp.status, await resp.json()


async def test_answer_has_signed_media_url(server: tuple[str, StreamTokenIssuer]) -> None:
    base, tokens = server
    status, answer = await post(base, BODY)
    assert status == 200
    assert answer["action"] == "answer"
    media = answer["media"]
    assert media["type"] == "websocket"
    assert media["format"] == {"encoding": "mulaw", "sampleRate": 8000, "channels": 1}
    url = urlsplit(media["url"])
    assert (url.scheme, url.netloc) == ("ws", "localhost:8001")
    assert url.path == "/api/voice/realtime/ws/call"
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert q["call_id"] == "call-123"
    assert q["from_number"] == "+15555551234"
    assert q["to_number"] == "+15555555678"
    assert len(q["session_id"]) == 36
    tokens.verify(q["token"], "call-123")  # a valid token for exactly this call


async def test_repeated_webhook_gets_the_same_answer(server: tuple[str, StreamTokenIssuer]) -> None:
    base, _ = server
    first = await post(base, BODY)
    second = await post(base, BODY)
    assert first == second


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "call.inbound"}, "body"),
        ({"event": "call.inbound", "body": {}}, "body.id"),
        ({"event": "call.inbound", "body": {"id": 42}}, "body.id"),
        ({"event": "call.inbound", "body": {"id": "  "}}, "body.id"),
        ({"event": "call.hangup", "body": {"id": "c"}}, "event"),
        ({"event": "call.inbound", "body": {"id": "c", "from": "+1555"}}, "body.from"),
    ],
)
async def test_bad_body_is_400_naming_the_field(
    server: tuple[str, StreamTokenIssuer], body: object, field: str
) -> None:
    base, _ = server
    status, error = await post(base, body)
    assert status == 400
    assert error["field"] == field
    assert field in error["error"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b"\xff\xfe", b""])
async def test_malformed_json_is_400(server: tuple[str, StreamTokenIssuer], raw: bytes) -> None:
    base, _ = server
    status, error = await post(base, raw)
    assert status == 400
    assert "JSON" in error["error"]


@pytest.mark.server_options(verification_token="rc-verify-123")
async def test_verification_token_required_when_configured(
    server: tuple[str, StreamTokenIssuer],
) -> None:
    base, _ = server
    status, error = await post(base, BODY)
    assert status == 401
    assert "Verification-Token" in error["error"]
    status, _ = await post(base, BODY, {"Verification-Token": "wrong"})
    assert status == 401
    status, answer = await post(base, BODY, {"Verification-Token": "rc-verify-123"})
    assert status == 200 and answer["action"] == "answer"


@pytest.mark.server_options(max_calls=2)
async def test_at_capacity_is_503_reject(server: tuple[str, StreamTokenIssuer]) -> None:
    base, _ = server
    for i in range(2):
        status, _ = await post(base, {"body": {"id": f"call-{i}"}})
        assert status == 200
    status, answer = await post(base, {"body": {"id": "call-3"}})
    assert status == 503
    assert answer == {"action": "reject", "reason": "at_capacity"}
    # The answered calls are still answered idempotently.
    status, _ = await post(base, {"body": {"id": "call-0"}})
    assert status == 200


async def test_health_reports_counts(server: tuple[str, StreamTokenIssuer]) -> None:
    base, _ = server
    async with aiohttp.ClientSession() as http, http.get(
        base + "/api/voice/realtime/health"
    ) as resp:
        assert resp.status == 200
        health = await resp.json()
    assert health["status"] == "healthy"
    assert health["deepgram"] == "offline"
    for key in ("active_calls", "total_calls", "completed_calls", "failed_calls",
                "success_rate", "uptime_s", "version"):
        assert key in health
