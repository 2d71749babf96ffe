"""PostgreSQL: movement keys compare byte-wise (collation "C").

The ledger finds a document's stored lines by key prefix, as a range of the
primary key [``doc:``, ``doc;``) (architecture §3.6). That range holds only when
keys compare byte-wise: under a language collation (en_US.UTF-8 and the like)
punctuation weighs little and the range would miss lines. The other backends
need nothing: SQLite compares BINARY, and MariaDB/MySQL are asked with LIKE,
which their optimizer turns into a range in the column's own collation.
The primary-key index is rebuilt (the ALTER rewrites it).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 02:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE movements ALTER COLUMN key TYPE VARCHAR(255) COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE movements ALTER COLUMN key TYPE VARCHAR(255) COLLATE "default"')
