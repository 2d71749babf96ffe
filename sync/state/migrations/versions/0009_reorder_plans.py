"""The nightly reorder plan per key (issue 20): forecast demand over the lead time, safety
stock for the service level, reorder point, order quantity, projected stock-out.

Quantities are estimates (floats, base unit), not ledger figures. On MariaDB/MySQL the
text columns take the byte-wise collation every other table has (migration 0008).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 16:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: byte-wise collations, best first (as migration 0008 chose them)
EXACT_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin")


def _table_options() -> dict[str, Any]:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return {}
    known = set(
        bind.execute(sa.text("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")).scalars()
    )
    collation = next(c for c in EXACT_COLLATIONS if c in known)
    return {"mysql_charset": "utf8mb4", "mysql_collate": collation}


def upgrade() -> None:
    op.create_table(
        "reorder_plans",
        sa.Column("pipeline", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(128), primary_key=True),
        sa.Column("warehouse", sa.String(128), primary_key=True),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(32), nullable=False),
        sa.Column("on_hand", sa.Double(), nullable=False),
        sa.Column("available", sa.Double(), nullable=False),
        sa.Column("lead_time_days", sa.Integer(), nullable=False),
        sa.Column("service_level", sa.Double(), nullable=False),
        sa.Column("demand_over_lead_time", sa.Double(), nullable=False),
        sa.Column("safety_stock_needed", sa.Double(), nullable=False),
        sa.Column("safety_stock_configured", sa.Double(), nullable=True),
        sa.Column("reorder_point", sa.Double(), nullable=False),
        sa.Column("order_quantity", sa.Double(), nullable=False),
        sa.Column("stockout_date", sa.Date(), nullable=True),
        sa.Column("stockout_within_lead_time", sa.Boolean(), nullable=False),
        sa.Column("safety_stock_below_need", sa.Boolean(), nullable=False),
        **_table_options(),
    )


def downgrade() -> None:
    op.drop_table("reorder_plans")
