"""Safety-stock alerts delivered through the outbox (issue 16).

One row per crossing that a webhook must receive: the JSON body as it is sent
(with its ``alert_id``, the key a receiver dedupes on) and when a 2xx answer
came back. The outbox row that carries its delivery has target ``alert`` and
the ``alert_id`` as ref.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 07:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_events",
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("pipeline", sa.String(64), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("sku", sa.String(128), nullable=False),
        sa.Column("warehouse", sa.String(128), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("alert_events")
