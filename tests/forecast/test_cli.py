"""``stocksync forecast`` on a memory pipeline's ledger: the forecast, the plan and the
backtest with the right values for a new key, a key with negative stock and one with none."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.forecast.rows import SUMMARY_COLUMNS
from sync.model import Movement, MovementKind
from sync.runtime import build_pipeline, open_store, run_cycle
from tests.reconcile.conftest import cli, memory_yaml

NAME = "fccli"
EXTRA = (
    "    alerts: {thresholds: {NEG: 3}}\n"
    "    forecast: {lead_time_days: 4, review_days: 3, horizon_days: 14}\n"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("fc")
    path = tmp / "stocksync.yaml"
    path.write_text(memory_yaml(NAME, EXTRA, f"sqlite:///{tmp / 'state.db'}"))
    erp, crm = MemoryErp(), MemoryCrm()
    memory_source.REGISTRY[NAME], memory_sink.REGISTRY[NAME] = erp, crm
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    erp.set_opening("IDLE", "WH-MAIN", 50)
    erp.set_opening("NEW", "WH-MAIN", 20)
    erp.set_opening("SEAS", "WH-MAIN", 10_000)

    def ship(key: str, sku: str, qty: int, days_ago: int) -> None:
        at = today - timedelta(days=days_ago)
        erp.put(Movement(key, MovementKind.SHIPMENT, sku, "WH-MAIN", Decimal(-qty), at, at))

    ship("m:so:n1:1", "NEW", 4, 3)  # a new key: 4, 0, 5 on its three days
    ship("m:so:n2:1", "NEW", 5, 1)
    ship("m:so:g1:1", "NEG", 6, 1)  # shipped with no stock: on hand −6
    for day in range(1, 121):  # 120 days: 9–11 a day on weekdays, 2 at weekends
        weekend = (today - timedelta(days=day)).weekday() > 4
        ship(f"m:so:s{day}:1", "SEAS", 2 if weekend else 9 + day % 3, day)
    settings = cfg.load(path)
    store = open_store(settings)
    run_cycle(build_pipeline(settings.pipeline(NAME), store))
    yield path
    store.close()
    memory_source.REGISTRY.pop(NAME, None)
    memory_sink.REGISTRY.pop(NAME, None)


def test_forecast_json_rows_and_plans(world: Path) -> None:
    code, out = cli("forecast", "-c", str(world), "--format", "json")
    assert code == 0, out
    rows = json.loads(out)
    assert [r["sku"] for r in rows][:1] == ["NEG"]  # most urgent first
    by = {r["sku"]: r for r in rows}
    today = datetime.now(UTC).date()
    neg = by["NEG"]  # one day of history (6): the historic average
    assert (neg["model"], neg["on_hand"], neg["available"]) == ("HistoricAverage", -6.0, -6.0)
    assert neg["demand_over_lead_time"] == 24.0  # 6 a day × 4 days
    assert neg["stockout_date"] == today.isoformat() and neg["stockout_within_lead_time"]
    assert neg["safety_stock_configured"] == 3.0
    new = by["NEW"]  # 4, 0, 5 → 3 a day
    assert (new["model"], new["demand_ahead"], new["demand_over_lead_time"]) == (
        "HistoricAverage",
        42.0,
        12.0,
    )
    # 20 − 9 shipped = 11 available at 3 a day: days 0–2 met (9), day 3 short: within 4 days
    assert new["available"] == 11.0
    assert new["stockout_date"] == (today + timedelta(days=3)).isoformat()
    assert new["stockout_within_lead_time"]
    assert [p["period_start"] for p in new["points"]][:2] == [
        today.isoformat(),
        (today + timedelta(days=1)).isoformat(),
    ]
    idle = by["IDLE"]
    assert (idle["model"], idle["demand_ahead"], idle["order_quantity"]) == ("NoDemand", 0, 0)
    assert idle["stockout_date"] is None and idle["safety_stock_needed"] == 0
    seas = by["SEAS"]
    assert seas["model"] in {"AutoETS", "SeasonalNaive"}  # weekly pattern found
    assert 100 < seas["demand_ahead"] < 116  # two weeks of 5 × 10 + 2 × 2 = 108


def test_forecast_filters_and_csv(world: Path) -> None:
    code, out = cli("forecast", "-c", str(world), "--sku", "NEW", "--format", "csv")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["sku"] for r in rows] == ["NEW"] and list(rows[0]) == list(SUMMARY_COLUMNS)
    code, out = cli("forecast", "-c", str(world), "--key", "IDLE@WH-MAIN", "--horizon", "3")
    assert code == 0 and "IDLE" in out and "NEW" not in out
    code, out = cli("forecast", "-c", str(world), "--format", "xml")
    assert code == 2


def test_backtest_reports_mase_per_model_and_the_flat_rate(world: Path) -> None:
    code, out = cli("forecast", "-c", str(world), "--backtest", "--format", "json")
    assert code == 0, out
    rows = {r["model"]: r for r in json.loads(out)}
    assert {"Chosen", "AutoETS", "SeasonalNaive", "FlatRate", "CrostonSBA"} <= set(rows)
    assert {r["series"] for r in rows.values()} == {1}  # only SEAS is long enough
    assert rows["FlatRate"]["vs_flat_rate"] == "+0.0%"
    assert rows["Chosen"]["mase"] < 0.85 * rows["FlatRate"]["mase"]
