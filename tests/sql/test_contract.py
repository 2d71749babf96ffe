"""The SQL source passes the shared ErpSource contract (``tests.contract.erp``) on SQLite,
PostgreSQL and MariaDB, over the generic layout of ``tests.sql.conftest``.

Three stream shapes: a document stream with a datetime stamp (the contract as it is), a
document stream with a row version and a journal stream. The last two keep their position
in the cursor's tie-break (``Cursor(POSITION_EPOCH, n)``, architecture §4.6), so the
contract's check that a cursor's ``updated_at`` covers every line read does not apply to
them; each has a test of what covers its lines instead: the position.

Faults are real: the stream's table renamed away by the ERP's side (→ ConfigError naming
the stream), and the table locked by an ERP transaction longer than the statement timeout
(→ TransientError); the source recovers once the fault is gone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url

from connectors.sql.mapping import POSITION_EPOCH
from connectors.sql.source import SqlSource
from sync.errors import ConfigError, TransientError
from sync.model import StockKey
from sync.ports import ErpSource
from tests.contract.erp import ErpSourceContract, FaultCase
from tests.sql.conftest import T0, Erp, document_stream, journal_stream, local, settings_for

PAGE_SIZE = 4
DOCS = range(1, 8)
LINES = range(1, 4)
#: the statement timeout of the contract's source: a lock held longer is a TransientError
TIMEOUT_S = 0.5
POSITIONS_ARE_THE_CURSOR = (
    "a position or version cursor is Cursor(POSITION_EPOCH, n): its updated_at is the "
    "epoch, not a stamp covering the lines read; the position n covers them "
    "(architecture §4.6; test_position_cursors_cover_what_was_read)"
)


def stamp(doc: int) -> Any:
    """Document ``doc``'s change stamp: every line of a document carries its header's."""
    return local(T0 + timedelta(minutes=doc))


def contract_data(erp: Erp) -> None:
    """Seven three-line documents (the odd ones audited), a journal of 20 rows (landed costs
    on every 7th) and stock on hand with two lots on one key; nothing reserved."""
    erp.put_lines(
        [
            {
                "doc": d,
                "line": n,
                "item": f"M{d}{n}",
                "wh": "W1",
                "qty": Decimal(f"{n}.5") * (1 if d % 3 else -1),
                "kind": "in" if d % 3 else "out",
                "ddate": local(T0 - timedelta(days=d)),
                "ts": stamp(d),
                "ver": 10 * d,
                "audited": stamp(d) if d % 2 else None,
            }
            for d in DOCS
            for n in LINES
        ]
    )
    erp.post(
        [
            {
                "id": i,
                "item": f"J{i % 3}",
                "wh": "W2",
                "qin": Decimal(2) if i % 2 else Decimal(0),
                "qout": Decimal(0) if i % 2 else Decimal(1),
                "ttype": 69 if i % 7 == 0 else (20 if i % 2 else 15),
                "ddate": (T0 - timedelta(days=i)).date(),
                "ref": f"R{i}",
            }
            for i in range(1, 21)
        ]
    )
    erp.set_stock(
        [
            {"item": "M11", "wh": "W1", "lot": "L1", "qty": Decimal(5), "res": Decimal(0)},
            {"item": "M11", "wh": "W1", "lot": "L2", "qty": Decimal("2.5"), "res": Decimal(0)},
            {"item": "M12", "wh": "W1", "lot": "L1", "qty": Decimal(3), "res": Decimal(0)},
        ]
    )


def contract_source_for(erp: Erp, stream: dict[str, Any]) -> SqlSource:
    contract_data(erp)
    reserved = {"table": erp.stock.name, "product": "item", "warehouse": "wh", "qty": "res"}
    settings = settings_for(erp, streams=[stream], reserved=reserved, statement_timeout_s=TIMEOUT_S)
    return SqlSource(settings)


@contextmanager
def renamed_away(erp: Erp, table: str) -> Iterator[None]:
    """The ERP's side renames the stream's table (an upgrade, a wrong schema) and back."""
    away = f"{table}_away"
    with erp.writer.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {away}"))
    try:
        yield
    finally:
        with erp.writer.begin() as conn:
            conn.execute(text(f"ALTER TABLE {away} RENAME TO {table}"))


@contextmanager
def locked(erp: Erp, table: str) -> Iterator[None]:
    """An ERP transaction holding a lock that keeps readers of ``table`` out."""
    if erp.backend == "sqlite":
        path = make_url(erp.url).database
        assert path is not None
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # rollback-journal mode: readers wait, then busy
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    lock = {
        "postgresql": f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE",
        "mysql": f"LOCK TABLES {table} WRITE",
    }[erp.backend]
    with erp.writer.connect() as conn:
        conn.execute(text(lock))
        try:
            yield
        finally:
            if erp.backend == "mysql":
                conn.execute(text("UNLOCK TABLES"))
            conn.rollback()


def faults_for(erp: Erp, table: str) -> list[FaultCase]:
    return [
        ("table renamed away", lambda: renamed_away(erp, table), ConfigError),
        ("table locked past the statement timeout", lambda: locked(erp, table), TransientError),
    ]


def reserve_on(
    source: SqlSource, erp: Erp
) -> Callable[[Decimal], tuple[StockKey, Callable[[], None]]]:
    """An order reserves ``qty`` on the first lot of a key with stock; cancelling releases."""
    t = erp.stock

    def change(key: StockKey, lot: str, delta: Decimal) -> None:
        row = (t.c.item == key.sku) & (t.c.wh == key.warehouse) & (t.c.lot == lot)
        with erp.writer.begin() as conn:
            held = conn.execute(select(t.c.res).where(row)).scalar_one()
            conn.execute(update(t).where(row).values(res=Decimal(held) + delta))

    def reserve(qty: Decimal) -> tuple[StockKey, Callable[[], None]]:
        key = next(r.stock_key for r in source.on_hand() if r.qty >= qty)
        change(key, "L1", qty)
        return key, lambda: change(key, "L1", -qty)

    return reserve


def remove_middle_line(erp: Erp, stream: str) -> Callable[[], str]:
    """A user deletes the middle line of an audited three-line document (the document is
    saved again: its other lines get a newer stamp and version)."""

    def remove() -> str:
        erp.remove_line(1, 2, T0 + timedelta(hours=1), 1000)
        return f"sql:{stream}:1:2"

    return remove


class TestSqlDocumentContract(ErpSourceContract):
    """A document stream with a datetime stamp."""

    @pytest.fixture
    def contract_source(self, erp: Erp) -> Iterator[SqlSource]:
        source = contract_source_for(erp, document_stream(erp))
        yield source
        source.close()

    @pytest.fixture
    def contract_page_size(self) -> int:
        return PAGE_SIZE

    @pytest.fixture
    def contract_faults(self, erp: Erp) -> list[FaultCase]:
        return faults_for(erp, erp.lines.name)

    @pytest.fixture
    def contract_remove_line(self, contract_source: SqlSource, erp: Erp) -> Callable[[], str]:
        return remove_middle_line(erp, "docs")

    @pytest.fixture
    def contract_reserve(
        self, contract_source: SqlSource, erp: Erp
    ) -> Callable[[Decimal], tuple[StockKey, Callable[[], None]]]:
        return reserve_on(contract_source, erp)


class TestSqlVersionContract(TestSqlDocumentContract):
    """A document stream with an integer row version (U8's ufts)."""

    @pytest.fixture
    def contract_source(self, erp: Erp) -> Iterator[SqlSource]:
        stream = document_stream(erp, updated="ver", updated_type="version")
        source = contract_source_for(erp, stream)
        yield source
        source.close()

    @pytest.mark.skip(reason=POSITIONS_ARE_THE_CURSOR)
    def test_cursors_advance_monotonically(
        self, contract_source: ErpSource, contract_page_size: int
    ) -> None:
        """Not for position cursors; see ``test_position_cursors_cover_what_was_read``."""

    def test_position_cursors_cover_what_was_read(self, contract_source: SqlSource) -> None:
        """The last page's version is the newest version read; a pull from it reads only
        documents changed since (overlap_versions 0), here none."""
        pages = list(contract_source.pull("docs", None, PAGE_SIZE))
        assert len(pages) > 1 and all(p.cursor is None for p in pages[:-1])
        last = pages[-1].cursor
        assert last is not None
        assert last.updated_at == POSITION_EPOCH and last.tie_break == f"{10 * max(DOCS):020d}"
        read = [m for p in pages for m in p.movements]
        assert max(m.source_updated_at for m in read) == POSITION_EPOCH + timedelta(
            microseconds=int(last.tie_break)
        )
        assert list(contract_source.pull("docs", last, PAGE_SIZE)) == []


class TestSqlJournalContract(ErpSourceContract):
    """A journal stream (append-only rows, an integer position)."""

    @pytest.fixture
    def contract_source(self, erp: Erp) -> Iterator[SqlSource]:
        source = contract_source_for(erp, journal_stream(erp, overlap_positions=0))
        yield source
        source.close()

    @pytest.fixture
    def contract_page_size(self) -> int:
        return PAGE_SIZE

    @pytest.fixture
    def contract_faults(self, erp: Erp) -> list[FaultCase]:
        return faults_for(erp, erp.journal.name)

    @pytest.fixture
    def contract_remove_line(self) -> Callable[[], str]:
        pytest.skip(
            "a journal row is a movement of its own, not a line of a document: the journal "
            "is append-only (B1's OINM is never updated or deleted, a cancellation is a new "
            "reversing row), so no page names a complete document"
        )

    @pytest.fixture
    def contract_reserve(
        self, contract_source: SqlSource, erp: Erp
    ) -> Callable[[Decimal], tuple[StockKey, Callable[[], None]]]:
        return reserve_on(contract_source, erp)

    @pytest.mark.skip(reason=POSITIONS_ARE_THE_CURSOR)
    def test_cursors_advance_monotonically(
        self, contract_source: ErpSource, contract_page_size: int
    ) -> None:
        """Not for position cursors; see ``test_position_cursors_cover_what_was_read``."""

    def test_position_cursors_cover_what_was_read(self, contract_source: SqlSource) -> None:
        """Every page carries the position of its last row; positions only grow; a pull
        from a page's cursor reads the rows after it (overlap_positions 0)."""
        pages = list(contract_source.pull("journal", None, PAGE_SIZE))
        assert len(pages) > 1
        positions = []
        for page in pages:
            assert page.cursor is not None and page.cursor.updated_at == POSITION_EPOCH
            positions.append(int(page.cursor.tie_break))
            ids = [int(m.key.split(":")[2]) for m in page.movements]
            assert all(i <= positions[-1] for i in ids)
        assert positions == sorted(set(positions)) and positions[-1] == 20
        middle = pages[1].cursor
        assert middle is not None
        after = [m.key for p in contract_source.pull("journal", middle, 100) for m in p.movements]
        assert after == [f"sql:journal:{i}:0" for i in range(positions[1] + 1, 21) if i % 7]
