"""POST /api/voice/twilio/incoming over real HTTP: the TwiML answer and the signature."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from realtime_voice.security.tokens import StreamTokenIssuer, TokenError
from realtime_voice.security.twilio_signature import twilio_signature
from realtime_voice.session.manager import CallSessionManager
from webhooks.twilio_answer import TWILIO_INCOMING_PATH, TwilioAnswerHandler, add_twilio_routes

AUTH_TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
CALL_SID = "CA5a4f1b2c3d4e5f60718293a4b5c6d7e8"
FORM = {
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "ApiVersion": "2010-04-01",
    "CallSid": CALL_SID,
    "CallStatus": "ringing",
    "Direction": "inbound",
    "From": "+14155550123",
    "To": "+16505550100",
    "Caller": "+14155550123",
}


@dataclass
class Rig:
    url: str
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
    add_twilio_routes(
        app,
        TwilioAnswerHandler(
            manager, tokens, lambda: "wss://voice.example.com", **options
        ),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        try:
            yield Rig(str(server.make_url(TWILIO_INCOMING_PATH)), tokens, manager, http)
        finally:
            await server.close()


async def post(
    rig: Rig, form: dict[str, str], signature: str | None = None, url: str | None = None
) -> tuple[int, str, str]:
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    async with rig.http.post(url or rig.url, data=form, headers=headers) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    (connect,) = list(root)
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.tag == "Stream"
    params = {p.attrib["name"]: p.attrib["value"] for p in stream if p.tag == "Parameter"}
    assert len(params) == len(list(stream))
    return stream.attrib["url"], params


async def test_twiml_connects_the_call_to_the_media_stream(rig: Rig) -> None:
    status, content_type, twiml = await post(rig, FORM)
    assert status == 200
    assert content_type.startswith("text/xml")
    url, params = stream_of(twiml)
    assert url == "wss://voice.example.com/api/voice/twilio/ws"
    assert set(params) == {"token"}
    rig.tokens.verify(params["token"], CALL_SID)  # bound to exactly this CallSid
    with pytest.raises(TokenError):
        rig.tokens.verify(params["token"], "CA-some-other-call", consume=False)


async def test_the_call_is_held_as_ringing_with_its_numbers(rig: Rig) -> None:
    await post(rig, FORM)
    call = rig.manager.ringing(CALL_SID)
    assert call is not None
    assert (call.from_number, call.to_number) == ("+14155550123", "+16505550100")


async def test_a_repeated_request_gets_the_same_answer(rig: Rig) -> None:
    first = await post(rig, FORM)
    second = await post(rig, FORM)
    assert first == second


@pytest.mark.server_options(max_calls=1)
async def test_at_capacity_the_call_is_rejected_busy(rig: Rig) -> None:
    assert (await post(rig, FORM))[0] == 200
    status, _, twiml = await post(rig, dict(FORM, CallSid="CA-second"))
    assert status == 200
    root = ET.fromstring(twiml)
    assert [(c.tag, c.attrib) for c in root] == [("Reject", {"reason": "busy"})]


@pytest.mark.parametrize("call_sid", [None, "", "   ", "C" * 129])
async def test_missing_call_sid_is_400(rig: Rig, call_sid: str | None) -> None:
    form = {k: v for k, v in FORM.items() if k != "CallSid"}
    if call_sid is not None:
        form["CallSid"] = call_sid
    async with rig.http.post(rig.url, data=form) as resp:
        assert resp.status == 400
        assert (await resp.json())["field"] == "CallSid"


# ------------------------------------------------------------------ signature


@pytest.mark.server_options(auth_token=AUTH_TOKEN)
async def test_a_signed_request_is_answered(rig: Rig) -> None:
    signature = twilio_signature(AUTH_TOKEN, rig.url, FORM.items())
    status, _, twiml = await post(rig, FORM, signature)
    assert status == 200
    stream_of(twiml)


@pytest.mark.server_options(auth_token=AUTH_TOKEN)
async def test_query_string_is_part_of_the_signed_url(rig: Rig) -> None:
    url = rig.url + "?tenant=bella&lang=en"
    good = twilio_signature(AUTH_TOKEN, url, FORM.items())
    assert (await post(rig, FORM, good, url=url))[0] == 200
    second = dict(FORM, CallSid="CA-q2")
    without_query = twilio_signature(AUTH_TOKEN, rig.url, second.items())
    assert (await post(rig, second, without_query, url=url))[0] == 403


@pytest.mark.server_options(auth_token=AUTH_TOKEN)
@pytest.mark.parametrize("case", ["missing", "wrong key", "tampered", "garbage"])
async def test_bad_signatures_are_403_and_nothing_is_held(rig: Rig, case: str) -> None:
    signature: str | None
    form = dict(FORM)
    if case == "missing":
        signature = None
    elif case == "wrong key":
        signature = twilio_signature("not-the-token", rig.url, FORM.items())
    elif case == "tampered":
        signature = twilio_signature(AUTH_TOKEN, rig.url, FORM.items())
        form["From"] = "+19995550000"
    else:
        signature = "!!!"
    status, _, body = await post(rig, form, signature)
    assert status == 403
    assert "X-Twilio-Signature" in body
    assert rig.manager.ringing(CALL_SID) is None


@pytest.mark.server_options(
    auth_token=AUTH_TOKEN, public_http_url="https://voice.example.com/"
)
async def test_behind_a_proxy_the_public_url_is_what_is_signed(rig: Rig) -> None:
    public = "https://voice.example.com" + TWILIO_INCOMING_PATH
    assert (await post(rig, FORM, twilio_signature(AUTH_TOKEN, public, FORM.items())))[0] == 200
    other = dict(FORM, CallSid="CA-other")
    local = twilio_signature(AUTH_TOKEN, rig.url, other.items())
    assert (await post(rig, other, local))[0] == 403


async def test_without_an_auth_token_no_signature_is_needed(rig: Rig) -> None:
    assert (await post(rig, FORM, None))[0] == 200
