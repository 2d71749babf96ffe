"""The forecast's values, shared by the forecaster, the reorder plan and the reports.

Pure frozen values, no I/O and no third-party imports: the HTML report and the
state store read them without the ``forecast`` extra. Quantities are floats in
the product's base unit (a forecast is an estimate, not a ledger figure);
"demand" is customer demand = shipments − customer returns (architecture §7).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

#: a forecast's period: one value per day, or per ISO week (period_start = the Monday)
Period = Literal["day", "week"]


@dataclass(frozen=True)
class ForecastPoint:
    """One future period of a key's forecast."""

    period_start: date
    #: forecast customer demand in the period, base unit
    mean: float
    #: lower bound of the prediction interval (never below 0)
    low: float
    #: upper bound of the prediction interval
    high: float


@dataclass(frozen=True)
class KeyForecast:
    """The forecast of one product × warehouse key, with the history it was fitted on."""

    key: str
    sku: str
    warehouse: str
    period: Period
    #: customer demand per period (shipments − customer returns), oldest first
    history: tuple[tuple[date, float], ...]
    #: the model chosen by rolling-origin cross-validation (e.g. "AutoETS", "CrostonSBA")
    model: str
    #: coverage of ``low``/``high`` in percent, e.g. 90
    interval_pct: int
    points: tuple[ForecastPoint, ...]


@dataclass(frozen=True)
class ReorderPlan:
    """What purchasing should do for one key (``sync.forecast.plan.reorder_plan``)."""

    key: str
    on_hand: float
    available: float
    lead_time_days: int
    #: probability of no stock-out during the lead time, e.g. 0.95
    service_level: float
    demand_over_lead_time: float
    safety_stock_needed: float
    #: the key's ``alerts`` threshold (the configured safety stock), None when unset
    safety_stock_configured: float | None
    reorder_point: float
    order_quantity: float
    #: projected from ``available`` and the forecast mean; None when not within the horizon
    stockout_date: date | None
    stockout_within_lead_time: bool
    safety_stock_below_need: bool
