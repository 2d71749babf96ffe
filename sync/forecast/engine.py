"""Forecast many demand series at once with statsforecast (issue 20; architecture §7.3).

Per series, the model is chosen by rolling-origin cross-validation
(``StatsForecast.cross_validation``: ``cv_windows`` windows of ``cv_h`` periods,
mean absolute error). The candidates depend on the series' average
demand interval (ADI, Syntetos–Boylan 2005): smooth series (ADI < 1.32) try
AutoETS (additive weekly season), SeasonalNaive, SES and the flat rate; intermittent
ones Croston (SBA), TSB, ADIDA and the flat rate. The flat rate (what ``stocksync
report`` does) stays for a smooth series unless a model's lower CV errors are
significant; intermittent series take the candidate best over their whole group
(``sync.forecast.fit.choose`` says why; measured: ``benchmarks/forecast.py``).
The chosen model is refitted on the last ``fit_periods`` periods; its prediction
interval is the model's own where statsforecast has one (AutoETS, SeasonalNaive),
conformal (``ConformalIntervals``) for the others. A series with no demand is
forecast 0; one too short for cross-validation gets the historic average with its
normal interval.

Needs the ``forecast`` extra (``sync.forecast.extra``). Values are floats, base unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sync.forecast.extra import require
from sync.forecast.model import KeyForecast, Period

#: ADI at or above which a series is intermittent (Syntetos, Boylan & Croston 2005)
ADI_INTERMITTENT = 1.32
FLAT_RATE = "FlatRate"
NO_DEMAND = "NoDemand"
SHORT = "HistoricAverage"
#: models whose prediction interval statsforecast derives from the model itself (ETS's
#: state-space variance, seasonal naive's residuals); the others get conformal intervals
NATIVE_INTERVALS = frozenset({"AutoETS", "SeasonalNaive"})


@dataclass(frozen=True, slots=True)
class Series:
    """One key's demand per period, oldest first; ``start`` is the first period's start."""

    key: str
    sku: str
    warehouse: str
    start: date
    values: Sequence[float]


@dataclass(frozen=True, slots=True)
class Options:
    """How to forecast; lengths in periods of ``period``."""

    period: Period = "day"
    horizon: int = 56
    interval_pct: int = 90
    cv_windows: int = 2
    #: window of the flat-rate method (the report's days of cover / 7 for weeks)
    flat_rate: int = 30
    #: most recent periods a model is fitted on (ETS time grows with it)
    fit_periods: int = 182
    #: periods of history kept in each KeyForecast (None: all)
    history_kept: int | None = None
    n_jobs: int = 1
    #: the paired t statistic a model's lower CV errors need to replace the flat rate
    switch_t: float = 3.0

    @property
    def season(self) -> int:
        return 7 if self.period == "day" else 52

    @property
    def step(self) -> timedelta:
        return timedelta(days=1 if self.period == "day" else 7)

    @property
    def cv_h(self) -> int:
        """Periods per validation window: the horizon, at most four weeks (day) or 8 weeks."""
        return min(self.horizon, 28 if self.period == "day" else 8)

    @property
    def min_length(self) -> int:
        """The shortest series that can be cross-validated (a season before the first window)
        and get a conformal interval."""
        windows = max(2, self.cv_windows)
        return max(windows * self.cv_h + self.season, windows * self.horizon + 1)


@dataclass(frozen=True, slots=True)
class Fitted:
    """A forecast and the per-period error of its model in cross-validation (RMSE)."""

    forecast: KeyForecast
    residual_sd: float
    #: cross-validated mean absolute error of each candidate (the backtest reads these)
    cv_mae: dict[str, float]


def candidates(intermittent: bool, opts: Options, intervals: Any = None) -> list[Any]:
    """The candidate models of one group, each with ``intervals`` (ConformalIntervals)."""
    m = require("statsforecast.models")
    kw = {"prediction_intervals": intervals}
    flat = m.WindowAverage(window_size=opts.flat_rate, alias=FLAT_RATE, **kw)
    if intermittent:
        return [m.CrostonSBA(**kw), m.TSB(alpha_d=0.1, alpha_p=0.1, **kw), m.ADIDA(**kw), flat]
    # ETS seasonality beyond 24 periods is not supported: weekly series fit without it
    ets_season = opts.season if opts.season <= 24 else 1
    return [
        m.AutoETS(season_length=ets_season, model="ZZZ" if ets_season == 1 else "ANA", **kw),
        m.SeasonalNaive(season_length=opts.season, **kw),
        m.SimpleExponentialSmoothingOptimized(alias="SES", **kw),
        flat,
    ]


def fallback() -> Any:
    """What statsforecast fits instead for a series where the chosen model fails (an ETS fit
    that does not converge): the historic average, which has its own interval."""
    return require("statsforecast.models").HistoricAverage()


def model_by_name(name: str, opts: Options, intervals: Any = None) -> Any:
    for intermittent in (False, True):
        for model in candidates(intermittent, opts, intervals):
            if str(model) == name:
                return model
    raise KeyError(name)


def is_intermittent(values: Sequence[float]) -> bool:
    """ADI = periods per period with demand ≥ 1.32."""
    nonzero = sum(1 for v in values if v > 0)
    return nonzero == 0 or len(values) / nonzero >= ADI_INTERMITTENT
