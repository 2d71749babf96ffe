"""The reorder plan: pure arithmetic on one key's forecast (issue 20; architecture §7.3).

With L the lead time in days, z the standard normal quantile of the service
level and σ the forecast's error per period in cross-validation (RMSE), for a
period of p days:

- demand over the lead time D_L = Σ of the forecast mean over the next L days
  (a week's mean spread evenly over its 7 days; past the horizon, the last rate);
- safety stock needed SS = z · σ · √(L / p) (errors of the periods taken as
  independent: the textbook normal approximation, Silver–Pyke–Peterson §7.5);
- reorder point ROP = D_L + SS;
- order quantity: when available ≤ ROP, enough to reach D_(L+review) + SS, rounded
  up to a whole unit; else 0;
- projected stock-out: the first day whose forecast demand cannot be met in full
  from ``available`` (today when nothing is available), None within the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from statistics import NormalDist

from sync.forecast.model import KeyForecast, ReorderPlan

_EPS = 1e-9


def daily_means(forecast: KeyForecast) -> list[float]:
    """The forecast mean per day from the first point on (a week's mean / 7 for each day)."""
    days = 1 if forecast.period == "day" else 7
    return [p.mean / days for p in forecast.points for _ in range(days)]


def demand_over(rates: Sequence[float], days: int) -> float:
    """Σ of the first ``days`` daily rates; past their end, the last rate repeats."""
    if days <= 0 or not rates:
        return 0.0
    head = sum(rates[:days])
    return head + max(0, days - len(rates)) * rates[-1]


def stockout_day(rates: Sequence[float], available: float, start: date) -> date | None:
    """The first day whose demand cannot be met in full from ``available``."""
    if available <= _EPS:
        return start
    cumulative = 0.0
    for i, rate in enumerate(rates):
        cumulative += rate
        if cumulative > available + _EPS:
            return start + timedelta(days=i)
    return None


def reorder_plan(
    forecast: KeyForecast,
    *,
    residual_sd: float,
    on_hand: float,
    available: float,
    lead_time_days: int,
    review_days: int,
    service_level: float,
    safety_stock_configured: float | None,
    today: date | None = None,
) -> ReorderPlan:
    """The plan for one key. ``residual_sd``: the forecast's error per period (base unit).
    Days count from ``today`` (default: the forecast's first day); the days of a first week
    that are already past are dropped."""
    if not forecast.points:
        raise ValueError(f"{forecast.key}: a forecast with no points has no plan")
    rates = daily_means(forecast)
    start = forecast.points[0].period_start
    if today is not None and today > start:
        rates, start = rates[(today - start).days :], today
    period_days = 1 if forecast.period == "day" else 7
    z = NormalDist().inv_cdf(service_level)
    needed = max(0.0, z * residual_sd * math.sqrt(lead_time_days / period_days))
    lead = demand_over(rates, lead_time_days)
    rop = lead + needed
    order = 0.0
    if available <= rop + _EPS:
        target = demand_over(rates, lead_time_days + review_days) + needed
        order = float(max(0, math.ceil(target - available - _EPS)))
    out = stockout_day(rates, available, start)
    return ReorderPlan(
        key=forecast.key,
        on_hand=on_hand,
        available=available,
        lead_time_days=lead_time_days,
        service_level=service_level,
        demand_over_lead_time=lead,
        safety_stock_needed=needed,
        safety_stock_configured=safety_stock_configured,
        reorder_point=rop,
        order_quantity=order,
        stockout_date=out,
        stockout_within_lead_time=out is not None and (out - start).days < lead_time_days,
        safety_stock_below_need=(safety_stock_configured or 0.0) < needed - _EPS,
    )
