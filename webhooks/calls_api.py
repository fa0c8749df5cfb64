"""The operators' read API: ``GET /api/calls`` and ``GET /api/calls/{call_id}``.

``GET /api/calls`` query parameters (all optional):

- ``state``: a call state (``ended``, ``failed``, ``in_progress``...);
- ``outcome``: a call outcome (``completed``, ``transferred``...);
- ``number``: calls from or to this number (``+15555551234``; an unencoded ``+`` that
  arrives as a space, or no ``+`` at all, matches the E.164 form too);
- ``since`` / ``until``: ISO 8601 times; calls started at or after ``since`` and before
  ``until`` (no zone = UTC);
- ``limit``: page size 1-200 (default 50);
- ``cursor``: the ``next_cursor`` of the previous page.

Answers ``{"calls": [...], "next_cursor": "..." | null}``, newest first. A bad or unknown
parameter is a 400 naming it; an unknown call id a 404; a database that cannot be reached
a 503. With an API token configured, requests need ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from realtime_voice.security.shared_secret import secret_matches
from realtime_voice.session.state import CallState
from realtime_voice.storage.queries import (
    MAX_PAGE_SIZE,
    CallFilter,
    CallStore,
    InvalidCursorError,
    call_detail_json,
    call_summary_json,
    decode_cursor,
)
from webhooks.errors import json_error

__all__ = ["BadParameterError", "CallsQuery", "add_calls_routes", "parse_calls_query"]

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
_KNOWN = frozenset({"state", "outcome", "number", "since", "until", "limit", "cursor"})
_STATES = frozenset(state.value for state in CallState)
_SPACE_OFFSET = re.compile(r"\s(\d{2}(?::?\d{2})?)$")


class BadParameterError(ValueError):
    """A query parameter the API cannot use.

    Attributes:
        parameter: its name.
    """

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class CallsQuery:
    """A parsed ``GET /api/calls`` query."""

    filters: CallFilter
    limit: int
    cursor: str | None


def _time(name: str, raw: str) -> datetime:
    # "+01:00" unencoded in a query string arrives as " 01:00".
    cleaned = _SPACE_OFFSET.sub(r"+\1", raw.strip())
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise BadParameterError(
            name, f"{name} must be an ISO 8601 time such as 2025-01-31T09:00:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _numbers(raw: str) -> tuple[str, ...]:
    value = raw.strip()
    if not value or len(value) > 32:
        raise BadParameterError("number", "number must be a phone number such as +15555551234")
    if value.isdigit():
        # "+1555..." unencoded in a query string arrives as " 1555...".
        return (f"+{value}", value)
    return (value,)


def parse_calls_query(query: Mapping[str, str]) -> CallsQuery:
    """Validate the query string of ``GET /api/calls``.

    Raises:
        BadParameterError: naming the first unusable parameter.
    """
    for name in query:
        if name not in _KNOWN:
            raise BadParameterError(
                name, f"unknown parameter {name!r}: expected one of {', '.join(sorted(_KNOWN))}"
            )
    state = query.get("state")
    if state is not None and state not in _STATES:
        raise BadParameterError("state", f"state must be one of {', '.join(sorted(_STATES))}")
    outcome = query.get("outcome")
    if outcome is not None and not 0 < len(outcome) <= 32:
        raise BadParameterError("outcome", "outcome must be 1-32 characters")
    numbers = _numbers(query["number"]) if "number" in query else ()
    since = _time("since", query["since"]) if "since" in query else None
    until = _time("until", query["until"]) if "until" in query else None
    if since is not None and until is not None and since >= until:
        raise BadParameterError("until", "until must be later than since")
    limit = DEFAULT_PAGE_SIZE
    if "limit" in query:
        try:
            limit = int(query["limit"])
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise BadParameterError("limit", f"limit must be an integer 1-{MAX_PAGE_SIZE}")
    cursor = query.get("cursor")
    if cursor is not None:
        try:
            decode_cursor(cursor)
        except InvalidCursorError:
            raise BadParameterError(
                "cursor", "cursor must be the next_cursor of a previous page"
            ) from None
    return CallsQuery(
        filters=CallFilter(
            state=state, outcome=outcome, numbers=numbers, since=since, until=until
        ),
        limit=limit,
        cursor=cursor,
    )


def _dumps(value: object) -> str:
    # Text stays readable (no \u escapes); anything else JSON lacks becomes its str().
    return json.dumps(value, ensure_ascii=False, default=str)


def _json(body: object) -> web.Response:
    return web.json_response(body, dumps=_dumps)


def _error(status: int, code: str, message: str, parameter: str | None = None) -> web.Response:
    # This API's errors carry a code then a message, and are encoded like its answers.
    return json_error(status, code, message=message, parameter=parameter, dumps=_dumps)


def add_calls_routes(
    app: web.Application, store: CallStore, *, api_token: str | None = None
) -> None:
    """Add ``GET /api/calls`` and ``GET /api/calls/{call_id}`` to ``app``.

    Args:
        app: the HTTP control plane's application.
        store: the read side of the call database.
        api_token: when set, requests must carry ``Authorization: Bearer <api_token>``.
    """
    expected = f"Bearer {api_token}" if api_token else None

    def authorised(request: web.Request) -> bool:
        if expected is None:
            return True
        return secret_matches(request.headers.get("Authorization", ""), expected)

    async def list_calls(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return _error(401, "unauthorized", "missing or wrong bearer token")
        try:
            query = parse_calls_query(request.query)
        except BadParameterError as exc:
            return _error(400, "bad_parameter", str(exc), parameter=exc.parameter)
        try:
            page = await store.list_calls(query.filters, limit=query.limit, cursor=query.cursor)
        except SQLAlchemyError as exc:
            log.warning("calls list failed: %s", type(exc).__name__)
            return _error(503, "database_unavailable", "the call database cannot be reached")
        return _json({
            "calls": [call_summary_json(call) for call in page.calls],
            "next_cursor": page.next_cursor,
        })

    async def get_call(request: web.Request) -> web.StreamResponse:
        if not authorised(request):
            return _error(401, "unauthorized", "missing or wrong bearer token")
        call_id = request.match_info["call_id"]
        try:
            call = await store.get_call(call_id)
        except SQLAlchemyError as exc:
            log.warning("call lookup failed: %s", type(exc).__name__)
            return _error(503, "database_unavailable", "the call database cannot be reached")
        if call is None:
            return _error(404, "not_found", f"no call with id {call_id!r}")
        return _json(call_detail_json(call))

    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_id}", get_call)
