"""The stored lines of whole documents, found by key prefix (``document_key + ':'``).

Every backend answers with a range scan of the movements' primary key
(pipeline, key), never a scan of the pipeline's lines (architecture §3.6):

- SQLite compares keys byte-wise (BINARY), so the lines of ``doc`` are exactly
  the keys in [``doc:``, ``doc;``) (';' follows ':' in ASCII); the documents'
  bounds are a VALUES table joined (CROSS JOIN: in that order) to the movements.
- PostgreSQL: the same range, which holds because migration 0003 gives
  ``movements.key`` the "C" collation (under a language collation punctuation
  weighs little and the range would miss lines); every document is probed on its
  own through ``unnest`` + ``LATERAL``, one statement for all (``OFFSET 0``: a
  probe per document, never flattened into a join over the pipeline's lines).
- MariaDB/MySQL: ``key LIKE 'doc:%'``, which the optimizer turns into a range in
  whatever collation the column has (under UCA collations ';' sorts before ':',
  so an explicit range would be wrong); several LIKEs OR-ed are several ranges.

A case-insensitive collation can return keys that differ in case only: rows are
filtered on the exact prefix in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from sync.state.rows import LedgerLine

LINE_COLUMNS = (
    "key",
    "stream",
    "kind",
    "sku",
    "warehouse",
    "qty",
    "occurred_at",
    "source_updated_at",
    "doc_no",
    "active",
    "version",
    "run_id",
    "reason",
)
_COLUMNS = ", ".join(LINE_COLUMNS)
_CHUNK = 400


def _sqlite_sql(n: int) -> str:
    """``n`` documents in one statement: a range probe of the primary key for each."""
    values = ", ".join(["(?, ?)"] * n)
    columns = ", ".join("m." + c for c in LINE_COLUMNS)
    return (
        f"WITH r(lo, hi) AS (VALUES {values}) SELECT {columns} FROM r CROSS JOIN movements AS m"
        " ON m.pipeline = ? AND m.key >= r.lo AND m.key < r.hi"
    )


_POSTGRES = (
    f"SELECT {', '.join('m.' + c for c in LINE_COLUMNS)}"
    " FROM unnest(CAST(%(lo)s AS VARCHAR[]), CAST(%(hi)s AS VARCHAR[])) AS r(lo, hi)"
    " CROSS JOIN LATERAL"
    f" (SELECT {_COLUMNS} FROM movements WHERE movements.pipeline = %(pipeline)s"
    ' AND movements.key >= r.lo COLLATE "C" AND movements.key < r.hi COLLATE "C"'
    " OFFSET 0) AS m"
)


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching every string that starts with ``prefix`` (backslash escapes)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _mysql_sql(n: int) -> str:
    """``n`` prefixes, each its own range of the primary key (KEY is reserved: quoted)."""
    columns = ", ".join(f"`{c}`" for c in LINE_COLUMNS)
    likes = " OR ".join(["`key` LIKE %s"] * n)
    return f"SELECT {columns} FROM movements WHERE pipeline = %s AND ({likes})"


def document_lines(conn: Connection, pipeline: str, documents: Sequence[str]) -> list[LedgerLine]:
    """Every stored line (active or not) of each document in ``documents`` (document keys)."""
    prefixes = [doc + ":" for doc in documents]
    rows: list[Any] = []
    raw = conn.connection.cursor()
    try:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            for start in range(0, len(documents), _CHUNK):
                chunk = documents[start : start + _CHUNK]
                bounds = [b for doc in chunk for b in (doc + ":", doc + ";")]
                raw.execute(_sqlite_sql(len(chunk)), (*bounds, pipeline))
                rows += raw.fetchall()
        elif dialect == "postgresql":
            lo, hi = prefixes, [doc + ";" for doc in documents]
            raw.execute(_POSTGRES, {"pipeline": pipeline, "lo": lo, "hi": hi})
            rows = list(raw.fetchall())
        else:
            for start in range(0, len(prefixes), _CHUNK):
                chunk = prefixes[start : start + _CHUNK]
                raw.execute(_mysql_sql(len(chunk)), (pipeline, *map(_like_prefix, chunk)))
                rows += raw.fetchall()
    finally:
        raw.close()
    wanted = tuple(prefixes)
    return [LedgerLine._make(row) for row in rows if row[0].startswith(wanted)]
