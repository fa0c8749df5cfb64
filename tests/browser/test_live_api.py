"""The live calls API over a real server and a real simulated call: what an operator's
client sees (the snapshot, the call pushed as it starts, speaks and ends), the control
routes, and the refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from realtime_voice.server.app import VoiceServer
from realtime_voice.testing.caller import CallerLine, CallOptions, SimulatedCaller
from tests.browser.conftest import base_url, bearer

pytestmark = pytest.mark.asyncio(loop_scope="module")

WAIT_S = 30.0


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    """Parse a text/event-stream into (event, data) pairs (comments skipped)."""
    event, data = "message", ""
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield event, json.loads(data)
            event, data = "message", ""
        elif line.startswith(":"):
            continue
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data += line[6:]


async def until(events: AsyncIterator[tuple[str, Any]], kind: str,
                match: Any = None) -> dict[str, Any]:
    """The next event of ``kind`` (whose data ``match`` accepts), within WAIT_S."""
    async def find() -> dict[str, Any]:
        async for name, data in events:
            if name == kind and (match is None or match(data)):
                return data  # type: ignore[no-any-return]
        raise AssertionError(f"stream ended before {kind}")
    return await asyncio.wait_for(find(), WAIT_S)


async def test_operator_routes_refuse_without_credentials(console_server: VoiceServer) -> None:
    async with aiohttp.ClientSession(base_url(console_server)) as http:
        for method, path in [("GET", "/api/calls/live"), ("GET", "/api/calls/live/events"),
                             ("POST", "/api/calls/x/end"), ("POST", "/api/calls/x/transfer"),
                             ("GET", "/api/flows"), ("GET", "/api/stats/latency")]:
            async with http.request(method, path) as response:
                assert response.status == 401, path
                assert (await response.json())["error"] == "unauthorized"
        async with http.get("/api/calls/live", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        for page in ("/", "/live", "/calls", "/calls/abc"):
            async with http.get(page, allow_redirects=False) as response:
                assert response.status in (302, 303), page
                assert response.headers["Location"].startswith("/login?next=")


async def test_static_files_and_flows(console_server: VoiceServer) -> None:
    async with aiohttp.ClientSession(base_url(console_server), headers=bearer()) as http:
        async with http.get("/static/js/api.js") as response:
            assert response.status == 200
            assert response.content_type == "text/javascript"
        async with http.get("/static/vendor/chart.umd.min.js") as response:
            assert response.status == 200
            assert b"Chart.js v4" in (await response.read())[:200]
        for bad in ("/static/../console_pages.py", "/static/%2e%2e/live_api.py",
                    "/static/nope.js"):
            async with http.get(bad) as response:
                assert response.status == 404, bad
        async with http.get("/api/flows") as response:
            flows = {f["name"]: f for f in (await response.json())["flows"]}
        assert {"restaurant", "real_estate"} <= flows.keys()
        assert isinstance(flows["restaurant"]["params"], dict)
        async with http.get("/api/stats/latency") as response:
            stats = await response.json()
        turn = stats["histograms"]["turn"]
        assert turn["buckets"][-1]["le"] is None
        assert sum(b["count"] for b in turn["buckets"]) == turn["count"]


async def test_a_live_call_is_pushed_then_ended_by_the_operator(
    console_server: VoiceServer,
) -> None:
    caller = SimulatedCaller(CallOptions(
        http_url=base_url(console_server), transcribe_bot=False, max_call_s=40.0,
        end_after_last_line_s=30.0,
    ))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=WAIT_S)
    async with aiohttp.ClientSession(base_url(console_server), headers=bearer(),
                                     timeout=timeout) as http:
        async with http.get("/api/calls/live/events") as stream:
            assert stream.status == 200
            assert stream.content_type == "text/event-stream"
            events = sse_events(stream)
            assert (await until(events, "snapshot")) == {"calls": []}
            call = asyncio.create_task(caller.run([CallerLine("What time do you open?")]))
            try:
                started = await until(events, "call_started")
                call_id = started["call_id"]
                assert started["carrier"] == "ringcentral"
                heard = await until(events, "transcript",
                                    lambda d: d["role"] == "caller" and d["final"])
                assert "open" in heard["text"].lower()
                async with http.get("/api/calls/live") as response:
                    live = (await response.json())["calls"]
                assert [c["call_id"] for c in live] == [call_id]
                assert live[0]["state"] == "in_progress"
                assert live[0]["from_number"] == "+15555551234"
                async with http.post(f"/api/calls/{call_id}/transfer",
                                     json={"to": "not a number"}) as response:
                    assert response.status == 400
                    assert (await response.json())["parameter"] == "to"
                async with http.post(f"/api/calls/{call_id}/end") as response:
                    assert response.status == 202
                ended = await until(events, "call_ended")
                assert ended["call_id"] == call_id
                assert ended["end_reason"] == "operator_hangup"
                report = await asyncio.wait_for(call, WAIT_S)
                assert report.hangup_reason == "operator_hangup"
            finally:
                if not call.done():
                    call.cancel()
        async with http.post(f"/api/calls/{call_id}/end") as response:
            assert response.status == 404
            assert (await response.json())["error"] == "not_found"
        async with http.get("/api/calls/live") as response:
            assert (await response.json())["calls"] == []
    # The server notices the closed stream and frees its watcher's slot.
    async def released() -> None:
        # The count is the server's own state, with no event to wait on: poll it briefly.
        while console_server.live.subscribers:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await asyncio.wait_for(released(), 5.0)
