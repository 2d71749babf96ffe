"""SAP Business One's stock tables as the ERP writes them, on any SQLAlchemy engine.

Written from the reference (``sql-erps.md`` §1), not from the SQL source: OINM is the
warehouse journal, one row per item × warehouse × posting, appended and never changed
(§1.1 [I]); OITW keeps on hand and committed (reserved) per item × warehouse (§1.3
[D S5]). Every posting appends its OINM rows and moves OITW.OnHand in the same
transaction, as B1 does. Corrections are new postings: ``cancel`` posts a document of the
same type whose rows reverse the original (§1.1 [I]).

Physical names are the reference's, mixed case (``OINM.TransNum``): SQLAlchemy quotes
them on every dialect (``"OINM"`` on PostgreSQL, ```OINM``` on MariaDB), as B1 on HANA
needs them quoted too. A mapping names them through ``table:``/column fields, which the
source quotes the same way. Quantities are in the inventory UoM (§1.3 [I]).

The emulator refuses any UPDATE or DELETE of OINM sent through its engine (a guard on
the engine's statements), so a test can show the journal is append-only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    event,
    func,
    select,
)
from sqlalchemy.engine import Connection

#: TransType codes (= ObjType of the source document), reference §1.1's table
GRPO = 20  # Goods Receipt PO (OPDN), in [C S1]
DELIVERY = 15  # Delivery (ODLN), out [C S1]
RETURN = 16  # Returns (ORDN), in [C S1]
GOODS_RETURN = 21  # Goods Return to the supplier (ORPD), out [C S1]
GOODS_RECEIPT = 59  # Goods Receipt (OIGN), in [C S1]
GOODS_ISSUE = 60  # Goods Issue (OIGE), out [D S4]
TRANSFER = 67  # Inventory Transfer (OWTR): out of Filler, in to WhsCode [C S1; two rows I]
LANDED_COSTS = 69  # Landed Costs (OIPF): value only, qty 0 [C S1]
INVENTORY_POSTING = 10000071  # Inventory Posting (OIQR): the counted difference [I]
#: the direction of each stock-moving document type: +1 in, −1 out
DIRECTION = {GRPO: 1, DELIVERY: -1, RETURN: 1, GOODS_RETURN: -1, GOODS_RECEIPT: 1, GOODS_ISSUE: -1}

QTY = Numeric(19, 6)  # B1 quantity columns are numeric(19,6)


class OinmIsAppendOnly(RuntimeError):
    """An UPDATE or DELETE of OINM rows was sent: B1 never changes a posted row (§1.1 [I])."""


@dataclass(frozen=True)
class Posted:
    """A posted document: its type, DocEntry (OINM.CreatedBy) and DocNum (OINM.BASE_REF)."""

    trans_type: int
    doc_entry: int
    doc_num: int


@dataclass(frozen=True)
class PendingPosting:
    """A posting whose TransNums are drawn but whose rows are not committed yet.

    Models a B1 transaction that commits after a later one (§1.1: "concurrent
    transactions may commit out of TransNum order" [I]).
    """

    doc: Posted
    rows: tuple[dict[str, Any], ...]


_OINM_WRITE = re.compile(r"^\s*(UPDATE|DELETE\s+FROM)\s+[\"`\[]?OINM[\"`\]]?(\W|$)", re.IGNORECASE)


def tables(metadata: MetaData) -> tuple[Table, Table]:
    """OINM and OITW with the reference's names (a subset of their columns)."""
    oinm = Table(
        "OINM",
        metadata,
        Column("TransNum", Integer, primary_key=True, autoincrement=False),
        Column("TransType", Integer, nullable=False),
        Column("CreatedBy", Integer, nullable=False),  # the source document's DocEntry
        Column("BASE_REF", String(11), nullable=False),  # its DocNum, as text
        Column("DocLineNum", Integer, nullable=False),
        Column("ItemCode", String(50), nullable=False),
        Column("Warehouse", String(8), nullable=False),
        Column("InQty", QTY, nullable=False),
        Column("OutQty", QTY, nullable=False),
        Column("DocDate", DateTime, nullable=False),
        Column("CreateDate", DateTime, nullable=False),
        Column("DocTime", Integer, nullable=False),  # HHMM
        Column("Comments", String(254)),
    )
    oitw = Table(
        "OITW",
        metadata,
        Column("ItemCode", String(50), primary_key=True),
        Column("WhsCode", String(8), primary_key=True),
        Column("OnHand", QTY, nullable=False),
        Column("IsCommited", QTY, nullable=False),
        Column("OnOrder", QTY, nullable=False),
    )
    return oinm, oitw


class B1Emulator:
    """B1's warehouse journal and on-hand on ``engine``. ``now`` gives B1's local time.

    Lines are ``(item, warehouse, qty)`` with qty > 0 in the inventory UoM; the
    document type gives the direction.
    """

    def __init__(self, engine: Engine, *, now: Callable[[], datetime] = datetime.now) -> None:
        self.engine = engine
        self.now = now
        self.metadata = MetaData()
        self.oinm, self.oitw = tables(self.metadata)
        self._next_doc = 1
        self._next_trans: int | None = None
        self._cancelled: set[Posted] = set()
        self._documents: dict[tuple[int, int], Posted] = {}
        self._allow_oinm_delete = False
        event.listen(engine, "before_cursor_execute", self._guard)

    # --- schema -------------------------------------------------------------------------------

    def create(self) -> B1Emulator:
        """Create the tables (idempotent); returns self."""
        self.metadata.create_all(self.engine)
        return self

    def drop(self) -> None:
        """Drop the tables and stop guarding the engine."""
        self.metadata.drop_all(self.engine)
        self.close()

    def close(self) -> None:
        """Stop guarding the engine (the tables stay)."""
        if event.contains(self.engine, "before_cursor_execute", self._guard):
            event.remove(self.engine, "before_cursor_execute", self._guard)

    def _guard(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if _OINM_WRITE.match(statement) and not self._allow_oinm_delete:
            raise OinmIsAppendOnly(f"OINM is append-only; refused: {statement.split()[0]}")

    # --- postings -----------------------------------------------------------------------------

    def post(
        self,
        trans_type: int,
        lines: Sequence[tuple[str, str, Decimal | int | str]],
        *,
        doc_date: date | None = None,
    ) -> Posted:
        """Post a marketing/inventory document of ``trans_type`` (GRPO, DELIVERY, …).

        Raises ValueError for a type that is not a plain in or out document, or a qty ≤ 0.
        """
        if trans_type not in DIRECTION:
            raise ValueError(f"TransType {trans_type} is not a plain in/out document")
        sign = DIRECTION[trans_type]
        rows = [
            self._row(line, item, whs, sign * _positive(qty))
            for line, (item, whs, qty) in enumerate(lines)
        ]
        return self._commit(self._document(trans_type), rows, doc_date)

    def transfer(
        self,
        moves: Sequence[tuple[str, str, str, Decimal | int | str]],
        *,
        doc_date: date | None = None,
    ) -> Posted:
        """Inventory transfer (67): per line ``(item, from_whs, to_whs, qty)`` two OINM rows,
        out of Filler then in to WhsCode (§1.1 [C S1; two rows I])."""
        rows: list[dict[str, Any]] = []
        for line, (item, source, target, qty) in enumerate(moves):
            amount = _positive(qty)
            rows.append(self._row(line, item, source, -amount))
            rows.append(self._row(line, item, target, amount))
        return self._commit(self._document(TRANSFER), rows, doc_date)

    def count(
        self,
        counted: Sequence[tuple[str, str, Decimal | int | str]],
        *,
        doc_date: date | None = None,
    ) -> Posted:
        """Inventory posting (10000071) of counted quantities: posts counted − on hand per
        line, in or out; a line equal to on hand posts nothing (§1.1 [I])."""
        on_hand = self.on_hand()
        rows = []
        for line, (item, whs, qty) in enumerate(counted):
            difference = Decimal(str(qty)) - on_hand.get((item, whs), Decimal(0))
            if difference:
                rows.append(self._row(line, item, whs, difference))
        return self._commit(self._document(INVENTORY_POSTING), rows, doc_date)

    def landed_costs(
        self, items: Sequence[tuple[str, str]], *, doc_date: date | None = None
    ) -> Posted:
        """Landed costs (69): OINM rows with quantity 0, value only (§1.1 [C S1])."""
        rows = [self._row(line, item, whs, Decimal(0)) for line, (item, whs) in enumerate(items)]
        return self._commit(self._document(LANDED_COSTS), rows, doc_date)

    def cancel(self, doc: Posted, *, doc_date: date | None = None) -> Posted:
        """Cancel a posted document: a new document of the same type whose OINM rows
        reverse the original's (In ↔ Out); the original's rows stay (§1.1 [I]).

        Raises ValueError when ``doc`` is already cancelled or is itself a cancellation.
        """
        if doc in self._cancelled or doc.trans_type == INVENTORY_POSTING:
            raise ValueError(f"document {doc} cannot be cancelled")
        with self.engine.connect() as conn:
            original = conn.execute(
                select(self.oinm)
                .where(
                    self.oinm.c.TransType == doc.trans_type, self.oinm.c.CreatedBy == doc.doc_entry
                )
                .order_by(self.oinm.c.TransNum)
            ).all()
        rows = [
            self._row(r.DocLineNum, r.ItemCode, r.Warehouse, Decimal(r.OutQty) - Decimal(r.InQty))
            for r in original
        ]
        reversal = self._document(doc.trans_type)
        self._cancelled |= {doc, reversal}
        return self._commit(reversal, rows, doc_date)

    def prepare(
        self,
        trans_type: int,
        lines: Sequence[tuple[str, str, Decimal | int | str]],
        *,
        doc_date: date | None = None,
    ) -> PendingPosting:
        """Draw the TransNums of a plain posting now; ``commit_pending`` writes it later,
        after postings with higher TransNums (a late commit)."""
        sign = DIRECTION[trans_type]
        doc = self._document(trans_type)
        rows = tuple(
            self._stamped(
                self._row(line, item, whs, sign * _positive(qty)), doc, doc_date, self._draw()
            )
            for line, (item, whs, qty) in enumerate(lines)
        )
        return PendingPosting(doc, rows)

    def commit_pending(self, pending: PendingPosting) -> Posted:
        """Write a prepared posting with the TransNums it drew."""
        with self.engine.begin() as conn:
            self._write(conn, list(pending.rows))
        return pending.doc

    # --- reserved stock (open sales orders) ---------------------------------------------------

    def commit(self, item: str, whs: str, qty: Decimal | int | str) -> None:
        """A sales order line opens: OITW.IsCommited += qty (§1.3 [D S5])."""
        with self.engine.begin() as conn:
            self._bump(conn, item, whs, committed=Decimal(str(qty)))

    def release(self, item: str, whs: str, qty: Decimal | int | str) -> None:
        """A sales order line closes (delivered or cancelled): IsCommited −= qty."""
        with self.engine.begin() as conn:
            self._bump(conn, item, whs, committed=-Decimal(str(qty)))

    # --- reading (for tests) ------------------------------------------------------------------

    def on_hand(self) -> dict[tuple[str, str], Decimal]:
        """OITW.OnHand per (item, warehouse), zero rows left out."""
        return self._column(self.oitw.c.OnHand)

    def committed(self) -> dict[tuple[str, str], Decimal]:
        """OITW.IsCommited per (item, warehouse), zero rows left out."""
        return self._column(self.oitw.c.IsCommited)

    def journal_balance(self) -> dict[tuple[str, str], Decimal]:
        """SUM(InQty − OutQty) over OINM per (item, warehouse) (§1.1 [C S3]), zeros left out."""
        net = func.sum(self.oinm.c.InQty - self.oinm.c.OutQty)
        query = select(self.oinm.c.ItemCode, self.oinm.c.Warehouse, net).group_by(
            self.oinm.c.ItemCode, self.oinm.c.Warehouse
        )
        with self.engine.connect() as conn:
            return {(i, w): Decimal(q) for i, w, q in conn.execute(query) if Decimal(q)}

    def documents(self) -> Iterator[Posted]:
        """Every posted document, cancellations included, in posting order."""
        yield from self._documents.values()

    def is_cancelled(self, doc: Posted) -> bool:
        return doc in self._cancelled

    def reset(self) -> None:
        """Empty both tables and forget the documents (tests reuse one schema per example).

        The only DELETE of OINM the guard lets through."""
        self._allow_oinm_delete = True
        try:
            with self.engine.begin() as conn:
                conn.execute(self.oinm.delete())
                conn.execute(self.oitw.delete())
        finally:
            self._allow_oinm_delete = False
        self._next_doc, self._next_trans = 1, None
        self._cancelled.clear()
        self._documents.clear()

    # --- internals ----------------------------------------------------------------------------

    def _document(self, trans_type: int) -> Posted:
        doc = Posted(trans_type, self._next_doc, 1000 + self._next_doc)
        self._next_doc += 1
        self._documents[(trans_type, doc.doc_entry)] = doc
        return doc

    def _row(self, line: int, item: str, whs: str, net: Decimal) -> dict[str, Any]:
        return {
            "DocLineNum": line,
            "ItemCode": item,
            "Warehouse": whs,
            "InQty": max(net, Decimal(0)),
            "OutQty": max(-net, Decimal(0)),
        }

    def _draw(self) -> int:
        if self._next_trans is None:
            with self.engine.connect() as conn:
                last = conn.execute(select(func.max(self.oinm.c.TransNum))).scalar()
            self._next_trans = (last or 0) + 1
        number, self._next_trans = self._next_trans, self._next_trans + 1
        return number

    def _stamped(
        self, row: dict[str, Any], doc: Posted, doc_date: date | None, trans_num: int
    ) -> dict[str, Any]:
        created = self.now().replace(microsecond=0)
        day = doc_date or created.date()
        return {
            **row,
            "TransNum": trans_num,
            "TransType": doc.trans_type,
            "CreatedBy": doc.doc_entry,
            "BASE_REF": str(doc.doc_num),
            "DocDate": datetime(day.year, day.month, day.day),
            "CreateDate": datetime(created.year, created.month, created.day),
            "DocTime": created.hour * 100 + created.minute,
            "Comments": None,
        }

    def _commit(self, doc: Posted, rows: list[dict[str, Any]], doc_date: date | None) -> Posted:
        stamped = [self._stamped(row, doc, doc_date, self._draw()) for row in rows]
        with self.engine.begin() as conn:
            self._write(conn, stamped)
        return doc

    def _write(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(self.oinm.insert(), rows)
        for row in rows:
            self._bump(
                conn, row["ItemCode"], row["Warehouse"], on_hand=row["InQty"] - row["OutQty"]
            )

    def _bump(
        self,
        conn: Connection,
        item: str,
        whs: str,
        *,
        on_hand: Decimal = Decimal(0),
        committed: Decimal = Decimal(0),
    ) -> None:
        c = self.oitw.c
        key = (c.ItemCode == item) & (c.WhsCode == whs)
        found = conn.execute(select(c.OnHand, c.IsCommited).where(key).with_for_update()).first()
        if found is None:
            conn.execute(
                self.oitw.insert().values(
                    ItemCode=item, WhsCode=whs, OnHand=on_hand, IsCommited=committed, OnOrder=0
                )
            )
        else:
            # added here, not in SQL: SQLite keeps NUMERIC as a double, whose sums drift
            conn.execute(
                self.oitw.update()
                .where(key)
                .values(
                    OnHand=Decimal(found[0]) + on_hand, IsCommited=Decimal(found[1]) + committed
                )
            )

    def _column(self, column: Any) -> dict[tuple[str, str], Decimal]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.oitw.c.ItemCode, self.oitw.c.WhsCode, column))
            return {(i, w): Decimal(q) for i, w, q in rows if Decimal(q)}


def _positive(qty: Decimal | int | str) -> Decimal:
    amount = Decimal(str(qty))
    if amount <= 0:
        raise ValueError(f"a document line's quantity is > 0, got {qty}")
    return amount
