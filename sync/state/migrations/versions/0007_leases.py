"""Replicas and pipeline leases: several daemons share the pipelines (issue 17).

``replicas`` holds one heartbeat per daemon process on a server state backend, with
how many more leases it wants (its share minus what it holds);
``leases`` says which replica runs which pipeline until when; ``runs.runner``
names the replica that ran a job. Times in epoch microseconds, from the database
server's clock.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("replica", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger(), nullable=False),
        sa.Column("wants", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "leases",
        sa.Column("pipeline", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("taken_at", sa.BigInteger(), nullable=True),
        sa.Column("takes", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_leases_owner", "leases", ["owner"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("runner", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("runner")
    op.drop_index("ix_leases_owner", table_name="leases")
    op.drop_table("leases")
    op.drop_table("replicas")
