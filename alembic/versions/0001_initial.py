"""Initial schema: calls, turns, call events, customers.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out by hand rather than from the models, so this revision stays what it was when
the models change (a test checks that head still matches the models).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only auto-increments an INTEGER PRIMARY KEY; JSONB on PostgreSQL.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if now else None,
    )


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("from_number", sa.String(32)),
        sa.Column("to_number", sa.String(32)),
        sa.Column("direction", sa.String(16), nullable=False, server_default="inbound"),
        sa.Column("protocol", sa.String(32)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("flow", sa.String(64)),
        _ts("started_at", nullable=False),
        _ts("answered_at"),
        _ts("ended_at"),
        sa.Column("duration_s", sa.Float()),
        sa.Column("end_reason", sa.String(64)),
        sa.Column("outcome", sa.String(32)),
        sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("transfer_target", sa.String(64)),
        sa.Column("custom_parameters", JSON),
        sa.Column("metrics", JSON),
        sa.Column("rc_telephony_session_id", sa.String(128)),
        sa.Column("rc_party_id", sa.String(128)),
        sa.Column("last_seq", sa.Integer()),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
        sa.UniqueConstraint("call_id", name="uq_calls_call_id"),
    )
    op.create_index("ix_calls_state", "calls", ["state"])
    op.create_index("ix_calls_outcome", "calls", ["outcome"])
    op.create_index("ix_calls_started_at_id", "calls", ["started_at", "id"])
    op.create_index("ix_calls_from_number", "calls", ["from_number"])
    op.create_index("ix_calls_to_number", "calls", ["to_number"])
    op.create_index("ix_calls_rc_telephony_session_id", "calls", ["rc_telephony_session_id"])

    op.create_table(
        "turns",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("call_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(64)),
        sa.Column("confidence", sa.Float()),
        _ts("started_at", nullable=False),
        _ts("ended_at"),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("interrupted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_turns"),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name="fk_turns_call_id_calls", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("call_id", "seq", name="uq_turns_call_id_seq"),
    )

    op.create_table(
        "call_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("call_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        _ts("at", nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", JSON),
        sa.PrimaryKeyConstraint("id", name="pk_call_events"),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name="fk_call_events_call_id_calls", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("call_id", "seq", name="uq_call_events_call_id_seq"),
    )
    op.create_index("ix_call_events_kind", "call_events", ["kind"])

    op.create_table(
        "customers",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128)),
        sa.Column("notes", sa.Text()),
        sa.Column("external_id", sa.String(64)),
        sa.Column("details", JSON),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.UniqueConstraint("phone", name="uq_customers_phone"),
    )


def downgrade() -> None:
    op.drop_table("customers")
    op.drop_index("ix_call_events_kind", table_name="call_events")
    op.drop_table("call_events")
    op.drop_table("turns")
    for name in (
        "ix_calls_rc_telephony_session_id",
        "ix_calls_to_number",
        "ix_calls_from_number",
        "ix_calls_started_at_id",
        "ix_calls_outcome",
        "ix_calls_state",
    ):
        op.drop_index(name, table_name="calls")
    op.drop_table("calls")
