"""`PlivoCallControl` against the local Plivo API simulator over real HTTP."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web

from ai_pipeline.responder import TransferTarget
from realtime_voice.carriers.plivo import PlivoCallControl
from realtime_voice.legs.base import PlatformCallControl
from realtime_voice.security.plivo_signature import transfer_url, verify_transfer
from realtime_voice.testing.plivo_sim import PlivoApiSimulator

AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
AUTH_TOKEN = "MzE2YzVhN2QxZmE4YjJlNGQ2YzlmMDFh"
SECRET = b"s" * 32
CALL = "eba53b9e-8fbd-45c1-9444-696d2172fbc8"
TRANSFER_ROUTE = "https://voice.example.com/api/voice/plivo/transfer"
HUMAN = TransferTarget(phone_number="+14155550100")


@pytest.fixture
async def sim() -> AsyncIterator[PlivoApiSimulator]:
    async with PlivoApiSimulator(AUTH_ID, AUTH_TOKEN) as simulator:
        simulator.add_call(CALL)
        yield simulator


def control(sim: PlivoApiSimulator, token: str = AUTH_TOKEN, **kwargs: float) -> PlivoCallControl:
    return PlivoCallControl(
        AUTH_ID,
        token,
        transfer_url=functools.partial(transfer_url, TRANSFER_ROUTE, SECRET),
        base_url=sim.base_url,
        **kwargs,
    )


def test_it_is_platform_call_control(sim: PlivoApiSimulator) -> None:
    client: PlatformCallControl = control(sim)
    assert client is not None


async def test_transfer_posts_legs_aleg_and_our_signed_xml_url(sim: PlivoApiSimulator) -> None:
    assert await control(sim).transfer(CALL, HUMAN)
    (req,) = sim.requests
    assert (req.method, req.path, req.status) == (
        "POST",
        f"/v1/Account/{AUTH_ID}/Call/{CALL}/",
        202,
    )
    assert req.body["legs"] == "aleg"
    assert req.body["aleg_method"] == "POST"
    url = urlsplit(req.body["aleg_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == TRANSFER_ROUTE
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["to"] == "+14155550100"
    # Only this call may fetch it, and it dials only this number.
    assert verify_transfer(SECRET, CALL, query["to"], query["exp"], query["sig"])
    assert not verify_transfer(SECRET, "another-call", query["to"], query["exp"], query["sig"])


async def test_hangup_deletes_the_call(sim: PlivoApiSimulator) -> None:
    assert await control(sim).hangup(CALL)
    (req,) = sim.requests
    assert (req.method, req.path, req.status) == (
        "DELETE",
        f"/v1/Account/{AUTH_ID}/Call/{CALL}/",
        204,
    )
    assert CALL not in sim.live_calls
    # The call is gone: a second hang-up is Plivo's 404, reported as False.
    assert not await control(sim).hangup(CALL)


async def test_a_wrong_auth_token_is_refused(
    sim: PlivoApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        assert not await control(sim, token="wrong").hangup(CALL)
    assert sim.requests[-1].status == 401
    assert CALL in caplog.text  # the failure names the call
    assert CALL in sim.live_calls


@pytest.mark.parametrize("status", [400, 404, 500, 503])
async def test_plivo_errors_are_false_never_raised(sim: PlivoApiSimulator, status: int) -> None:
    sim.fail_next(status, count=2)
    assert not await control(sim).transfer(CALL, HUMAN)
    assert not await control(sim).hangup(CALL)
    assert CALL in sim.live_calls
    assert CALL not in sim.transfers


async def test_an_unknown_call_is_false(sim: PlivoApiSimulator) -> None:
    assert not await control(sim).transfer("0b1c2d3e-0000-4000-8000-000000000009", HUMAN)
    assert sim.requests[-1].status == 404


@pytest.mark.parametrize("call_id", ["", "../../Call", "a b", "x" * 65])
async def test_an_odd_call_id_sends_nothing(sim: PlivoApiSimulator, call_id: str) -> None:
    # An empty id would be DELETE .../Call// : every call of the account.
    assert not await control(sim).hangup(call_id)
    assert not await control(sim).transfer(call_id, HUMAN)
    assert sim.requests == []


async def test_an_extension_target_is_refused_without_a_request(sim: PlivoApiSimulator) -> None:
    assert not await control(sim).transfer(CALL, TransferTarget(extension_number="104"))
    assert sim.requests == []


async def test_an_unreachable_api_is_false(sim: PlivoApiSimulator) -> None:
    client = PlivoCallControl(
        AUTH_ID,
        AUTH_TOKEN,
        transfer_url=functools.partial(transfer_url, TRANSFER_ROUTE, SECRET),
        base_url="http://127.0.0.1:9",  # discard port: connection refused
    )
    assert not await client.hangup(CALL)


async def test_a_slow_api_times_out_as_false() -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stall)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        client = PlivoCallControl(
            AUTH_ID,
            AUTH_TOKEN,
            transfer_url=functools.partial(transfer_url, TRANSFER_ROUTE, SECRET),
            base_url=f"http://127.0.0.1:{port}",
            timeout_s=0.2,
        )
        assert not await client.hangup(CALL)
    finally:
        release.set()
        await runner.cleanup()
