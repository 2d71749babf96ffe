"""A page's writes as whole-page statements on the server backends (PostgreSQL, MariaDB/MySQL).

A server pays a round trip, a parse and a plan per statement, and the drivers
bind in Python per value; a statement per row made a 200k-line pull into
PostgreSQL run at a third of SQLite's speed, MariaDB at a quarter (issue 17).
Here every write of a page is a few statements per table, inside the caller's
transaction:

- PostgreSQL: plain inserts go through ``COPY … FROM STDIN`` (psycopg's C
  encoder, no SQL per row); upserts and updates read their rows from one array
  parameter per column, ``unnest(%b::type[], …)``, cast to the column's own type
  (integers stay integers: quantities are bigint micro-units, never floats).
  The arrays travel in binary (``%b``): psycopg writes each element with its
  length, where the text form searched every string for characters to quote
  (730,000 regex searches in a 200k-line pull, about 5% of its time).
  An update first finds and locks its rows by one primary-key probe per key
  (``LATERAL``, never flattened: with a join the planner hashes the whole table
  when its statistics are missing or small) and then writes them by ``ctid``.
- MariaDB/MySQL: every statement reads its rows from one JSON document bound
  as a single string (``JSON_TABLE``, ``FOR ORDINALITY``): inserts and upserts
  as ``INSERT … SELECT … ORDER BY ord [ON DUPLICATE KEY UPDATE]``, updates as
  ``UPDATE JSON_TABLE(…) STRAIGHT_JOIN t ON key`` (each row a probe of the
  key). PyMySQL escapes every bound value in Python: a multi-row ``VALUES``
  with a parameter per cell spent ~18 µs of client CPU a line, more than the
  server spent writing it; one JSON text is one escape, and ``json`` writes it
  in C. The server reads JSON a little slower than VALUES literals (4–20% more
  server CPU), far less than the client saves. A value the whole page shares
  (pipeline, stream, stamps) is bound once per statement.

Rows are written and locked in the order given (``WITH ORDINALITY`` /
``FOR ORDINALITY`` with ``ORDER BY``), the order SQLite's path keeps, so two
transactions taking the same stock levels cannot deadlock. Values are always
bound parameters; only table and column names (ours) are formatted into SQL.
SQLite never comes here (``fastpath`` is its path, the reference speed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table

#: rows per MariaDB statement: a page (1,000 lines by default) in one
MYSQL_ROWS_PER_STATEMENT = 1000
#: the longest JSON document a MariaDB statement carries: sent as hexadecimal (twice
#: as long), a statement stays under MySQL 5.7's 4 MB ``max_allowed_packet`` (rows of
#: the longest values the schema allows, ~3 kB each, are split into more statements)
MYSQL_DOCUMENT_BYTES = 1_500_000


def is_server(conn: Connection) -> bool:
    """Whether ``conn`` is a PostgreSQL or MariaDB/MySQL connection (the bulk paths' backends)."""
    return conn.dialect.name in ("postgresql", "mysql", "mariadb")


def _postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _types(conn: Connection, table: Table, columns: Sequence[str]) -> list[str]:
    """The SQL type of each column as the dialect writes it (``VARCHAR(128)``, ``BIGINT``).

    Without a column's collation: a cast may not carry one, and comparisons take
    the column's own.
    """
    types = []
    for c in columns:
        kind = table.c[c].type.dialect_impl(conn.dialect)
        if getattr(kind, "collation", None):
            kind = kind.copy()
            kind.collation = None  # type: ignore[attr-defined]
        types.append(kind.compile(dialect=conn.dialect))
    return types


def _q(conn: Connection, name: str) -> str:
    return str(conn.dialect.identifier_preparer.quote_identifier(name))


def _pg_source(conn: Connection, table: Table, columns: Sequence[str]) -> str:
    """``unnest(%(c)b::type[], …) WITH ORDINALITY AS k(c, …, ord)`` for ``columns``."""
    arrays = ", ".join(
        f"CAST(%({c})b AS {t}[])"
        for c, t in zip(columns, _types(conn, table, columns), strict=True)
    )
    names = ", ".join(_q(conn, c) for c in columns)
    return f"unnest({arrays}) WITH ORDINALITY AS k({names}, ord)"


def _mysql_collations(conn: Connection, table: Table) -> dict[str, str]:
    """``CHARACTER SET … COLLATE …`` of each text column of ``table`` as the server has it.

    A JSON_TABLE column otherwise takes the connection's collation, and comparing
    it with a table column of another collation is an error (1267, "Illegal mix
    of collations"); the table's may be anything the database was created with.
    Read once per connection (kept in its ``info``).
    """
    cache: dict[str, dict[str, str]] = conn.info.setdefault("stocksync_bulk_collations", {})
    found = cache.get(table.name)
    if found is None:
        cursor = conn.connection.cursor()
        try:
            cursor.execute(
                "SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME"
                " FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s"
                " AND COLLATION_NAME IS NOT NULL",
                (table.name,),
            )
            found = {
                str(name): f" CHARACTER SET {charset} COLLATE {collation}"
                for name, charset, collation in cursor.fetchall()
            }
        finally:
            cursor.close()
        cache[table.name] = found
    return found


def _mysql_source(conn: Connection, table: Table, columns: Sequence[str]) -> str:
    """``JSON_TABLE(%(rows)s, …) AS k`` whose rows are the JSON arrays of ``columns``' values."""
    collations = _mysql_collations(conn, table)
    defs = ", ".join(
        f"{_q(conn, c)} {t}{collations.get(c, '')} PATH '$[{i}]'"
        for i, (c, t) in enumerate(zip(columns, _types(conn, table, columns), strict=True))
    )
    return (
        "JSON_TABLE(CONVERT(%(rows)s USING utf8mb4), '$[*]'"
        f" COLUMNS ({defs}, ord FOR ORDINALITY)) AS k"
    )


def _cached_sql(conn: Connection, key: tuple[Any, ...], build: Any) -> str:
    """The SQL ``build()`` makes, kept per connection (MySQL's reflects the server's collations)."""
    cache: dict[tuple[Any, ...], str] = conn.info.setdefault("stocksync_bulk_sql", {})
    sql = cache.get(key)
    if sql is None:
        sql = cache[key] = build()
    return sql


def _columns_params(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """One list per column (PostgreSQL array parameters)."""
    if not rows:
        return {c: [] for c in columns}
    return {c: list(values) for c, values in zip(columns, zip(*rows, strict=True), strict=True)}


def _json(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows as one JSON text in UTF-8 (tuples as arrays), made in C: no Python work per value.

    Bytes, not ``str``: PyMySQL binds bytes as a hexadecimal literal (``bytes.hex``,
    in C), where a string is escaped character by character in Python (``str.translate``
    over ~100 kB a page: 0.3 s of a 200k-line pull); the statement reads it back as
    text with ``CONVERT(… USING utf8mb4)``.

    ``json`` writes Python ints exactly (no float on the way: ``JSON_TABLE`` reads
    them into BIGINT columns digit for digit) and refuses a Decimal or a datetime
    instead of approximating it. Booleans are JSON ``true``/``false``, which
    ``JSON_TABLE`` reads into an integer column (MySQL's BOOL, a TINYINT) as 1/0.
    """
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode()


def _execute(conn: Connection, sql: str, params: dict[str, Any]) -> None:
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
    finally:
        cursor.close()


def _mysql_documents(rows: Sequence[Sequence[Any]]) -> Iterator[bytes]:
    """``rows`` as JSON documents of at most ``MYSQL_ROWS_PER_STATEMENT`` rows and
    ``MYSQL_DOCUMENT_BYTES`` bytes each (a longer one is halved; one row always goes)."""
    for start in range(0, len(rows), MYSQL_ROWS_PER_STATEMENT):
        yield from _within_limit(rows[start : start + MYSQL_ROWS_PER_STATEMENT])


def _within_limit(rows: Sequence[Sequence[Any]]) -> Iterator[bytes]:
    document = _json(rows)
    if len(document) <= MYSQL_DOCUMENT_BYTES or len(rows) == 1:
        yield document
        return
    half = len(rows) // 2
    yield from _within_limit(rows[:half])
    yield from _within_limit(rows[half:])


def insert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table``; a key clash raises.

    ``constants`` (column → value) are the same in every row, bound once per
    statement (a page's pipeline, stream, stamp), not once per row.
    """
    if not rows:
        return
    constants = constants or {}
    if not _postgres(conn):
        _mysql_insert(conn, table, columns, rows, constants, "")
        return
    names = ", ".join(_q(conn, c) for c in (*columns, *constants))
    tail = tuple(constants.values())
    cursor: Any = conn.connection.cursor()
    try:
        with cursor.copy(f"COPY {_q(conn, table.name)} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row, *tail) if tail else row)
    finally:
        cursor.close()


def _mysql_insert(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    constants: Mapping[str, Any],
    tail: str,
) -> None:
    """``INSERT … SELECT … FROM JSON_TABLE(…) ORDER BY ord`` (plus ``tail``), one JSON
    document per statement (``_mysql_documents``).

    The rows cross as one bound string: PyMySQL escapes one value per statement
    instead of one per cell (a multi-row VALUES of a page's movements cost it
    ~18 µs a line, more than the server spent writing it, issue 17); the
    server pays a little more to read JSON than VALUES literals (4–20%). Each
    constant is bound once per statement, in the SELECT list.
    """
    names = ", ".join(_q(conn, c) for c in (*columns, *constants))
    shared = {f"c{j}": v for j, v in enumerate(constants.values())}

    def build() -> str:
        picked = ", ".join([*(f"k.{_q(conn, c)}" for c in columns), *(f"%({c})s" for c in shared)])
        return (
            f"INSERT INTO {_q(conn, table.name)} ({names}) SELECT {picked}"
            f" FROM {_mysql_source(conn, table, columns)} ORDER BY k.ord{tail}"
        )

    key = ("insert", table.name, tuple(columns), tuple(constants), tail)
    sql = _cached_sql(conn, key, build)
    for document in _mysql_documents(rows):
        _execute(conn, sql, {"rows": document, **shared})


#: how ``upsert`` sets a column of a row that already exists
NEW = "new"  # the incoming value
ADD = "add"  # the stored value plus the incoming one
BUMP = "bump"  # the stored value plus one (the incoming value is ignored)


def _assignment(conn: Connection, table: Table, column: str, how: str) -> str:
    col = _q(conn, column)
    stored = f"{_q(conn, table.name)}.{col}"
    new = f"EXCLUDED.{col}" if _postgres(conn) else f"VALUES({col})"
    value = {NEW: new, ADD: f"{stored} + {new}", BUMP: f"{stored} + 1"}[how]
    return f"{col} = {value}"


def upsert(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    assignments: Sequence[tuple[str, str]],
    constants: Mapping[str, Any] | None = None,
) -> None:
    """Insert ``rows``; a row whose ``keys`` exist applies ``assignments`` instead.

    ``assignments`` are ``(column, NEW | ADD | BUMP)``, applied left to right on
    MySQL; ``constants`` as for ``insert``. Rows are written (and their rows
    locked) in the order given; their keys must be distinct (a PostgreSQL
    statement may not touch a row twice).
    """
    if not rows:
        return
    constants = constants or {}
    sets = ", ".join(_assignment(conn, table, c, how) for c, how in assignments)
    if not _postgres(conn):
        _mysql_insert(conn, table, columns, rows, constants, f" ON DUPLICATE KEY UPDATE {sets}")
        return

    def build() -> str:
        names = ", ".join(_q(conn, c) for c in (*columns, *constants))
        shared = [
            f"CAST(%(c{j})s AS {t})" for j, t in enumerate(_types(conn, table, list(constants)))
        ]
        picked = ", ".join([*(f"k.{_q(conn, c)}" for c in columns), *shared])
        conflict = ", ".join(_q(conn, c) for c in keys)
        return (
            f"INSERT INTO {_q(conn, table.name)} ({names}) SELECT {picked}"
            f" FROM {_pg_source(conn, table, columns)} ORDER BY k.ord"
            f" ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
        )

    key = ("upsert", table.name, tuple(keys), tuple(columns), tuple(constants), tuple(assignments))
    params = _columns_params(columns, rows)
    params.update({f"c{j}": v for j, v in enumerate(constants.values())})
    _execute(conn, _cached_sql(conn, key, build), params)


def update(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Set ``columns`` of the rows whose ``keys`` match; keys that match no row are ignored.

    ``rows`` are tuples in ``(*keys, *columns)`` order, keys distinct. Every key
    is one primary-key probe, taken (and its row locked) in the order given.
    """
    if not rows:
        return
    if _postgres(conn):
        _pg_update(conn, table, keys, columns, rows)
        return
    every = (*keys, *columns)
    build = lambda: mysql_update_sql(conn, table, keys, columns)  # noqa: E731
    sql = _cached_sql(conn, ("update", table.name, every), build)
    for document in _mysql_documents(rows):
        _execute(conn, sql, {"rows": document})


def mysql_update_sql(
    conn: Connection, table: Table, keys: Sequence[str], columns: Sequence[str]
) -> str:
    """MariaDB/MySQL: the rows of ``%(rows)s`` (JSON) read first, each a probe of the key."""
    match = " AND ".join(f"t.{_q(conn, c)} = k.{_q(conn, c)}" for c in keys)
    sets = ", ".join(f"t.{_q(conn, c)} = k.{_q(conn, c)}" for c in columns)
    return (
        f"UPDATE {_mysql_source(conn, table, (*keys, *columns))} STRAIGHT_JOIN"
        f" {_q(conn, table.name)} AS t ON {match} SET {sets}"
    )


def pg_lock_sql(conn: Connection, table: Table, keys: Sequence[str]) -> str:
    """PostgreSQL: ``(ord, ctid)`` of each key's row, locked key by key in ``ord`` order.

    A subquery with ``FOR UPDATE`` is never flattened into a join, so each key is
    one probe of the primary key whatever the statistics say.
    """
    match = " AND ".join(f"t.{_q(conn, c)} = k.{_q(conn, c)}" for c in keys)
    return (
        f"SELECT k.ord, l.tid FROM {_pg_source(conn, table, keys)} CROSS JOIN LATERAL"
        f" (SELECT t.ctid AS tid FROM {_q(conn, table.name)} AS t WHERE {match} FOR UPDATE)"
        " AS l ORDER BY k.ord"
    )


def _pg_write_sql(conn: Connection, table: Table, columns: Sequence[str]) -> str:
    types = _types(conn, table, columns)
    arrays = ", ".join(f"CAST(%({c})b AS {t}[])" for c, t in zip(columns, types, strict=True))
    names = ", ".join(_q(conn, c) for c in columns)
    sets = ", ".join(f"{_q(conn, c)} = u.{_q(conn, c)}" for c in columns)
    return (
        f"UPDATE {_q(conn, table.name)} AS t SET {sets}"
        f" FROM unnest(CAST(%(tid)s AS tid[]), {arrays}) AS u(tid, {names})"
        " WHERE t.ctid = ANY(CAST(%(tid)s AS tid[])) AND t.ctid = u.tid"
    )


def _pg_update(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """Lock the rows key by key (in order) and learn their ``ctid``; write them by ``ctid``.

    The ``ctid`` of a row this transaction holds locked cannot change before it
    writes the row itself. The write's ``ctid = ANY(…)`` is a TID scan whatever
    the statistics say.
    """
    width = len(keys)
    lock = _cached_sql(
        conn, ("lock", table.name, tuple(keys)), lambda: pg_lock_sql(conn, table, keys)
    )
    cursor = conn.connection.cursor()
    try:
        cursor.execute(lock, _columns_params(keys, [row[:width] for row in rows]))
        located = cursor.fetchall()
    finally:
        cursor.close()
    if not located:
        return
    if len(located) < len(rows):  # keys without a row: only the rows found are written
        rows = [rows[int(ord_) - 1] for ord_, _ in located]
    params = _columns_params(columns, [row[width:] for row in rows])
    params["tid"] = [tid for _, tid in located]
    write = _cached_sql(
        conn, ("write", table.name, tuple(columns)), lambda: _pg_write_sql(conn, table, columns)
    )
    _execute(conn, write, params)
