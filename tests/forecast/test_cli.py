"""``stocksync forecast`` on a memory pipeline's ledger: the forecast, the plan and the
backtest with the right values for a new key, a key with negative stock and one with none."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sync.forecast.rows import SUMMARY_COLUMNS
from tests.reconcile.conftest import cli


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


def test_without_the_extra_the_error_names_it(world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import structlog
    from typer.testing import CliRunner

    from sync.cli.main import app

    monkeypatch.setitem(sys.modules, "statsforecast", None)  # import fails, as uninstalled
    monkeypatch.delitem(sys.modules, "sync.forecast.fit", raising=False)
    result = CliRunner().invoke(app, ["forecast", "-c", str(world)])
    structlog.reset_defaults()
    assert result.exit_code == 2
    assert "'forecast' extra" in result.stderr and "stocksync[forecast]" in result.stderr
