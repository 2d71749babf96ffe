"""The forecaster on a few small series, fitted once for the module (statsforecast's first
calls are slow); the backtest on generated series; the extra's error."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import date, timedelta

import pytest

from sync.errors import StockSyncError
from sync.forecast.engine import FLAT_RATE, NO_DEMAND, SHORT, Fitted, Options, Series
from sync.forecast.extra import EXTRA_HINT, require
from sync.forecast.generator import generate

START = date(2025, 6, 2)
OPTS = Options(horizon=14, cv_windows=2, fit_periods=91)


@pytest.fixture(scope="module")
def fitted() -> dict[str, Fitted]:
    import numpy as np

    from sync.forecast.fit import forecast_all

    rng = np.random.default_rng(3)
    weekly = 30 * (1 + 0.5 * np.sin(2 * np.pi * np.arange(140) / 7))
    seasonal = Series("WEEKLY@W", "WEEKLY", "W", START, rng.poisson(weekly).astype(float))
    intermittent = generate("intermittent", 1, 140, seed=3)[0]
    series = [
        seasonal,
        intermittent,
        Series("Z@W", "Z", "W", START, [0.0] * 140),
        Series("NEW@W", "NEW", "W", START + timedelta(days=137), [4.0, 0.0, 5.0]),
    ]
    return {f.forecast.key: f for f in forecast_all(series, OPTS)}


def test_every_key_gets_horizon_points_after_its_history(fitted: dict[str, Fitted]) -> None:
    for f in fitted.values():
        fc = f.forecast
        last = fc.history[-1][0]
        assert [p.period_start for p in fc.points] == [
            last + timedelta(days=i + 1) for i in range(14)
        ]
        assert all(0 <= p.low <= p.mean <= p.high for p in fc.points)
        assert fc.interval_pct == 90 and fc.period == "day"


def test_a_key_with_no_demand_is_forecast_zero(fitted: dict[str, Fitted]) -> None:
    f = fitted["Z@W"]
    assert f.forecast.model == NO_DEMAND and f.residual_sd == 0
    assert {(p.mean, p.low, p.high) for p in f.forecast.points} == {(0.0, 0.0, 0.0)}


def test_a_new_key_with_three_days_gets_their_average(fitted: dict[str, Fitted]) -> None:
    f = fitted["NEW@W"]
    assert f.forecast.model == SHORT
    assert f.forecast.history == (
        (START + timedelta(days=137), 4.0),
        (START + timedelta(days=138), 0.0),
        (START + timedelta(days=139), 5.0),
    )
    assert [p.mean for p in f.forecast.points] == pytest.approx([3.0] * 14)
    assert f.residual_sd == pytest.approx(2.6457513, rel=1e-6)  # sd of 4, 0, 5


def test_models_are_chosen_by_cross_validation(fitted: dict[str, Fitted]) -> None:
    seasonal = fitted["WEEKLY@W"]
    # a ±50 % weekly profile around 30 a day: the seasonal models win by far, significantly
    assert seasonal.forecast.model in {"AutoETS", "SeasonalNaive"}
    assert set(seasonal.cv_mae) == {"AutoETS", "SeasonalNaive", "SES", FLAT_RATE}
    best = min(seasonal.cv_mae.values())
    assert seasonal.cv_mae[seasonal.forecast.model] == best < 0.8 * seasonal.cv_mae[FLAT_RATE]
    sparse = fitted["INTERMITTENT-0@WH-GEN"]
    assert set(sparse.cv_mae) == {"CrostonSBA", "TSB", "ADIDA", FLAT_RATE}
    assert sparse.residual_sd > 0


def test_backtest_seasonal_series_beat_the_flat_rate() -> None:
    from sync.forecast.backtest import CHOSEN, backtest, improvement

    scores = backtest(generate("seasonal", 4, 300, seed=5), OPTS)
    assert [s.model for s in scores][:1] == [CHOSEN]
    assert {s.series for s in scores} == {4}
    # 4 short series here (0.16 measured); the benchmark holds the 15 % target on 300
    assert improvement(scores) >= 0.10


def test_a_missing_extra_is_named() -> None:
    with pytest.raises(StockSyncError, match="'forecast' extra") as caught:
        require("statsforecast_not_installed_here")
    assert caught.value.hint == EXTRA_HINT and "stocksync[forecast]" in EXTRA_HINT


def test_weekly_periods_forecast_whole_weeks() -> None:
    from sync.forecast.fit import forecast_all

    daily = generate("flat", 1, 7 * 80, seed=9, end=date(2026, 3, 2))[0]
    weeks = [sum(daily.values[i : i + 7]) for i in range(0, len(daily.values), 7)]
    series = Series("W@W", "W", "W", daily.start, weeks)
    opts = Options(period="week", horizon=4, fit_periods=104, flat_rate=4)
    (f,) = forecast_all([series], opts)
    assert [p.period_start for p in f.forecast.points] == [
        date(2026, 3, 2) + timedelta(weeks=i) for i in range(4)
    ]
    assert f.forecast.period == "week" and f.forecast.model not in {NO_DEMAND, SHORT}
    # a flat daily mean: the weekly forecast is within a fifth of the history's weekly mean
    assert abs(f.forecast.points[0].mean / (sum(weeks) / len(weeks)) - 1) < 0.2


_FORKS: list[int] = []
_WATCH = threading.Event()


def _record_fork() -> None:
    if _WATCH.is_set():
        _FORKS.append(os.getpid())


os.register_at_fork(before=_record_fork)


def test_a_threaded_process_forecasts_in_parallel_without_forking_itself() -> None:
    """The daemon runs jobs in threads: fork() there can deadlock a worker on a lock another
    thread held. With ``n_jobs`` 2 the forecast is the same, and this process never forks."""
    from sync.forecast.fit import forecast_all

    series = generate("intermittent", 2, 140, seed=4)
    alone = forecast_all(series, OPTS)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)  # a scheduler's worker thread, say
    other.start()
    _WATCH.set()
    try:
        parallel = forecast_all(series, replace(OPTS, n_jobs=2))
    finally:
        _WATCH.clear()
        stop.set()
        other.join()
    assert _FORKS == []
    assert [f.forecast.model for f in parallel] == [f.forecast.model for f in alone]
    for mine, theirs in zip(parallel, alone, strict=True):
        assert [p.mean for p in mine.forecast.points] == pytest.approx(
            [p.mean for p in theirs.forecast.points]
        )
        assert mine.residual_sd == pytest.approx(theirs.residual_sd)
