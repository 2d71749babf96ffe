"""Choose, fit and forecast: the statsforecast calls (``sync.forecast.engine`` explains the
method). ``forecast_all`` is the entry point; everything here needs the ``forecast`` extra."""

from __future__ import annotations

import multiprocessing
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from sync.forecast.engine import (
    FLAT_RATE,
    NATIVE_INTERVALS,
    NO_DEMAND,
    SHORT,
    Fitted,
    Options,
    Series,
    candidates,
    fallback,
    is_intermittent,
    model_by_name,
)
from sync.forecast.extra import require
from sync.forecast.model import ForecastPoint, KeyForecast

# raises the error naming the extra when statsforecast's stack is not installed
np = require("numpy")
require("statsforecast")


def forecast_all(series: Sequence[Series], opts: Options) -> list[Fitted]:
    """One ``Fitted`` per series, in the order given.

    With ``n_jobs`` > 1 statsforecast forks its workers (``multiprocessing.Pool``, fork on
    Linux). Forking a process that runs other threads (the daemon: the scheduler's workers,
    the metrics server) can deadlock a child on a lock another thread held (Python docs,
    ``os.fork``); from such a process the forecast runs in one child started by a fork
    server, single-threaded, which forks the workers."""
    if opts.n_jobs > 1 and threading.active_count() > 1:
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(1, mp_context=context) as child:
            return child.submit(_forecast_all, list(series), opts).result()
    return _forecast_all(series, opts)


def _forecast_all(series: Sequence[Series], opts: Options) -> list[Fitted]:
    by_key: dict[str, Fitted] = {}
    zero, short, groups = [], [], defaultdict(list)
    for s in series:
        values = np.asarray(s.values, dtype=float)
        if not np.any(values > 0):
            zero.append(s)
        elif len(values) < opts.min_length:
            short.append(s)
        else:
            groups[is_intermittent(values[-opts.fit_periods :].tolist())].append(s)
    for s in zero:
        by_key[s.key] = _no_demand(s, opts)
    if short:
        by_key.update(_short(short, opts))
    for intermittent, group in groups.items():
        by_key.update(_cross_validated(group, intermittent, opts))
    return [by_key[s.key] for s in series]


def cross_validate(series: Sequence[Series], models: list[Any], opts: Options) -> Any:
    """statsforecast's rolling-origin cross-validation: a frame of unique_id, ds, cutoff, y
    and one column of point forecasts per model."""
    sf = require("statsforecast").StatsForecast(
        models=models, freq=freq(opts), n_jobs=opts.n_jobs, fallback_model=fallback()
    )
    df = frame(series, opts, last=opts.fit_periods + opts.cv_windows * opts.cv_h)
    return sf.cross_validation(
        h=opts.cv_h,
        df=df,
        n_windows=opts.cv_windows,
        step_size=opts.cv_h,
        input_size=opts.fit_periods,
    )


@dataclass(frozen=True, slots=True)
class Choice:
    """Per series of one group: the chosen model, each candidate's CV MAE and MSE."""

    chosen: Any  # pandas Series: unique_id → model name
    mae: Any  # pandas DataFrame: unique_id × model
    mse: Any


def choose(group: Sequence[Series], intermittent: bool, opts: Options) -> Choice:
    """The model of each series, from its rolling-origin cross-validation errors.

    Smooth series: the flat rate, unless a candidate's absolute errors are lower with
    significance (``significant``): of those, the one with the lowest MAE. A few windows'
    errors are noisy, and a switch to a model no better out of sample only adds error.
    Intermittent series: the candidate with the lowest error relative to the flat rate,
    pooled over the group (``pooled_best``): one series' few sales in a few windows say
    little about which method suits it (in the backtest, per-series switches made such
    series worse), the group's many say which method suits this kind of demand
    (Syntetos & Boylan 2005).
    """
    names = [str(m) for m in candidates(intermittent, opts)]
    cv = cross_validate(group, candidates(intermittent, opts), opts)
    errors = cv[names].to_numpy() - cv[["y"]].to_numpy()
    ids = cv[["unique_id"]]
    absolute = ids.assign(**{n: np.abs(errors[:, i]) for i, n in enumerate(names)})
    squared = ids.assign(**{n: errors[:, i] ** 2 for i, n in enumerate(names)})
    mae = keyed(absolute.groupby("unique_id", sort=False)[names].mean(), group)
    mse = keyed(squared.groupby("unique_id", sort=False)[names].mean(), group)
    if intermittent:
        chosen = mae.index.to_series().map(lambda _: pooled_best(mae))
        return Choice(chosen, mae, mse)
    passed = keyed(significant(absolute, names, opts.switch_t), group)
    eligible = mae.where(passed, np.inf)
    eligible[FLAT_RATE] = mae[FLAT_RATE]
    return Choice(eligible.idxmin(axis=1), mae, mse)


