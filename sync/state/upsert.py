"""One portable "insert … on conflict update" for SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import mysql, postgresql, sqlite


def upsert_statement(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    assignments: Callable[[Any], Mapping[str, Any]],
) -> Any:
    """The dialect's "insert … on conflict update" statement for ``table``."""
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        module: Any = sqlite if name == "sqlite" else postgresql
        stmt = module.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_=assignments(stmt.excluded)
        )
    if name in ("mysql", "mariadb"):
        stmt = mysql.insert(table)
        # a list keeps the caller's order: MySQL applies assignments left to right
        return stmt.on_duplicate_key_update(list(assignments(stmt.inserted).items()))
    raise NotImplementedError(f"upsert on {name}")  # pragma: no cover - refused at engine creation


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
    if rows:
        conn.execute(upsert_statement(conn, table, keys, assignments), list(rows))
