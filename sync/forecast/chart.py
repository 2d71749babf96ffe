"""One key's forecast chart as inline SVG, drawn by matplotlib (for ``sync.forecast.html``).

Why matplotlib rendering static SVG rather than a JavaScript charting library: the report
must open offline, from a file, a mail attachment or an archive, years later. Static SVG
needs no script at all (nothing to vendor, audit for licence or keep up to date, no console
errors possible, prints as vectors); matplotlib is the Python field's well-kept standard
and installs with the ``forecast`` extra beside numpy, which the forecaster needs anyway.
What JS would add, hover tooltips, is replaced by the summary table's exact figures.

Text is written as SVG ``<text>`` (``svg.fonttype: none``), not glyph paths: the file stays
small and the browser's own fonts draw any script. The SVG carries no user text at all
(names and keys are in the HTML around it), only numbers, dates and fixed labels.

The figure has two panels on one time axis:

- demand per period: the history (last ``history_periods``), the forecast mean and its
  prediction-interval band;
- stock (with a plan): the stock projected from ``available`` minus the cumulative forecast
  mean (the same projection as ``ReorderPlan.stockout_date``), the reorder point, the safety
  stock the service level needs, the configured safety stock, the lead-time window and the
  projected stock-out date.
"""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from sync.errors import ConfigError
from sync.forecast.model import KeyForecast, ReorderPlan

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: the colours of the lines: matplotlib's default cycle (tab10), told apart by dash style too
HISTORY, FORECAST, REORDER, NEED, CONFIGURED, STOCKOUT = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#7f7f7f",
    "#9467bd",
)
#: matplotlib's date numbers count days from its ``date.epoch``, 1970-01-01 by default since
#: 3.3 (tests check ``_x`` against ``matplotlib.dates.date2num``)
_EPOCH = date(1970, 1, 1)
#: a history this short gets a marker per period (a line of one point draws nothing)
_MARKERS_UP_TO = 14
#: savefig metadata: no date, no creator, no Dublin Core block (deterministic, no URLs)
_NO_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}


def require_matplotlib() -> None:
    """Refuse early, naming the extra, when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError.single(
            "--format html",
            "the HTML report needs matplotlib: pip install 'stocksync[forecast]'",
        ) from None


def chart_svg(
    forecast: KeyForecast, plan: ReorderPlan | None, *, history_periods: int, id_prefix: str
) -> str:
    """The chart of one key as an ``<svg>`` element to place inline in HTML.

    Every ``id`` in it (and every reference to one) starts with ``id_prefix``, so many charts
    share one document without clashing. Deterministic: same input, same string.
    """
    import matplotlib
    from matplotlib.figure import Figure

    history = forecast.history[-history_periods:] if history_periods > 0 else ()
    panels = 2 if plan is not None else 1
    buf = io.StringIO()
    # "concise" date ticks (Dec, 03, … with the year once): readable at any span
    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "sync",
            "font.size": 9.0,
            "date.converter": "concise",
        }
    ):
        fig = Figure(figsize=(9.0, 4.6 if plan is not None else 3.0), layout="constrained")
        axes = fig.subplots(panels, 1, sharex=True, squeeze=False, height_ratios=[2, 1][:panels])
        _demand_panel(axes[0][0], forecast, history)
        if plan is not None:
            _stock_panel(axes[1][0], forecast, plan)
        for row in axes:
            row[0].xaxis_date()
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    return _inline(buf.getvalue(), id_prefix)


def _x(day: date) -> float:
    """A date as matplotlib's date number (typed, unlike ``date2num``)."""
    return float((day - _EPOCH).days)


def _demand_panel(ax: Axes, forecast: KeyForecast, history: tuple[tuple[date, float], ...]) -> None:
    unit = "day" if forecast.period == "day" else "week"
    if history:
        ax.plot(
            [_x(d) for d, _ in history],
            [q for _, q in history],
            color=HISTORY,
            lw=1.2,
            marker="o" if len(history) <= _MARKERS_UP_TO else "",
            ms=3,
            label="history",
            gid="history",
        )
    points = forecast.points
    if points:
        days = [_x(p.period_start) for p in points]
        ax.fill_between(
            days,
            [p.low for p in points],
            [p.high for p in points],
            color=FORECAST,
            alpha=0.25,
            lw=0,
            label=f"{forecast.interval_pct}% interval",
            gid="interval",
        )
        ax.plot(
            days,
            [p.mean for p in points],
            color=FORECAST,
            lw=1.6,
            ls="--",
            marker="o" if len(points) <= 1 else "",
            ms=3,
            label="forecast",
            gid="forecast",
        )
        ax.axvline(days[0], color="#999999", lw=0.8, ls=":")
    ax.set_ylabel(f"demand / {unit}")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.grid(True, color="#e5e5e5", lw=0.6)
    if history or points:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def projected_stock(forecast: KeyForecast, plan: ReorderPlan) -> list[tuple[date, float]]:
    """Stock at each forecast period boundary: ``available`` at the first period's start,
    then minus each period's forecast mean (base unit; may go below 0). Empty without
    points. The projection ``ReorderPlan.stockout_date`` is defined on."""
    points = forecast.points
    if not points:
        return []
    step = timedelta(days=1 if forecast.period == "day" else 7)
    days = [points[0].period_start, *(p.period_start + step for p in points)]
    stock = accumulate((p.mean for p in points), lambda s, m: s - m, initial=plan.available)
    return list(zip(days, stock, strict=True))


def _stock_panel(ax: Axes, forecast: KeyForecast, plan: ReorderPlan) -> None:
    projection = projected_stock(forecast, plan)
    if projection:
        start = projection[0][0]
        end = start + timedelta(days=plan.lead_time_days)
        ax.plot(
            [_x(d) for d, _ in projection],
            [q for _, q in projection],
            color=HISTORY,
            lw=1.4,
            label="projected stock",
            gid="stock",
        )
        ax.axvspan(
            _x(start),
            _x(end),
            color="#dddddd",
            alpha=0.5,
            lw=0,
            label=f"lead time {plan.lead_time_days} d",
            gid="lead-time",
        )
    ax.axhline(plan.reorder_point, color=REORDER, lw=1.2, label="reorder point", gid="reorder")
    need_label = f"safety stock needed ({plan.service_level:.0%})"
    ax.axhline(plan.safety_stock_needed, color=NEED, lw=1.0, ls="--", label=need_label, gid="need")
    if plan.safety_stock_configured is not None:
        configured = plan.safety_stock_configured
        ax.axhline(
            configured, color=CONFIGURED, lw=1.0, ls=":", label="safety stock set", gid="set"
        )
    if plan.stockout_date is not None:
        ax.axvline(
            _x(plan.stockout_date), color=STOCKOUT, lw=1.4, label="stock-out", gid="stockout"
        )
    ax.axhline(0.0, color="#000000", lw=0.6)
    ax.set_ylabel("stock")
    ax.grid(True, color="#e5e5e5", lw=0.6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


_XML_HEAD = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_IDS = re.compile(r'(\bid="|xlink:href="#|url\(#)')


def _inline(svg: str, prefix: str) -> str:
    """matplotlib's standalone SVG → an element for HTML: no XML prolog, ids prefixed."""
    body = _XML_HEAD.sub("", svg, count=1)
    return _IDS.sub(lambda m: m.group(1) + prefix, body).strip()
