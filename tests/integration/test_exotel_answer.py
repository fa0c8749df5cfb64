"""GET|POST /api/voice/exotel/init and /voicebot/init over real HTTP: Exotel's applet URL."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from realtime_voice.security.tokens import StreamTokenIssuer, TokenError
from realtime_voice.session.manager import CallSessionManager
from webhooks.exotel_answer import ExotelAnswerHandler, add_exotel_routes

CALL_SID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
PARAMS = {"CallSid": CALL_SID, "CallFrom": "09876543210", "CallTo": "08047491899",
          "Direction": "incoming"}
CREDENTIALS = ("exo-key", "exo-token")


@dataclass
class Rig:
    base: str
    tokens: StreamTokenIssuer
    manager: CallSessionManager
    http: aiohttp.ClientSession


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    marker = request.node.get_closest_marker("server_options")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    manager = CallSessionManager(max_calls=options.pop("max_calls", 5))
    tokens = StreamTokenIssuer("s" * 32)
    app = web.Application()
    add_exotel_routes(
        app, ExotelAnswerHandler(manager, tokens, lambda: "wss://voice.example.com", **options)
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        try:
            yield Rig(str(server.make_url("")).rstrip("/"), tokens, manager, http)
        finally:
            await server.close()


async def ask(
    rig: Rig, path: str = "/api/voice/exotel/init", *, method: str = "GET",
    params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    query = dict(PARAMS if params is None else params)
    kwargs: dict[str, Any] = {"data": query} if method == "POST" else {"params": query}
    async with rig.http.request(method, rig.base + path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json()


def stream_query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def test_the_answer_is_the_stream_url_with_a_token_bound_to_the_call(rig: Rig) -> None:
    status, answer = await ask(rig)
    assert status == 200
    assert answer["url"] == answer["websocket_url"]
    parts = urlsplit(answer["url"])
    assert (parts.scheme, parts.netloc, parts.path) == (
        "wss", "voice.example.com", "/api/voice/exotel/ws"
    )
    query = stream_query(answer["url"])
    assert query["sample-rate"] == "8000" and query["call_sid"] == CALL_SID
    rig.tokens.verify(query["token"], CALL_SID, consume=False)
    with pytest.raises(TokenError):
        rig.tokens.verify(query["token"], "another-call", consume=False)
    call = rig.manager.ringing(CALL_SID)
    assert call is not None and (call.from_number, call.to_number) == PARAMS_NUMBERS


PARAMS_NUMBERS = ("09876543210", "08047491899")


async def test_seed_002_path_answers_was_at_16_khz_by_post(rig: Rig) -> None:
    status, answer = await ask(rig, "/voicebot/init", method="POST")
    assert status == 200
    assert urlsplit(answer["url"]).path == "/was"
    assert stream_query(answer["url"])["sample-rate"] == "16000"


async def test_applet_url_parameters_become_custom_parameters(rig: Rig) -> None:
    async with rig.http.get(
        rig.base + "/api/voice/exotel/init?flow=persona&persona_name=Ananya&sample-rate=16000",
        params=PARAMS,
    ) as resp:
        answer = await resp.json()
    query = stream_query(answer["url"])
    assert query["flow"] == "persona" and query["persona_name"] == "Ananya"
    assert query["sample-rate"] == "16000"
    assert "CallFrom" not in query and "Direction" not in query


async def test_a_repeated_request_gets_the_same_answer(rig: Rig) -> None:
    assert await ask(rig) == await ask(rig)


@pytest.mark.server_options(max_calls=1)
async def test_at_capacity_the_applet_is_told_503(rig: Rig) -> None:
    assert (await ask(rig))[0] == 200
    status, body = await ask(rig, params=dict(PARAMS, CallSid="second-call"))
    assert status == 503 and "capacity" in body["error"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"CallFrom": "0987"}, "CallSid"),
        ({"CallSid": " "}, "CallSid"),
        ({"CallSid": "x" * 129}, "CallSid"),
        ({"CallSid": "c1", "sample-rate": "24000"}, "sample-rate"),
        ({"CallSid": "c1", "sample-rate": "abc"}, "sample-rate"),
    ],
)
async def test_bad_requests_are_400_naming_the_field(
    rig: Rig, params: dict[str, str], field: str
) -> None:
    status, body = await ask(rig, params=params)
    assert status == 400 and body["field"] == field
    assert rig.manager.ringing(CALL_SID) is None and rig.manager.ringing("c1") is None


async def test_too_many_custom_parameters_are_400(rig: Rig) -> None:
    params = dict(PARAMS, **{f"p{i}": "v" for i in range(11)})
    status, body = await ask(rig, params=params)
    assert status == 400 and "custom parameters" in body["error"]


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.server_options(basic_auth=CREDENTIALS)
async def test_with_credentials_configured_they_are_required(rig: Rig) -> None:
    assert (await ask(rig))[0] == 401
    assert (await ask(rig, headers=_basic("exo-key", "wrong")))[0] == 401
    assert (await ask(rig, headers={"Authorization": "Basic !!!"}))[0] == 401
    assert rig.manager.ringing(CALL_SID) is None and rig.manager.ringing("c1") is None
    status, answer = await ask(rig, headers=_basic(*CREDENTIALS))
    assert status == 200 and answer["url"].startswith("wss://")
