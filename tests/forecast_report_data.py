"""Hand-built forecasts and reorder plans for the HTML report's tests (no forecasting engine).

``URGENCY`` is the order the report must list them in, derived by hand from the rule
(stock-out within lead time, then earliest stock-out date, then safety stock below need,
keys without a plan last, ties by key).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from sync.forecast.model import ForecastPoint, KeyForecast, ReorderPlan

TODAY = date(2026, 11, 30)
GENERATED = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
#: a key, SKU and warehouse with every character HTML gives a meaning to
EVIL_KEY = "<b>K&1</b>\"'@W"
EVIL_SKU = "<script>alert('x')</script>"
EVIL_WAREHOUSE = 'A&B "north" <main>'


def forecast(
    key: str,
    *,
    level: float = 10.0,
    history_days: int = 200,
    horizon: int = 30,
    period: str = "day",
    sku: str | None = None,
    warehouse: str = "WH-MAIN",
) -> KeyForecast:
    """A weekly-seasonal history of ``history_days`` periods ending yesterday, then a flat
    forecast at ``level`` with an interval widening by 0.1 a period."""
    step = timedelta(days=1 if period == "day" else 7)
    start = TODAY - step * history_days
    history = tuple(
        (start + step * i, max(0.0, level + 3 * math.sin(i * 2 * math.pi / 7)))
        for i in range(history_days)
    )
    points = tuple(
        ForecastPoint(TODAY + step * i, level, max(0.0, level - 4), level + 4 + 0.1 * i)
        for i in range(horizon)
    )
    return KeyForecast(
        key=key,
        sku=sku if sku is not None else key.split("@")[0],
        warehouse=warehouse,
        period="day" if period == "day" else "week",
        history=history,
        model="AutoETS",
        interval_pct=90,
        points=points,
    )


def plan(
    key: str,
    *,
    available: float = 100.0,
    lead_time_days: int = 14,
    stockout: date | None = None,
    within: bool = False,
    below: bool = False,
    configured: float | None = 20.0,
) -> ReorderPlan:
    return ReorderPlan(
        key=key,
        on_hand=available + 20,
        available=available,
        lead_time_days=lead_time_days,
        service_level=0.95,
        demand_over_lead_time=140.0,
        safety_stock_needed=30.0,
        safety_stock_configured=configured,
        reorder_point=170.0,
        order_quantity=1234.5,
        stockout_date=stockout,
        stockout_within_lead_time=within,
        safety_stock_below_need=below,
    )


def fleet() -> tuple[list[KeyForecast], dict[str, ReorderPlan]]:
    """Seven keys, given in an order unlike their urgency."""
    forecasts = [
        forecast("OK@WH-MAIN"),
        forecast("NOPLAN@WH-MAIN", level=2.0),
        forecast("BELOW@WH-MAIN", level=4.0),
        forecast("WEEKLY@WH-EAST", level=30.0, history_days=60, horizon=12, period="week"),
        forecast(EVIL_KEY, sku=EVIL_SKU, warehouse=EVIL_WAREHOUSE),
        forecast("NEW@WH-MAIN", history_days=3, horizon=30),
        forecast("NEG@WH-MAIN", level=1.0),
    ]
    plans = {
        "OK@WH-MAIN": plan("OK@WH-MAIN", available=500.0),
        "BELOW@WH-MAIN": plan("BELOW@WH-MAIN", below=True, configured=5.0),
        # stock-out on 27 December, after its 21-day lead time... of a weekly key
        "WEEKLY@WH-EAST": plan(
            "WEEKLY@WH-EAST", available=100.0, lead_time_days=21, stockout=date(2026, 12, 28)
        ),
        # within its 14-day lead time, on 10 December
        EVIL_KEY: plan(EVIL_KEY, stockout=date(2026, 12, 10), within=True, below=True),
        # a later stock-out than WEEKLY's, but within its own 60-day lead time: first
        "NEW@WH-MAIN": plan(
            "NEW@WH-MAIN",
            available=300.0,
            lead_time_days=60,
            stockout=date(2027, 1, 29),
            within=True,
            configured=None,
        ),
        # negative stock: out already (today), within the lead time
        "NEG@WH-MAIN": plan("NEG@WH-MAIN", available=-5.0, stockout=TODAY, within=True),
    }
    return forecasts, plans


#: the order of ``fleet()``'s keys in the report
URGENCY = [
    "NEG@WH-MAIN",  # within lead time, out today
    EVIL_KEY,  # within lead time, 10 December
    "NEW@WH-MAIN",  # within lead time, 29 January
    "WEEKLY@WH-EAST",  # not within, 28 December
    "BELOW@WH-MAIN",  # no stock-out, safety stock below need
    "OK@WH-MAIN",  # nothing to do
    "NOPLAN@WH-MAIN",  # no plan
]
