"""POST /api/voice/telnyx/incoming over real HTTP: the TeXML answer and the signature."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from realtime_voice.protocols.base import StartEvent
from realtime_voice.protocols.telnyx import TelnyxProtocol
from realtime_voice.security.telnyx_signature import TelnyxWebhookVerifier
from realtime_voice.security.tokens import StreamTokenIssuer, TokenError
from realtime_voice.session.manager import CallSessionManager
from realtime_voice.testing.gateway_wire_telnyx import TelnyxGatewayWire
from webhooks.telnyx_answer import (
    MAX_BODY_BYTES,
    TELNYX_INCOMING_PATH,
    TelnyxAnswerHandler,
    add_telnyx_routes,
)

NOW = 1_765_000_000
CALL_SID = "v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ"
# The fields of Telnyx's documented TeXML request (texml-call-answered webhook).
FORM = {
    "AccountSid": "f5586561-8ff0-4291-a51b-c7dfe4139ff9",
    "CallSid": CALL_SID,
    "CallSidLegacy": CALL_SID,
    "CallStatus": "ringing",
    "ConnectionId": "1234567890",
    "Direction": "inbound",
    "From": "+35319605860",
    "To": "+13129457420",
}
SIGNING_KEY = Ed25519PrivateKey.generate()
PUBLIC_KEY = base64.b64encode(
    SIGNING_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
).decode()


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
    if options.pop("signed", False):
        options["verifier"] = TelnyxWebhookVerifier(PUBLIC_KEY, clock=lambda: NOW)
    tokens = StreamTokenIssuer("s" * 32)
    app = web.Application()
    handler = TelnyxAnswerHandler(manager, tokens, lambda: "wss://voice.example.com", **options)
    add_telnyx_routes(app, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        try:
            yield Rig(str(server.make_url(TELNYX_INCOMING_PATH)), tokens, manager, http)
        finally:
            await server.close()


def signed_headers(
    body: bytes, timestamp: int = NOW, key: Ed25519PrivateKey = SIGNING_KEY
) -> dict[str, str]:
    stamp = str(timestamp)
    signature = base64.b64encode(key.sign(stamp.encode() + b"|" + body)).decode()
    return {"telnyx-signature-ed25519": signature, "telnyx-timestamp": stamp}


async def post(
    rig: Rig,
    body: bytes,
    headers: dict[str, str] | None = None,
    content_type: str = "application/x-www-form-urlencoded",
) -> tuple[int, str, str]:
    all_headers = {"Content-Type": content_type, **(headers or {})}
    async with rig.http.post(rig.url, data=body, headers=all_headers) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def form(**changes: str) -> bytes:
    return urlencode({**FORM, **changes}).encode()


def stream_of(texml: str) -> dict[str, str]:
    root = ET.fromstring(texml)
    assert root.tag == "Response"
    (connect,) = list(root)
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.tag == "Stream"
    assert list(stream) == []
    return dict(stream.attrib)


def token_of(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "wss://voice.example.com/api/voice/telnyx/ws"
    )
    (token,) = parse_qs(parts.query)["token"]
    return token


async def test_texml_connects_the_call_to_a_bidirectional_stream(rig: Rig) -> None:
    status, content_type, texml = await post(rig, form())
    assert status == 200
    assert content_type.startswith("text/xml")
    stream = stream_of(texml)
    assert stream.keys() == {"url", "codec", "bidirectionalMode", "bidirectionalCodec"}
    # PCMU both ways: the caller's audio and what we play back.
    assert (stream["codec"], stream["bidirectionalCodec"]) == ("PCMU", "PCMU")
    assert stream["bidirectionalMode"] == "rtp"
    token = token_of(stream["url"])
    rig.tokens.verify(token, CALL_SID, consume=False)  # bound to exactly this CallSid
    with pytest.raises(TokenError):
        rig.tokens.verify(token, "v3:some-other-call", consume=False)


async def test_the_token_fits_the_stream_telnyx_then_opens(rig: Rig) -> None:
    # What the media plane does: parse Telnyx's start, check the URL token against its id.
    _, _, texml = await post(rig, form())
    token = token_of(stream_of(texml)["url"])
    codec = TelnyxProtocol()
    events = [e for m in TelnyxGatewayWire(CALL_SID).opening({}) for e in codec.parse(m)]
    start = next(e for e in events if isinstance(e, StartEvent))
    assert start.call_id == CALL_SID
    rig.tokens.verify(token, start.call_id)


async def test_the_call_is_held_as_ringing_with_its_numbers(rig: Rig) -> None:
    await post(rig, form())
    call = rig.manager.ringing(CALL_SID)
    assert call is not None
    assert (call.from_number, call.to_number) == ("+35319605860", "+13129457420")


async def test_a_repeated_request_gets_the_same_answer(rig: Rig) -> None:
    first = await post(rig, form())
    second = await post(rig, form(CallStatus="ringing"))
    assert first == second


async def test_a_json_body_is_read_too(rig: Rig) -> None:
    status, _, texml = await post(rig, json.dumps(FORM).encode(), content_type="application/json")
    assert status == 200
    rig.tokens.verify(token_of(stream_of(texml)["url"]), CALL_SID)


@pytest.mark.server_options(max_calls=1)
async def test_at_capacity_the_call_is_rejected_busy(rig: Rig) -> None:
    assert (await post(rig, form()))[0] == 200
    status, _, texml = await post(rig, form(CallSid="v3:second"))
    assert status == 200
    root = ET.fromstring(texml)
    assert [(c.tag, c.attrib) for c in root] == [("Reject", {"reason": "busy"})]
    assert rig.manager.ringing("v3:second") is None


@pytest.mark.parametrize("call_sid", [None, "", "   ", "v" * 129])
async def test_missing_call_sid_is_400(rig: Rig, call_sid: str | None) -> None:
    fields = {k: v for k, v in FORM.items() if k != "CallSid"}
    if call_sid is not None:
        fields["CallSid"] = call_sid
    async with rig.http.post(rig.url, data=fields) as resp:
        assert resp.status == 400
        assert (await resp.json())["field"] == "CallSid"


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (b"CallSid=\xff\xfe", "application/x-www-form-urlencoded", "not UTF-8"),
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "must be an object"),
        (b"&".join(b"f%d=1" % i for i in range(300)), "application/x-www-form-urlencoded", "form"),
    ],
)
async def test_unreadable_bodies_are_400_naming_the_problem(
    rig: Rig, body: bytes, content_type: str, problem: str
) -> None:
    status, _, text = await post(rig, body, content_type=content_type)
    assert status == 400
    assert problem in json.loads(text)["error"]


async def test_an_oversized_body_is_413(rig: Rig) -> None:
    status, _, text = await post(rig, b"a" * (MAX_BODY_BYTES + 1))
    assert status == 413
    assert "request body over" in json.loads(text)["error"]


# ------------------------------------------------------------------ signature


@pytest.mark.server_options(signed=True)
async def test_a_signed_request_is_answered(rig: Rig) -> None:
    body = form()
    status, _, texml = await post(rig, body, signed_headers(body))
    assert status == 200
    stream_of(texml)


async def test_the_public_key_argument_turns_the_check_on(rig: Rig) -> None:
    handler = TelnyxAnswerHandler(rig.manager, rig.tokens, lambda: "wss://x", public_key=PUBLIC_KEY)
    app = web.Application()
    add_telnyx_routes(app, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url(TELNYX_INCOMING_PATH))
        async with rig.http.post(url, data=form(), headers={}) as resp:
            assert resp.status == 403
    finally:
        await server.close()


@pytest.mark.server_options(signed=True)
@pytest.mark.parametrize(
    "case", ["missing", "wrong key", "tampered", "stale", "garbage", "unreadable body"]
)
async def test_bad_signatures_are_403_before_anything_else(rig: Rig, case: str) -> None:
    body = form()
    headers = signed_headers(body)
    if case == "missing":
        headers = {}
    elif case == "wrong key":
        headers = signed_headers(body, key=Ed25519PrivateKey.generate())
    elif case == "tampered":
        body = form(From="+19995550000")
    elif case == "stale":
        headers = signed_headers(body, timestamp=NOW - 301)
    elif case == "garbage":
        headers["telnyx-signature-ed25519"] = "!!!"
    else:
        body = b"\xff\xfe not a form"  # would be a 400, but the signature comes first
    status, _, text = await post(rig, body, headers)
    assert status == 403
    assert "telnyx-signature-ed25519" in json.loads(text)["error"]
    assert rig.manager.ringing(CALL_SID) is None


async def test_without_a_public_key_no_signature_is_needed(rig: Rig) -> None:
    assert (await post(rig, form()))[0] == 200
