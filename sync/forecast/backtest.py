"""The built-in backtest: MASE of each model, of the per-series choice and of the flat rate.

Holds out the last ``horizon`` periods of every series long enough to be
cross-validated, chooses each series' model on the rest exactly as the forecast
does (``sync.forecast.fit.choose``), forecasts the held-out window with every
candidate (``StatsForecast.cross_validation``, one window) and scores them with
MASE (Hyndman & Koehler 2006; utilsforecast), scaled by the in-sample seasonal
naive error (season 7 for days, 1 for weeks). ``FlatRate`` is what ``stocksync
report`` does: the mean of the last ``flat_rate`` periods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sync.forecast.engine import FLAT_RATE, Options, Series, candidates, is_intermittent
from sync.forecast.extra import require
from sync.forecast.fit import choose, frame, freq

np = require("numpy")

CHOSEN = "Chosen"


@dataclass(frozen=True, slots=True)
class Score:
    """Mean MASE of one model over ``series`` series (lower is better; 1 = seasonal naive)."""

    model: str
    series: int
    mase: float
    #: paired t statistic of (this model's − the flat rate's) MASE over the series: above
    #: about 1.65, worse than the flat rate beyond the noise of the held-out window
    t_vs_flat: float = 0.0


def backtest(series: Sequence[Series], opts: Options) -> list[Score]:
    """One Score per model, the chosen model (``Chosen``) first, then by name."""
    h = opts.horizon
    usable = [s for s in series if len(s.values) - h >= opts.min_length and any(s.values)]
    if not usable:
        return []
    train = [replace(s, values=s.values[:-h]) for s in usable]
    chosen: dict[str, str] = {}
    for intermittent in (False, True):
        group = [s for s in train if _intermittent(s, opts) == intermittent]
        if group:
            chosen.update(choose(group, intermittent, opts).chosen.to_dict())
    models = _all_models(opts)
    names = [str(m) for m in models]
    sf = require("statsforecast").StatsForecast(models=models, freq=freq(opts), n_jobs=opts.n_jobs)
    df = frame(usable, opts, last=opts.fit_periods + h)
    held = sf.cross_validation(h=h, df=df, n_windows=1, step_size=h, input_size=opts.fit_periods)
    pick = [chosen[usable[code].key] for code in held["unique_id"].to_numpy()]
    table = held[names].to_numpy()
    column = {n: i for i, n in enumerate(names)}
    held[CHOSEN] = table[np.arange(len(held)), [column[p] for p in pick]]
    return _scores(held, frame(train, opts, last=opts.fit_periods), [CHOSEN, *names], opts)


def _intermittent(s: Series, opts: Options) -> bool:
    return is_intermittent(list(s.values[-opts.fit_periods :]))


def _all_models(opts: Options) -> list[object]:
    seen: dict[str, object] = {}
    for intermittent in (False, True):
        for m in candidates(intermittent, opts):
            seen.setdefault(str(m), m)
    return list(seen.values())


def _scores(held: object, train: object, names: list[str], opts: Options) -> list[Score]:
    losses = require("utilsforecast.losses")
    season = 7 if opts.period == "day" else 1
    per_series = losses.mase(held, names, seasonality=season, train_df=train)
    finite = per_series[names].replace([np.inf, -np.inf], np.nan).dropna()
    return [Score(n, len(finite), float(finite[n].mean()), _paired_t(finite, n)) for n in names]


def _paired_t(table: Any, name: str) -> float:
    diff = (table[name] - table[FLAT_RATE]).to_numpy()
    sd = float(np.std(diff, ddof=1)) if len(diff) > 1 else 0.0
    if sd == 0.0:
        return 0.0 if float(np.mean(diff)) == 0 else float(np.sign(np.mean(diff))) * np.inf
    return float(np.mean(diff) / (sd / np.sqrt(len(diff))))


def improvement(scores: Sequence[Score]) -> float:
    """How much lower the chosen model's MASE is than the flat rate's (0.2 = 20 % lower)."""
    by = {s.model: s.mase for s in scores}
    return 1 - by[CHOSEN] / by[FLAT_RATE]
