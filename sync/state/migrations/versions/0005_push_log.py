"""The push log: one row per push outcome, for ``stocksync explain`` (issue 16).

The outbox row of a level is deleted once it is pushed; this table keeps what
was written, when, to which CRM record, and how the CRM answered, for
``push.log_retention_days``. Quantities in micro-units, times in epoch microseconds.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "push_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("pipeline", sa.String(64), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(300), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("crm_id", sa.String(128), nullable=True),
        sa.Column("qty", sa.BigInteger(), nullable=True),
        sa.Column("available", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_push_log_ref", "push_log", ["pipeline", "target", "ref", "at"])
    op.create_index("ix_push_log_at", "push_log", ["pipeline", "at"])


def downgrade() -> None:
    op.drop_index("ix_push_log_at", table_name="push_log")
    op.drop_index("ix_push_log_ref", table_name="push_log")
    op.drop_table("push_log")
