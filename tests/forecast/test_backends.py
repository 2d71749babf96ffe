"""The demand read and the stored reorder plans on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sync.demand import DEMAND_KINDS, DemandLine
from sync.forecast.model import ReorderPlan
from sync.ledger import apply_page
from sync.model import Movement, MovementKind, Page, StockKey
from sync.state.store import StateStore, StoredPlan
from tests.conftest import Clock

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)


def test_demand_lines_and_reorder_plans_round_trip(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    k = MovementKind
    lines = [
        Movement("e:so:1:1", k.SHIPMENT, "A", "W", Decimal("-2.5"), T0, T0),
        Movement("e:rt:1:1", k.CUSTOMER_RETURN, "A", "W", Decimal(1), T0, T0),
        Movement("e:tr:1:1:out", k.TRANSFER_OUT, "A", "W", Decimal(-4), T0, T0),
        Movement("e:tr:1:1:in", k.TRANSFER_IN, "A", "V", Decimal(4), T0, T0),
        Movement("e:pu:1:1", k.RECEIPT, "A", "W", Decimal(9), T0, T0),  # not a demand kind
        Movement("e:so:0:1", k.SHIPMENT, "A", "W", Decimal(-7), T0 - timedelta(days=40), T0),
    ]
    apply_page(any_store, pipeline, Page("s", lines, None), now=clock.now)
    got = any_store.demand_lines(pipeline, T0 - timedelta(days=30), sorted(DEMAND_KINDS))
    assert sorted(got) == sorted(
        DemandLine(m.key, m.kind.value, m.sku, m.warehouse, m.qty, m.occurred_at) for m in lines[:4]
    )

    plan = ReorderPlan(
        "A@W", -1.5, -2.25, 7, 0.95, 12.125, 3.5, None, 15.625, 18.0, date(2026, 3, 1), True, True
    )
    other = ReorderPlan("B@W", 40, 40, 7, 0.95, 0, 0, 5, 0, 0, None, False, False)
    stored = [
        StoredPlan("A", "W", "AutoETS", T0, plan),
        StoredPlan("B", "W", "NoDemand", T0, other),
    ]
    with any_store.transaction() as tx:
        tx.replace_reorder_plans(pipeline, stored)
    assert any_store.reorder_plans(pipeline) == {
        StockKey("A", "W"): stored[0],
        StockKey("B", "W"): stored[1],
    }
    with any_store.transaction() as tx:  # the next night's plans replace them all
        tx.replace_reorder_plans(pipeline, stored[1:])
    assert list(any_store.reorder_plans(pipeline)) == [StockKey("B", "W")]
