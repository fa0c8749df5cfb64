"""The operators' calls API: list, detail, recording and erasure of calls.

- ``GET /api/calls``: the calls, newest first, filtered and paged;
- ``GET /api/calls/{call_id}``: one call with its transcript, events and recording;
- ``GET /api/calls/{call_id}/recording``: the call's stereo WAV (``audio/wav``, HTTP
  range requests), a live call's too (what is written so far);
- ``DELETE /api/calls/{call_id}``: erase the call: its record and its recording.

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
a 503. Every route first asks the `Authorizer` (a write for ``DELETE``). Contract:
docs/PROTOCOLS.md §9, docs/RECORDINGS.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import quote

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

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
from realtime_voice.storage.recording import Recordings
from realtime_voice.storage.recording_wav import RecordingInfo
from webhooks.authorize import Authorizer
from webhooks.errors import json_error

__all__ = [
    "BadParameterError",
    "CallsQuery",
    "PendingRecords",
    "add_calls_routes",
    "parse_calls_query",
]

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50
_KNOWN = frozenset({"state", "outcome", "number", "since", "until", "limit", "cursor"})
_STATES = frozenset(state.value for state in CallState)
_SPACE_OFFSET = re.compile(r"\s(\d{2}(?::?\d{2})?)$")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_SETTLE_TIMEOUT_S = 10.0
_RETRY_AFTER_S = "5"


class PendingRecords(Protocol):
    """The call records still on their way to the database (the `CallRecorder`)."""

    async def flush(self) -> None:
        """Wait until every record given so far is written, spooled or dropped."""
        ...

    @property
    def spool_depth(self) -> int:
        """Records waiting in the spool for the database."""
        ...


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


def _error(
    status: int,
    code: str,
    message: str,
    parameter: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    # This API's errors carry a code then a message, and are encoded like its answers.
    return json_error(
        status, code, message=message, parameter=parameter, headers=headers, dumps=_dumps
    )


def _download_name(call_id: str) -> str:
    # The id goes into a header: only a plain charset, and not too long.
    return _UNSAFE_NAME.sub("_", call_id)[:100] or "call"


def recording_json(call_id: str, info: RecordingInfo | None) -> dict[str, object] | None:
    """The ``recording`` member of a call's detail: where to fetch it and how long it is."""
    if info is None:
        return None
    return {
        "url": f"/api/calls/{quote(call_id, safe='')}/recording",
        "bytes": info.bytes,
        "duration_s": round(info.duration_s, 3),
    }


def add_calls_routes(
    app: web.Application,
    store: CallStore,
    *,
    auth: Authorizer,
    recordings: Recordings | None = None,
    is_live: Callable[[str], bool] | None = None,
    records: PendingRecords | None = None,
) -> None:
    """Add the calls API (list, detail, recording, erasure) to ``app``.

    Args:
        app: the HTTP control plane's application.
        store: the call database.
        auth: checks the operator's credentials first on every route (``write=True``
            for ``DELETE``).
        recordings: the recordings (served and erased); None: no call has one.
        is_live: whether a call id is a call in progress (``DELETE`` refuses it).
        records: the records on their way to the database; ``DELETE`` waits for them,
            so that a late write cannot bring an erased call back.
    """

    async def list_calls(request: web.Request) -> web.StreamResponse:
        await auth(request)
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
        await auth(request)
        call_id = request.match_info["call_id"]
        try:
            call = await store.get_call(call_id)
        except SQLAlchemyError as exc:
            log.warning("call lookup failed: %s", type(exc).__name__)
            return _error(503, "database_unavailable", "the call database cannot be reached")
        if call is None:
            return _error(404, "not_found", f"no call with id {call_id!r}")
        doc = call_detail_json(call)
        info = await recordings.info(call_id) if recordings is not None else None
        doc["recording"] = recording_json(call_id, info)
        return _json(doc)

    async def get_recording(request: web.Request) -> web.StreamResponse:
        await auth(request)
        call_id = request.match_info["call_id"]
        # The id only ever becomes a hash of itself on disk (`RecordingFiles.file_name`).
        info = await recordings.info(call_id) if recordings is not None else None
        if info is None:
            return _error(404, "not_found", f"no recording of call {call_id!r}")
        # FileResponse answers Range, If-Range, 206 and 416 itself, from the file's
        # length when the request arrives (a live call's grows behind it).
        return web.FileResponse(
            info.path,
            headers={
                "Content-Type": "audio/wav",
                "Content-Disposition": f'inline; filename="{_download_name(call_id)}.wav"',
                "Cache-Control": "no-store",
            },
        )

    async def delete_call(request: web.Request) -> web.StreamResponse:
        await auth(request, write=True)
        call_id = request.match_info["call_id"]
        if is_live is not None and is_live(call_id):
            return _error(409, "call_live", "the call is in progress: end it first")
        if records is not None:
            try:
                await asyncio.wait_for(records.flush(), _SETTLE_TIMEOUT_S)
            except (TimeoutError, RuntimeError):
                return _error(503, "database_unavailable",
                              "the call records could not be written in time; retry later",
                              headers={"Retry-After": _RETRY_AFTER_S})
            if records.spool_depth:
                # Records spooled in an outage may include this call's: replayed after the
                # erasure, they would bring it back. Refuse until the spool is empty.
                return _error(503, "records_pending",
                              "call records are waiting for the database; retry later",
                              headers={"Retry-After": _RETRY_AFTER_S})
        try:
            found = await store.delete_call(call_id)
        except SQLAlchemyError as exc:
            log.warning("call erasure failed: %s", type(exc).__name__)
            return _error(503, "database_unavailable", "the call database cannot be reached")
        erased = await recordings.erase(call_id) if recordings is not None else False
        if not found and not erased:
            return _error(404, "not_found", f"no call with id {call_id!r}")
        log.info("call %s erased on request (record: %s, recording: %s)",
                 call_id, "deleted" if found else "none", "deleted" if erased else "none")
        return web.Response(status=204)

    app.router.add_get("/api/calls", list_calls)
    app.router.add_get("/api/calls/{call_id}", get_call)
    app.router.add_delete("/api/calls/{call_id}", delete_call)
    app.router.add_get("/api/calls/{call_id}/recording", get_recording)
