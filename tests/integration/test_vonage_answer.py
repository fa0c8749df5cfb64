"""GET|POST /api/voice/vonage/answer and POST .../event over real HTTP: NCCO and signature."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from realtime_voice.protocols.base import StartEvent
from realtime_voice.protocols.vonage import VonageProtocol
from realtime_voice.security.tokens import StreamTokenIssuer, TokenError
from realtime_voice.security.vonage_signature import (
    VonageWebhookVerifier,
    compact_json_hash,
    payload_hash,
    sign_vonage_webhook,
)
from realtime_voice.session.manager import CallSessionManager
from webhooks.vonage_answer import (
    BUSY_NCCO,
    VONAGE_ANSWER_PATH,
    VONAGE_EVENT_PATH,
    VonageAnswerHandler,
    add_vonage_routes,
)

SECRET = "7c2bd0c3a1f54c0e9a7e1b4d2f6c8e0a"
UUID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
CALL = {
    "to": "442079460000",
    "from": "447700900000",
    "uuid": UUID,
    "conversation_uuid": "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    "region_url": "https://api-us-3.vonage.com",
}
EVENT = {
    "from": "447700900000",
    "to": "442079460000",
    "uuid": UUID,
    "conversation_uuid": "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    "status": "answered",
    "direction": "inbound",
    "timestamp": "2026-12-07T12:00:00.000Z",
}


@dataclass
class Rig:
    base: str
    tokens: StreamTokenIssuer
    manager: CallSessionManager
    http: aiohttp.ClientSession

    @property
    def answer(self) -> str:
        return self.base + VONAGE_ANSWER_PATH

    @property
    def event(self) -> str:
        return self.base + VONAGE_EVENT_PATH


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    marker = request.node.get_closest_marker("server_options")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    manager = CallSessionManager(max_calls=options.pop("max_calls", 5))
    tokens = StreamTokenIssuer("s" * 32)
    app = web.Application()
    add_vonage_routes(
        app, VonageAnswerHandler(manager, tokens, lambda: "wss://voice.example.com", **options)
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        try:
            yield Rig(str(server.make_url("")).rstrip("/"), tokens, manager, http)
        finally:
            await server.close()


async def get(rig: Rig, query: dict[str, str], auth: str | None = None) -> tuple[int, Any]:
    headers = {} if auth is None else {"Authorization": auth}
    async with rig.http.get(rig.answer, params=query, headers=headers) as resp:
        return resp.status, await resp.json()


async def post(
    rig: Rig, url: str, body: bytes, auth: str | None = None, ctype: str = "application/json"
) -> tuple[int, str]:
    headers = {"Content-Type": ctype}
    if auth is not None:
        headers["Authorization"] = auth
    async with rig.http.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.text()


def websocket_endpoint(ncco: Any) -> dict[str, Any]:
    (connect,) = ncco
    assert connect["action"] == "connect"
    (endpoint,) = connect["endpoint"]
    assert endpoint["type"] == "websocket"
    return dict(endpoint)


async def test_get_answer_connects_the_call_to_the_websocket(rig: Rig) -> None:
    status, ncco = await get(rig, CALL)
    assert status == 200
    endpoint = websocket_endpoint(ncco)
    assert endpoint["uri"] == "wss://voice.example.com/api/voice/vonage/ws"
    assert endpoint["content-type"] == "audio/l16;rate=16000"
    headers = endpoint["headers"]
    assert set(headers) == {"call_uuid", "token", "from", "to"}
    assert headers["call_uuid"] == UUID
    assert (headers["from"], headers["to"]) == ("447700900000", "442079460000")
    assert len(json.dumps(headers)) < 512  # the guide's cap on headers
    rig.tokens.verify(headers["token"], UUID)  # bound to exactly this call leg
    with pytest.raises(TokenError):
        rig.tokens.verify(headers["token"], "some-other-uuid", consume=False)


async def test_the_headers_reach_the_codec_as_the_start(rig: Rig) -> None:
    _, ncco = await get(rig, CALL)
    endpoint = websocket_endpoint(ncco)
    # What Vonage then sends: the headers flattened into websocket:connected.
    connected = {"event": "websocket:connected", "content-type": endpoint["content-type"]}
    connected.update(endpoint["headers"])
    codec = VonageProtocol()
    (start,) = codec.parse(json.dumps(connected))
    assert isinstance(start, StartEvent)
    assert start.call_id == UUID
    rig.tokens.verify(start.custom_parameters["token"], start.call_id)
    assert (codec.from_number, codec.to_number) == ("447700900000", "442079460000")


async def test_post_json_answer_gets_the_same_shape(rig: Rig) -> None:
    status, text = await post(rig, rig.answer, json.dumps(CALL).encode())
    assert status == 200
    assert websocket_endpoint(json.loads(text))["headers"]["call_uuid"] == UUID


@pytest.mark.server_options(sample_rate=8000)
async def test_the_ncco_asks_for_the_configured_rate(rig: Rig) -> None:
    _, ncco = await get(rig, CALL)
    assert websocket_endpoint(ncco)["content-type"] == "audio/l16;rate=8000"


def test_an_unsupported_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        VonageAnswerHandler(
            CallSessionManager(max_calls=1), StreamTokenIssuer("s" * 32), str, sample_rate=24000
        )


async def test_the_call_is_held_as_ringing_with_its_numbers(rig: Rig) -> None:
    await get(rig, CALL)
    call = rig.manager.ringing(UUID)
    assert call is not None
    assert (call.from_number, call.to_number) == ("447700900000", "442079460000")


async def test_a_client_sdk_call_without_from_leaves_it_out(rig: Rig) -> None:
    query = {k: v for k, v in CALL.items() if k != "from"} | {"from_user": "JaneDoe"}
    _, ncco = await get(rig, query)
    assert "from" not in websocket_endpoint(ncco)["headers"]


async def test_a_repeated_request_gets_the_same_answer(rig: Rig) -> None:
    assert await get(rig, CALL) == await get(rig, CALL)


@pytest.mark.server_options(max_calls=1)
async def test_at_capacity_the_caller_hears_busy_and_the_call_ends(rig: Rig) -> None:
    assert (await get(rig, CALL))[0] == 200
    status, ncco = await get(rig, dict(CALL, uuid="bbbbbbbb-0000-0000-0000-000000000000"))
    assert status == 200
    assert ncco == BUSY_NCCO
    assert [action["action"] for action in ncco] == ["talk"]  # no connect: the call ends


@pytest.mark.parametrize("value", [None, "", "   ", "u" * 129])
async def test_missing_uuid_is_400(rig: Rig, value: str | None) -> None:
    query = {k: v for k, v in CALL.items() if k != "uuid"}
    if value is not None:
        query["uuid"] = value
    status, body = await get(rig, query)
    assert status == 400
    assert body["field"] == "uuid"


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"{not json", "not valid JSON"), (b"[1]", "must be an object"), (b"\xff", "not UTF-8")],
)
async def test_unreadable_post_body_is_400(rig: Rig, body: bytes, problem: str) -> None:
    status, text = await post(rig, rig.answer, body)
    assert status == 400
    assert problem in json.loads(text)["error"]


async def test_an_oversized_body_is_413(rig: Rig) -> None:
    status, _ = await post(rig, rig.answer, b"{" + b" " * 70_000 + b"}")
    assert status == 413


async def test_events_are_acknowledged(rig: Rig) -> None:
    assert await post(rig, rig.event, json.dumps(EVENT).encode()) == (200, "")
    # Even an unreadable one: Vonage would only retry it.
    assert (await post(rig, rig.event, b"{broken"))[0] == 200


# ------------------------------------------------------------------ signature


def signed(body_hash: str) -> str:
    return "Bearer " + sign_vonage_webhook(SECRET, body_hash)


@pytest.mark.server_options(signature_secret=SECRET)
async def test_a_signed_get_is_answered(rig: Rig) -> None:
    status, ncco = await get(rig, CALL, signed(compact_json_hash(CALL)))
    assert status == 200
    websocket_endpoint(ncco)


@pytest.mark.server_options(signature_secret=SECRET)
async def test_a_signed_post_is_answered(rig: Rig) -> None:
    body = json.dumps(CALL).encode()
    status, text = await post(rig, rig.answer, body, signed(payload_hash(body)))
    assert status == 200
    websocket_endpoint(json.loads(text))


@pytest.mark.server_options(signature_secret=SECRET)
async def test_an_unsigned_answer_is_401_before_anything_else(rig: Rig) -> None:
    status, body = await get(rig, CALL)
    assert status == 401
    assert "signed-webhook JWT" in body["error"]
    assert rig.manager.ringing(UUID) is None  # nothing was minted or held
    # Even a request that is otherwise broken is refused for its signature first.
    assert (await post(rig, rig.answer, b"{broken"))[0] == 401


@pytest.mark.server_options(signature_secret=SECRET)
async def test_a_badly_signed_answer_is_403(rig: Rig) -> None:
    tampered = dict(CALL, uuid="cccccccc-0000-0000-0000-000000000000")
    status, body = await get(rig, tampered, signed(compact_json_hash(CALL)))
    assert status == 403
    assert "payload_hash" in body["error"]
    wrong_key = "Bearer " + sign_vonage_webhook("k" * 32, compact_json_hash(CALL))
    assert (await get(rig, CALL, wrong_key))[0] == 403
    assert rig.manager.ringing(UUID) is None


@pytest.mark.server_options(verifier=VonageWebhookVerifier(SECRET, clock=lambda: 2_000_000_000.0))
async def test_an_old_token_is_403(rig: Rig) -> None:
    token = "Bearer " + sign_vonage_webhook(SECRET, compact_json_hash(CALL), iat=1_999_999_000)
    status, body = await get(rig, CALL, token)
    assert status == 403
    assert "older than" in body["error"]


@pytest.mark.server_options(signature_secret=SECRET)
async def test_events_need_the_signature_too(rig: Rig) -> None:
    body = json.dumps(EVENT).encode()
    assert (await post(rig, rig.event, body))[0] == 401
    assert (await post(rig, rig.event, body, signed(payload_hash(b"other"))))[0] == 403
    assert await post(rig, rig.event, body, signed(payload_hash(body))) == (200, "")
