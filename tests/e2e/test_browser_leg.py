"""The console's browser leg end to end: mint with the operator's token, open the media
socket as a page on the console's origin, talk, barge in, and be "transferred"; and
every way in refused: no credentials, an unknown flow, no or a foreign ``Origin``, a
token used twice or expired.

One call through the real server and the offline engines; the refusals need no call.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from realtime_voice.config_console import ConsoleSettings
from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from realtime_voice.testing.gateway_wire_browser import BrowserCall, mint_browser_call

pytestmark = pytest.mark.e2e

TOKEN = "operator-token-for-the-browser-leg-e2e"
TTL_S = 20.0


@pytest.fixture
async def server(make_server: Any) -> VoiceServer:
    # One call at a time: a minted call holds its slot until its socket comes.
    srv: VoiceServer = await make_server(
        api_token=TOKEN, max_calls=1, console=ConsoleSettings(browser_token_ttl_s=TTL_S)
    )
    return srv


def http_url(server: VoiceServer) -> str:
    return f"http://127.0.0.1:{server.http_port}"


def words(text: str | None) -> str:
    return re.sub(r"[^a-z0-9 ]+", " ", (text or "").lower())


async def mint(server: VoiceServer, **params: str) -> BrowserCall:
    async with aiohttp.ClientSession() as http:
        return await mint_browser_call(http, http_url(server), TOKEN, params)


async def stored_call(server: VoiceServer, call_id: str) -> dict[str, Any]:
    await server.recorder.flush()
    async with aiohttp.ClientSession() as http, http.get(
        f"{http_url(server)}/api/calls/{call_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as resp:
        assert resp.status == 200, await resp.text()
        record: dict[str, Any] = await resp.json()
    return record


async def test_a_browser_call_answers_is_interrupted_and_transfers(server: VoiceServer) -> None:
    options = CallOptions(
        http_url=http_url(server),
        protocol="browser",
        api_token=TOKEN,
        custom_parameters={"flow": "restaurant", "customer_name": "Ana"},
        max_call_s=60.0,
        end_after_last_line_s=2.0,
    )
    report = await SimulatedCaller(options).run(
        [
            CallerLine("What are your opening hours?"),
            CallerLine("Sorry, actually can I talk to a manager?", barge_in_after_s=0.8),
        ]
    )
    await server.manager.wait_idle()
    assert report.call_id.startswith("browser-")
    assert not report.unexpected and not report.errors, (report.unexpected, report.errors)
    # The page echoed the greeting's mark once it had played it.
    assert [m.name for m in report.marks_received][:1] == ["greeting_done"]
    assert report.clears, "no clear frame: the bot was not interrupted"
    assert any(u.interrupted for u in report.bot_utterances)
    # A browser cannot be handed to a phone: the page is told the number, the call ends.
    assert report.transfer == {"phoneNumber": "+15555550100"}
    assert report.hangup_reason == "transferred"  # the `end` before the close
    assert report.close_code == 1000
    record = await stored_call(server, report.call_id)
    assert record["protocol"] == "browser"
    assert record["from_number"] == "browser"
    assert record["end_reason"] == "transferred"
    assert record["flow"] == "restaurant"
    assert record["custom_parameters"]["customer_name"] == "Ana"
    caller_turns = [t for t in record["turns"] if t["speaker"] == "caller"]
    bot_turns = [t for t in record["turns"] if t["speaker"] != "caller"]
    assert any("hours" in words(t["text"]) for t in caller_turns), caller_turns
    assert any("manager" in words(t["text"]) for t in caller_turns), caller_turns
    assert any("open" in words(t["text"]) for t in bot_turns), bot_turns


async def test_every_way_in_without_the_console_is_refused(server: VoiceServer) -> None:
    base = http_url(server)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/browser/calls", json={}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"] == "unauthorized"
        async with http.post(
            f"{base}/api/browser/calls",
            json={"flow": "no-such-flow"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as resp:
            assert resp.status == 400
            body = await resp.json()
            assert body["error"] == "unknown_flow" and "restaurant" in body["message"]

    call = await mint(server)
    assert call.expires_in == TTL_S
    async with aiohttp.ClientSession() as http, http.post(
        f"{base}/api/browser/calls", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as resp:
        assert resp.status == 503
        assert (await resp.json())["error"] == "at_capacity"
    assert abs(int(call.token.split(".")[0]) - (time.time() + TTL_S)) <= 2
    console = Origin(base)  # the page's origin: the HTTP plane on the same host
    for headers in ({}, {"Origin": "https://evil.example"}):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(call.url, additional_headers=headers, proxy=None):
                pass
        assert refused.value.response.status_code == 403
        assert "Origin" in json.loads(refused.value.response.body or b"{}")["message"]

    # The console's origin gets in; the same token a second time does not.
    start = json.dumps({"event": "start", "call_id": call.call_id, "sample_rate": 16000})
    async with connect(call.url, origin=console, proxy=None) as ws:
        await ws.send(start)
        started = json.loads(await ws.recv())
        assert started == {
            "event": "started", "call_id": call.call_id, "sample_rate": 16000, "frame_bytes": 640
        }
        await ws.send('{"event":"hangup"}')
        ends = [m async for m in ws if isinstance(m, str) and '"end"' in m]
        assert json.loads(ends[-1]) == {"event": "end", "reason": "caller_hangup"}
    await server.manager.wait_idle()
    expired = server.tokens.mint(call.call_id, ttl_s=-5)
    for url, reason in ((call.url, "token reused"), (call.url.split("&token=")[0]
                        + f"&token={expired}", "token expired")):
        async with connect(url, origin=console, proxy=None) as ws:
            await ws.send(start)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, reason)
