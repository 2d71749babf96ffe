"""The SQL ErpSource: streams read from the ERP's own tables (B1 OINM, U8 RdRecords, …).

Journal streams page on a monotone integer position; document streams page on a keyset of
document ids among the documents changed since the bound, and carry whole documents
(``documents``). Each page is read in one transaction. Position and version cursors live in
``Cursor.tie_break`` (``resume_cursor``, architecture §4.6); a version pull's cursor never
passes the stream's highest version when it began.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import PurePath
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from connectors.sql.documents import document_pages
from connectors.sql.engine import open_engine, translate
from connectors.sql.mapping import (
    POSITION_EPOCH,
    RowError,
    RowMapper,
    code,
    local_bound,
    movement_key,
    to_decimal,
    to_int,
)
from connectors.sql.query import StreamQueries, probe, snapshot_select
from connectors.sql.settings import KindColumn, SqlSettings, SqlSnapshot, SqlStream
from sync.errors import ConfigError, ConfigProblem, PermanentError
from sync.model import Cursor, Movement, OnHand, Page, RejectedRecord, Reserved, document_key
from sync.ports import ConnectorContext
from sync.settings import mask

log = structlog.get_logger("stocksync.sql")

#: rows per keyset page of the window rescan's key listing
KEYS_PAGE = 5000
#: rows fetched per round trip from a snapshot
SNAPSHOT_BATCH = 5000
#: bound values in one statement listing documents: SQL Server accepts at most 2100
MAX_LISTED_VALUES = 2000


def build(settings: SqlSettings, context: ConnectorContext) -> SqlSource:
    """Registry factory: a source over a fresh engine (no connection until the first call)."""
    return SqlSource(settings)


class SqlSource:
    """ErpSource over a SQLAlchemy engine that only reads."""

    name = "sql"

    def __init__(self, settings: SqlSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        #: the zone the core reads business days in (``sync.ports.source_zone``)
        self.timezone = ZoneInfo(settings.timezone)
        self.engine = engine or open_engine(
            settings.url.get_secret_value(), statement_timeout_s=settings.statement_timeout_s
        )
        self._index = {s.name: i for i, s in enumerate(settings.streams)}
        self._mappers = {s.name: RowMapper(s, self.timezone) for s in settings.streams}
        self._queries = {s.name: StreamQueries(s) for s in settings.streams}

    # -- ErpSource -------------------------------------------------------------------------

    def streams(self) -> Sequence[str]:
        return tuple(s.name for s in self.settings.streams)

    def resume_cursor(self, stream: str, stored: Cursor, overlap_s: float) -> Cursor:
        """Where a pull resumes: a position or version cursor as stored (``pull`` subtracts
        the stream's ``overlap_positions`` / ``overlap_versions``), a datetime one minus
        ``overlap_s``."""
        s = self._stream(stream)
        if s.mode == "journal" or s.updated_type == "version":
            return stored
        return Cursor(stored.updated_at - timedelta(seconds=overlap_s), "")

    def pull(self, stream: str, since: Cursor | None, page_size: int) -> Iterator[Page]:
        s = self._stream(stream)
        if s.mode == "journal":
            return self._pull_journal(s, since, page_size)
        return self._pull_documents(s, since, page_size)

    def keys_in_window(self, stream: str, since: datetime) -> Iterator[str]:
        """Every key whose ``date`` is at or after ``since`` (from a day earlier: extra keys are
        harmless, and a date column kept as text compares coarsely)."""
        s = self._stream(stream)
        queries = self._queries[stream]
        bound = local_bound(since, self.timezone) - timedelta(days=1)
        split = len(s.document) if s.mode == "document" else None
        last: tuple[Any, ...] | None = None
        while True:
            with self._read(self._where(stream)) as conn:
                rows = [tuple(r) for r in conn.execute(queries.keys_page(bound, last, KEYS_PAGE))]
            for values in rows:
                if split is None:
                    yield movement_key(s.name, values, None)
                else:
                    yield movement_key(s.name, values[:split], values[split:])
            if len(rows) < KEYS_PAGE:
                return
            last = rows[-1]

    def on_hand(self) -> Iterator[OnHand]:
        for (sku, warehouse), qty in self._snapshot(self.settings.on_hand, "erp.on_hand").items():
            yield OnHand(sku, warehouse, qty)

    def reserved(self) -> list[Reserved] | None:
        """None when ``erp.reserved`` is not configured; else the keys whose sum is not 0."""
        if self.settings.reserved is None:
            return None
        totals = self._snapshot(self.settings.reserved, "erp.reserved", nonzero=True)
        return [Reserved(sku, wh, qty) for (sku, wh), qty in totals.items() if qty != 0]

    def check(self) -> str:
        """Run every configured query with a zero-row limit and check each mapped column is in
        its result. Raises ConfigError listing every missing column with the columns returned."""
        problems: list[ConfigProblem] = []
        for i, s in enumerate(self.settings.streams):
            problems += self._probe(s, f"erp.streams[{i}]", f"stream {s.name!r}", _stream_fields(s))
        for section in ("on_hand", "reserved"):
            snap: SqlSnapshot | None = getattr(self.settings, section)
            if snap is not None:
                fields = [
                    ("product", snap.product),
                    ("warehouse", snap.warehouse),
                    ("qty", snap.qty),
                ]
                problems += self._probe(snap, f"erp.{section}", section, fields)
        if problems:
            raise ConfigError(problems)
        return (
            f"sql database {self._shown()} ({self.engine.dialect.name}, read-only): "
            f"{len(self.settings.streams)} stream(s) and the stock queries match their columns"
        )

    def close(self) -> None:
        self.engine.dispose()

    def _shown(self) -> str:
        """Host and database name: the URL itself is a secret (masked whole in any output)."""
        url = make_url(self.settings.url.get_secret_value())
        database = (
            PurePath(url.database or "").name
            if url.get_backend_name() == "sqlite"
            else url.database
        )
        return mask(f"{url.host + '/' if url.host else ''}{database or ''}")

    # -- pulls -----------------------------------------------------------------------------

    def _pull_journal(self, s: SqlStream, since: Cursor | None, page_size: int) -> Iterator[Page]:
        """Pages in position order, each with its own position cursor (``POSITION_EPOCH``)."""
        assert s.position is not None
        mapper, queries, where = self._mappers[s.name], self._queries[s.name], self._where(s.name)
        after: int | None = None
        since_local: datetime | None = None
        if since is not None and since.tie_break.isdigit():
            start = int(since.tie_break) - s.overlap_positions
            after = start if start >= 0 else None
        elif since is not None:
            since_local = local_bound(since.updated_at, self.timezone)
        while True:
            with self._read(where) as conn:
                rows = (
                    conn.execute(queries.journal_page(after, since_local, page_size))
                    .mappings()
                    .all()
                )
            if not rows:
                return
            movements: list[Movement] = []
            rejects: list[RejectedRecord] = []
            for row in rows:
                mapped = mapper.map(row)
                if mapped is None:
                    continue
                if isinstance(mapped, RejectedRecord):
                    rejects.append(mapped)
                else:
                    movements.append(mapped)
            after = self._position(rows[-1], s.position, where)
            yield Page(s.name, movements, Cursor(POSITION_EPOCH, f"{after:020d}"), rejects)
            if len(rows) < page_size:
                return

    def _pull_documents(self, s: SqlStream, since: Cursor | None, page_size: int) -> Iterator[Page]:
        """Whole documents, ≈ ``page_size`` lines a page; the last page carries the cursor.

        A version stream first reads its highest version: the cursor never passes it, so a
        document changed behind the pull is read by the next one (architecture §4.6).
        """
        queries, where = self._queries[s.name], self._where(s.name)
        bound, by_date = self._document_bound(s, since)
        ceiling = self._version_ceiling(s) if s.updated_type == "version" else None
        batch = max(1, min(page_size, MAX_LISTED_VALUES // len(s.document)))
        last: tuple[Any, ...] | None = None
        pending: Page | None = None
        newest: Any = None
        while True:
            with self._read(where) as conn:
                docs = [
                    tuple(d)
                    for d in conn.execute(queries.changed_documents(bound, by_date, last, batch))
                ]
                lines = conn.execute(queries.document_lines(docs)).mappings().all() if docs else []
            if not docs:
                break
            pages, stamp = document_pages(self._mappers[s.name], docs, lines, page_size)
            newest = stamp if newest is None or (stamp is not None and stamp > newest) else newest
            for page in pages:
                if pending is not None:
                    yield pending
                pending = page
            if len(docs) < batch:
                break
            last = docs[-1]
        if pending is None:
            return
        cursor = self._document_cursor(s, newest, ceiling)
        if s.updated_type == "version" and _names_an_emptied_document(pending):
            # the ledger stamps a document named with no line by the page's cursor, which
            # for a version stream is POSITION_EPOCH: older than its stored lines, so they
            # would stay. On a page without a cursor they are withdrawn (architecture §4.6).
            yield pending
            yield Page(s.name, [], cursor)
            return
        yield Page(
            pending.stream,
            pending.movements,
            cursor,
            pending.rejects,
            pending.complete_documents,
        )

    def _document_bound(self, s: SqlStream, since: Cursor | None) -> tuple[Any, bool]:
        """Step 1's bound and whether it is on the business date (a pull from a day)."""
        if since is None:
            return None, False
        if s.updated_type == "version":
            if since.tie_break.isdigit():
                start = int(since.tie_break) - s.overlap_versions
                return (start if start >= 0 else None), False
            return local_bound(since.updated_at, self.timezone), True
        return local_bound(since.updated_at, self.timezone), False

    def _version_ceiling(self, s: SqlStream) -> int | None:
        """The stream's highest version before the pull reads a page (``MAX(updated)``).

        None, and the cursor stays where it is, when the relation is empty or the maximum is
        not a non-negative integer (logged: every pull then re-reads from the old cursor).
        """
        assert s.updated is not None
        with self._read(self._where(s.name)) as conn:
            value = conn.execute(self._queries[s.name].newest_version()).scalar()
        if value is None:
            return None
        try:
            version = to_int(value, s.updated)
        except RowError as exc:
            reason = exc.reason
        else:
            if version >= 0:
                return version
            reason = f"{version} is negative"
        log.warning(
            "sql_version_ceiling_unreadable", stream=s.name, column=s.updated, reason=reason
        )
        return None

    def _document_cursor(self, s: SqlStream, newest: Any, ceiling: int | None) -> Cursor | None:
        """The last page's cursor: the newest stamp read; a version no later than ``ceiling``,
        the highest when the pull began (architecture §4.6). None: the cursor stays."""
        if newest is None:
            return None
        if s.updated_type == "version":
            if ceiling is None:
                return None
            return Cursor(POSITION_EPOCH, f"{min(newest, ceiling):020d}")
        return Cursor(newest, "")

    # -- helpers ---------------------------------------------------------------------------

    def _stream(self, stream: str) -> SqlStream:
        if stream not in self._index:
            raise PermanentError(f"unknown sql stream {stream!r}; known: {', '.join(self._index)}")
        return self.settings.streams[self._index[stream]]

    def _where(self, stream: str) -> str:
        return f"erp.streams[{self._index[stream]}] (stream {stream!r})"

    @contextmanager
    def _read(self, where: str) -> Iterator[Connection]:
        """A connection for one read transaction; database errors become our classes."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise translate(exc, where) from None

    def _position(self, row: Mapping[Any, Any], column: str, where: str) -> int:
        try:
            value = to_int(row[column], column)
        except RowError as exc:
            raise PermanentError(f"{where}.position: {exc.reason}", where=where) from None
        if value < 0:
            raise PermanentError(f"{where}.position: {column} = {value} is negative", where=where)
        return value

    def _snapshot(
        self, snap: SqlSnapshot, where: str, *, nonzero: bool = False
    ) -> dict[tuple[str, str], Decimal]:
        """Quantities summed per (product, warehouse), exactly (Decimal), streamed in batches."""
        totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        skipped = 0
        with self._read(where) as conn:
            result = conn.execution_options(yield_per=SNAPSHOT_BATCH).execute(
                snapshot_select(snap, nonzero)
            )
            for product, warehouse, qty in result:
                try:
                    key = (code(product, snap.product), code(warehouse, snap.warehouse))
                except RowError:
                    skipped += 1
                    continue
                if qty is None:
                    continue
                try:
                    totals[key] += to_decimal(qty, snap.qty)
                except RowError as exc:
                    raise PermanentError(f"{where}.qty: {exc.reason}", where=where) from None
        if skipped:
            log.warning("sql_snapshot_rows_without_code", section=where, rows=skipped)
        return totals

    def _probe(
        self, rel: Any, where: str, label: str, fields: list[tuple[str, str]]
    ) -> list[ConfigProblem]:
        with self._read(f"{where} ({label})") as conn:
            returned = list(conn.execute(probe(rel)).keys())
        shown = ", ".join(returned)
        return [
            ConfigProblem(
                f"{where}.{field}",
                f"{label}: column {column!r} is not in the result; the query returns: {shown}",
            )
            for field, column in fields
            if column not in returned
        ]


def _names_an_emptied_document(page: Page) -> bool:
    """Whether ``page`` names a complete document none of its lines belong to (all its lines
    deleted between the two reads of a batch)."""
    present = {document_key(m.key) for m in page.movements}
    return any(doc not in present for doc in page.complete_documents)


def _stream_fields(s: SqlStream) -> list[tuple[str, str]]:
    """(config key, column) of every column a stream maps."""
    fields: list[tuple[str, str | None]] = [
        *((f"document[{j}]", c) for j, c in enumerate(s.document)),
        *((f"key[{j}]", c) for j, c in enumerate(s.key)),
        ("position", s.position),
        ("updated", s.updated),
        ("product", s.product),
        ("warehouse", s.warehouse),
        ("qty", s.qty),
        ("in_qty", s.in_qty),
        ("out_qty", s.out_qty),
        ("kind.column", s.kind.column if isinstance(s.kind, KindColumn) else None),
        ("date", s.date),
        ("doc_no", s.doc_no),
        ("active.column", s.active.column if s.active is not None else None),
    ]
    return [(f, c) for f, c in fields if c is not None]
