"""SQLAlchemy Core selects for a stream or a snapshot. Builds statements, runs nothing.

Identifiers from the config go through ``column()`` / ``table()``, so each dialect quotes
them; every value is a bound parameter (never formatted into the SQL text). A ``query:``
is wrapped as a subquery ``src`` whose colons are escaped: it takes no parameters.
Keyset bounds on several columns are written as OR/AND (``a > x OR (a = x AND b > y)``),
which every dialect accepts, instead of row-value comparisons.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    FromClause,
    Select,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    or_,
    select,
    table,
    text,
    true,
)

from connectors.sql.settings import KindColumn, Relation, SqlSnapshot, SqlStream


def stream_columns(stream: SqlStream) -> list[str]:
    """Every column the mapping reads, each once, in a stable order."""
    names: list[str | None] = [
        *stream.document,
        *stream.key,
        stream.position,
        stream.updated,
        stream.product,
        stream.warehouse,
        stream.qty,
        stream.in_qty,
        stream.out_qty,
        stream.kind.column if isinstance(stream.kind, KindColumn) else None,
        stream.date,
        stream.doc_no,
        stream.active.column if stream.active is not None else None,
    ]
    return list(dict.fromkeys(n for n in names if n is not None))


def snapshot_columns(snapshot: SqlSnapshot) -> list[str]:
    return list(dict.fromkeys([snapshot.product, snapshot.warehouse, snapshot.qty]))


def relation(rel: Relation, columns: Sequence[str]) -> FromClause:
    """The table (``schema.name`` split at the last dot) or the query as subquery ``src``."""
    cols: list[ColumnClause[Any]] = [column(c) for c in columns]
    sql = rel.sql
    if sql is not None:
        return text(sql.replace(":", r"\:")).columns(*cols).subquery("src")
    assert rel.table is not None
    schema, _, name = rel.table.rpartition(".")
    return table(name, *cols, schema=schema or None)


def probe(rel: Relation) -> Select[Any]:
    """``SELECT * FROM src`` with a zero-row limit: the result's keys are its columns."""
    src = relation(rel, [])
    return select(literal_column("*")).select_from(src).limit(0)


def after(
    cols: Sequence[ColumnElement[Any]], values: Sequence[Any], prefix: str
) -> ColumnElement[bool]:
    """``(cols) > (values)`` in lexicographic order, as OR/AND of bound parameters."""
    terms = []
    for i, col in enumerate(cols):
        equal = [cols[j] == bindparam(f"{prefix}{j}", values[j]) for j in range(i)]
        terms.append(and_(*equal, col > bindparam(f"{prefix}{i}", values[i])))
    return or_(*terms)


def among(cols: Sequence[ColumnElement[Any]], docs: Sequence[Sequence[Any]]) -> ColumnElement[bool]:
    """``(cols) IN docs``: an expanding IN for one column, an OR of ANDs for several."""
    if len(cols) == 1:
        return cols[0].in_(bindparam("docs", [d[0] for d in docs], expanding=True))
    return or_(
        *(
            and_(*(col == bindparam(f"d{i}_{j}", doc[j]) for j, col in enumerate(cols)))
            for i, doc in enumerate(docs)
        )
    )


class StreamQueries:
    """The statements of one stream, over the columns its mapping reads."""

    def __init__(self, stream: SqlStream) -> None:
        self.stream = stream
        self.columns = stream_columns(stream)
        self.src = relation(stream, self.columns)

    def c(self, name: str) -> ColumnElement[Any]:
        return self.src.c[name]

    def _all(self) -> list[ColumnElement[Any]]:
        return [self.c(n) for n in self.columns]

    def journal_page(
        self, after_position: int | None, since_local: datetime | None, limit: int
    ) -> Select[Any]:
        """Rows after a position, in position order: ``position > :after ORDER BY position``.

        ``since_local`` (a pull from a date, without a position) filters on the date column.
        """
        assert self.stream.position is not None
        pos = self.c(self.stream.position)
        where: ColumnElement[bool] = true()
        if after_position is not None:
            where = pos > bindparam("after", after_position)
        if since_local is not None:
            where = and_(where, self.c(self.stream.date) >= bindparam("since", since_local))
        return select(*self._all()).where(where).order_by(pos).limit(limit)

    def changed_documents(
        self,
        bound: Any,
        by_date: bool,
        last: Sequence[Any] | None,
        limit: int,
    ) -> Select[Any]:
        """Step 1: the next documents (keyset on the document columns) with a line changed at
        or after ``bound``: ``updated >= :b`` for datetime stamps, ``updated > :v`` for row
        versions, ``date >= :d`` when ``by_date`` (a pull from a day, without a stamp).
        ``bound`` None: every document."""
        s = self.stream
        assert s.updated is not None
        docs = [self.c(n) for n in s.document]
        where: ColumnElement[bool] = true()
        if bound is not None:
            if by_date:
                where = self.c(s.date) >= bindparam("bound", bound)
            elif s.updated_type == "version":
                where = self.c(s.updated) > bindparam("bound", bound)
            else:
                where = self.c(s.updated) >= bindparam("bound", bound)
        if last is not None:
            where = and_(where, after(docs, last, "last"))
        return select(*docs).where(where).group_by(*docs).order_by(*docs).limit(limit)

    def newest_version(self) -> Select[Any]:
        """``SELECT MAX(updated)`` over the whole relation, without a parameter: the highest
        version a version pull may end at (architecture §4.6). NULL on an empty relation."""
        assert self.stream.updated is not None
        return select(func.max(self.c(self.stream.updated)))

    def document_lines(self, docs: Sequence[Sequence[Any]]) -> Select[Any]:
        """Step 2: every line of ``docs``, whatever its own stamp, in (document, key) order."""
        s = self.stream
        order = [self.c(n) for n in s.identity]
        return (
            select(*self._all())
            .where(among([self.c(n) for n in s.document], docs))
            .order_by(*order)
        )

    def keys_page(
        self, since_local: datetime, last: Sequence[Any] | None, limit: int
    ) -> Select[Any]:
        """The identity columns of rows dated at or after ``since_local``, keyset-paged."""
        ident = [self.c(n) for n in self.stream.identity]
        where: ColumnElement[bool] = self.c(self.stream.date) >= bindparam("since", since_local)
        if last is not None:
            where = and_(where, after(ident, last, "last"))
        return select(*ident).where(where).order_by(*ident).limit(limit)


def snapshot_select(snapshot: SqlSnapshot, nonzero: bool) -> Select[Any]:
    """product, warehouse, qty of a snapshot; ``nonzero``: only rows with qty <> 0."""
    src = relation(snapshot, snapshot_columns(snapshot))
    stmt = select(src.c[snapshot.product], src.c[snapshot.warehouse], src.c[snapshot.qty])
    if nonzero:
        stmt = stmt.where(src.c[snapshot.qty] != bindparam("zero", 0))
    return stmt
