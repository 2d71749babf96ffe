"""Customer demand, defined (issue 20): shipments − customer returns; transfers, supplier
returns, count losses and other issues in their own columns, never demand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.demand import DEMAND_KINDS, DemandLine, Outflows, daily_demand, outflows
from sync.model import Movement, MovementKind, StockKey
from sync.runtime import build_pipeline, open_store, run_cycle
from tests.reconcile.conftest import cli, memory_yaml

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
MAIN, EAST = StockKey("A", "WH-MAIN"), StockKey("A", "WH-EAST")


def line(key: str, kind: MovementKind, qty: int, wh: str = "WH-MAIN", day: int = 0) -> DemandLine:
    return DemandLine(key, kind, "A", wh, Decimal(qty), T0 + timedelta(days=day))


def test_shipments_minus_customer_returns_and_the_other_columns() -> None:
    lines = [
        line("erp:so:1:1", MovementKind.SHIPMENT, -10),
        line("erp:so:2:1", MovementKind.SHIPMENT, -5, day=1),
        line("erp:rt:1:1", MovementKind.CUSTOMER_RETURN, 3, day=1),
        line("erp:pr:1:1", MovementKind.SUPPLIER_RETURN, -4),
        line("erp:ct:1:1", MovementKind.COUNT_LOSS, -2),
        line("erp:mo:1:1", MovementKind.OTHER_OUT, -1),
    ]
    flows = outflows(lines)[MAIN]
    assert flows == Outflows(
        shipments=Decimal(15),
        customer_returns=Decimal(3),
        supplier_returns=Decimal(4),
        count_losses=Decimal(2),
        other_out=Decimal(1),
    )
    assert flows.demand() == 12  # 15 − 3; supplier returns, losses, other out never count
    days = daily_demand(lines)[MAIN]
    assert days == {date(2026, 3, 2): Decimal(10), date(2026, 3, 3): Decimal(2)}


def test_a_transfer_inside_one_warehouse_is_no_outflow() -> None:
    # the issue's case: a transfer of 60 from WH-MAIN to WH-MAIN
    lines = [
        line("erp:tr:1:1:out", MovementKind.TRANSFER_OUT, -60),
        line("erp:tr:1:1:in", MovementKind.TRANSFER_IN, 60),
    ]
    assert outflows(lines) == {}
    assert daily_demand(lines, transfers_as_demand=True) == {}


def test_a_transfer_between_warehouses_is_demand_only_when_configured() -> None:
    lines = [
        line("erp:tr:1:1:out", MovementKind.TRANSFER_OUT, -40),
        line("erp:tr:1:1:in", MovementKind.TRANSFER_IN, 40, wh="WH-EAST"),
        line("erp:so:1:1", MovementKind.SHIPMENT, -7),
    ]
    flows = outflows(lines)
    assert flows[MAIN] == Outflows(shipments=Decimal(7), transfers_out=Decimal(40))
    assert EAST not in flows  # the receiving side sent nothing out
    assert flows[MAIN].demand() == 7
    assert flows[MAIN].demand(transfers_as_demand=True) == 47
    assert daily_demand(lines)[MAIN] == {T0.date(): Decimal(7)}
    assert daily_demand(lines, transfers_as_demand=True)[MAIN] == {T0.date(): Decimal(47)}


def test_more_returned_than_shipped_is_no_demand_not_negative_demand() -> None:
    lines = [
        line("erp:so:1:1", MovementKind.SHIPMENT, -2),
        line("erp:rt:1:1", MovementKind.CUSTOMER_RETURN, 5),
    ]
    assert outflows(lines)[MAIN].demand() == 0
    assert daily_demand(lines)[MAIN] == {T0.date(): Decimal(-3)}  # the day's raw figure


NAME = "demandcli"


@pytest.fixture
def issue_world(tmp_path: Path) -> Iterator[Path]:
    """Opening 100 at WH-MAIN and a transfer of 60 from WH-MAIN to WH-MAIN; B@WH-MAIN ships
    4 with no stock (negative stock); C@WH-MAIN has stock and no movement."""
    path = tmp_path / "stocksync.yaml"
    path.write_text(memory_yaml(NAME, "", f"sqlite:///{tmp_path / 'state.db'}"))
    erp, crm = MemoryErp(), MemoryCrm()
    memory_source.REGISTRY[NAME], memory_sink.REGISTRY[NAME] = erp, crm
    at = datetime.now(UTC) - timedelta(days=1)
    erp.set_opening("A", "WH-MAIN", 100)
    erp.set_opening("C", "WH-MAIN", 9)
    k = MovementKind
    erp.put(Movement("m:tr:1:1:out", k.TRANSFER_OUT, "A", "WH-MAIN", Decimal(-60), at, at))
    erp.put(Movement("m:tr:1:1:in", k.TRANSFER_IN, "A", "WH-MAIN", Decimal(60), at, at))
    erp.put(Movement("m:so:1:1", k.SHIPMENT, "B", "WH-MAIN", Decimal(-4), at, at))
    settings = cfg.load(path)
    store = open_store(settings)
    run_cycle(build_pipeline(settings.pipeline(NAME), store))
    yield path
    store.close()
    memory_source.REGISTRY.pop(NAME, None)
    memory_sink.REGISTRY.pop(NAME, None)


def test_report_the_issue_case_negative_stock_and_no_demand(issue_world: Path) -> None:
    code, out = cli("report", "-c", str(issue_world), "--days", "30", "--format", "json")
    assert code == 0, out
    rows = {r["sku"]: r for r in json.loads(out)}
    a = rows["A"]
    assert (a["on_hand"], a["demand"], a["transfers_out"]) == ("100", "0", "0")
    assert a["daily_rate"] == "0.0000" and a["days_of_cover"] is None
    b = rows["B"]  # shipped 4 with none in stock: on hand −4, demand 4, no cover left
    assert (b["on_hand"], b["demand"], b["daily_rate"], b["days_of_cover"]) == (
        "-4",
        "4",
        "0.1333",
        "0",
    )
    c = rows["C"]
    assert (c["on_hand"], c["demand"], c["days_of_cover"]) == ("9", "0", None)


def test_days_become_a_series_from_the_first_demand_day_with_zeros_filled() -> None:
    from sync.forecast.run import to_series

    daily = {date(2026, 3, 2): 4.0, date(2026, 3, 4): 5.0, date(2026, 3, 9): 7.0}
    s = to_series(daily, MAIN, "day", date(2026, 3, 9))  # today's 7 is not a whole day yet
    assert (s.key, s.start, list(s.values)) == (
        "A@WH-MAIN",
        date(2026, 3, 2),
        [4, 0, 5, 0, 0, 0, 0],
    )
    weeks = to_series(daily, MAIN, "week", date(2026, 3, 18))  # ISO weeks from Monday 2 March
    assert (weeks.start, list(weeks.values)) == (date(2026, 3, 2), [9.0, 7.0])
    assert list(to_series({}, MAIN, "day", date(2026, 3, 9)).values) == []


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(k for k in MovementKind if k in DEMAND_KINDS)),
            st.sampled_from(["WH-MAIN", "WH-EAST"]),
            st.integers(-50, 50),
            st.integers(0, 3),
        ),
        max_size=12,
    ),
    st.integers(1, 80),
)
def test_a_transfer_inside_a_warehouse_never_changes_demand_or_outflows(
    raw: list[tuple[MovementKind, str, int, int]], moved: int
) -> None:
    lines = [line(f"erp:d{i}:{i}:1", k, q, wh, day) for i, (k, wh, q, day) in enumerate(raw)]
    inside = [
        line("erp:inside:1:1:out", MovementKind.TRANSFER_OUT, -moved, "WH-EAST"),
        line("erp:inside:1:1:in", MovementKind.TRANSFER_IN, moved, "WH-EAST"),
    ]
    assert outflows(lines + inside) == outflows(lines)
    both = daily_demand(lines + inside, transfers_as_demand=True)
    assert both == daily_demand(lines, transfers_as_demand=True)
