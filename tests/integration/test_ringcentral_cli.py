"""``realtime-voice ringcentral subscribe|list|delete`` against the REST simulator, with
the simulator performing the real handshake against our webhook."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from realtime_voice.cli import ringcentral as rc_cli
from realtime_voice.testing.ringcentral_sim import RingCentralSimulator
from webhooks.ringcentral import (
    WEBHOOK_PATH,
    MemoryCallEventSink,
    RingCentralWebhook,
    add_ringcentral_routes,
)

TOKEN = "9f4b2c1d8e7a6b5c4d3e2f1a0b9c8d7e"


@dataclass
class Stack:
    sim: RingCentralSimulator
    webhook: RingCentralWebhook
    sink: MemoryCallEventSink
    base: str  # our server's base URL


@pytest.fixture
async def stack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[Stack]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    sim = RingCentralSimulator()
    await sim.start()
    sink = MemoryCallEventSink()
    webhook = RingCentralWebhook(verification_token=TOKEN, sink=sink, reorder_window_s=0.0)
    app = web.Application()
    add_ringcentral_routes(app, webhook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    for name, value in (
        ("RC_SERVER_URL", sim.url),
        ("RC_CLIENT_ID", sim.client_id),
        ("RC_CLIENT_SECRET", sim.client_secret),
        ("RC_JWT_TOKEN", sim.jwt),
        ("RC_WEBHOOK_VERIFICATION_TOKEN", TOKEN),
    ):
        monkeypatch.setenv(name, value)
    try:
        yield Stack(sim, webhook, sink, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()
        await sim.close()


async def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="realtime-voice")
    rc_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["ringcentral", *argv])
    # The command runs its own event loop, as from a terminal; ours serves the simulator
    # and the webhook meanwhile.
    code: int = await asyncio.to_thread(args.func, args)
    return code


async def test_subscribe_creates_the_subscription_after_a_real_handshake(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    address = stack.base + WEBHOOK_PATH
    assert await cli("subscribe", "--url", address) == 0
    (record,) = stack.sim.subscriptions.values()
    out = capsys.readouterr().out
    assert f"subscribed: {record['id']}" in out
    assert record["deliveryMode"]["address"] == address
    (request,) = stack.sim.requests_to("POST", "/restapi/v1.0/subscription")
    inbound = "/restapi/v1.0/account/~/extension/~/telephony/sessions?direction=Inbound"
    assert request.json() == {
        "eventFilters": [inbound],
        "deliveryMode": {
            "transportType": "WebHook",
            "address": address,
            "verificationToken": TOKEN,
        },
        "expiresIn": 630720000,
    }
    assert request.bearer is not None
    assert stack.webhook.stats.handshakes == 1

    # RingCentral now delivers to us, with our verification token.
    stack.sim.add_session("s-cli-1", "p-cli-1-2", status="Proceeding")
    assert await stack.sim.notify("s-cli-1", "Proceeding") == [200]
    await stack.webhook.join()
    assert [e.kind for e in stack.sink.events] == ["ringing"]


async def test_subscribe_adds_the_webhook_path_and_account_wide_filter(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await cli("subscribe", "--url", stack.base, "--account-wide",
                     "--expires-in", "86400", "--json")
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["address"] == stack.base + WEBHOOK_PATH
    assert printed["event_filters"] == [
        "/restapi/v1.0/account/~/telephony/sessions?direction=Inbound"
    ]
    assert printed["expires_in"] == 86400


async def test_subscribe_fails_when_the_handshake_fails(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    async def plain(request: web.Request) -> web.Response:
        return web.Response(text="hello")  # no echoed token, text/plain, a body

    app = web.Application()
    app.router.add_post("/hook", plain)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        assert await cli("subscribe", "--url", str(server.make_url("/hook"))) == 1
    finally:
        await server.close()
    err = capsys.readouterr().err
    assert "SUB-525" in err
    assert stack.sim.subscriptions == {}


async def test_list_and_delete(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli("list") == 0
    assert "no subscriptions" in capsys.readouterr().out
    assert await cli("subscribe", "--url", stack.base) == 0
    (sid,) = stack.sim.subscriptions
    capsys.readouterr()
    assert await cli("list") == 0
    out = capsys.readouterr().out
    assert sid in out and "Active" in out and stack.base + WEBHOOK_PATH in out
    assert await cli("list", "--json") == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [sid]
    assert await cli("delete", sid) == 0
    assert f"deleted: {sid}" in capsys.readouterr().out
    assert stack.sim.subscriptions == {}
    assert await cli("delete", sid) == 1
    assert "404 CMN-102" in capsys.readouterr().err


async def test_missing_verification_token_is_a_usage_error(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RC_WEBHOOK_VERIFICATION_TOKEN")
    assert await cli("subscribe", "--url", stack.base) == 2
    assert "RC_WEBHOOK_VERIFICATION_TOKEN" in capsys.readouterr().err
    assert stack.sim.requests_to("POST", "/subscription") == []


async def test_missing_credentials_name_the_variable(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RC_JWT_TOKEN")
    assert await cli("list") == 2
    assert "RC_JWT_TOKEN" in capsys.readouterr().err
    assert stack.sim.requests == []


async def test_refused_credentials_exit_1(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RC_JWT_TOKEN", "revoked-jwt")
    assert await cli("list") == 1
    assert "refused the credentials: invalid_grant" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://voice.example.com", "ftp://x", "voice.example.com"])
async def test_url_must_be_https(
    stack: Stack, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("subscribe", "--url", url) == 2
    assert "https://" in capsys.readouterr().err
    assert stack.sim.requests == []


def test_webhook_address() -> None:
    assert rc_cli.webhook_address("https://v.example.com") == (
        "https://v.example.com/api/ringcentral/webhook"
    )
    assert rc_cli.webhook_address("https://v.example.com/") == (
        "https://v.example.com/api/ringcentral/webhook"
    )
    assert rc_cli.webhook_address("https://v.example.com/custom/hook") == (
        "https://v.example.com/custom/hook"
    )
