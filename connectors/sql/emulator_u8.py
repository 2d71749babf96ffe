"""Yonyou U8's stock documents and on-hand as the ERP writes them, on any SQLAlchemy engine.

Written from the reference (``sql-erps.md`` §2), not from the SQL source:

- one header/lines table pair per voucher type, ``rdrecordNN``/``rdrecordsNN`` for 01, 08,
  09, 10, 11, 32 (§2.1 [D S8]); ``cvouchtype`` and ``brdflag`` (1 in, 0 out) on the header
  [C S6,S7 for 01/10, D for the rest];
- ``ufts`` a database-wide row version, bumped on every insert or update of a header, a
  line or a CurrentStock row (§2.5: SQL Server rowversion [C S10]); here one counter row
  (table ``ufts_counter``) drawn inside the writing transaction, the same on every backend;
- a document is saved unaudited, audited (``dveridate``/``chandler``/``dnverifytime`` set)
  and un-audited (back to NULL); an audited document cannot be edited or deleted (U8 asks
  to un-audit first, §2.5 [D S9; I]); deletes are physical, lines too;
- saving a document touches its header (``cmodifyperson``/``dmodifydate``/``dnmodifytime``),
  as U8 saves the whole voucher, so an edited or removed line bumps the header's ufts [I];
- ``currentstock.iquantity`` moves at audit and back at un-audit (``stock_at="audit"``), or
  at every save (``stock_at="save"``): the reference says it is an account option (§2.5 [I]);
- red ink (红字) is a negative ``iquantity`` on the same voucher type (§2.1 [I]); the signed
  movement is ``iquantity × (brdflag = 1 ? +1 : −1)``;
- a transfer is an 09 (调拨出库) out of the source warehouse and an 08 (调拨入库) into the
  target, both with ``cbuscode`` = the transfer's number (§2.2 [D S9]);
- ``currentstock.foutquantity`` (待发货) is the reserved quantity (§2.3 [C S10; D S9]).

Physical names are the reference's in lower case (``rdrecords32.iquantity``), so that
unquoted identifiers in a mapping's ``query:`` resolve on every backend: PostgreSQL folds
unquoted names to lower case, MariaDB's table names are case-sensitive on Linux, SQLite
and U8's SQL Server (case-insensitive collation) accept either. ``ufts`` is a BIGINT here;
on SQL Server it is ``timestamp``/``rowversion`` (binary(8)). Quantities are in the main
unit (§2.4 [D S8]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.engine import Connection

#: cVouchType → bRdFlag (1 in, 0 out), §2.1's table
VOUCHERS = {"01": 1, "08": 1, "09": 0, "10": 1, "11": 0, "32": 0}
TRANSFER_IN, TRANSFER_OUT = "调拨入库", "调拨出库"  # §2.2 [D S9]
COUNT_GAIN, COUNT_LOSS = "盘盈入库", "盘亏出库"  # 盘点 results as 08/09 [I]
QTY = Numeric(20, 6)
StockAt = Literal["audit", "save"]


class AuditedDocument(RuntimeError):
    """U8 refuses to edit or delete an audited document: un-audit (弃审) it first."""


@dataclass(frozen=True)
class Line:
    """A document line as stored: AutoID, item, signed-as-stored qty, its ufts."""

    autoid: int
    item: str
    qty: Decimal
    ufts: int


def _header(metadata: MetaData, vouch: str) -> Table:
    return Table(
        f"rdrecord{vouch}",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("ccode", String(30), nullable=False),
        Column("ddate", Date, nullable=False),
        Column("cwhcode", String(10), nullable=False),
        Column("crdcode", String(5)),
        Column("cbustype", String(60)),
        Column("csource", String(50)),
        Column("cbuscode", String(30)),
        Column("cvouchtype", String(2), nullable=False),
        Column("brdflag", SmallInteger, nullable=False),
        Column("bredvouch", SmallInteger, nullable=False),
        Column("cmaker", String(20)),
        Column("chandler", String(20)),
        Column("dveridate", Date),
        Column("cmodifyperson", String(20)),
        Column("dmodifydate", Date),
        Column("dnmaketime", DateTime),
        Column("dnmodifytime", DateTime),
        Column("dnverifytime", DateTime),
        Column("ufts", BigInteger, nullable=False),
    )


def _lines(metadata: MetaData, vouch: str) -> Table:
    return Table(
        f"rdrecords{vouch}",
        metadata,
        Column("autoid", Integer, primary_key=True, autoincrement=False),
        Column("id", Integer, nullable=False, index=True),
        Column("cinvcode", String(60), nullable=False),
        Column("iquantity", QTY, nullable=False),
        Column("inum", QTY),
        Column("cbatch", String(60)),
        Column("cposition", String(20)),
        Column("ufts", BigInteger, nullable=False),
    )


class U8Emulator:
    """U8's 收发记录 and 现存量 on ``engine``; ``now`` gives U8's local time (naive).

    ``stock_at`` chooses when CurrentStock moves: at audit (default) or at every save.
    Lines are ``(item, qty)``: qty as stored (negative on a red-ink document).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        stock_at: StockAt = "audit",
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.engine = engine
        self.stock_at = stock_at
        self.now = now
        self.metadata = MetaData()
        self.headers = {v: _header(self.metadata, v) for v in VOUCHERS}
        self.lines = {v: _lines(self.metadata, v) for v in VOUCHERS}
        self.current = Table(
            "currentstock",
            self.metadata,
            Column("autoid", Integer, primary_key=True, autoincrement=False),
            Column("cwhcode", String(10), nullable=False),
            Column("cinvcode", String(60), nullable=False),
            Column("iquantity", QTY, nullable=False),
            Column("foutquantity", QTY, nullable=False),
            Column("finquantity", QTY, nullable=False),
            Column("ufts", BigInteger, nullable=False),
        )
        self.counters = Table(
            "ufts_counter",
            self.metadata,
            Column("name", String(10), primary_key=True),
            Column("value", BigInteger, nullable=False),
        )

    # --- schema -------------------------------------------------------------------------------

    def create(self) -> U8Emulator:
        """Create the tables and the counters (idempotent); returns self."""
        self.metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            have = set(conn.execute(select(self.counters.c.name)).scalars())
            for name in ("ufts", "id", "autoid"):
                if name not in have:
                    conn.execute(self.counters.insert().values(name=name, value=0))
        return self

    def drop(self) -> None:
        self.metadata.drop_all(self.engine)

    def reset(self) -> None:
        """Empty every table (tests reuse one schema per example); counters keep counting."""
        with self.engine.begin() as conn:
            for table in [*self.headers.values(), *self.lines.values(), self.current]:
                conn.execute(table.delete())

    # --- documents ----------------------------------------------------------------------------

    def save(
        self,
        vouch: str,
        lines: Sequence[tuple[str, Decimal | int | str]],
        *,
        warehouse: str,
        bus_type: str | None = None,
        bus_code: str | None = None,
        ddate: date | None = None,
        maker: str = "demo",
    ) -> int:
        """Save a new (unaudited) document; returns its ID. Red ink when every qty < 0.

        Raises KeyError for an unknown voucher type, ValueError for a qty of 0."""
        header = self.headers[vouch]
        quantities = [Decimal(str(q)) for _, q in lines]
        if any(q == 0 for q in quantities):
            raise ValueError("a line's iQuantity is not 0")
        made = self._now()
        with self.engine.begin() as conn:
            doc = self._draw(conn, "id")
            conn.execute(
                header.insert().values(
                    id=doc,
                    ccode=f"{vouch}{doc:08d}",
                    ddate=ddate or made.date(),
                    cwhcode=warehouse,
                    cbustype=bus_type,
                    cbuscode=bus_code,
                    cvouchtype=vouch,
                    brdflag=VOUCHERS[vouch],
                    bredvouch=int(bool(quantities) and all(q < 0 for q in quantities)),
                    cmaker=maker,
                    dnmaketime=made,
                    ufts=self._draw(conn, "ufts"),
                )
            )
            for item, qty in zip((i for i, _ in lines), quantities, strict=True):
                self._insert_line(conn, vouch, doc, item, qty)
            if self.stock_at == "save":
                self._move(conn, vouch, doc, +1)
        return doc

    def audit(self, vouch: str, doc: int, *, handler: str = "auditor") -> None:
        """审核: stamp the auditor and dates; CurrentStock moves when ``stock_at="audit"``.

        Raises AuditedDocument when already audited."""
        with self.engine.begin() as conn:
            if self._audited(conn, vouch, doc):
                raise AuditedDocument(f"{vouch}/{doc} is audited already")
            moment = self._now()
            self._touch(
                conn, vouch, doc, chandler=handler, dveridate=moment.date(), dnverifytime=moment
            )
            if self.stock_at == "audit":
                self._move(conn, vouch, doc, +1)

    def unaudit(self, vouch: str, doc: int) -> None:
        """弃审: auditor and dates back to NULL; stock back when ``stock_at="audit"``.

        Raises AuditedDocument (sic: the state is wrong) when not audited."""
        with self.engine.begin() as conn:
            if not self._audited(conn, vouch, doc):
                raise AuditedDocument(f"{vouch}/{doc} is not audited")
            self._touch(conn, vouch, doc, chandler=None, dveridate=None, dnverifytime=None)
            if self.stock_at == "audit":
                self._move(conn, vouch, doc, -1)

    def edit_line(
        self,
        vouch: str,
        autoid: int,
        *,
        qty: Decimal | int | str | None = None,
        item: str | None = None,
    ) -> None:
        """Change a line's quantity and/or item (the document saved again)."""
        lines = self.lines[vouch]
        with self.engine.begin() as conn:
            doc = conn.execute(select(lines.c.id).where(lines.c.autoid == autoid)).scalar_one()
            self._editable(conn, vouch, doc)
            values: dict[str, Any] = {"ufts": self._draw(conn, "ufts")}
            if qty is not None:
                values["iquantity"] = Decimal(str(qty))
            if item is not None:
                values["cinvcode"] = item
            self._saving(conn, vouch, doc, -1)
            conn.execute(lines.update().where(lines.c.autoid == autoid).values(**values))
            self._saving(conn, vouch, doc, +1)
            self._modified(conn, vouch, doc)

    def add_line(self, vouch: str, doc: int, item: str, qty: Decimal | int | str) -> int:
        """Add a line to an unaudited document; returns its AutoID."""
        with self.engine.begin() as conn:
            self._editable(conn, vouch, doc)
            self._saving(conn, vouch, doc, -1)
            autoid = self._insert_line(conn, vouch, doc, item, Decimal(str(qty)))
            self._saving(conn, vouch, doc, +1)
            self._modified(conn, vouch, doc)
        return autoid

    def remove_line(self, vouch: str, autoid: int) -> None:
        """Delete a line of an unaudited document (physically)."""
        lines = self.lines[vouch]
        with self.engine.begin() as conn:
            doc = conn.execute(select(lines.c.id).where(lines.c.autoid == autoid)).scalar_one()
            self._editable(conn, vouch, doc)
            self._saving(conn, vouch, doc, -1)
            conn.execute(lines.delete().where(lines.c.autoid == autoid))
            self._saving(conn, vouch, doc, +1)
            self._modified(conn, vouch, doc)

    def delete(self, vouch: str, doc: int) -> None:
        """Delete an unaudited document, header and lines; nothing is left behind (§2.5)."""
        header, lines = self.headers[vouch], self.lines[vouch]
        with self.engine.begin() as conn:
            self._editable(conn, vouch, doc)
            self._saving(conn, vouch, doc, -1)
            conn.execute(lines.delete().where(lines.c.id == doc))
            conn.execute(header.delete().where(header.c.id == doc))

    # --- composite operations -----------------------------------------------------------------

    def transfer(
        self,
        moves: Sequence[tuple[str, Decimal | int | str]],
        *,
        source: str,
        target: str,
        audit: bool = True,
        ddate: date | None = None,
    ) -> tuple[int, int]:
        """A TransVouch's audit: an 09 调拨出库 out of ``source`` and an 08 调拨入库 into
        ``target`` with the same cbuscode (§2.2); audited too when ``audit``.
        Returns (09 ID, 08 ID)."""
        code = f"TV{self._peek('id') + 1:08d}"
        out = self.save(
            "09", moves, warehouse=source, bus_type=TRANSFER_OUT, bus_code=code, ddate=ddate
        )
        into = self.save(
            "08", moves, warehouse=target, bus_type=TRANSFER_IN, bus_code=code, ddate=ddate
        )
        if audit:
            self.audit("09", out)
            self.audit("08", into)
        return out, into

    def count(
        self, item: str, warehouse: str, counted: Decimal | int | str, *, audit: bool = True
    ) -> tuple[str, int] | None:
        """A count result: an 08 盘盈入库 or 09 盘亏出库 of counted − on hand (None when equal)."""
        difference = Decimal(str(counted)) - self.on_hand().get((item, warehouse), Decimal(0))
        if not difference:
            return None
        vouch, bus_type = ("08", COUNT_GAIN) if difference > 0 else ("09", COUNT_LOSS)
        doc = self.save(vouch, [(item, abs(difference))], warehouse=warehouse, bus_type=bus_type)
        if audit:
            self.audit(vouch, doc)
        return vouch, doc

    def commit(self, item: str, warehouse: str, qty: Decimal | int | str) -> None:
        """待发货 grows (a dispatch note not yet issued): fOutQuantity += qty."""
        with self.engine.begin() as conn:
            self._stock(conn, item, warehouse, reserved=Decimal(str(qty)))

    def release(self, item: str, warehouse: str, qty: Decimal | int | str) -> None:
        """待发货 shrinks: fOutQuantity −= qty."""
        with self.engine.begin() as conn:
            self._stock(conn, item, warehouse, reserved=-Decimal(str(qty)))

    # --- reading (for tests) ------------------------------------------------------------------

    def on_hand(self) -> dict[tuple[str, str], Decimal]:
        """CurrentStock.iQuantity per (item, warehouse), zeros left out."""
        return self._column(self.current.c.iquantity)

    def reserved(self) -> dict[tuple[str, str], Decimal]:
        """CurrentStock.fOutQuantity per (item, warehouse), zeros left out."""
        return self._column(self.current.c.foutquantity)

    def document_ids(self, vouch: str) -> list[int]:
        with self.engine.connect() as conn:
            header = self.headers[vouch]
            return list(conn.execute(select(header.c.id).order_by(header.c.id)).scalars())

    def lines_of(self, vouch: str, doc: int) -> list[Line]:
        lines = self.lines[vouch]
        query = (
            select(lines.c.autoid, lines.c.cinvcode, lines.c.iquantity, lines.c.ufts)
            .where(lines.c.id == doc)
            .order_by(lines.c.autoid)
        )
        with self.engine.connect() as conn:
            return [Line(a, i, Decimal(q), u) for a, i, q, u in conn.execute(query)]

    def is_audited(self, vouch: str, doc: int) -> bool:
        with self.engine.connect() as conn:
            return self._audited(conn, vouch, doc)

    def header_ufts(self, vouch: str, doc: int) -> int:
        header = self.headers[vouch]
        with self.engine.connect() as conn:
            return int(conn.execute(select(header.c.ufts).where(header.c.id == doc)).scalar_one())

    # --- internals ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.now().replace(microsecond=0)

    def _draw(self, conn: Connection, name: str) -> int:
        """The next value of a counter, inside the caller's transaction (the row stays
        locked until it commits, so values are committed in order on PG and MariaDB)."""
        c = self.counters.c
        conn.execute(self.counters.update().where(c.name == name).values(value=c.value + 1))
        return int(conn.execute(select(c.value).where(c.name == name)).scalar_one())

    def _peek(self, name: str) -> int:
        with self.engine.connect() as conn:
            c = self.counters.c
            return int(conn.execute(select(c.value).where(c.name == name)).scalar_one())

    def _insert_line(self, conn: Connection, vouch: str, doc: int, item: str, qty: Decimal) -> int:
        autoid = self._draw(conn, "autoid")
        conn.execute(
            self.lines[vouch]
            .insert()
            .values(
                autoid=autoid,
                id=doc,
                cinvcode=item,
                iquantity=qty,
                inum=None,
                ufts=self._draw(conn, "ufts"),
            )
        )
        return autoid

    def _audited(self, conn: Connection, vouch: str, doc: int) -> bool:
        header = self.headers[vouch]
        found = conn.execute(select(header.c.dveridate).where(header.c.id == doc)).one_or_none()
        if found is None:
            raise KeyError(f"no document {vouch}/{doc}")
        return found[0] is not None

    def _editable(self, conn: Connection, vouch: str, doc: int) -> None:
        if self._audited(conn, vouch, doc):
            raise AuditedDocument(f"{vouch}/{doc} is audited: un-audit it before changing it")

    def _touch(self, conn: Connection, vouch: str, doc: int, **values: Any) -> None:
        header = self.headers[vouch]
        conn.execute(
            header.update()
            .where(header.c.id == doc)
            .values(ufts=self._draw(conn, "ufts"), **values)
        )

    def _modified(self, conn: Connection, vouch: str, doc: int) -> None:
        moment = self._now()
        self._touch(
            conn, vouch, doc, cmodifyperson="demo", dmodifydate=moment.date(), dnmodifytime=moment
        )

    def _saving(self, conn: Connection, vouch: str, doc: int, sign: int) -> None:
        """Under ``stock_at="save"`` take a document's lines out of stock (−1) before a
        change and put them back (+1) after it."""
        if self.stock_at == "save":
            self._move(conn, vouch, doc, sign)

    def _move(self, conn: Connection, vouch: str, doc: int, sign: int) -> None:
        header, lines = self.headers[vouch], self.lines[vouch]
        warehouse = conn.execute(select(header.c.cwhcode).where(header.c.id == doc)).scalar_one()
        direction = 1 if VOUCHERS[vouch] else -1
        query = select(lines.c.cinvcode, lines.c.iquantity).where(lines.c.id == doc)
        for item, qty in conn.execute(query).all():
            self._stock(conn, item, warehouse, on_hand=sign * direction * Decimal(qty))

    def _stock(
        self,
        conn: Connection,
        item: str,
        warehouse: str,
        *,
        on_hand: Decimal = Decimal(0),
        reserved: Decimal = Decimal(0),
    ) -> None:
        c = self.current.c
        key = (c.cinvcode == item) & (c.cwhcode == warehouse)
        found = conn.execute(
            select(c.iquantity, c.foutquantity).where(key).with_for_update()
        ).first()
        ufts = self._draw(conn, "ufts")
        if found is None:
            conn.execute(
                self.current.insert().values(
                    autoid=self._draw(conn, "autoid"),
                    cwhcode=warehouse,
                    cinvcode=item,
                    iquantity=on_hand,
                    foutquantity=reserved,
                    finquantity=0,
                    ufts=ufts,
                )
            )
        else:
            # added here, not in SQL: SQLite keeps NUMERIC as a double, whose sums drift
            conn.execute(
                self.current.update()
                .where(key)
                .values(
                    iquantity=Decimal(found[0]) + on_hand,
                    foutquantity=Decimal(found[1]) + reserved,
                    ufts=ufts,
                )
            )

    def _column(self, column: Any) -> dict[tuple[str, str], Decimal]:
        query = select(self.current.c.cinvcode, self.current.c.cwhcode, func.sum(column)).group_by(
            self.current.c.cinvcode, self.current.c.cwhcode
        )
        with self.engine.connect() as conn:
            return {(i, w): Decimal(q) for i, w, q in conn.execute(query) if Decimal(q)}