def significant(absolute: Any, names: list[str], threshold: float) -> Any:
    """Per series and candidate: is its absolute error lower than the flat rate's, with the
    paired t statistic of the differences above ``threshold`` (Diebold & Mariano 1995,
    without their correction for correlated errors — so a high threshold)?"""
    diff = absolute[["unique_id"]].assign(
        **{n: absolute[FLAT_RATE] - absolute[n] for n in names if n != FLAT_RATE}
    )
    grouped = diff.groupby("unique_id", sort=False)
    mean, sd, n = grouped.mean(), grouped.std(ddof=1), grouped.count()
    t = mean / (sd / np.sqrt(n))
    return (t > threshold).fillna(mean > 0)


def pooled_best(mae: Any) -> str:
    """The candidate with the lowest mean of MAE / flat rate's MAE over the series (those
    whose flat-rate error is not 0); the flat rate when none is usable."""
    flat = mae[FLAT_RATE].to_numpy()
    usable = flat > 0
    if not usable.any():
        return FLAT_RATE
    return str(mae[usable].div(flat[usable], axis=0).mean().idxmin())


def _cross_validated(
    group: Sequence[Series], intermittent: bool, opts: Options
) -> dict[str, Fitted]:
    c = choose(group, intermittent, opts)
    out: dict[str, Fitted] = {}
    for name, keys in c.chosen.groupby(c.chosen).groups.items():
        wanted = set(keys)
        members = [s for s in group if s.key in wanted]
        points = _final(members, str(name), opts)
        for s in members:
            sd = float(np.sqrt(c.mse.at[s.key, name]))
            maes = {str(n): float(c.mae.at[s.key, n]) for n in c.mae.columns}
            out[s.key] = Fitted(_key_forecast(s, opts, str(name), points[s.key]), sd, maes)
    return out


def _final(members: Sequence[Series], name: str, opts: Options) -> dict[str, list[ForecastPoint]]:
    """Refit ``name`` on ``members`` and forecast with its interval: the model's own where
    statsforecast has one (``NATIVE_INTERVALS``), conformal otherwise."""
    sfm = require("statsforecast")
    if name in NATIVE_INTERVALS:
        model, last = model_by_name(name, opts), opts.fit_periods
    else:
        windows = max(2, opts.cv_windows)
        intervals = require("statsforecast.utils").ConformalIntervals(
            h=opts.horizon, n_windows=windows
        )
        model, last = (
            model_by_name(name, opts, intervals),
            opts.fit_periods + windows * opts.horizon,
        )
    sf = sfm.StatsForecast(
        models=[model], freq=freq(opts), n_jobs=opts.n_jobs, fallback_model=fallback()
    )
    fc = sf.forecast(h=opts.horizon, df=frame(members, opts, last=last), level=[opts.interval_pct])
    return _points(fc, name, opts.interval_pct, members)


