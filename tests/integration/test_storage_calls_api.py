"""GET /api/calls and GET /api/calls/{id} over real HTTP on the real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from realtime_voice.storage.database import make_engine
from realtime_voice.storage.queries import CallStore
from realtime_voice.storage.records import (
    CallEnd,
    CallStart,
    CallUpdate,
    EventRecord,
    Record,
    TurnRecord,
)
from realtime_voice.storage.writer import RecordWriter
from tests.integration import db_fixtures
from webhooks.calls_api import add_calls_routes

database_url = db_fixtures.database_url
migrated_url = db_fixtures.migrated_url

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ALICE = "+15555550101"
BOB = "+15555550102"
SHOP = "+15555559999"


def a_call(n: int, *, caller: str, state: str, outcome: str | None) -> list[Record]:
    """Call ``call-<n>``, started ``n`` minutes after T0."""
    call_id = f"call-{n:02d}"
    start = T0 + timedelta(minutes=n)
    records: list[Record] = [
        CallStart(call_id=call_id, seq=0, started_at=start, from_number=caller,
                  to_number=SHOP, protocol="ringcentral", session_id=f"s{n}"),
        TurnRecord(call_id=call_id, seq=0, speaker="bot", text="Hello, Bella Vista.",
                   started_at=start),
        TurnRecord(call_id=call_id, seq=1, speaker="caller", text="When do you open?",
                   started_at=start + timedelta(seconds=3), confidence=0.92),
        TurnRecord(call_id=call_id, seq=2, speaker="bot", text="We open at",
                   started_at=start + timedelta(seconds=5), interrupted=True, latency_ms=380.0),
        EventRecord(call_id=call_id, seq=0, at=start + timedelta(seconds=1),
                    kind="state_change", data={"from": "connected", "to": "in_progress"}),
        EventRecord(call_id=call_id, seq=1, at=start + timedelta(seconds=5), kind="barge_in"),
    ]
    if state in ("ended", "failed"):
        records.append(CallEnd(call_id=call_id, seq=1, ended_at=start + timedelta(seconds=40),
                               state=state, end_reason="completed", outcome=outcome))
    else:
        records.append(CallUpdate(call_id=call_id, seq=1, at=start, state=state))
    return records


CALLS = [
    (0, ALICE, "ended", "completed"),
    (1, BOB, "ended", "transferred"),
    (2, ALICE, "failed", "failed"),
    (3, BOB, "ended", "completed"),
    (4, ALICE, "in_progress", None),
    (5, BOB, "ended", "completed"),
    (6, ALICE, "ended", "completed"),
]


@pytest.fixture
async def api(migrated_url: str) -> AsyncIterator[tuple[str, CallStore, RecordWriter]]:
    engine = make_engine(migrated_url)
    writer = RecordWriter(engine)
    for n, caller, state, outcome in CALLS:
        writer.write(a_call(n, caller=caller, state=state, outcome=outcome))
    store = CallStore(engine)
    app = web.Application()
    add_calls_routes(app, store)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")), store, writer
    finally:
        await server.close()
        engine.dispose()


async def get(url: str, **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.json()


def ids(body: dict[str, Any]) -> list[str]:
    return [call["call_id"] for call in body["calls"]]


async def test_lists_newest_first(api: tuple[str, CallStore, RecordWriter]) -> None:
    base, _, _ = api
    status, body = await get(f"{base}/api/calls")
    assert status == 200
    assert ids(body) == [f"call-{n:02d}" for n in range(6, -1, -1)]
    assert body["next_cursor"] is None
    first = body["calls"][0]
    assert first["from_number"] == ALICE and first["to_number"] == SHOP
    assert first["started_at"] == "2025-03-01T09:06:00Z"
    assert first["ended_at"] == "2025-03-01T09:06:40Z"
    assert first["duration_s"] == pytest.approx(40.0)
    assert (first["state"], first["outcome"]) == ("ended", "completed")


FILTERS = [
    ("state=failed", [2]),
    ("state=in_progress", [4]),
    ("outcome=completed", [6, 5, 3, 0]),
    ("state=ended&outcome=transferred", [1]),
    ("number=%2B15555550102", [5, 3, 1]),
    ("number=+15555550102", [5, 3, 1]),  # an unencoded + arrives as a space
    ("number=15555550102", [5, 3, 1]),
    ("number=%2B15555559999&state=failed", [2]),
    ("since=2025-03-01T09:04:00Z", [6, 5, 4]),
    ("until=2025-03-01T09:02:00%2B00:00", [1, 0]),
    ("since=2025-03-01T10:01:00%2B01:00&until=2025-03-01T09:03:00", [2, 1]),
    ("number=%2B19999999999", []),
]


async def test_filters(api: tuple[str, CallStore, RecordWriter]) -> None:
    base, _, _ = api
    for query, expected in FILTERS:
        status, body = await get(f"{base}/api/calls?{query}")
        assert status == 200, (query, body)
        assert ids(body) == [f"call-{n:02d}" for n in expected], query


async def test_pages_follow_the_cursor_without_gaps_or_repeats(
    api: tuple[str, CallStore, RecordWriter],
) -> None:
    base, _, writer = api
    status, body = await get(f"{base}/api/calls?limit=3")
    assert status == 200
    pages = [ids(body)]
    # A call arriving while the operator pages (newest of all) must not shift later pages.
    writer.write(a_call(30, caller=ALICE, state="ended", outcome="completed"))
    while body["next_cursor"] is not None:
        status, body = await get(f"{base}/api/calls?limit=3&cursor={body['next_cursor']}")
        assert status == 200
        pages.append(ids(body))
    assert pages == [
        ["call-06", "call-05", "call-04"],
        ["call-03", "call-02", "call-01"],
        ["call-00"],
    ]


async def test_cursor_keeps_the_filters_order(api: tuple[str, CallStore, RecordWriter]) -> None:
    base, _, _ = api
    seen: list[str] = []
    url = f"{base}/api/calls?number=%2B15555550101&limit=1"
    while url:
        status, body = await get(url)
        assert status == 200
        seen += ids(body)
        cursor = body["next_cursor"]
        url = f"{base}/api/calls?number=%2B15555550101&limit=1&cursor={cursor}" if cursor else ""
    assert seen == ["call-06", "call-04", "call-02", "call-00"]


async def test_same_start_time_pages_stably(api: tuple[str, CallStore, RecordWriter]) -> None:
    base, _, writer = api
    twins = T0 + timedelta(hours=1)
    for n in range(5):
        writer.write([CallStart(call_id=f"twin-{n}", seq=0, started_at=twins)])
    seen: list[str] = []
    status, body = await get(f"{base}/api/calls?since=2025-03-01T10:00:00Z&limit=2")
    seen += ids(body)
    while body["next_cursor"]:
        status, body = await get(
            f"{base}/api/calls?since=2025-03-01T10:00:00Z&limit=2&cursor={body['next_cursor']}"
        )
        assert status == 200
        seen += ids(body)
    assert sorted(seen) == [f"twin-{n}" for n in range(5)]
    assert len(seen) == 5


async def test_detail_has_transcript_and_events_in_order(
    api: tuple[str, CallStore, RecordWriter],
) -> None:
    base, _, _ = api
    status, body = await get(f"{base}/api/calls/call-03")
    assert status == 200
    assert body["call_id"] == "call-03"
    assert [(t["seq"], t["speaker"], t["text"]) for t in body["turns"]] == [
        (0, "bot", "Hello, Bella Vista."),
        (1, "caller", "When do you open?"),
        (2, "bot", "We open at"),
    ]
    assert body["turns"][1]["confidence"] == pytest.approx(0.92)
    assert body["turns"][2]["interrupted"] is True
    assert body["turns"][2]["latency_ms"] == pytest.approx(380.0)
    assert [(e["seq"], e["kind"]) for e in body["events"]] == [(0, "state_change"), (1, "barge_in")]
    assert body["events"][0]["data"] == {"from": "connected", "to": "in_progress"}
    assert body["ringcentral"] == {"telephony_session_id": None, "party_id": None}


async def test_unknown_call_is_404(api: tuple[str, CallStore, RecordWriter]) -> None:
    base, _, _ = api
    status, body = await get(f"{base}/api/calls/no-such-call")
    assert status == 404
    assert body["error"] == "not_found"


BAD_PARAMETERS = [
    ("state=sleeping", "state"),
    ("limit=0", "limit"),
    ("limit=201", "limit"),
    ("limit=ten", "limit"),
    ("since=yesterday", "since"),
    ("until=2025-13-01", "until"),
    ("since=2025-03-02&until=2025-03-01", "until"),
    ("cursor=not-a-cursor", "cursor"),
    ("number=", "number"),
    ("stat=ended", "stat"),
]


async def test_bad_parameters_are_400_naming_them(
    api: tuple[str, CallStore, RecordWriter],
) -> None:
    base, _, _ = api
    for query, parameter in BAD_PARAMETERS:
        status, body = await get(f"{base}/api/calls?{query}")
        assert status == 400, query
        assert body["error"] == "bad_parameter"
        assert body["parameter"] == parameter, query
        assert parameter in body["message"]


async def test_api_token_is_required_when_configured(migrated_url: str) -> None:
    store = CallStore(migrated_url)
    app = web.Application()
    add_calls_routes(app, store, api_token="s3cret-token")
    server = TestServer(app)
    await server.start_server()
    try:
        base = str(server.make_url(""))
        assert (await get(f"{base}/api/calls"))[0] == 401
        assert (await get(f"{base}/api/calls", Authorization="Bearer wrong"))[0] == 401
        assert (await get(f"{base}/api/calls/x", Authorization="Bearer wrong"))[0] == 401
        status, body = await get(f"{base}/api/calls", Authorization="Bearer s3cret-token")
        assert (status, body["calls"]) == (200, [])
    finally:
        await server.close()
        store.close()


async def test_database_down_is_503() -> None:
    store = CallStore(make_engine("postgresql://postgres@127.0.0.1:1/calls", connect_timeout_s=1))
    app = web.Application()
    add_calls_routes(app, store)
    server = TestServer(app)
    await server.start_server()
    try:
        base = str(server.make_url(""))
        status, body = await get(f"{base}/api/calls")
        assert (status, body["error"]) == (503, "database_unavailable")
        status, body = await get(f"{base}/api/calls/call-1")
        assert (status, body["error"]) == (503, "database_unavailable")
    finally:
        await server.close()
        store.engine.dispose()
