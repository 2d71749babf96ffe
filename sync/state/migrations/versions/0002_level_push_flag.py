"""Flag on stock_levels: the level changed and is not in the outbox yet.

A page's level upsert sets the flag instead of writing one outbox row per
changed level; ``sync.ledger.queue_changed_levels`` turns flags into outbox
rows (see docs/design-notes.md, note 16).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 01:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stock_levels", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("push_pending", sa.SmallInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("stock_levels", schema=None) as batch_op:
        batch_op.drop_column("push_pending")
