"""Quantities shown to people read the same in every row: ``plain`` (newcomer trial: the
report showed reserved as 0.0, 0.00, 15.0 and 0 in one table)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sync.demand import Outflows
from sync.model import LevelValue, StockKey, plain
from sync.report import cover_rows


@pytest.mark.parametrize(
    ("qty", "shown"),
    [
        ("15.0", "15"),
        ("0.00", "0"),
        ("-0.000", "0"),
        ("1.50", "1.5"),
        ("1E+2", "100"),
        ("0.000001", "0.000001"),
        ("-2.500", "-2.5"),
        ("123456789.123456", "123456789.123456"),
    ],
)
def test_plain(qty: str, shown: str) -> None:
    assert plain(Decimal(qty)) == shown


def test_the_report_shows_every_quantity_plainly() -> None:
    levels = {
        StockKey("A", "W1"): LevelValue(Decimal("139.50"), Decimal("139.50")),
        StockKey("B", "W1"): LevelValue(Decimal("30.0"), Decimal("15.0")),
    }
    rows = cover_rows(
        levels,
        {StockKey("A", "W1"): Outflows(shipments=Decimal("12.50"))},
        days=30,
        lead_time_days=Decimal(7),
        safety={},
    )
    shown = [
        (r["on_hand"], r["reserved"], r["available"], r["demand"])
        for r in (row.as_dict("main") for row in rows)
    ]
    assert shown == [("139.5", "0", "139.5", "12.5"), ("30", "15", "15", "0")]
