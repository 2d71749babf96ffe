"""The U8 emulator's own rules (reference §2), on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from connectors.sql.emulator_u8 import (
    COUNT_GAIN,
    COUNT_LOSS,
    TRANSFER_IN,
    TRANSFER_OUT,
    AuditedDocument,
    StockAt,
    U8Emulator,
)

D = Decimal
NOW = datetime(2026, 3, 2, 9, 30)


def make(engine: Engine, stock_at: StockAt) -> U8Emulator:
    return U8Emulator(engine, stock_at=stock_at, now=lambda: NOW).create()


@pytest.fixture
def u8(erp_engine: Engine) -> Iterator[U8Emulator]:
    emulator = make(erp_engine, "audit")
    yield emulator
    emulator.drop()


@pytest.fixture(params=["audit", "save"])
def either(erp_engine: Engine, request: pytest.FixtureRequest) -> Iterator[U8Emulator]:
    emulator = make(erp_engine, request.param)
    yield emulator
    emulator.drop()


def all_ufts(u8: U8Emulator) -> list[int]:
    """Every ufts in every table."""
    tables = [*u8.headers.values(), *u8.lines.values(), u8.current]
    with u8.engine.connect() as conn:
        return [int(v) for t in tables for v in conn.execute(select(t.c.ufts)).scalars()]


def header(u8: U8Emulator, vouch: str, doc: int) -> dict[str, object]:
    table = u8.headers[vouch]
    with u8.engine.connect() as conn:
        return dict(conn.execute(select(table).where(table.c.id == doc)).one()._mapping)


def test_stock_moves_at_audit_and_back_at_unaudit(u8: U8Emulator) -> None:
    doc = u8.save("01", [("A", 10), ("B", "2.5")], warehouse="01")
    assert u8.on_hand() == {} and not u8.is_audited("01", doc)
    u8.audit("01", doc)
    assert u8.on_hand() == {("A", "01"): D(10), ("B", "01"): D("2.5")}
    saved = header(u8, "01", doc)
    assert saved["chandler"] == "auditor" and saved["dveridate"] == NOW.date()
    assert saved["dnverifytime"] == NOW
    u8.unaudit("01", doc)
    assert u8.on_hand() == {}
    reverted = header(u8, "01", doc)
    assert reverted["chandler"] is None and reverted["dveridate"] is None
    assert reverted["dnverifytime"] is None


def test_with_stock_at_save_every_save_moves_stock_and_audit_does_not(
    erp_engine: Engine,
) -> None:
    u8 = make(erp_engine, "save")
    try:
        doc = u8.save("32", [("A", 3), ("B", 1)], warehouse="01")
        assert u8.on_hand() == {("A", "01"): D(-3), ("B", "01"): D(-1)}
        [first, second] = u8.lines_of("32", doc)
        u8.edit_line("32", first.autoid, qty=5)
        assert u8.on_hand() == {("A", "01"): D(-5), ("B", "01"): D(-1)}
        u8.edit_line("32", second.autoid, item="C")
        assert u8.on_hand() == {("A", "01"): D(-5), ("C", "01"): D(-1)}
        added = u8.add_line("32", doc, "A", 1)
        u8.remove_line("32", first.autoid)
        assert u8.on_hand() == {("A", "01"): D(-1), ("C", "01"): D(-1)}
        u8.audit("32", doc)
        u8.unaudit("32", doc)
        assert u8.on_hand() == {("A", "01"): D(-1), ("C", "01"): D(-1)}
        u8.delete("32", doc)
        assert u8.on_hand() == {} and u8.lines_of("32", doc) == []
        assert added not in [line.autoid for line in u8.lines_of("32", doc)]
    finally:
        u8.drop()


def test_each_voucher_type_moves_stock_its_direction(either: U8Emulator) -> None:
    for vouch, qty in (("01", 10), ("08", 3), ("09", 2), ("10", 4), ("11", 1), ("32", 5)):
        either.audit(vouch, either.save(vouch, [("A", qty)], warehouse="01"))
    assert either.on_hand() == {("A", "01"): D(10 + 3 - 2 + 4 - 1 - 5)}


def test_red_ink_is_a_negative_quantity_on_the_same_voucher(either: U8Emulator) -> None:
    either.audit("32", either.save("32", [("A", 5)], warehouse="01"))
    returned = either.save("32", [("A", -2)], warehouse="01")
    either.audit("32", returned)
    assert either.on_hand() == {("A", "01"): D(-3)}
    assert header(either, "32", returned)["bredvouch"] == 1
    assert [line.qty for line in either.lines_of("32", returned)] == [D(-2)]


def test_ufts_strictly_increases_on_every_write(either: U8Emulator) -> None:
    seen: list[int] = []

    def grew() -> None:
        values = all_ufts(either)
        assert len(values) == len(set(values))  # a database-wide version: never shared
        newest = max(values)
        assert not seen or newest > seen[-1]
        seen.append(newest)

    doc = either.save("09", [("A", 1), ("B", 2)], warehouse="01")
    grew()
    [first, second] = either.lines_of("09", doc)
    before = either.header_ufts("09", doc)
    either.edit_line("09", first.autoid, qty=3)
    grew()
    [edited, untouched] = either.lines_of("09", doc)
    assert edited.ufts > first.ufts and untouched.ufts == second.ufts
    assert either.header_ufts("09", doc) > before  # the voucher is saved as a whole
    before = either.header_ufts("09", doc)
    either.remove_line("09", second.autoid)
    assert either.header_ufts("09", doc) > before  # a removal leaves its mark on the header
    grew()
    either.add_line("09", doc, "C", 1)
    grew()
    either.audit("09", doc)
    grew()
    either.unaudit("09", doc)
    grew()
    either.commit("A", "01", 1)
    grew()


def test_an_audited_document_cannot_change_until_unaudited(u8: U8Emulator) -> None:
    doc = u8.save("01", [("A", 1)], warehouse="01")
    [line] = u8.lines_of("01", doc)
    u8.audit("01", doc)
    for change in (
        lambda: u8.edit_line("01", line.autoid, qty=2),
        lambda: u8.add_line("01", doc, "B", 1),
        lambda: u8.remove_line("01", line.autoid),
        lambda: u8.delete("01", doc),
        lambda: u8.audit("01", doc),
    ):
        with pytest.raises(AuditedDocument):
            change()
    assert u8.on_hand() == {("A", "01"): D(1)}
    u8.unaudit("01", doc)
    with pytest.raises(AuditedDocument):
        u8.unaudit("01", doc)
    u8.edit_line("01", line.autoid, qty=2)
    u8.audit("01", doc)
    assert u8.on_hand() == {("A", "01"): D(2)}


def test_a_deleted_document_leaves_no_trace(u8: U8Emulator) -> None:
    doc = u8.save("08", [("A", 1), ("B", 1)], warehouse="01")
    u8.audit("08", doc)
    u8.unaudit("08", doc)
    u8.delete("08", doc)
    assert u8.document_ids("08") == [] and u8.lines_of("08", doc) == []
    assert u8.on_hand() == {}
    with pytest.raises(KeyError):
        u8.audit("08", doc)


def test_a_transfer_is_an_09_out_and_an_08_in_with_one_bus_code(u8: U8Emulator) -> None:
    u8.audit("01", u8.save("01", [("A", 10)], warehouse="01"))
    out, into = u8.transfer([("A", 4)], source="01", target="02", ddate=date(2026, 3, 1))
    issued, received = header(u8, "09", out), header(u8, "08", into)
    assert (issued["cbustype"], received["cbustype"]) == (TRANSFER_OUT, TRANSFER_IN)
    assert issued["cbuscode"] == received["cbuscode"] and str(issued["cbuscode"]).startswith("TV")
    assert (issued["cwhcode"], received["cwhcode"]) == ("01", "02")
    assert (issued["brdflag"], received["brdflag"]) == (0, 1)
    assert issued["ddate"] == date(2026, 3, 1)
    assert u8.on_hand() == {("A", "01"): D(6), ("A", "02"): D(4)}
    pending = u8.transfer([("A", 1)], source="01", target="02", audit=False)
    assert not u8.is_audited("09", pending[0]) and not u8.is_audited("08", pending[1])
    assert u8.on_hand() == {("A", "01"): D(6), ("A", "02"): D(4)}


def test_a_count_posts_a_gain_or_a_loss(u8: U8Emulator) -> None:
    u8.audit("01", u8.save("01", [("A", 10)], warehouse="01"))
    gain = u8.count("A", "01", 12)
    assert gain is not None and header(u8, *gain)["cbustype"] == COUNT_GAIN
    loss = u8.count("A", "01", 9)
    assert loss is not None and loss[0] == "09" and header(u8, *loss)["cbustype"] == COUNT_LOSS
    assert [line.qty for line in u8.lines_of(*loss)] == [D(3)]
    assert u8.count("A", "01", 9) is None
    assert u8.on_hand() == {("A", "01"): D(9)}


def test_fout_quantity_is_the_reserved_stock(u8: U8Emulator) -> None:
    u8.audit("01", u8.save("01", [("A", 10)], warehouse="01"))
    u8.commit("A", "01", 4)
    u8.commit("B", "02", "0.5")
    assert u8.reserved() == {("A", "01"): D(4), ("B", "02"): D("0.5")}
    u8.release("A", "01", 4)
    assert u8.reserved() == {("B", "02"): D("0.5")}
    assert u8.on_hand() == {("A", "01"): D(10)}


def test_reset_empties_documents_and_stock_but_versions_go_on(u8: U8Emulator) -> None:
    doc = u8.save("01", [("A", 10)], warehouse="01")
    last = u8.header_ufts("01", doc)
    u8.reset()
    assert u8.document_ids("01") == [] and u8.on_hand() == {}
    again = u8.save("01", [("A", 1)], warehouse="01")
    assert again > doc and u8.header_ufts("01", again) > last
