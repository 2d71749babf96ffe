"""Initial schema: ledger, levels, cursors, outbox, bindings, conflicts, runs.

Timestamps are integer microseconds since the Unix epoch (UTC), quantities integer
micro-units: see sync/state/schema.py.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 20:57:25.935866
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("warehouse", sa.String(length=128), nullable=False),
        sa.Column("low", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.BigInteger(), nullable=True),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "sku", "warehouse"),
    )
    op.create_table(
        "baselines",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("warehouse", sa.String(length=128), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("set_at", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "sku", "warehouse"),
    )
    op.create_table(
        "bindings",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=300), nullable=False),
        sa.Column("crm_id", sa.String(length=128), nullable=False),
        sa.Column("pushed_hash", sa.String(length=32), nullable=True),
        sa.Column("pushed_qty", sa.BigInteger(), nullable=True),
        sa.Column("pushed_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", "target", "ref"),
    )
    op.create_table(
        "conflicts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("ref", sa.String(length=300), nullable=False),
        sa.Column("erp_qty", sa.BigInteger(), nullable=True),
        sa.Column("ledger_qty", sa.BigInteger(), nullable=True),
        sa.Column("crm_qty", sa.BigInteger(), nullable=True),
        sa.Column("pushed_qty", sa.BigInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("detected_at", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("resolution", sa.String(length=32), nullable=True),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conflicts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conflicts_open", ["pipeline", "kind", "ref", "resolved_at"], unique=False
        )

    op.create_table(
        "cursors",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("tie_break", sa.String(length=128), nullable=False),
        sa.Column("advanced_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "stream"),
    )
    op.create_table(
        "movement_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("warehouse", sa.String(length=128), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("source_updated_at", sa.BigInteger(), nullable=False),
        sa.Column("doc_no", sa.String(length=128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("movement_versions", schema=None) as batch_op:
        batch_op.create_index("ix_versions_key", ["pipeline", "key", "version"], unique=False)

    op.create_table(
        "movements",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("warehouse", sa.String(length=128), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("source_updated_at", sa.BigInteger(), nullable=False),
        sa.Column("doc_no", sa.String(length=128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("content_hash", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", "key"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.create_index("ix_movements_date", ["pipeline", "occurred_at"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pipeline", "target", "ref", name="uq_outbox_ref"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_due", ["pipeline", "state", "next_attempt_at"], unique=False
        )

    op.create_table(
        "pipeline_meta",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "name"),
    )
    op.create_table(
        "runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pulled", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("pushed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_pipeline", ["pipeline", "job", "started_at"], unique=False)

    op.create_table(
        "stock_levels",
        sa.Column("pipeline", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("warehouse", sa.String(length=128), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "sku", "warehouse"),
    )
    op.create_table(
        "tokens",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("stock_levels")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_pipeline")

    op.drop_table("runs")
    op.drop_table("pipeline_meta")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.drop_index("ix_movements_date")

    op.drop_table("movements")
    with op.batch_alter_table("movement_versions", schema=None) as batch_op:
        batch_op.drop_index("ix_versions_key")

    op.drop_table("movement_versions")
    op.drop_table("cursors")
    with op.batch_alter_table("conflicts", schema=None) as batch_op:
        batch_op.drop_index("ix_conflicts_open")

    op.drop_table("conflicts")
    op.drop_table("bindings")
    op.drop_table("baselines")
    op.drop_table("alert_states")
