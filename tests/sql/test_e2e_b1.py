"""Issue 18's acceptance for SAP Business One: the shipped ``b1.yaml`` over the B1 emulator,
to the Fxiaoke emulator, through the real engine, on SQLite, PostgreSQL and MariaDB.

Random B1 activity — goods receipts PO, deliveries, returns, goods returns, goods
receipts and issues, transfers (two OINM rows), inventory postings of counts, landed
costs (qty 0, mapped to ``ignore``), cancellations (reversing postings), postings that
commit after a later one (a TransNum below one already read), committed stock — happens
before a cycle and between the pages of its pull (``on_page``). After every cycle whose
activity all came before it, and after a last quiet cycle: the ledger's level = the
mapping's on-hand query (OITW.OnHand) = the CRM's stock for every key (the CRM view
raises on a duplicate record), reserved = OITW.IsCommited, no line is quarantined, and
the window rescan withdraws nothing (OINM is append-only). Quantities have at most 2
decimals: the CRM's stock field holds 2.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from connectors.sql.emulator_b1 import (
    DELIVERY,
    DIRECTION,
    GRPO,
    B1Emulator,
    PendingPosting,
    Posted,
)

from .rig import BetweenPages, Rig

ITEMS = ("A-100", "B-200", "C-300")
WAREHOUSES = ("01", "02")
OPS = ("post", "post", "post", "transfer", "count", "landed", "cancel", "late", "reserve")
EXAMPLES = int(os.environ.get("STOCKSYNC_SQL_EXAMPLES", "30"))

quantities = st.one_of(
    st.integers(1, 40).map(Decimal),
    st.sampled_from([Decimal("0.5"), Decimal("1.25"), Decimal("0.01")]),
)
lines = st.lists(
    st.tuples(st.sampled_from(ITEMS), st.sampled_from(WAREHOUSES), quantities),
    min_size=1,
    max_size=3,
)


@dataclass(frozen=True)
class Act:
    during: int  # 0: before the cycle; n: after the n-th page of its pull
    op: str
    trans_type: int
    doc: int
    lines: tuple[tuple[str, str, Decimal], ...]


acts = st.builds(
    Act,
    during=st.sampled_from([0, 0, 1, 2, 3]),
    op=st.sampled_from(OPS),
    trans_type=st.sampled_from(sorted(DIRECTION)),
    doc=st.integers(0, 20),
    lines=lines.map(tuple),
)


class Erp:
    """The emulator, its cancellable documents and the postings not committed yet."""

    def __init__(self, b1: B1Emulator) -> None:
        self.b1 = b1
        self.docs: list[Posted] = []
        self.pending: list[PendingPosting] = []
        self.events: set[str] = set()

    def apply(self, act: Act) -> None:
        b1 = self.b1
        if act.op == "post":
            self.docs.append(b1.post(act.trans_type, act.lines))
        elif act.op == "transfer":
            moves = [(i, w, WAREHOUSES[1 - WAREHOUSES.index(w)], q) for i, w, q in act.lines]
            self.docs.append(b1.transfer(moves))
        elif act.op == "count":
            b1.count(act.lines)
        elif act.op == "landed":
            b1.landed_costs([(i, w) for i, w, _ in act.lines])
        elif act.op == "late":  # drawn now, committed at the next round's start
            self.pending.append(b1.prepare(act.trans_type, act.lines))
            self.docs.append(b1.post(act.trans_type, act.lines))
        elif act.op == "reserve":
            for item, whs, qty in act.lines:
                b1.commit(item, whs, qty)
        else:
            open_docs = [d for d in self.docs if not b1.is_cancelled(d)]
            if open_docs:
                b1.cancel(open_docs[act.doc % len(open_docs)])
                self.events.add("cancellation")

    def commit_late(self) -> None:
        for pending in self.pending:
            self.docs.append(self.b1.commit_pending(pending))
            self.events.add("a posting committed below a TransNum already read")
        self.pending.clear()


@pytest.fixture
def b1_tables(erp_engine: Engine) -> Iterator[Engine]:
    """The B1 tables on this backend, created once per test and emptied per example."""
    emulator = B1Emulator(erp_engine).create()
    emulator.close()
    yield erp_engine
    B1Emulator(erp_engine).drop()


def run_history(engine: Engine, page_size: int, rounds: list[list[Act]]) -> set[str]:
    """Apply ``rounds`` around cycles, checking after each quiet one; the events seen."""
    b1 = B1Emulator(engine)
    b1.reset()
    erp = Erp(b1)
    rig = Rig(
        "b1",
        engine.url.render_as_string(hide_password=False),
        products=ITEMS,
        warehouses=WAREHOUSES,
        page_size=page_size,
    )
    try:
        for acts_of_round in rounds:
            erp.commit_late()
            for act in acts_of_round:
                if act.during == 0:
                    erp.apply(act)
            between_pages = BetweenPages([(a.during, partial(erp.apply, a)) for a in acts_of_round])

            assert rig.rescan() == []
            rig.cycle(on_page=between_pages)
            if between_pages.ran:
                erp.events.add("act between pages of a pull")
            else:
                rig.assert_exact(b1.on_hand())
            reserved = {(r.sku, r.warehouse): r.qty for r in rig.pipeline.source.reserved() or []}
            assert reserved == b1.committed()
        erp.commit_late()
        assert rig.rescan() == []
        rig.cycle()
        rig.assert_exact(b1.on_hand())
        assert b1.journal_balance() == b1.on_hand()
    finally:
        rig.close()
        b1.close()
    return erp.events


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    page_size=st.integers(1, 3),
    rounds=st.lists(st.lists(acts, max_size=7), min_size=1, max_size=4),
)
def test_ledger_and_crm_equal_oitw_after_every_cycle(
    b1_tables: Engine, page_size: int, rounds: list[list[Act]]
) -> None:
    for name in run_history(b1_tables, page_size, rounds):
        event(name)


def test_a_cancelled_delivery_and_a_late_commit_reach_the_crm(b1_tables: Engine) -> None:
    """The explicit case: a delivery cancelled after it was synced, and a receipt whose
    TransNum is below one the last pull read (found by ``overlap_positions``)."""
    b1 = B1Emulator(b1_tables)
    b1.reset()
    rig = Rig(
        "b1",
        b1_tables.url.render_as_string(hide_password=False),
        products=ITEMS,
        warehouses=WAREHOUSES,
    )
    try:
        b1.post(GRPO, [("A-100", "01", 10)])
        shipped = b1.post(DELIVERY, [("A-100", "01", 4)])
        late = b1.prepare(GRPO, [("B-200", "02", 3)])
        b1.post(GRPO, [("B-200", "02", 1)])
        rig.cycle()
        rig.assert_exact({("A-100", "01"): Decimal(6), ("B-200", "02"): Decimal(1)})
        b1.cancel(shipped)
        b1.commit_pending(late)
        rig.cycle()
        rig.assert_exact({("A-100", "01"): Decimal(10), ("B-200", "02"): Decimal(4)})
    finally:
        rig.close()
        b1.close()
