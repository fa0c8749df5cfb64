"""The call database: calls, their turns and events, and known customers.

Portable across PostgreSQL and SQLite. Timestamps are timezone-aware UTC on both: SQLite
has no time-zone type, so `UtcDateTime` stores naive UTC there and re-attaches UTC on
read. Idempotency keys: ``calls.call_id`` (the gateway call id) is unique, and a turn or
event is unique by ``(call_id, seq)``, so a replayed write never duplicates a row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "EVENT_KINDS",
    "Base",
    "Call",
    "CallEvent",
    "Customer",
    "Turn",
    "UtcDateTime",
    "utc_now",
]

EVENT_KINDS = ("state_change", "transfer", "error", "notification", "dtmf", "barge_in", "silence")
"""The kinds of call events (the recorder accepts these only)."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database.

    Naive datetimes are refused on write: guessing their zone is how records end up hours off.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use a timezone-aware UTC time")
        value = value.astimezone(UTC)
        # SQLite stores text; keep it naive UTC so strings sort in time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (compact, indexable), plain JSON text elsewhere.
JsonType = JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments an ``INTEGER PRIMARY KEY``.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base with named constraints (so migrations can drop them by name)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Call(Base):
    """One phone call, keyed by the gateway's call id.

    ``last_seq`` is the highest per-call sequence number of a session update applied to the
    row: an older update replayed later is skipped instead of rolling the row back.
    """

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(128), unique=True)
    session_id: Mapped[str | None] = mapped_column(String(64))
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(16), default="inbound", server_default="inbound")
    protocol: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    flow: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    duration_s: Mapped[float | None] = mapped_column(Float)
    end_reason: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32))
    escalated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    transfer_target: Mapped[str | None] = mapped_column(String(64))
    custom_parameters: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    rc_telephony_session_id: Mapped[str | None] = mapped_column(String(128))
    rc_party_id: Mapped[str | None] = mapped_column(String(128))
    last_seq: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utc_now, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utc_now, server_default=func.now()
    )

    turns: Mapped[list[Turn]] = relationship(
        back_populates="call",
        order_by="Turn.seq",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call",
        order_by="CallEvent.seq",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        Index(None, "state"),
        Index(None, "outcome"),
        Index(None, "started_at", "id"),
        Index(None, "from_number"),
        Index(None, "to_number"),
        Index(None, "rc_telephony_session_id"),
    )


class Turn(Base):
    """One utterance: the caller's finished turn or what the bot said (as heard)."""

    __tablename__ = "turns"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(IdType, ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    latency_ms: Mapped[float | None] = mapped_column(Float)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    call: Mapped[Call] = relationship(back_populates="turns")

    __table_args__ = (UniqueConstraint("call_id", "seq"),)


class CallEvent(Base):
    """Something that happened to a call: a state change, transfer, error, notification..."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(IdType, ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any] | None] = mapped_column(JsonType)

    call: Mapped[Call] = relationship(back_populates="events")

    __table_args__ = (UniqueConstraint("call_id", "seq"), Index(None, "kind"))


class Customer(Base):
    """A known caller: the lookup behind "existing customer" greetings."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    notes: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(64))
    """The business's own id for the customer (CRM), if any."""
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    """Anything else a flow may mention ({"vehicle": "2019 Honda Civic"})."""
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utc_now, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        UtcDateTime(), default=utc_now, server_default=func.now()
    )
