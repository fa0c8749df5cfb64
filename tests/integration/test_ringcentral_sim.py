"""The RingCentral simulator end to end: subscription, notifications and Call Control
driving our webhook; and ``realtime-voice simulate ringcentral`` as a process."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ai_pipeline.responder import TransferTarget
from realtime_voice.ringcentral import (
    CallControlClient,
    RetryPolicy,
    RingCentralApiError,
    RingCentralClient,
    RingCentralCredentials,
    SubscriptionClient,
)
from realtime_voice.session.manager import CallSessionManager
from realtime_voice.testing.ringcentral_sim import RingCentralSimulator
from tests.integration.test_ringcentral_webhook import live_session
from webhooks.ringcentral import (
    WEBHOOK_PATH,
    MemoryCallEventSink,
    RingCentralWebhook,
    add_ringcentral_routes,
)

TOKEN = "0d9c8b7a6f5e4d3c2b1a09f8e7d6c5b4"
TSID = "s-5e1f0c2b9d8a4e7f8a6b5c4d3e2f1a0b"
PARTY = "p-5e1f0c2b9d8a4e7f8a6b5c4d3e2f1a0b-2"


@dataclass
class Stack:
    sim: RingCentralSimulator
    webhook: RingCentralWebhook
    sink: MemoryCallEventSink
    manager: CallSessionManager
    client: RingCentralClient
    address: str


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    sim = RingCentralSimulator()
    await sim.start()
    sink = MemoryCallEventSink()
    manager = CallSessionManager(max_calls=5)
    webhook = RingCentralWebhook(verification_token=TOKEN, sink=sink, manager=manager)
    app = web.Application()
    add_ringcentral_routes(app, webhook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    creds = RingCentralCredentials(sim.url, sim.client_id, sim.client_secret, sim.jwt)
    client = RingCentralClient(creds, retry=RetryPolicy(initial_wait_s=0.0))
    try:
        yield Stack(sim, webhook, sink, manager, client, str(server.make_url(WEBHOOK_PATH)))
    finally:
        await client.aclose()
        await server.close()
        await sim.close()


async def test_a_call_from_ringing_to_transfer(stack: Stack) -> None:
    await SubscriptionClient(stack.client).create(stack.address, TOKEN)
    stack.sim.add_session(TSID, PARTY, status="Proceeding")
    assert await stack.sim.notify(TSID, "Proceeding") == [200]
    assert await stack.sim.notify(TSID, "Answered") == [200]
    session, call_leg = live_session(stack.manager, TSID)

    # The bot escalates: Call Control transfers the answered party to a human.
    await stack.webhook.join()
    leg = stack.webhook.leg_for_call(TSID)
    assert leg is not None and leg.status_code == "Answered"
    await CallControlClient(stack.client).transfer(
        leg.telephony_session_id, leg.party_id, TransferTarget(phone_number="+15555550100")
    )
    # RingCentral then reports the party gone by transfer; our live session ends.
    await stack.sim.wait_delivered()
    await stack.webhook.join()
    assert [e.kind for e in stack.sink.events] == ["ringing", "answered", "ended"]
    assert stack.sink.end_reasons[TSID] == "BlindTransfer"
    assert session.is_ended and session.end_reason == "transferred"
    assert call_leg.closed == ("transferred", 1000)


async def test_a_webhook_with_another_token_gets_401s(stack: Stack) -> None:
    await SubscriptionClient(stack.client).create(stack.address, "some-other-token")
    stack.sim.add_session(TSID, PARTY, status="Proceeding")
    assert await stack.sim.notify(TSID, "Proceeding") == [401]
    await stack.webhook.join()
    assert stack.sink.events == []


async def test_subscription_to_an_unreachable_address_fails(stack: Stack) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(RingCentralApiError) as info:
        await SubscriptionClient(stack.client).create(f"http://127.0.0.1:{port}/hook", TOKEN)
    assert (info.value.status, info.value.error_code) == (400, "SUB-525")
    assert stack.sim.subscriptions == {}


async def test_deleted_subscriptions_receive_nothing(stack: Stack) -> None:
    subs = SubscriptionClient(stack.client)
    record = await subs.create(stack.address, TOKEN)
    assert [s.id for s in await subs.list_all()] == [record.id]
    assert (await subs.get(record.id)).status == "Active"
    await subs.delete(record.id)
    stack.sim.add_session(TSID, PARTY, status="Proceeding")
    assert await stack.sim.notify(TSID, "Proceeding") == []
    assert await subs.list_all() == []


async def test_simulate_command_runs_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from realtime_voice.cli import main; sys.exit(main())",
        "simulate",
        "ringcentral",
        "--port",
        "0",
        "--client-id",
        "cli-id",
        "--client-secret",
        "cli-secret",
        "--jwt",
        "cli-jwt",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert first.startswith("RingCentral simulator on http://127.0.0.1:")
        url = first.split(" on ", 1)[1].strip()
        basic = base64.b64encode(b"cli-id:cli-secret").decode()
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                url + "/restapi/oauth/token",
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": "cli-jwt",
                },
                headers={"Authorization": f"Basic {basic}"},
            ) as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["token_type"] == "bearer"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await proc.communicate()
    assert proc.returncode == 0
