"""Plivo's answer URL and transfer XML over real HTTP: the XML answers and the signatures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from realtime_voice.protocols.plivo import parse_extra_headers
from realtime_voice.security.plivo_signature import plivo_signature_v3, transfer_url
from realtime_voice.security.tokens import StreamTokenIssuer, TokenError
from realtime_voice.session.manager import CallSessionManager
from webhooks.plivo_answer import (
    PLIVO_INCOMING_PATH,
    PLIVO_TRANSFER_PATH,
    PlivoAnswerHandler,
    PlivoTransferHandler,
    add_plivo_routes,
)

AUTH_TOKEN = "MzE2YzVhN2QxZmE4YjJlNGQ2YzlmMDFh"
SECRET = b"s" * 32
CALL_UUID = "eba53b9e-8fbd-45c1-9444-696d2172fbc8"
NONCE = "05429567804466091622"
FORM = {
    "CallUUID": CALL_UUID,
    "CallStatus": "ringing",
    "Direction": "inbound",
    "Event": "StartApp",
    "From": "14155550123",
    "To": "16505550100",
}


@dataclass
class Rig:
    base: str
    tokens: StreamTokenIssuer
    manager: CallSessionManager
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.base + PLIVO_INCOMING_PATH


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    marker = request.node.get_closest_marker("server_options")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    manager = CallSessionManager(max_calls=options.pop("max_calls", 5))
    tokens = StreamTokenIssuer("s" * 32)
    app = web.Application()
    add_plivo_routes(
        app,
        PlivoAnswerHandler(manager, tokens, lambda: "wss://voice.example.com", **options),
        PlivoTransferHandler(SECRET, **options),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        try:
            yield Rig(str(server.make_url("")).rstrip("/"), tokens, manager, http)
        finally:
            await server.close()


def signed(url: str, form: dict[str, str], method: str = "POST") -> dict[str, str]:
    signature = plivo_signature_v3(AUTH_TOKEN, url, NONCE, form.items(), method=method)
    return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": NONCE}


async def post(
    rig: Rig, form: dict[str, str], headers: dict[str, str] | None = None, url: str | None = None
) -> tuple[int, str, str]:
    async with rig.http.post(url or rig.url, data=form, headers=headers or {}) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def stream_of(xml: str) -> tuple[ET.Element, str]:
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    (stream,) = list(root)
    assert stream.tag == "Stream"
    assert stream.text is not None
    return stream, stream.text


async def test_the_answer_streams_the_call_to_our_media_plane(rig: Rig) -> None:
    status, content_type, xml = await post(rig, FORM)
    assert status == 200
    assert content_type.startswith("text/xml")
    stream, url = stream_of(xml)
    assert stream.attrib == {
        "bidirectional": "true",
        "keepCallAlive": "true",
        "contentType": "audio/x-mulaw;rate=8000",
        "extraHeaders": stream.attrib["extraHeaders"],
    }
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "wss://voice.example.com/api/voice/plivo/ws"
    )
    (token,) = parse_qs(parts.query)["token"]
    rig.tokens.verify(token, CALL_UUID, consume=False)  # bound to exactly this CallUUID
    with pytest.raises(TokenError):
        rig.tokens.verify(token, "another-call-uuid", consume=False)
    # extraHeaders holds only letters, digits and separators, as Plivo requires, and the
    # codec reads the same token back out of it.
    assert stream.attrib["extraHeaders"].replace("=", "").isalnum()
    assert parse_extra_headers(stream.attrib["extraHeaders"]) == {"token": token}


async def test_the_answer_url_may_be_fetched_with_get(rig: Rig) -> None:
    async with rig.http.get(rig.url, params=FORM) as resp:
        assert resp.status == 200
        stream_of(await resp.text())
    assert rig.manager.ringing(CALL_UUID) is not None


async def test_the_call_is_held_as_ringing_with_its_numbers(rig: Rig) -> None:
    await post(rig, FORM)
    call = rig.manager.ringing(CALL_UUID)
    assert call is not None
    assert (call.from_number, call.to_number) == ("14155550123", "16505550100")


async def test_a_repeated_request_gets_the_same_answer(rig: Rig) -> None:
    assert await post(rig, FORM) == await post(rig, FORM)


@pytest.mark.server_options(max_calls=1)
async def test_at_capacity_the_call_is_hung_up_busy(rig: Rig) -> None:
    assert (await post(rig, FORM))[0] == 200
    status, _, xml = await post(rig, dict(FORM, CallUUID="0b1c2d3e-0000-4000-8000-000000000002"))
    assert status == 200
    root = ET.fromstring(xml)
    assert [(c.tag, c.attrib) for c in root] == [("Hangup", {"reason": "busy"})]


@pytest.mark.parametrize("call_uuid", [None, "", "   ", "C" * 65, "abc/../x", "a b"])
async def test_a_missing_or_odd_call_uuid_is_400(rig: Rig, call_uuid: str | None) -> None:
    form = {k: v for k, v in FORM.items() if k != "CallUUID"}
    if call_uuid is not None:
        form["CallUUID"] = call_uuid
    async with rig.http.post(rig.url, data=form) as resp:
        assert resp.status == 400
        assert (await resp.json())["field"] == "CallUUID"


# ------------------------------------------------------------------ signature


@pytest.mark.server_options(auth_token=AUTH_TOKEN)
async def test_a_signed_request_is_answered(rig: Rig) -> None:
    status, _, xml = await post(rig, FORM, signed(rig.url, FORM))
    assert status == 200
    stream_of(xml)


@pytest.mark.server_options(auth_token=AUTH_TOKEN)
async def test_a_signed_get_is_answered(rig: Rig) -> None:
    url = rig.url + "?" + "&".join(f"{k}={v}" for k, v in FORM.items())
    async with rig.http.get(url, headers=signed(url, {}, "GET")) as resp:
        assert resp.status == 200


@pytest.mark.server_options(auth_token=AUTH_TOKEN)
@pytest.mark.parametrize("case", ["missing", "no nonce", "wrong key", "tampered", "garbage"])
async def test_bad_signatures_are_403_and_nothing_is_held(rig: Rig, case: str) -> None:
    form = dict(FORM)
    headers = signed(rig.url, FORM)
    if case == "missing":
        headers = {}
    elif case == "no nonce":
        del headers["X-Plivo-Signature-V3-Nonce"]
    elif case == "wrong key":
        sig = plivo_signature_v3("not-the-token", rig.url, NONCE, FORM.items())
        headers["X-Plivo-Signature-V3"] = sig
    elif case == "tampered":
        form["From"] = "19995550000"
    else:
        headers["X-Plivo-Signature-V3"] = "!!!"
    status, _, body = await post(rig, form, headers)
    assert status == 403
    assert "X-Plivo-Signature-V3" in body
    assert rig.manager.ringing(CALL_UUID) is None


@pytest.mark.server_options(auth_token=AUTH_TOKEN)
async def test_the_signature_is_checked_before_the_call_uuid(rig: Rig) -> None:
    status, _, _ = await post(rig, {"From": "1"})
    assert status == 403


@pytest.mark.server_options(auth_token=AUTH_TOKEN, public_http_url="https://voice.example.com/")
async def test_behind_a_proxy_the_public_url_is_what_is_signed(rig: Rig) -> None:
    public = "https://voice.example.com" + PLIVO_INCOMING_PATH
    assert (await post(rig, FORM, signed(public, FORM)))[0] == 200
    other = dict(FORM, CallUUID="0b1c2d3e-0000-4000-8000-000000000003")
    assert (await post(rig, other, signed(rig.url, other)))[0] == 403


# ------------------------------------------------------------------ transfer XML


def our_transfer_url(rig: Rig, number: str = "+14155550100", call: str = CALL_UUID) -> str:
    return transfer_url(rig.base + PLIVO_TRANSFER_PATH, SECRET, call, number)


async def test_a_signed_transfer_url_dials_its_number(rig: Rig) -> None:
    status, content_type, xml = await post(rig, FORM, url=our_transfer_url(rig))
    assert status == 200
    assert content_type.startswith("text/xml")
    root = ET.fromstring(xml)
    (dial,) = list(root)
    assert dial.tag == "Dial"
    assert [(n.tag, n.text) for n in dial] == [("Number", "14155550100")]


@pytest.mark.parametrize("case", ["other call", "other number", "no sig", "forged", "bad to"])
async def test_a_transfer_url_cannot_be_bent_to_dial_anything_else(rig: Rig, case: str) -> None:
    url = our_transfer_url(rig)
    form = dict(FORM)
    expected = 403
    if case == "other call":
        form["CallUUID"] = "0b1c2d3e-0000-4000-8000-000000000004"
    elif case == "other number":
        url = url.replace("to=%2B14155550100", "to=%2B19005550100")
    elif case == "no sig":
        url = url.split("&sig=")[0]
    elif case == "forged":
        url = transfer_url(rig.base + PLIVO_TRANSFER_PATH, b"x" * 32, CALL_UUID, "+19005550100")
    else:
        url = url.replace("to=%2B14155550100", "to=sip%3Aevil")
        expected = 400
    status, _, body = await post(rig, form, url=url)
    assert status == expected
    assert "Dial" not in body


@pytest.mark.server_options(auth_token=AUTH_TOKEN)
async def test_the_transfer_route_also_requires_plivos_signature(rig: Rig) -> None:
    url = our_transfer_url(rig)
    assert (await post(rig, FORM, url=url))[0] == 403
    status, _, xml = await post(rig, FORM, signed(url, FORM), url=url)
    assert status == 200
    assert "<Number>14155550100</Number>" in xml
