"""The read side of the call database: what operators look up.

`CallStore` runs its queries in worker threads (``asyncio.to_thread``) so the event loop
never waits on the database. Lists are newest first and paged with an opaque cursor made
of the last row's ``(started_at, id)``: a call recorded while someone pages never shifts
or repeats the rows of the pages after it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, or_, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import selectinload, sessionmaker

from realtime_voice.storage.database import make_engine
from realtime_voice.storage.models import Call, CallEvent, Customer, Turn, utc_now

__all__ = [
    "MAX_PAGE_SIZE",
    "CallFilter",
    "CallPage",
    "CallStore",
    "InvalidCursorError",
    "call_detail_json",
    "call_summary_json",
    "decode_cursor",
    "encode_cursor",
]

MAX_PAGE_SIZE = 200


class InvalidCursorError(ValueError):
    """A paging cursor that this server did not hand out."""


@dataclass(frozen=True, slots=True)
class CallFilter:
    """Which calls to list (every field optional; all given fields must match).

    Attributes:
        state: call state (``ended``, ``failed``, ``in_progress``...).
        outcome: call outcome.
        numbers: any of these numbers as caller or callee.
        since: started at or after (UTC).
        until: started before (UTC).
    """

    state: str | None = None
    outcome: str | None = None
    numbers: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallPage:
    """One page of calls, newest first.

    Attributes:
        calls: the calls on this page.
        next_cursor: pass back to get the next page; ``None`` on the last one.
    """

    calls: list[Call]
    next_cursor: str | None


def encode_cursor(started_at: datetime, row_id: int) -> str:
    """The opaque cursor pointing after the row ``(started_at, row_id)``."""
    raw = json.dumps([started_at.astimezone(UTC).isoformat(), row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Undo `encode_cursor`.

    Raises:
        InvalidCursorError: not a cursor from `encode_cursor`.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        started, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        when = datetime.fromisoformat(started)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidCursorError("not a cursor from this API") from exc
    if when.tzinfo is None or not isinstance(row_id, int) or isinstance(row_id, bool):
        raise InvalidCursorError("not a cursor from this API")
    return when, row_id


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def call_summary_json(call: Call) -> dict[str, Any]:
    """A call as the list endpoint shows it."""
    return {
        "call_id": call.call_id,
        "session_id": call.session_id,
        "from_number": call.from_number,
        "to_number": call.to_number,
        "direction": call.direction,
        "protocol": call.protocol,
        "state": call.state,
        "flow": call.flow,
        "started_at": _iso(call.started_at),
        "answered_at": _iso(call.answered_at),
        "ended_at": _iso(call.ended_at),
        "duration_s": call.duration_s,
        "end_reason": call.end_reason,
        "outcome": call.outcome,
        "escalated": call.escalated,
        "transfer_target": call.transfer_target,
        "cost_usd": call.cost_usd,
    }


def call_detail_json(call: Call) -> dict[str, Any]:
    """A call with its transcript and events, as the detail endpoint shows it."""
    doc = call_summary_json(call)
    doc.update(
        custom_parameters=call.custom_parameters or {},
        metrics=call.metrics or {},
        usage=call.usage or {},
        ringcentral={
            "telephony_session_id": call.rc_telephony_session_id,
            "party_id": call.rc_party_id,
        },
        turns=[
            {
                "seq": t.seq,
                "speaker": t.speaker,
                "text": t.text,
                "intent": t.intent,
                "confidence": t.confidence,
                "started_at": _iso(t.started_at),
                "ended_at": _iso(t.ended_at),
                "latency_ms": t.latency_ms,
                "interrupted": t.interrupted,
            }
            for t in call.turns
        ],
        events=[
            {"seq": e.seq, "at": _iso(e.at), "kind": e.kind, "data": e.data or {}}
            for e in call.events
        ],
    )
    return doc


class CallStore:
    """Read access to calls and customers.

    Args:
        url_or_engine: a database URL (an engine is made and owned) or an engine.
    """

    def __init__(self, url_or_engine: str | URL | Engine) -> None:
        self._owns_engine = not isinstance(url_or_engine, Engine)
        self.engine = (
            url_or_engine if isinstance(url_or_engine, Engine) else make_engine(url_or_engine)
        )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Release the engine's connections (if this store made the engine)."""
        if self._owns_engine:
            self.engine.dispose()

    # ------------------------------------------------------------------ async API

    async def list_calls(
        self, filters: CallFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> CallPage:
        """Calls matching ``filters``, newest first, ``limit`` per page.

        Raises:
            InvalidCursorError: ``cursor`` was not handed out by this API.
            ValueError: ``limit`` outside 1..`MAX_PAGE_SIZE`.
        """
        return await asyncio.to_thread(self.list_calls_sync, filters, limit=limit, cursor=cursor)

    async def get_call(self, call_id: str) -> Call | None:
        """The call with this gateway call id, with turns and events loaded."""
        return await asyncio.to_thread(self.get_call_sync, call_id)

    async def delete_call(self, call_id: str) -> bool:
        """Erase the call with this gateway call id: its row, turns and events.

        Returns:
            Whether there was such a call.
        """
        return await asyncio.to_thread(self.delete_call_sync, call_id)

    async def find_customer(self, phone: str) -> Customer | None:
        """The customer with this phone number."""
        return await asyncio.to_thread(self.find_customer_sync, phone)

    # ------------------------------------------------------------------ blocking API

    def list_calls_sync(
        self, filters: CallFilter | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> CallPage:
        """`list_calls`, blocking."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be 1-{MAX_PAGE_SIZE}")
        f = filters or CallFilter()
        stmt = select(Call)
        if f.state is not None:
            stmt = stmt.where(Call.state == f.state)
        if f.outcome is not None:
            stmt = stmt.where(Call.outcome == f.outcome)
        if f.numbers:
            stmt = stmt.where(or_(Call.from_number.in_(f.numbers), Call.to_number.in_(f.numbers)))
        if f.since is not None:
            stmt = stmt.where(Call.started_at >= f.since)
        if f.until is not None:
            stmt = stmt.where(Call.started_at < f.until)
        if cursor is not None:
            after_time, after_id = decode_cursor(cursor)
            stmt = stmt.where(
                or_(
                    Call.started_at < after_time,
                    and_(Call.started_at == after_time, Call.id < after_id),
                )
            )
        stmt = stmt.order_by(Call.started_at.desc(), Call.id.desc()).limit(limit + 1)
        with self._sessions() as session:
            rows: Sequence[Call] = session.scalars(stmt).all()
        calls = list(rows[:limit])
        next_cursor = (
            encode_cursor(calls[-1].started_at, calls[-1].id) if len(rows) > limit else None
        )
        return CallPage(calls=calls, next_cursor=next_cursor)

    def get_call_sync(self, call_id: str) -> Call | None:
        """`get_call`, blocking."""
        stmt = (
            select(Call)
            .where(Call.call_id == call_id)
            .options(selectinload(Call.turns), selectinload(Call.events))
        )
        with self._sessions() as session:
            return session.scalars(stmt).one_or_none()

    def delete_call_sync(self, call_id: str) -> bool:
        """`delete_call`, blocking."""
        with self._sessions() as session, session.begin():
            row_id = session.scalars(
                select(Call.id).where(Call.call_id == call_id)
            ).one_or_none()
            if row_id is None:
                return False
            # Children first, explicitly: the same on every database, cascade or not.
            session.execute(delete(Turn).where(Turn.call_id == row_id))
            session.execute(delete(CallEvent).where(CallEvent.call_id == row_id))
            session.execute(delete(Call).where(Call.id == row_id))
        return True

    def find_customer_sync(self, phone: str) -> Customer | None:
        """`find_customer`, blocking."""
        with self._sessions() as session:
            return session.scalars(select(Customer).where(Customer.phone == phone)).one_or_none()

    def list_customers_sync(self, *, limit: int = 100_000) -> list[Customer]:
        """Every customer (up to ``limit``), for a directory read ahead into memory."""
        with self._sessions() as session:
            return list(session.scalars(select(Customer).order_by(Customer.id).limit(limit)))

    def save_customer_sync(
        self,
        phone: str,
        *,
        name: str | None = None,
        notes: str | None = None,
        external_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Customer:
        """Create or update the customer with this phone number (blocking).

        Fields given as ``None`` keep their stored value.
        """
        with self._sessions() as session, session.begin():
            customer = session.scalars(
                select(Customer).where(Customer.phone == phone)
            ).one_or_none()
            if customer is None:
                customer = Customer(phone=phone)
                session.add(customer)
            else:
                customer.updated_at = utc_now()
            if name is not None:
                customer.name = name
            if notes is not None:
                customer.notes = notes
            if external_id is not None:
                customer.external_id = external_id
            if details is not None:
                customer.details = dict(details)
        return customer
