"""The ledger's hot path: one driver-level executemany per statement and page.

SQLAlchemy's per-row parameter processing costs more than SQLite's own insert;
for the few statements that run once per page with a thousand rows, the
statement is compiled once per dialect and rows (already plain ints, strings
and bools) go straight to the DBAPI cursor, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Insert, bindparam

_compiled: dict[tuple[str, str, tuple[str, ...]], tuple[str, tuple[str, ...] | None]] = {}


def _compile(
    conn: Connection, name: str, build: Callable[[], Any], columns: Sequence[str]
) -> tuple[str, tuple[str, ...] | None]:
    """The SQL text of ``build()`` (cached under ``name``) and its bind order (None: named).

    An INSERT gets one bind per column, so unset columns (ids, defaults) are left
    to the database.
    """
    key = (conn.dialect.name, name, tuple(columns))
    cached = _compiled.get(key)
    if cached is None:
        stmt = build()
        if isinstance(stmt, Insert):
            stmt = stmt.values({c: bindparam(c) for c in columns})
        compiled = stmt.compile(dialect=conn.dialect)
        order = tuple(compiled.positiontup or ()) if conn.dialect.positional else None
        cached = _compiled[key] = (compiled.string, order)
    return cached


def fetch(
    conn: Connection, name: str, build: Callable[[], Any], params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """The rows of the SELECT ``build()``, bound by name; raw driver values come back."""
    sql, order = _compile(conn, name, build, tuple(params))
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params if order is None else tuple(params[c] for c in order))
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def executemany(
    conn: Connection,
    name: str,
    build: Callable[[], Any],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Execute the statement ``build()`` (cached under ``name``) once per row.

    Rows are tuples in ``columns`` order.
    """
    if not rows:
        return
    sql, order = _compile(conn, name, build, columns)
    params: list[Any]
    if order is None:
        params = [dict(zip(columns, row, strict=True)) for row in rows]
    elif order == tuple(columns):
        params = list(rows)
    else:
        pick = itemgetter(*[list(columns).index(c) for c in order])
        params = list(map(pick, rows)) if len(order) > 1 else [(pick(row),) for row in rows]
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, params)
    finally:
        cursor.close()
