"""Issue 18's acceptance for Yonyou U8: the shipped ``u8.yaml`` over the U8 emulator, to the
Fxiaoke emulator, through the real engine, on SQLite, PostgreSQL and MariaDB.

Random U8 activity — documents of every voucher type saved and audited (red ink too),
transfers (09 + 08), counts, line edits, added and removed lines, un-audits, deleted
documents, 待发货 changes — happens before a cycle and between the pages of its pull
(``on_page``). Each cycle is preceded by the window rescan (deleted documents leave no
trace a pull could see). After every cycle whose activity all came before it, and after a
last quiet cycle: the ledger's level = the mapping's on-hand query = CurrentStock = the
CRM's stock for every key (the CRM view raises on a duplicate record), and no line is
quarantined. Both account options are drawn: stock moving at audit (the mapping as
shipped) and at save (then every saved document counts: the mapping without ``active``).
Quantities have at most 2 decimals: the CRM's stock field holds 2.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from connectors.sql.emulator_u8 import StockAt, U8Emulator

from .rig import BetweenPages, Rig

ITEMS = ("A-100", "B-200", "C-300")
WAREHOUSES = ("01", "02")
VOUCHERS = ("01", "08", "09", "10", "11", "32")
OPS = (
    "save",
    "save",
    "transfer",
    "count",
    "edit",
    "add_line",
    "remove_line",
    "delete",
    "toggle_audit",
    "reserve",
)
EXAMPLES = int(os.environ.get("STOCKSYNC_SQL_EXAMPLES", "30"))

quantities = st.one_of(
    st.integers(1, 40).map(Decimal),
    st.sampled_from([Decimal("0.5"), Decimal("1.25"), Decimal("0.01")]),
)


@dataclass(frozen=True)
class Act:
    during: int  # 0: before the cycle; n: after the n-th page of its pull
    op: str
    vouch: str
    doc: int
    line: int
    item: str
    warehouse: str
    qty: Decimal
    red: bool  # a red-ink document (01, 32): negative quantities
    audit: bool  # the document is audited after the act
    more: tuple[tuple[str, Decimal], ...]


acts = st.builds(
    Act,
    during=st.sampled_from([0, 0, 1, 2, 3]),
    op=st.sampled_from(OPS),
    vouch=st.sampled_from(VOUCHERS),
    doc=st.integers(0, 20),
    line=st.integers(0, 3),
    item=st.sampled_from(ITEMS),
    warehouse=st.sampled_from(WAREHOUSES),
    qty=quantities,
    red=st.booleans(),
    audit=st.booleans() | st.just(True),
    more=st.lists(st.tuples(st.sampled_from(ITEMS), quantities), max_size=2).map(tuple),
)


class Erp:
    """The emulator and the documents that exist; applies acts."""

    def __init__(self, u8: U8Emulator) -> None:
        self.u8 = u8
        self.docs: list[tuple[str, int]] = []
        self.events: set[str] = set()

    def apply(self, act: Act) -> None:
        if act.op == "save" or (not self.docs and act.op not in ("transfer", "count", "reserve")):
            self.save(act)
        elif act.op == "transfer":
            other = WAREHOUSES[1 - WAREHOUSES.index(act.warehouse)]
            out, into = self.u8.transfer(
                [(act.item, act.qty)], source=act.warehouse, target=other, audit=act.audit
            )
            self.docs += [("09", out), ("08", into)]
        elif act.op == "count":
            made = self.u8.count(act.item, act.warehouse, act.qty, audit=act.audit)
            if made is not None:
                self.docs.append(made)
        elif act.op == "reserve":
            self.u8.commit(act.item, act.warehouse, act.qty)
        else:
            self.change(act)

    def save(self, act: Act) -> None:
        sign = -1 if act.red and act.vouch in ("01", "32") else 1
        lines = [(item, sign * qty) for item, qty in ((act.item, act.qty), *act.more)]
        doc = self.u8.save(act.vouch, lines, warehouse=act.warehouse)
        self.docs.append((act.vouch, doc))
        if act.audit:
            self.u8.audit(act.vouch, doc)
        if sign < 0:
            self.events.add("red ink")

    def change(self, act: Act) -> None:
        vouch, doc = self.docs[act.doc % len(self.docs)]
        audited = self.u8.is_audited(vouch, doc)
        if act.op == "toggle_audit":
            (self.u8.unaudit if audited else self.u8.audit)(vouch, doc)
            self.events.add("un-audit" if audited else "audit later")
            return
        if audited:
            self.u8.unaudit(vouch, doc)
        lines = self.u8.lines_of(vouch, doc)
        line = lines[act.line % len(lines)]
        sign = -1 if line.qty < 0 else 1
        if act.op == "delete":
            self.u8.delete(vouch, doc)
            self.docs.remove((vouch, doc))
            self.events.add("document deleted")
            return
        if act.op == "edit":
            self.u8.edit_line(vouch, line.autoid, qty=sign * act.qty, item=act.item)
        elif act.op == "add_line":
            self.u8.add_line(vouch, doc, act.item, sign * act.qty)
        elif act.op == "remove_line" and len(lines) > 1:  # a document keeps one line
            self.u8.remove_line(vouch, line.autoid)
            self.events.add("line removed")
        if act.audit:
            self.u8.audit(vouch, doc)


@pytest.fixture
def u8_tables(erp_engine: Engine) -> Iterator[Engine]:
    """The U8 tables on this backend, created once per test and emptied per example."""
    U8Emulator(erp_engine).create()
    yield erp_engine
    U8Emulator(erp_engine).drop()


def run_history(
    engine: Engine, stock_at: StockAt, page_size: int, rounds: list[list[Act]]
) -> set[str]:
    """Apply ``rounds`` around cycles, checking after each quiet one; the events seen."""
    u8 = U8Emulator(engine, stock_at=stock_at)
    u8.reset()
    erp = Erp(u8)
    overrides: dict[str, Any] = {} if stock_at == "audit" else {"active": None}
    rig = Rig(
        "u8",
        engine.url.render_as_string(hide_password=False),
        products=ITEMS,
        warehouses=WAREHOUSES,
        page_size=page_size,
        **overrides,
    )
    try:
        for acts_of_round in rounds:
            for act in acts_of_round:
                if act.during == 0:
                    erp.apply(act)
            between_pages = BetweenPages([(a.during, partial(erp.apply, a)) for a in acts_of_round])

            rig.rescan()
            rig.cycle(on_page=between_pages)
            if between_pages.ran:
                erp.events.add("act between pages of a pull")
            else:
                rig.assert_exact(u8.on_hand())
            assert rig.pipeline.source.reserved() is not None
            reserved = {(r.sku, r.warehouse): r.qty for r in rig.pipeline.source.reserved() or []}
            assert reserved == u8.reserved()
        if rig.rescan():
            erp.events.add("rescan withdrew a line")
        rig.cycle()
        rig.assert_exact(u8.on_hand())
    finally:
        rig.close()
    return erp.events


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    stock_at=st.sampled_from(["audit", "save"]),
    page_size=st.integers(1, 3),
    rounds=st.lists(st.lists(acts, max_size=7), min_size=1, max_size=4),
)
def test_ledger_and_crm_equal_current_stock_after_every_cycle(
    u8_tables: Engine, stock_at: StockAt, page_size: int, rounds: list[list[Act]]
) -> None:
    for name in run_history(u8_tables, stock_at, page_size, rounds):
        event(name)


def test_a_deleted_document_is_withdrawn_by_the_rescan(u8_tables: Engine) -> None:
    """The explicit case: audited, synced, un-audited and deleted between two cycles."""
    u8 = U8Emulator(u8_tables)
    u8.reset()
    rig = Rig(
        "u8",
        u8_tables.url.render_as_string(hide_password=False),
        products=ITEMS,
        warehouses=WAREHOUSES,
    )
    try:
        kept = u8.save("01", [("A-100", 10)], warehouse="01")
        u8.audit("01", kept)
        doomed = u8.save("32", [("A-100", 3), ("B-200", -1)], warehouse="01")
        u8.audit("32", doomed)
        rig.cycle()
        rig.assert_exact({("A-100", "01"): Decimal(7), ("B-200", "01"): Decimal(1)})
        u8.unaudit("32", doomed)
        u8.delete("32", doomed)
        rig.cycle()  # the un-audit's ufts died with the document: nothing to pull
        assert rig.levels() == {("A-100", "01"): Decimal(7), ("B-200", "01"): Decimal(1)}
        assert len(rig.rescan()) == 2
        rig.cycle()
        rig.assert_exact({("A-100", "01"): Decimal(10)})
    finally:
        rig.close()


def test_a_document_changed_behind_the_pull_is_read_by_the_next_one(u8_tables: Engine) -> None:
    """Six documents changed; after the pull's first page the first is edited and a new one
    saved (its ufts the newest, and read by this pull). With ``overlap_versions: 0`` the
    next pulls must still read the edit: the cursor may not pass a version it has not read."""
    u8 = U8Emulator(u8_tables)
    u8.reset()
    docs = [u8.save("01", [("A-100", 1)], warehouse="01") for _ in range(6)]
    for doc in docs:
        u8.audit("01", doc)
    rig = Rig(
        "u8",
        u8_tables.url.render_as_string(hide_password=False),
        products=ITEMS,
        warehouses=WAREHOUSES,
        page_size=1,
        overlap_versions=0,
    )
    try:
        rig.cycle()
        for doc in docs:  # every document changes: the next pull has six to read
            u8.unaudit("01", doc)
            u8.audit("01", doc)
        acted: list[bool] = []

        def behind_the_pull(_: Any) -> None:
            if not acted:
                acted.append(True)
                u8.unaudit("01", docs[0])
                u8.edit_line("01", u8.lines_of("01", docs[0])[0].autoid, qty=5)
                u8.audit("01", docs[0])
                u8.audit("01", u8.save("01", [("B-200", 1)], warehouse="01"))

        rig.cycle(on_page=behind_the_pull)
        assert acted
        rig.cycle()
        rig.cycle()
        rig.assert_exact({("A-100", "01"): Decimal(10), ("B-200", "01"): Decimal(1)})
    finally:
        rig.close()


def test_an_edit_ahead_of_the_pull_does_not_carry_the_cursor_past_one_behind_it(
    u8_tables: Engine,
) -> None:
    """No new document this time: after the pull's first page, the first document (already
    read) is edited, then the last (not reached yet, its new ufts above every version the
    pull began under, and read by this pull). With ``overlap_versions: 0`` the next pull
    must still read the first edit."""
    u8 = U8Emulator(u8_tables)
    u8.reset()
    docs = [u8.save("32", [("A-100", 1)], warehouse="02") for _ in range(5)]
    for doc in docs:
        u8.audit("32", doc)
    rig = Rig(
        "u8",
        u8_tables.url.render_as_string(hide_password=False),
        products=ITEMS,
        warehouses=WAREHOUSES,
        page_size=1,
        overlap_versions=0,
    )

    def edit(doc: int, qty: int) -> None:
        u8.unaudit("32", doc)
        u8.edit_line("32", u8.lines_of("32", doc)[0].autoid, qty=qty)
        u8.audit("32", doc)

    try:
        u8.audit("01", u8.save("01", [("A-100", 50)], warehouse="02"))
        rig.cycle()
        for doc in docs:  # every shipment changes: the next pull has five to read
            u8.unaudit("32", doc)
            u8.audit("32", doc)
        acted: list[bool] = []

        def behind_and_ahead(_: Any) -> None:
            if not acted:
                acted.append(True)
                edit(docs[0], 4)
                edit(docs[-1], 6)

        rig.cycle(on_page=behind_and_ahead)
        assert acted
        rig.cycle()
        rig.assert_exact({("A-100", "02"): Decimal(50 - 4 - 1 - 1 - 1 - 6)})
    finally:
        rig.close()
