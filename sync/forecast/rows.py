"""The forecast's output rows (``stocksync forecast`` table, JSON, CSV). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sync.forecast.model import KeyForecast, ReorderPlan

#: the columns of one key's summary row (the CSV header when there is no key)
SUMMARY_COLUMNS = (
    "pipeline",
    "sku",
    "warehouse",
    "model",
    "period",
    "demand_ahead",
    "demand_low",
    "demand_high",
    "interval_pct",
    "on_hand",
    "available",
    "lead_time_days",
    "demand_over_lead_time",
    "safety_stock_needed",
    "safety_stock_configured",
    "reorder_point",
    "order_quantity",
    "stockout_date",
    "stockout_within_lead_time",
    "safety_stock_below_need",
)


def _r(value: float | None) -> float | None:
    """Two decimals: a forecast is an estimate, shown as one."""
    return None if value is None else round(value, 2)


def summary(pipeline: str, f: KeyForecast, plan: ReorderPlan) -> dict[str, Any]:
    """One key: the horizon's demand (Σ mean; Σ of the bounds, a conservative band) and its
    plan."""
    return {
        "pipeline": pipeline,
        "sku": f.sku,
        "warehouse": f.warehouse,
        "model": f.model,
        "period": f.period,
        "demand_ahead": _r(sum(p.mean for p in f.points)),
        "demand_low": _r(sum(p.low for p in f.points)),
        "demand_high": _r(sum(p.high for p in f.points)),
        "interval_pct": f.interval_pct,
        "on_hand": _r(plan.on_hand),
        "available": _r(plan.available),
        "lead_time_days": plan.lead_time_days,
        "demand_over_lead_time": _r(plan.demand_over_lead_time),
        "safety_stock_needed": _r(plan.safety_stock_needed),
        "safety_stock_configured": _r(plan.safety_stock_configured),
        "reorder_point": _r(plan.reorder_point),
        "order_quantity": _r(plan.order_quantity),
        "stockout_date": plan.stockout_date.isoformat() if plan.stockout_date else None,
        "stockout_within_lead_time": plan.stockout_within_lead_time,
        "safety_stock_below_need": plan.safety_stock_below_need,
    }


def with_points(row: dict[str, Any], f: KeyForecast) -> dict[str, Any]:
    """The JSON row: the summary plus every forecast point."""
    points = [{**asdict(p), "period_start": p.period_start.isoformat()} for p in f.points]
    return {**row, "points": points}


def urgency(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Most urgent first: projected stock-out within the lead time, then by stock-out date,
    then keys to reorder; ties by key."""

    def rank(r: dict[str, Any]) -> tuple[bool, str, bool, str, str, str]:
        return (
            not r["stockout_within_lead_time"],
            r["stockout_date"] or "9999-12-31",
            not r["order_quantity"],
            r["pipeline"],
            r["sku"],
            r["warehouse"],
        )

    return sorted(rows, key=rank)
