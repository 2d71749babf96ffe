"""The B1 emulator's own rules (reference §1), on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select, text

from connectors.sql.emulator_b1 import (
    DELIVERY,
    GOODS_ISSUE,
    GOODS_RECEIPT,
    GOODS_RETURN,
    GRPO,
    INVENTORY_POSTING,
    LANDED_COSTS,
    RETURN,
    TRANSFER,
    B1Emulator,
    OinmIsAppendOnly,
)

D = Decimal


@pytest.fixture
def b1(erp_engine: Engine) -> Iterator[B1Emulator]:
    emulator = B1Emulator(erp_engine, now=lambda: datetime(2026, 3, 2, 14, 35)).create()
    yield emulator
    emulator.drop()


def oinm_rows(b1: B1Emulator) -> list[tuple[int, int, str, str, Decimal, Decimal]]:
    c = b1.oinm.c
    query = select(c.TransNum, c.TransType, c.ItemCode, c.Warehouse, c.InQty, c.OutQty)
    with b1.engine.connect() as conn:
        return [
            (n, t, i, w, D(inq), D(out))
            for n, t, i, w, inq, out in conn.execute(query.order_by(c.TransNum))
        ]


def test_each_document_type_moves_on_hand_its_way(b1: B1Emulator) -> None:
    b1.post(GRPO, [("A", "01", 10), ("B", "01", 4)])
    b1.post(DELIVERY, [("A", "01", 3)])
    b1.post(RETURN, [("A", "01", 1)])
    b1.post(GOODS_RETURN, [("B", "01", 1)])
    b1.post(GOODS_RECEIPT, [("C", "02", "2.5")])
    b1.post(GOODS_ISSUE, [("C", "02", "0.5")])
    assert b1.on_hand() == {("A", "01"): D(8), ("B", "01"): D(3), ("C", "02"): D(2)}
    assert b1.journal_balance() == b1.on_hand()
    # InQty / OutQty both >= 0, net = In − Out (§1.1 [C S3])
    assert [(t, inq, out) for _, t, _, _, inq, out in oinm_rows(b1)] == [
        (GRPO, D(10), D(0)),
        (GRPO, D(4), D(0)),
        (DELIVERY, D(0), D(3)),
        (RETURN, D(1), D(0)),
        (GOODS_RETURN, D(0), D(1)),
        (GOODS_RECEIPT, D("2.5"), D(0)),
        (GOODS_ISSUE, D(0), D("0.5")),
    ]


def test_transnum_strictly_increases_and_identifies_the_document(b1: B1Emulator) -> None:
    first = b1.post(GRPO, [("A", "01", 1), ("A", "02", 1)], doc_date=date(2026, 2, 27))
    second = b1.post(DELIVERY, [("A", "01", 1)])
    numbers = [row[0] for row in oinm_rows(b1)]
    assert numbers == sorted(set(numbers)) and len(numbers) == 3
    c = b1.oinm.c
    with b1.engine.connect() as conn:
        rows = conn.execute(
            select(c.CreatedBy, c.BASE_REF, c.DocLineNum, c.DocDate, c.DocTime).order_by(c.TransNum)
        ).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (first.doc_entry, str(first.doc_num), 0),
        (first.doc_entry, str(first.doc_num), 1),
        (second.doc_entry, str(second.doc_num), 0),
    ]
    assert rows[0][3] == datetime(2026, 2, 27) and rows[2][3] == datetime(2026, 3, 2)
    assert rows[0][4] == 1435  # DocTime HHMM


def test_a_transfer_writes_two_rows_out_of_filler_and_into_the_target(b1: B1Emulator) -> None:
    b1.post(GRPO, [("A", "01", 10)])
    b1.transfer([("A", "01", "02", 4)])
    assert oinm_rows(b1)[1:] == [
        (2, TRANSFER, "A", "01", D(0), D(4)),
        (3, TRANSFER, "A", "02", D(4), D(0)),
    ]
    assert b1.on_hand() == {("A", "01"): D(6), ("A", "02"): D(4)}


def test_a_count_posts_the_difference_either_way(b1: B1Emulator) -> None:
    b1.post(GRPO, [("A", "01", 10), ("B", "01", 5)])
    b1.count([("A", "01", 12), ("B", "01", 3), ("C", "01", 5)])
    assert [(t, i, inq, out) for _, t, i, _, inq, out in oinm_rows(b1)[2:]] == [
        (INVENTORY_POSTING, "A", D(2), D(0)),
        (INVENTORY_POSTING, "B", D(0), D(2)),
        (INVENTORY_POSTING, "C", D(5), D(0)),
    ]
    assert b1.on_hand() == {("A", "01"): D(12), ("B", "01"): D(3), ("C", "01"): D(5)}
    b1.count([("A", "01", 12)])  # equal: no row
    assert len(oinm_rows(b1)) == 5


def test_landed_costs_write_zero_quantity_rows(b1: B1Emulator) -> None:
    b1.post(GRPO, [("A", "01", 10)])
    b1.landed_costs([("A", "01")])
    assert oinm_rows(b1)[1] == (2, LANDED_COSTS, "A", "01", D(0), D(0))
    assert b1.on_hand() == {("A", "01"): D(10)}


def test_a_cancel_is_a_reversing_posting_of_the_same_type(b1: B1Emulator) -> None:
    b1.post(GRPO, [("A", "01", 10)])
    shipped = b1.post(DELIVERY, [("A", "01", 3), ("A", "02", "0.5")])
    before = oinm_rows(b1)
    reversal = b1.cancel(shipped)
    after = oinm_rows(b1)
    assert after[: len(before)] == before  # the original rows are untouched
    assert after[len(before) :] == [
        (4, DELIVERY, "A", "01", D(3), D(0)),
        (5, DELIVERY, "A", "02", D("0.5"), D(0)),
    ]
    assert reversal.trans_type == DELIVERY and reversal.doc_entry != shipped.doc_entry
    assert b1.on_hand() == {("A", "01"): D(10)}
    with pytest.raises(ValueError):
        b1.cancel(shipped)
    with pytest.raises(ValueError):
        b1.cancel(reversal)


def test_oinm_is_append_only_through_the_emulator_engine(b1: B1Emulator) -> None:
    statements: list[str] = []
    from sqlalchemy import event

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(b1.engine, "before_cursor_execute", record)
    try:
        shipped = b1.post(DELIVERY, [("A", "01", 3)])
        b1.cancel(shipped)
        b1.transfer([("A", "01", "02", 1)])
        b1.count([("A", "01", 7)])
    finally:
        event.remove(b1.engine, "before_cursor_execute", record)
    writes = [s for s in statements if "OINM" in s and s.split()[0].upper() != "SELECT"]
    assert writes and all(s.split()[0].upper() == "INSERT" for s in writes)
    quote = '"' if b1.engine.dialect.name != "mysql" else "`"
    for statement in (
        f"UPDATE {quote}OINM{quote} SET {quote}InQty{quote} = 0",
        f"DELETE FROM {quote}OINM{quote}",
        "delete from OINM where 1 = 1",
    ):
        with pytest.raises(OinmIsAppendOnly), b1.engine.begin() as conn:
            conn.execute(text(statement))
    assert len(oinm_rows(b1)) == 5


def test_a_late_commit_lands_below_a_transnum_already_committed(b1: B1Emulator) -> None:
    pending = b1.prepare(GRPO, [("A", "01", 2)])
    b1.post(GRPO, [("A", "01", 5)])
    assert [r[0] for r in oinm_rows(b1)] == [2]
    b1.commit_pending(pending)
    assert [r[0] for r in oinm_rows(b1)] == [1, 2]
    assert b1.on_hand() == {("A", "01"): D(7)}


def test_is_commited_follows_open_sales_orders_and_leaves_on_hand(b1: B1Emulator) -> None:
    b1.post(GRPO, [("A", "01", 10)])
    b1.commit("A", "01", 4)
    b1.commit("B", "02", 1)
    assert b1.committed() == {("A", "01"): D(4), ("B", "02"): D(1)}
    b1.release("A", "01", 4)
    assert b1.committed() == {("B", "02"): D(1)}
    assert b1.on_hand() == {("A", "01"): D(10)}


def test_reset_empties_the_journal_and_on_hand(b1: B1Emulator) -> None:
    b1.post(GRPO, [("A", "01", 10)])
    b1.reset()
    assert oinm_rows(b1) == [] and b1.on_hand() == {}
    b1.post(GRPO, [("A", "01", 1)])
    assert [r[0] for r in oinm_rows(b1)] == [1]


def test_a_document_line_needs_a_positive_quantity(b1: B1Emulator) -> None:
    with pytest.raises(ValueError):
        b1.post(GRPO, [("A", "01", 0)])
    with pytest.raises(ValueError):
        b1.post(TRANSFER, [("A", "01", 1)])
