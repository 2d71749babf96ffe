"""The reorder plan's arithmetic with the right values (pure; no forecasting library)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from sync.forecast.model import ForecastPoint, KeyForecast, Period, ReorderPlan
from sync.forecast.plan import reorder_plan

START = date(2026, 3, 2)  # a Monday
Z95 = 1.6448536269514722


def forecast(rate: float, periods: int = 14, period: Period = "day") -> KeyForecast:
    days = 1 if period == "day" else 7
    points = tuple(
        ForecastPoint(START + timedelta(days=i * days), rate * days, 0.0, rate * days * 2)
        for i in range(periods)
    )
    return KeyForecast("A@W", "A", "W", period, (), "AutoETS", 90, points)


def plan(
    f: KeyForecast, available: float, configured: float | None = 5.0, sd: float = 3.0
) -> ReorderPlan:
    return reorder_plan(
        f,
        residual_sd=sd,
        on_hand=available + 2,
        available=available,
        lead_time_days=4,
        review_days=3,
        service_level=0.95,
        safety_stock_configured=configured,
    )


def test_reorder_point_safety_stock_order_and_stockout() -> None:
    p = plan(forecast(2.0), available=10)
    assert p.demand_over_lead_time == pytest.approx(8.0)  # 4 days × 2
    assert p.safety_stock_needed == pytest.approx(Z95 * 3.0 * 2)  # z · σ · √4 = 9.869
    assert p.reorder_point == pytest.approx(8.0 + Z95 * 6)
    # 10 ≤ ROP: order up to 7 days × 2 + SS = 23.87 → 13.87, rounded up
    assert p.order_quantity == 14
    # 2 a day from 10: days 0–4 are met in full, day 5 is not
    assert p.stockout_date == START + timedelta(days=5)
    assert not p.stockout_within_lead_time
    assert p.safety_stock_below_need  # 5 configured < 9.87 needed
    assert (p.on_hand, p.available, p.lead_time_days, p.service_level) == (12, 10, 4, 0.95)


def test_enough_stock_orders_nothing() -> None:
    p = plan(forecast(2.0), available=40, configured=12)
    assert p.order_quantity == 0 and p.stockout_date is None
    assert not p.safety_stock_below_need  # 12 ≥ 9.87


def test_weekly_forecast_is_spread_over_its_days() -> None:
    p = plan(forecast(2.0, periods=4, period="week"), available=3)
    # a week's 14 is 2 a day; the lead time's error: σ per week · √(4/7)
    assert p.demand_over_lead_time == pytest.approx(8.0)
    assert p.safety_stock_needed == pytest.approx(Z95 * 3.0 * math.sqrt(4 / 7))
    assert p.stockout_date == START + timedelta(days=1)  # 2 met on day 0, 2 more > 1 left
    assert p.stockout_within_lead_time


def test_a_week_already_begun_counts_from_today() -> None:
    f = forecast(2.0, periods=4, period="week")  # from Monday 2 March
    p = reorder_plan(
        f,
        residual_sd=0.0,
        on_hand=3,
        available=3,
        lead_time_days=4,
        review_days=3,
        service_level=0.95,
        safety_stock_configured=None,
        today=START + timedelta(days=2),
    )
    assert p.stockout_date == START + timedelta(days=3)  # 2 met on Wednesday, Thursday short
    assert p.demand_over_lead_time == pytest.approx(8.0)


def test_negative_stock_is_out_today_and_the_order_makes_up_for_it() -> None:
    p = plan(forecast(2.0), available=-5)
    assert p.stockout_date == START and p.stockout_within_lead_time
    assert p.order_quantity == math.ceil(14 + Z95 * 6 + 5)  # 29


def test_past_the_horizon_the_last_rate_goes_on() -> None:
    p = plan(forecast(2.0, periods=3), available=100)
    assert p.demand_over_lead_time == pytest.approx(8.0)  # 3 forecast days + 1 at the last rate


def test_no_demand_needs_no_stock() -> None:
    p = plan(forecast(0.0), available=10, configured=None, sd=0.0)
    assert (p.demand_over_lead_time, p.safety_stock_needed, p.reorder_point) == (0, 0, 0)
    assert p.order_quantity == 0 and p.stockout_date is None
    assert not p.stockout_within_lead_time and not p.safety_stock_below_need
