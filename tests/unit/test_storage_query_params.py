"""Parsing GET /api/calls parameters, and the paging cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from realtime_voice.storage.queries import InvalidCursorError, decode_cursor, encode_cursor
from webhooks.calls_api import BadParameterError, parse_calls_query


def test_defaults() -> None:
    query = parse_calls_query({})
    assert query.limit == 50 and query.cursor is None
    f = query.filters
    assert (f.state, f.outcome, f.numbers, f.since, f.until) == (None, None, (), None, None)


def test_every_filter() -> None:
    cursor = encode_cursor(datetime(2025, 1, 1, tzinfo=UTC), 7)
    query = parse_calls_query({
        "state": "ended", "outcome": "transferred", "number": "+15555551234",
        "since": "2025-01-01T00:00:00Z", "until": "2025-01-02T01:00:00+01:00",
        "limit": "10", "cursor": cursor,
    })
    f = query.filters
    assert (f.state, f.outcome, f.numbers) == ("ended", "transferred", ("+15555551234",))
    assert f.since == datetime(2025, 1, 1, tzinfo=UTC)
    assert f.until == datetime(2025, 1, 2, tzinfo=UTC)
    assert (query.limit, query.cursor) == (10, cursor)


@pytest.mark.parametrize(
    ("raw", "numbers"),
    [
        (" 15555551234", ("+15555551234", "15555551234")),  # "+" decoded as a space
        ("15555551234", ("+15555551234", "15555551234")),
        ("104", ("+104", "104")),
        ("+15555551234", ("+15555551234",)),
    ],
)
def test_number_forms(raw: str, numbers: tuple[str, ...]) -> None:
    assert parse_calls_query({"number": raw}).filters.numbers == numbers


def test_a_time_without_zone_is_utc_and_an_unencoded_plus_offset_is_understood() -> None:
    assert parse_calls_query({"since": "2025-01-01T10:00:00"}).filters.since == datetime(
        2025, 1, 1, 10, tzinfo=UTC)
    since = parse_calls_query({"since": "2025-01-01T10:00:00 02:00"}).filters.since
    assert since == datetime(2025, 1, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    spaced = parse_calls_query({"since": "2025-01-01 10:00:00"}).filters.since
    assert spaced == datetime(2025, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"state": "asleep"}, "state"),
        ({"outcome": "x" * 33}, "outcome"),
        ({"number": "   "}, "number"),
        ({"since": "last week"}, "since"),
        ({"until": "2025-02-30"}, "until"),
        ({"since": "2025-01-02", "until": "2025-01-01"}, "until"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"cursor": "AAAA"}, "cursor"),
        ({"page": "2"}, "page"),
    ],
)
def test_bad_parameters_name_themselves(query: dict[str, str], parameter: str) -> None:
    with pytest.raises(BadParameterError) as caught:
        parse_calls_query(query)
    assert caught.value.parameter == parameter


def test_cursor_round_trip() -> None:
    when = datetime(2025, 3, 1, 12, 30, 15, 250000, tzinfo=UTC)
    cursor = encode_cursor(when, 12345)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor) == (when, 12345)


@pytest.mark.parametrize(
    "cursor",
    ["", "!!!", "bm90IGpzb24", encode_cursor(datetime(2025, 1, 1, tzinfo=UTC), 1)[:-3]],
)
def test_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor)
