"""Ledger hot path: a push flag on stock_levels, no content hash on movements.

``stock_levels.push_pending``: the level changed and is not in the outbox
yet. A page's level upsert sets it instead of writing one outbox row per
changed level; ``sync.ledger.queue_pending_levels`` turns flags into outbox
rows (docs/architecture.md §5.2).

``movements.content_hash`` goes: the ledger compares a line's fields
themselves (note 17), so no digest is computed or stored per line.

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
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.drop_column("content_hash")


def downgrade() -> None:
    # the digest is recomputable, but not in SQL: a downgraded database gets an empty
    # one, which makes the next pull of each line write a version with the same content
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("content_hash", sa.String(length=32), nullable=False, server_default="")
        )
    with op.batch_alter_table("stock_levels", schema=None) as batch_op:
        batch_op.drop_column("push_pending")
