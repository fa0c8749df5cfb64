"""Telnyx Call Control (transfer, hang-up) against the Telnyx API simulator, over real HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from ai_pipeline.responder import TransferTarget
from realtime_voice.carriers.telnyx import TelnyxCallControl
from realtime_voice.legs.base import PlatformCallControl
from realtime_voice.testing.telnyx_sim import TelnyxApiSimulator

KEY = "KEY0190a1b2c3d4e5f6_sim"
CALL = "v3:MdI91X4lWFEs7IgbBEOT9M4AigoY08M0WWZFISt1Yw2axZ_IiE4pqg"
HUMAN = TransferTarget(phone_number="+15555550100")


@pytest.fixture
async def sim() -> AsyncIterator[TelnyxApiSimulator]:
    simulator = TelnyxApiSimulator(api_key=KEY)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()


@pytest.fixture
async def control(sim: TelnyxApiSimulator) -> AsyncIterator[TelnyxCallControl]:
    client = TelnyxCallControl(KEY, base_url=sim.url + "/", timeout_s=5.0)
    try:
        yield client
    finally:
        await client.close()


def test_it_is_a_platform_call_control() -> None:
    control: PlatformCallControl = TelnyxCallControl(KEY)
    assert control is not None


async def test_transfer_posts_the_number_with_the_bearer_key(
    sim: TelnyxApiSimulator, control: TelnyxCallControl
) -> None:
    sim.add_call(CALL)
    assert await control.transfer(CALL, HUMAN) is True
    (request,) = sim.requests
    assert request.path == f"/v2/calls/{CALL}/actions/transfer"
    assert (request.method, request.call_control_id, request.action) == ("POST", CALL, "transfer")
    assert request.bearer == KEY
    assert request.body == {"to": "+15555550100"}
    assert sim.calls[CALL].transferred_to == "+15555550100"


async def test_an_id_with_a_slash_stays_one_path_segment(
    sim: TelnyxApiSimulator, control: TelnyxCallControl
) -> None:
    assert await control.hangup("v3:a/../b") is True
    (request,) = sim.requests
    assert request.path == "/v2/calls/v3:a%2F..%2Fb/actions/hangup"
    assert request.call_control_id == "v3:a/../b"


async def test_hangup_posts_to_the_hangup_action(
    sim: TelnyxApiSimulator, control: TelnyxCallControl
) -> None:
    sim.add_call(CALL)
    assert await control.hangup(CALL) is True
    (request,) = sim.requests
    assert (request.action, request.body, request.status) == ("hangup", {}, 200)
    assert sim.calls[CALL].active is False


async def test_hanging_up_an_ended_call_counts_as_done(
    sim: TelnyxApiSimulator, control: TelnyxCallControl, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_call(CALL)
    assert await control.hangup(CALL) is True
    with caplog.at_level(logging.ERROR, logger="realtime_voice.carriers.telnyx"):
        assert await control.hangup(CALL) is True  # 422 90018: already ended
    assert [r.status for r in sim.requests] == [200, 422]
    assert caplog.records == []
    # A transfer of an ended call, though, did not happen.
    assert await control.transfer(CALL, HUMAN) is False


async def test_an_unknown_call_is_false_and_logged_naming_it(
    sim: TelnyxApiSimulator, control: TelnyxCallControl, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_call("v3:another")
    with caplog.at_level(logging.ERROR, logger="realtime_voice.carriers.telnyx"):
        assert await control.transfer(CALL, HUMAN) is False
        assert await control.hangup(CALL) is False
    assert [r.status for r in sim.requests] == [404, 404]
    assert len(caplog.records) == 2
    assert all(CALL in r.getMessage() and "404" in r.getMessage() for r in caplog.records)


async def test_a_wrong_key_is_401_and_false(sim: TelnyxApiSimulator) -> None:
    client = TelnyxCallControl("not-the-key", base_url=sim.url)
    try:
        assert await client.hangup(CALL) is False
    finally:
        await client.close()
    assert sim.requests[0].status == 401
    assert sim.requests[0].bearer == "not-the-key"


@pytest.mark.parametrize("status", [500, 503, 429, 422])
async def test_carrier_failures_are_false(
    sim: TelnyxApiSimulator, control: TelnyxCallControl, status: int
) -> None:
    sim.fail_next(status, times=2)
    assert await control.transfer(CALL, HUMAN) is False
    assert await control.hangup(CALL) is False
    assert [r.status for r in sim.requests] == [status, status]
    assert await control.hangup(CALL) is True  # the fault is over


async def test_an_extension_target_is_refused_without_a_request(
    sim: TelnyxApiSimulator, control: TelnyxCallControl, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="realtime_voice.carriers.telnyx"):
        assert await control.transfer(CALL, TransferTarget(extension_number="104")) is False
    assert sim.requests == []
    assert CALL in caplog.text


async def test_an_unreachable_api_is_false_not_an_exception(
    sim: TelnyxApiSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    url = sim.url
    await sim.close()  # nothing listens there any more
    client = TelnyxCallControl(KEY, base_url=url, timeout_s=2.0)
    try:
        with caplog.at_level(logging.ERROR, logger="realtime_voice.carriers.telnyx"):
            assert await client.transfer(CALL, HUMAN) is False
            assert await client.hangup(CALL) is False
    finally:
        await client.close()
    assert len(caplog.records) == 2 and all(CALL in r.getMessage() for r in caplog.records)


async def test_a_timeout_is_false() -> None:
    # A server that accepts the connection and never answers: the explicit timeout ends it.
    accepted = asyncio.Event()
    finished = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # until the client gives up and closes
        writer.close()
        await writer.wait_closed()
        finished.set()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = TelnyxCallControl(KEY, base_url=f"http://127.0.0.1:{port}", timeout_s=0.2)
    try:
        assert await client.hangup(CALL) is False
        assert accepted.is_set()
    finally:
        await client.close()
        await asyncio.wait_for(finished.wait(), 5)  # the server side saw the close
        server.close()
        await server.wait_closed()
