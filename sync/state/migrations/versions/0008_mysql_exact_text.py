"""MariaDB/MySQL: every text column compares byte for byte (a binary, NO PAD collation).

The tables took the database's default collation, on MariaDB ``utf8mb4_general_ci``:
case- and accent-insensitive, trailing spaces ignored. ERP codes are exact strings,
so there two movement keys that differ only in case (documents ``A1`` and ``a1``)
were one primary key — the second line of a page failed with a duplicate key, and a
line of a later page was read as an edit of the other — and the levels of SKUs
``abc`` and ``ABC`` (or ``abc``/``abc ``) were summed into one row; a complete
document's ``LIKE 'doc:A1:%'`` also took ``a1``'s lines as its own. SQLite compares
BINARY and PostgreSQL's collations are deterministic (the movement key is "C",
migration 0003), so only this backend differed.

Each of stocksync's tables (``TABLES``; other tables in the database are left alone) is
converted to ``utf8mb4`` with the first of ``utf8mb4_nopad_bin`` (MariaDB),
``utf8mb4_0900_bin`` (MySQL 8) or ``utf8mb4_bin`` the server has; the last, MySQL 5.7's,
still ignores trailing spaces (``abc`` = ``abc ``), the one difference left there.
Converting can only make keys that were equal distinct, never the reverse, so no
row collides. A migration that adds a text column on this backend must give it the
same collation (``tests/test_exact_text.py`` checks every column).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 14:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: byte-wise collations, best first: NO PAD (trailing spaces count), then PAD SPACE
EXACT_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin")


def exact_collation(bind: object) -> str:
    """The first of ``EXACT_COLLATIONS`` this server knows."""
    rows = bind.execute(  # type: ignore[attr-defined]
        text("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")
    ).scalars()
    known = set(rows)
    return next(c for c in EXACT_COLLATIONS if c in known)


#: stocksync's tables in this revision: a database shared with other tables keeps theirs
TABLES = (
    "movements",
    "movement_versions",
    "stock_levels",
    "baselines",
    "reserved_stock",
    "cursors",
    "pipeline_meta",
    "outbox",
    "bindings",
    "conflicts",
    "runs",
    "tokens",
    "alert_states",
    "alert_events",
    "push_log",
    "replicas",
    "leases",
)


def _collations(bind: object) -> dict[str, str]:
    """Each of our tables' default collation, as the server has it."""
    rows = bind.execute(  # type: ignore[attr-defined]
        text(
            "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
        )
    ).all()
    return {str(name): str(coll) for name, coll in rows if name in TABLES}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    collation = exact_collation(bind)
    for table, current in sorted(_collations(bind).items()):
        if current != collation:  # a table already converted is not rebuilt
            op.execute(
                f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}"
            )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    for table in sorted(_collations(bind)):
        op.execute(
            f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        )
