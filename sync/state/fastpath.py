"""The ledger's hot path: one driver-level executemany per statement and page.

SQLAlchemy's per-row parameter processing costs more than SQLite's own insert;
for the few statements that run once per page with a thousand rows, the
statement is compiled once per dialect and rows (already plain ints, strings
and bools) go straight to the DBAPI cursor, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain
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


#: rows per multi-row INSERT: a few hundred binds, far under every backend's limit
ROWS_PER_STATEMENT = 50

_compiled_multi: dict[tuple[str, str, tuple[str, ...], int], tuple[str, list[int] | None]] = {}


def _bind_name(column: str, row: int) -> str:
    return f"{column}_{row}"


def _compile_multi(
    conn: Connection, name: str, build: Callable[[], Any], columns: tuple[str, ...], n: int
) -> tuple[str, list[int] | None]:
    """The SQL text of ``build()`` with ``n`` VALUES tuples (SQLite, positional binds), and
    where each bind comes from in the rows flattened (None when already in that order)."""
    key = (conn.dialect.name, name, columns, n)
    cached = _compiled_multi.get(key)
    if cached is None:
        stmt = build().values([{c: bindparam(_bind_name(c, i)) for c in columns} for i in range(n)])
        compiled = stmt.compile(dialect=conn.dialect)
        where = {bind: i for i, bind in enumerate(_flat_names(columns, n))}
        picks: list[int] | None = [where[b] for b in compiled.positiontup or ()]
        if picks == list(range(len(where))):
            picks = None
        cached = _compiled_multi[key] = (compiled.string, picks)
    return cached


@lru_cache(maxsize=64)
def _flat_names(columns: tuple[str, ...], n: int) -> list[str]:
    """Bind names of ``n`` rows of ``columns``, in the order of the rows flattened."""
    return [_bind_name(c, i) for i in range(n) for c in columns]


def insert_rows(
    conn: Connection,
    name: str,
    build: Callable[[], Any],
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Execute the INSERT (or upsert) ``build()`` for ``rows``, many rows per statement.

    On SQLite a statement per row makes the driver bind, step and retake the
    interpreter lock once per row; several rows per statement do each of those
    once per statement (about a third less time for a page of movements). The
    server drivers are left their own ``executemany``: PyMySQL already rewrites
    it into multi-row INSERTs, and psycopg pipelines it, while it parses a long
    multi-row statement afresh each time (nine times slower per page). Callers
    pass rows with distinct conflict keys, so grouping them changes nothing.
    """
    if conn.dialect.name != "sqlite":
        executemany(conn, name, build, columns, rows)
        return
    cursor = conn.connection.cursor()
    try:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            sql, picks = _compile_multi(conn, name, build, columns, len(chunk))
            flat = list(chain.from_iterable(chunk))
            cursor.execute(sql, flat if picks is None else [flat[i] for i in picks])
    finally:
        cursor.close()
