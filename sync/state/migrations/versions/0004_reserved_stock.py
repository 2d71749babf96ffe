"""The ERP's reserved stock per key (issue 15, architecture §9).

One row per pipeline × product × warehouse with reserved stock in the ERP's
last snapshot, in micro-units; a key without a row has none. Available is the
level minus this (plus any static reservation from the config).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 04:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reserved_stock",
        sa.Column("pipeline", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(128), primary_key=True),
        sa.Column("warehouse", sa.String(128), primary_key=True),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reserved_stock")
