"""`VonageCallControl` against the Vonage Voice API simulator, over real HTTP.

The simulator checks the RS256 application JWT with the public key of a key pair made
here, as Vonage checks it with the application's public key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ai_pipeline.responder import TransferTarget
from realtime_voice.carriers.vonage import VonageCallControl, transfer_body
from realtime_voice.legs.base import PlatformCallControl
from realtime_voice.testing.vonage_sim import VonageApiSimulator

APP_ID = "aaaaaaaa-1111-2222-3333-0123456789ab"
UUID = "63f61863-4a51-4f6b-86e1-46edebcf9356"


def _pem_pair() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


PRIVATE, PUBLIC = _pem_pair()
OTHER_PRIVATE, _ = _pem_pair()


@pytest.fixture
async def sim() -> AsyncIterator[VonageApiSimulator]:
    simulator = VonageApiSimulator(APP_ID, PUBLIC)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.fixture
async def control(sim: VonageApiSimulator) -> AsyncIterator[VonageCallControl]:
    client = VonageCallControl(APP_ID, PRIVATE, base_url=sim.url, timeout_s=5.0)
    try:
        yield client
    finally:
        await client.close()


def test_it_is_a_platform_call_control() -> None:
    client: PlatformCallControl = VonageCallControl(APP_ID, PRIVATE)
    assert client is not None


def test_the_transfer_body_is_vonages_ncco_destination() -> None:
    assert transfer_body("+447700900001") == {
        "action": "transfer",
        "destination": {
            "type": "ncco",
            "ncco": [
                {"action": "connect", "endpoint": [{"type": "phone", "number": "447700900001"}]}
            ],
        },
    }


async def test_transfer_puts_the_ncco_on_the_call(
    sim: VonageApiSimulator, control: VonageCallControl
) -> None:
    call = sim.add_call(UUID)
    assert await control.transfer(UUID, TransferTarget(phone_number="+447700900001"))
    (request,) = sim.requests
    assert (request.method, request.path, request.status) == ("PUT", f"/v1/calls/{UUID}", 204)
    assert request.body == transfer_body("+447700900001")
    assert request.claims is not None and request.claims["application_id"] == APP_ID
    assert call.transfers == [transfer_body("+447700900001")["destination"]["ncco"]]
    assert call.active


async def test_hangup_ends_the_call(sim: VonageApiSimulator, control: VonageCallControl) -> None:
    call = sim.add_call(UUID)
    assert await control.hangup(UUID)
    assert sim.requests[-1].body == {"action": "hangup"}
    assert not call.active
    # A second hang-up of a finished call is refused by Vonage (and so by us).
    assert not await control.hangup(UUID)


async def test_every_request_carries_a_fresh_token(
    sim: VonageApiSimulator, control: VonageCallControl
) -> None:
    await control.transfer(UUID, TransferTarget(phone_number="+447700900001"))
    await control.hangup(UUID)
    jtis = [r.claims["jti"] for r in sim.requests if r.claims is not None]
    assert len(jtis) == 2 and jtis[0] != jtis[1]


async def test_an_extension_is_refused_without_a_request(
    sim: VonageApiSimulator, control: VonageCallControl, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        assert not await control.transfer(UUID, TransferTarget(extension_number="104"))
    assert sim.requests == []
    assert UUID in caplog.text


async def test_a_key_vonage_does_not_know_is_refused(sim: VonageApiSimulator) -> None:
    client = VonageCallControl(APP_ID, OTHER_PRIVATE, base_url=sim.url)
    try:
        assert not await client.hangup(UUID)
    finally:
        await client.close()
    assert sim.requests[-1].status == 401


async def test_another_application_id_is_refused(sim: VonageApiSimulator) -> None:
    client = VonageCallControl("some-other-app", PRIVATE, base_url=sim.url)
    try:
        assert not await client.hangup(UUID)
    finally:
        await client.close()
    assert sim.requests[-1].status == 401


async def test_an_unknown_call_is_false_with_a_log_line(
    sim: VonageApiSimulator, control: VonageCallControl, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_call(UUID)
    with caplog.at_level(logging.ERROR):
        assert not await control.hangup("ffffffff-0000-0000-0000-000000000000")
    assert sim.requests[-1].status == 404
    assert "ffffffff-0000-0000-0000-000000000000" in caplog.text
    assert "HTTP 404" in caplog.text


@pytest.mark.parametrize("status", [400, 429, 500, 503])
async def test_failures_on_demand_are_false(
    sim: VonageApiSimulator, control: VonageCallControl, status: int
) -> None:
    sim.fail_next(status)
    assert not await control.transfer(UUID, TransferTarget(phone_number="+447700900001"))
    assert sim.requests[-1].status == status
    assert await control.hangup(UUID)  # the fault was one request only


async def test_an_unreachable_api_is_false(caplog: pytest.LogCaptureFixture) -> None:
    # A port that was just free: nothing listens there.
    probe = web.AppRunner(web.Application())
    await probe.setup()
    site = web.TCPSite(probe, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await probe.cleanup()
    client = VonageCallControl(APP_ID, PRIVATE, base_url=f"http://127.0.0.1:{port}")
    try:
        with caplog.at_level(logging.ERROR):
            assert not await client.hangup(UUID)
    finally:
        await client.close()
    assert UUID in caplog.text


async def test_a_slow_api_times_out(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_put("/v1/calls/{uuid}", stall)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = VonageCallControl(APP_ID, PRIVATE, base_url=f"http://127.0.0.1:{port}", timeout_s=0.2)
    try:
        with caplog.at_level(logging.ERROR):
            assert not await client.hangup(UUID)
    finally:
        release.set()
        await client.close()
        await runner.cleanup()
    assert "hangup of call" in caplog.text
