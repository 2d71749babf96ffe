"""The forecast of one pipeline from its ledger: demand series, forecasts, reorder plans.

The I/O half of ``sync.forecast``: reads the state store, calls the pure parts
(``sync.demand``, ``sync.forecast.plan``) and the forecaster (``sync.forecast.fit``).
History is whole days before ``today`` (UTC); a key's series starts at its first
demand line in the window, so a new key has a short history, not years of zeros.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sync.alert_scope import figures
from sync.alerts import compared, threshold_of
from sync.config import PipelineBase
from sync.demand import DEMAND_KINDS, as_floats, daily_demand
from sync.forecast.engine import Fitted, Options, Series
from sync.forecast.model import Period, ReorderPlan
from sync.forecast.plan import reorder_plan
from sync.model import LevelValue, StockKey
from sync.reservations import parse_key
from sync.state.store import StateStore


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """``--key SKU@WH``, ``--sku``, ``--warehouse``: all given must match."""

    key: str | None = None
    sku: str | None = None
    warehouse: str | None = None

    def __call__(self, key: StockKey) -> bool:
        return (
            (self.key is None or str(key) == self.key)
            and (self.sku is None or key.sku == self.sku)
            and (self.warehouse is None or key.warehouse == self.warehouse)
        )


def period_start(day: date, period: Period) -> date:
    return day if period == "day" else day - timedelta(days=day.weekday())


def to_series(daily: Mapping[date, float], key: StockKey, period: Period, today: date) -> Series:
    """Days before ``today`` → one value per period from the key's first demand day, zeros
    filled; weeks are ISO weeks (Monday) ending before the week of ``today``."""
    end = period_start(today, period)
    step = 1 if period == "day" else 7
    days = [d for d in daily if d < end]
    start = period_start(min(days), period) if days else end
    values = [0.0] * ((end - start).days // step)
    for day in days:
        values[(period_start(day, period) - start).days // step] += daily[day]
    return Series(str(key), key.sku, key.warehouse, start, values)


def options(p: PipelineBase, *, horizon_days: int | None = None, n_jobs: int = 1) -> Options:
    f = p.forecast
    days = horizon_days or f.horizon_days
    week = f.period == "week"
    horizon = -(-days // 7) if week else days
    return Options(
        period=f.period,
        horizon=horizon,
        interval_pct=f.interval_pct,
        cv_windows=f.cv_windows,
        flat_rate=max(1, f.flat_rate_days // 7) if week else f.flat_rate_days,
        fit_periods=104 if week else 182,
        # what a chart shows before the forecast; all of it would be 0.8 GB at 10,000 keys
        history_kept=max(4 * horizon, 26 if week else 182),
        n_jobs=n_jobs,
    )


def read_series(
    store: StateStore, p: PipelineBase, today: date, wanted: KeyFilter, keys: Iterable[StockKey]
) -> list[Series]:
    """Every key with demand lines in ``forecast.history_days`` or in ``keys`` (stocked)."""
    since = datetime.combine(today - timedelta(days=p.forecast.history_days), datetime.min.time())
    lines = store.demand_lines(
        p.name, since.replace(tzinfo=UTC), sorted(k.value for k in DEMAND_KINDS)
    )
    daily = daily_demand(
        (x for x in lines if wanted(StockKey(x.sku, x.warehouse))),
        transfers_as_demand=p.forecast.transfers_as_demand,
    )
    every = sorted(set(daily) | {k for k in keys if wanted(k)})
    return [to_series(as_floats(daily.get(k, {})), k, p.forecast.period, today) for k in every]


def levels(store: StateStore, p: PipelineBase) -> dict[StockKey, LevelValue]:
    """On hand and available of every stocked or reserved key (as ``stocksync report``)."""
    static = p.push.reservations
    on_hand = store.levels(p.name)
    reserved_only = set(store.reserved_units(p.name)) | {parse_key(r) for r in static}
    on_hand |= {k: Decimal(0) for k in reserved_only - on_hand.keys()}
    return dict(figures(store, p.name, on_hand.items(), static))


def plans(
    fitted: Iterable[Fitted],
    values: Mapping[StockKey, LevelValue],
    p: PipelineBase,
    today: date | None = None,
) -> list[ReorderPlan]:
    """One plan per forecast, on ``alerts.basis`` for "available" and the configured
    safety stock (``alerts`` thresholds) for the comparison."""
    out = []
    none = LevelValue(Decimal(0), Decimal(0))
    for f in fitted:
        key = StockKey(f.forecast.sku, f.forecast.warehouse)
        value = values.get(key, none)
        safety = threshold_of(key, p.alerts)
        out.append(
            reorder_plan(
                f.forecast,
                residual_sd=f.residual_sd,
                on_hand=float(value.real),
                available=float(compared(value, p.alerts.basis)),
                lead_time_days=p.forecast.lead_time_days,
                review_days=p.forecast.review_days,
                service_level=p.forecast.service_level,
                safety_stock_configured=None if safety is None else float(safety),
                today=today,
            )
        )
    return out


def forecast_pipeline(
    store: StateStore,
    p: PipelineBase,
    today: date,
    *,
    wanted: KeyFilter = KeyFilter(),
    horizon_days: int | None = None,
    n_jobs: int = 1,
) -> tuple[list[Fitted], list[ReorderPlan]]:
    """Forecast and plan every wanted key of pipeline ``p`` (needs the ``forecast`` extra)."""
    from sync.forecast.fit import forecast_all

    values = levels(store, p)
    series = read_series(store, p, today, wanted, values)
    fitted = forecast_all(series, options(p, horizon_days=horizon_days, n_jobs=n_jobs))
    return fitted, plans(fitted, values, p, today)
