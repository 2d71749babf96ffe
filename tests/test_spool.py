"""SortedSpool: snapshots out of order in, key order out (reconcile's external sort)."""

from __future__ import annotations

from decimal import Decimal

from sync.model import StockKey
from sync.state.scratch import SortedSpool

A, B, C = StockKey("A", "W1"), StockKey("B", "W1"), StockKey("B", "W2")


def test_summed_and_grouped_in_key_order() -> None:
    with SortedSpool() as spool:
        rows = [(C, Decimal("1.5"), "c1"), (A, Decimal(2), "a1"), (C, Decimal(3), "c2")]
        rows += [(B, Decimal(-1), None), (A, Decimal("0.25"), "a2"), (C, Decimal(0), "c3")]
        assert spool.add(rows) == 6
        assert list(spool.summed()) == [(A, Decimal("2.25")), (B, Decimal(-1)), (C, Decimal("4.5"))]
        # every row of a key, in the order spooled (the CRM's oldest record first)
        assert list(spool.grouped()) == [
            (A, [(Decimal(2), "a1"), (Decimal("0.25"), "a2")]),
            (B, [(Decimal(-1), None)]),
            (C, [(Decimal("1.5"), "c1"), (Decimal(3), "c2"), (Decimal(0), "c3")]),
        ]


def test_an_empty_spool_yields_nothing() -> None:
    with SortedSpool() as spool:
        assert list(spool.grouped()) == [] and list(spool.summed()) == []
