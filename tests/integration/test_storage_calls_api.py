"""The calls API over real HTTP on the real database: list, detail, recording, erasure."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from realtime_voice.storage.database import make_engine
from realtime_voice.storage.models import CallEvent, Turn
from realtime_voice.storage.queries import CallStore
from realtime_voice.storage.recorder import CallRecorder
from realtime_voice.storage.recording import Recordings
from realtime_voice.storage.recording_wav import HEADER_BYTES, wav_header
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
from webhooks.authorize import bearer_authorizer
from webhooks.calls_api import add_calls_routes

database_url = db_fixtures.database_url
migrated_url = db_fixtures.migrated_url

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
ALICE = "+15555550101"
BOB = "+15555550102"
SHOP = "+15555559999"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


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


@dataclass
class Api:
    base: str
    store: CallStore
    writer: RecordWriter
    recordings: Recordings
    live: set[str]


@pytest.fixture
async def api(migrated_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    engine = make_engine(migrated_url)
    writer = RecordWriter(engine)
    for n, caller, state, outcome in CALLS:
        writer.write(a_call(n, caller=caller, state=state, outcome=outcome))
    store = CallStore(engine)
    recordings = Recordings(tmp_path / "recordings", enabled=False)
    live: set[str] = set()
    app = web.Application()
    add_calls_routes(app, store, auth=bearer_authorizer(TOKEN), recordings=recordings,
                     is_live=live.__contains__)
    server = TestServer(app)
    await server.start_server()
    try:
        yield Api(str(server.make_url("")), store, writer, recordings, live)
    finally:
        await server.close()
        engine.dispose()


async def get(url: str, **headers: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=AUTH | headers) as resp:
        return resp.status, await resp.json()


def ids(body: dict[str, Any]) -> list[str]:
    return [call["call_id"] for call in body["calls"]]


async def test_lists_newest_first(api: Api) -> None:
    base = api.base
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


async def test_filters(api: Api) -> None:
    base = api.base
    for query, expected in FILTERS:
        status, body = await get(f"{base}/api/calls?{query}")
        assert status == 200, (query, body)
        assert ids(body) == [f"call-{n:02d}" for n in expected], query


async def test_pages_follow_the_cursor_without_gaps_or_repeats(
    api: Api,
) -> None:
    base, writer = api.base, api.writer
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


async def test_cursor_keeps_the_filters_order(api: Api) -> None:
    base = api.base
    seen: list[str] = []
    url = f"{base}/api/calls?number=%2B15555550101&limit=1"
    while url:
        status, body = await get(url)
        assert status == 200
        seen += ids(body)
        cursor = body["next_cursor"]
        url = f"{base}/api/calls?number=%2B15555550101&limit=1&cursor={cursor}" if cursor else ""
    assert seen == ["call-06", "call-04", "call-02", "call-00"]


async def test_same_start_time_pages_stably(api: Api) -> None:
    base, writer = api.base, api.writer
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
    api: Api,
) -> None:
    base = api.base
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


async def test_unknown_call_is_404(api: Api) -> None:
    base = api.base
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
    api: Api,
) -> None:
    base = api.base
    for query, parameter in BAD_PARAMETERS:
        status, body = await get(f"{base}/api/calls?{query}")
        assert status == 400, query
        assert body["error"] == "bad_parameter"
        assert body["parameter"] == parameter, query
        assert parameter in body["message"]


async def test_every_route_needs_the_operators_token(api: Api) -> None:
    base = api.base
    async with aiohttp.ClientSession() as http:
        for method, path in [("GET", "/api/calls"), ("GET", "/api/calls/call-03"),
                             ("GET", "/api/calls/call-03/recording"),
                             ("DELETE", "/api/calls/call-03")]:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                async with http.request(method, base + path, headers=headers) as resp:
                    assert resp.status == 401, (method, path, headers)
                    assert (await resp.json())["error"] == "unauthorized"
    status, body = await get(f"{base}/api/calls/call-03")
    assert (status, body["call_id"]) == (200, "call-03")  # nothing was deleted


async def test_database_down_is_503(tmp_path: Path) -> None:
    store = CallStore(make_engine("postgresql://postgres@127.0.0.1:1/calls", connect_timeout_s=1))
    app = web.Application()
    add_calls_routes(app, store, auth=bearer_authorizer(TOKEN),
                     recordings=Recordings(tmp_path, enabled=False))
    server = TestServer(app)
    await server.start_server()
    try:
        base = str(server.make_url(""))
        status, body = await get(f"{base}/api/calls")
        assert (status, body["error"]) == (503, "database_unavailable")
        status, body = await get(f"{base}/api/calls/call-1")
        assert (status, body["error"]) == (503, "database_unavailable")
        async with aiohttp.ClientSession() as http, http.delete(
            f"{base}/api/calls/call-1", headers=AUTH
        ) as resp:
            assert (resp.status, (await resp.json())["error"]) == (503, "database_unavailable")
    finally:
        await server.close()
        store.engine.dispose()


# ---------------------------------------------------------------- recordings


def a_recording(api: Api, call_id: str, seconds: float = 1.0) -> bytes:
    """A stereo 8 kHz recording as a crashed writer leaves it: samples, a stale header."""
    samples = np.arange(int(seconds * 8000) * 2, dtype=np.int16)
    path = api.recordings.files.path_for(call_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_header(8000, 0) + samples.tobytes())
    return samples.tobytes()


async def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=AUTH | headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_detail_names_the_recording(api: Api) -> None:
    a_recording(api, "call-03")
    status, body = await get(f"{api.base}/api/calls/call-03")
    assert status == 200
    assert body["recording"] == {
        "url": "/api/calls/call-03/recording",
        "bytes": HEADER_BYTES + 8000 * 4,
        "duration_s": 1.0,
    }
    status, body = await get(f"{api.base}/api/calls/call-01")
    assert (status, body["recording"]) == (200, None)


async def test_recording_is_served_whole_with_a_repaired_header(api: Api) -> None:
    samples = a_recording(api, "call-03")
    status, headers, body = await fetch(f"{api.base}/api/calls/call-03/recording")
    assert status == 200
    assert headers["Content-Type"] == "audio/wav"
    assert headers["Content-Disposition"] == 'inline; filename="call-03.wav"'
    assert headers["Accept-Ranges"] == "bytes"
    assert body == wav_header(8000, len(samples)) + samples


async def test_recording_range_requests(api: Api) -> None:
    samples = a_recording(api, "call-03")
    whole = wav_header(8000, len(samples)) + samples
    url = f"{api.base}/api/calls/call-03/recording"
    status, headers, body = await fetch(url, Range="bytes=0-99")
    assert (status, body) == (206, whole[:100])
    assert headers["Content-Range"] == f"bytes 0-99/{len(whole)}"
    status, headers, body = await fetch(url, Range="bytes=-100")
    assert (status, body) == (206, whole[-100:])
    assert headers["Content-Range"] == f"bytes {len(whole) - 100}-{len(whole) - 1}/{len(whole)}"
    status, headers, _ = await fetch(url, Range=f"bytes={len(whole)}-")
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(whole)}"


async def test_no_recording_and_hostile_ids_are_404(api: Api) -> None:
    for call_id in ("call-01", "no-such-call", "..%2F..%2Fetc%2Fpasswd", "%00", "x" * 300):
        status, body = await get(f"{api.base}/api/calls/{call_id}/recording")
        assert (status, body["error"]) == (404, "not_found"), call_id


# ---------------------------------------------------------------- erasure


async def delete(url: str, **headers: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.delete(url, headers=AUTH | headers) as resp:
        return resp.status, await resp.read()


def json_body(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(raw)
    return value


def rows(api: Api, model: type[Turn] | type[CallEvent]) -> int:
    with api.store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


async def test_delete_erases_the_call_its_transcript_and_its_recording(api: Api) -> None:
    a_recording(api, "call-03")
    turns, events = rows(api, Turn), rows(api, CallEvent)
    status, body = await delete(f"{api.base}/api/calls/call-03")
    assert (status, body) == (204, b"")
    assert (await get(f"{api.base}/api/calls/call-03"))[0] == 404
    assert (await get(f"{api.base}/api/calls/call-03/recording"))[0] == 404
    assert not api.recordings.files.path_for("call-03").exists()
    assert (rows(api, Turn), rows(api, CallEvent)) == (turns - 3, events - 2)
    status, body = await get(f"{api.base}/api/calls")
    assert "call-03" not in ids(body) and len(body["calls"]) == len(CALLS) - 1
    status, _ = await delete(f"{api.base}/api/calls/call-03")
    assert status == 404


async def test_delete_refuses_a_live_call_and_unknown_ids(api: Api) -> None:
    api.live.add("call-04")
    status, body = await delete(f"{api.base}/api/calls/call-04")
    assert status == 409
    assert json_body(body)["error"] == "call_live"
    assert (await get(f"{api.base}/api/calls/call-04"))[0] == 200
    status, body = await delete(f"{api.base}/api/calls/no-such-call")
    assert (status, json_body(body)["error"]) == (404, "not_found")


async def test_a_recording_without_a_record_is_still_erased(api: Api) -> None:
    a_recording(api, "lost-record")  # the database never got this call
    status, _ = await delete(f"{api.base}/api/calls/lost-record")
    assert status == 204
    assert not api.recordings.files.path_for("lost-record").exists()


async def test_records_still_queued_are_written_before_the_erasure(
    migrated_url: str, tmp_path: Path
) -> None:
    # A call that just ended: its last records are still in the recorder's queue. The
    # erasure must not run before them, or they would write the call back afterwards.
    recorder = CallRecorder(migrated_url, spool_dir=tmp_path / "spool", flush_interval_s=5.0)
    await recorder.start()
    store = CallStore(recorder.engine)
    app = web.Application()
    add_calls_routes(app, store, auth=bearer_authorizer(TOKEN), records=recorder)
    server = TestServer(app)
    await server.start_server()
    try:
        for record in a_call(9, caller=ALICE, state="ended", outcome="completed"):
            recorder.record(record)
        status, _ = await delete(str(server.make_url("/api/calls/call-09")))
        assert status == 204
        await recorder.flush()
        assert await store.get_call("call-09") is None
    finally:
        await server.close()
        await recorder.close()


async def test_records_waiting_in_the_spool_make_erasure_wait(tmp_path: Path,
                                                             migrated_url: str) -> None:
    class SpooledRecords:
        """Records left in the spool by an outage (they could name the call)."""

        spool_depth = 3

        async def flush(self) -> None:
            return None

    store = CallStore(migrated_url)
    app = web.Application()
    add_calls_routes(app, store, auth=bearer_authorizer(TOKEN), records=SpooledRecords())
    server = TestServer(app)
    await server.start_server()
    try:
        status, body = await delete(str(server.make_url("/api/calls/call-00")))
        assert (status, json_body(body)["error"]) == (503, "records_pending")
    finally:
        await server.close()
        store.close()
