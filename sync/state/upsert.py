"""One portable "insert … on conflict update" for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import mysql, postgresql, sqlite


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    assignments: Callable[[Any], Mapping[str, Any]],
) -> None:
    """Insert ``rows``; on a key clash apply ``assignments(new)`` instead.

    ``assignments`` receives the dialect's "row being inserted" accessor
    (``excluded`` / ``inserted``) so callers write one expression for all backends,
    e.g. ``lambda new: {"qty": table.c.qty + new.qty}``. Executed as one executemany.
    """
    if not rows:
        return
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        module: Any = sqlite if name == "sqlite" else postgresql
        stmt = module.insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_=assignments(stmt.excluded)
        )
    elif name in ("mysql", "mariadb"):
        stmt = mysql.insert(table)
        stmt = stmt.on_duplicate_key_update(dict(assignments(stmt.inserted)))
    else:  # pragma: no cover - create_state_engine refuses other backends
        raise NotImplementedError(f"upsert on {name}")
    conn.execute(stmt, list(rows))
