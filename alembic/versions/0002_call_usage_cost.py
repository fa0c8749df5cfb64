"""Per-call usage and estimated cost.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Both columns are nullable: calls recorded before this revision simply have no figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add ``calls.usage`` (JSON) and ``calls.cost_usd``."""
    # batch mode: SQLite cannot alter tables in place beyond ADD COLUMN; batch keeps the
    # downgrade (DROP COLUMN) working there too.
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("usage", JSON))
        batch.add_column(sa.Column("cost_usd", sa.Float()))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("cost_usd")
        batch.drop_column("usage")