def _points(
    fc: Any, name: str, pct: int, series: Sequence[Series]
) -> dict[str, list[ForecastPoint]]:
    """statsforecast's forecast frame of ``series`` → points per key; bounds floored at 0 (no
    negative demand), NaN bounds (a one-period history) collapse onto the mean."""
    mean = np.maximum(fc[name].to_numpy(dtype=float), 0.0)
    low = np.maximum(np.nan_to_num(fc[f"{name}-lo-{pct}"].to_numpy(dtype=float), nan=0.0), 0.0)
    high = fc[f"{name}-hi-{pct}"].to_numpy(dtype=float)
    high = np.maximum(np.where(np.isnan(high), mean, high), mean)
    low = np.minimum(np.where(np.isnan(low), mean, low), mean)
    out: dict[str, list[ForecastPoint]] = defaultdict(list)
    days = fc["ds"].dt.date.to_numpy()
    keys = [s.key for s in series]
    for i, code in enumerate(fc["unique_id"].to_numpy()):
        out[keys[code]].append(
            ForecastPoint(days[i], float(mean[i]), float(low[i]), float(high[i]))
        )
    return out


def _short(short: Sequence[Series], opts: Options) -> dict[str, Fitted]:
    """Too short to cross-validate: the historic average and its normal interval; the
    residual spread is the history's own standard deviation."""
    m = require("statsforecast.models")
    sf = require("statsforecast").StatsForecast(models=[m.HistoricAverage()], freq=freq(opts))
    fc = sf.forecast(h=opts.horizon, df=frame(short, opts), level=[opts.interval_pct])
    points = _points(fc, SHORT, opts.interval_pct, short)
    out = {}
    for s in short:
        values = np.maximum(np.asarray(s.values, dtype=float), 0.0)
        # one observation has no spread of its own: its size stands in (a count's
        # Poisson spread would be its square root; this errs on the side of stock)
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else float(values[0])
        out[s.key] = Fitted(_key_forecast(s, opts, SHORT, points[s.key]), sd, {})
    return out


def _no_demand(s: Series, opts: Options) -> Fitted:
    """No demand in the history: 0 ahead, with no spread (no model has anything to fit)."""
    first = s.start + len(s.values) * opts.step
    points = [ForecastPoint(first + i * opts.step, 0.0, 0.0, 0.0) for i in range(opts.horizon)]
    return Fitted(_key_forecast(s, opts, NO_DEMAND, points), 0.0, {})


def _key_forecast(
    s: Series, opts: Options, model: str, points: Sequence[ForecastPoint]
) -> KeyForecast:
    values = list(s.values)
    kept = len(values) if opts.history_kept is None else min(len(values), opts.history_kept)
    first = len(values) - kept
    history = tuple(
        (s.start + (first + i) * opts.step, max(0.0, float(v)))
        for i, v in enumerate(values[first:])
    )
    return KeyForecast(
        s.key, s.sku, s.warehouse, opts.period, history, model, opts.interval_pct, tuple(points)
    )


def frame(series: Sequence[Series], opts: Options, last: int | None = None) -> Any:
    """The long data frame statsforecast reads: unique_id (the series' position in
    ``series``: integers cost far less than key strings at millions of rows), ds, y (the
    last ``last`` periods, floored at 0)."""
    pd = require("pandas")
    ids, stamps, ys = [], [], []
    step = np.timedelta64(opts.step.days, "D")
    for i, s in enumerate(series):
        values = np.asarray(s.values, dtype=float)
        skip = max(0, len(values) - last) if last else 0
        values = np.maximum(values[skip:], 0.0)
        first = np.datetime64(s.start + skip * opts.step, "D")
        stamps.append(first + step * np.arange(len(values)))
        ids.append(np.full(len(values), i, dtype=np.int64))
        ys.append(values)
    return pd.DataFrame(
        {
            "unique_id": np.concatenate(ids) if ids else np.array([], dtype=np.int64),
            "ds": np.concatenate(stamps) if stamps else np.array([], dtype="datetime64[D]"),
            "y": np.concatenate(ys) if ys else np.array([], dtype=float),
        }
    )


def keyed(table: Any, series: Sequence[Series]) -> Any:
    """A frame or series indexed by position in ``series`` → indexed by key."""
    keys = [s.key for s in series]
    return table.set_axis([keys[i] for i in table.index], axis=0)


def freq(opts: Options) -> str:
    return "D" if opts.period == "day" else "7D"
