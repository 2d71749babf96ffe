"""``stocksync forecast --format html``: one self-contained, offline HTML report (issue 20).

The page has a summary table of every key, most urgent first, and a chart per key for the
``max_charts`` most urgent ones (``sync.forecast.chart``: static inline SVG drawn by
matplotlib, the module says why). The file fetches nothing: no script, no stylesheet or
font from elsewhere, and a Content-Security-Policy of ``default-src 'none'`` makes the
browser refuse any fetch should one ever slip in. Every text that comes from data (keys,
SKUs, warehouses, model names, the title) is HTML-escaped.

Urgency (the table's order and which keys get a chart): a projected stock-out within the
lead time first, then the earliest projected stock-out date, then a configured safety stock
below what the service level needs; keys without a plan last; ties by key.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

from sync.forecast.chart import chart_svg, require_matplotlib
from sync.forecast.model import KeyForecast, ReorderPlan

#: charts drawn by default: the most urgent keys; the table always lists every key
DEFAULT_MAX_CHARTS = 50
#: history periods shown before the forecast by default
DEFAULT_HISTORY_PERIODS = 120

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:90em;padding:0 1em;color:#222}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .2em}
.meta{color:#666;margin:0 0 1em}
table{border-collapse:collapse;font-size:12px;width:100%}
th,td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f4f4f4;white-space:normal;vertical-align:bottom}
.scroll{overflow-x:auto}
td.t,th.t{text-align:left;white-space:normal}td:last-child{min-width:10em}
tr.stockout td{background:#fde8e8}tr.below td{background:#fff6dc}
figure{margin:.3em 0 1em}figure svg{max-width:100%;height:auto}
figcaption{color:#666;font-size:12px}
""".strip()

_COLUMNS = (
    ("#", ""),
    ("key", "t"),
    ("SKU", "t"),
    ("warehouse", "t"),
    ("model", "t"),
    ("on hand", ""),
    ("available", ""),
    ("lead time (d)", ""),
    ("service level", ""),
    ("demand over lead time", ""),
    ("safety stock needed", ""),
    ("safety stock set", ""),
    ("reorder point", ""),
    ("order quantity", ""),
    ("stock-out", ""),
    ("status", "t"),
)


def urgency_order(
    forecasts: Sequence[KeyForecast], plans: Mapping[str, ReorderPlan]
) -> list[KeyForecast]:
    """The forecasts, most urgent first (the module docstring gives the order)."""

    def rank(f: KeyForecast) -> tuple[bool, bool, bool, date, bool, str]:
        p = plans.get(f.key)
        if p is None:
            return (True, True, True, date.max, True, f.key)
        out = p.stockout_date
        return (
            False,
            not p.stockout_within_lead_time,
            out is None,
            out or date.max,
            not p.safety_stock_below_need,
            f.key,
        )

    return sorted(forecasts, key=rank)


def render_html(
    forecasts: Sequence[KeyForecast],
    plans: Mapping[str, ReorderPlan],
    *,
    title: str,
    generated_at: datetime,
    max_charts: int = DEFAULT_MAX_CHARTS,
    history_periods: int = DEFAULT_HISTORY_PERIODS,
) -> str:
    """The whole report as one HTML document (UTF-8 text). Pure: no I/O, no clock.

    ``plans``: the reorder plan per key (``KeyForecast.key``); a key without one is listed
    and charted without its stock panel. A plan whose key has no forecast is a caller's bug
    (ValueError). ``max_charts`` (>= 0) bounds the file for many keys: ~60 kB a chart.
    Raises ``ConfigError`` naming the ``forecast`` extra when matplotlib is missing.
    """
    if max_charts < 0:
        raise ValueError(f"max_charts must be >= 0, got {max_charts}")
    known = {f.key for f in forecasts}
    stray = sorted(k for k in plans if k not in known)
    if stray:
        raise ValueError(f"plans without a forecast: {', '.join(stray[:5])}")
    ordered = urgency_order(forecasts, plans)
    charted = ordered[:max_charts]
    if charted:
        require_matplotlib()
    sections = [
        _chart_section(i, f, plans.get(f.key), history_periods) for i, f in enumerate(charted)
    ]
    shown = f"charts for the {len(charted)} most urgent of {len(ordered)} keys"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{_e(title)}</h1>",
            f'<p class="meta">generated {_e(generated_at.isoformat(timespec="seconds"))}'
            f" · {len(ordered)} keys · {shown} · quantities in base units</p>",
            _table(ordered, plans, len(charted)),
            *sections,
            "</body>",
            "</html>",
            "",
        ]
    )


def write_html_report(
    path: Path | str,
    forecasts: Sequence[KeyForecast],
    plans: Mapping[str, ReorderPlan],
    *,
    title: str,
    generated_at: datetime,
    max_charts: int = DEFAULT_MAX_CHARTS,
    history_periods: int = DEFAULT_HISTORY_PERIODS,
) -> Path:
    """``render_html`` written to ``path`` (UTF-8); returns the path written."""
    text = render_html(
        forecasts,
        plans,
        title=title,
        generated_at=generated_at,
        max_charts=max_charts,
        history_periods=history_periods,
    )
    target = Path(path)
    target.write_text(text, encoding="utf-8")
    return target


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _q(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _status(plan: ReorderPlan | None) -> tuple[str, str]:
    """(row class, status text) of one key."""
    if plan is None:
        return "", "no plan"
    notes = []
    if plan.stockout_within_lead_time:
        notes.append("stock-out within lead time")
    if plan.safety_stock_below_need:
        notes.append("safety stock below need")
    css = "stockout" if plan.stockout_within_lead_time else "below" if notes else ""
    return css, "; ".join(notes) or "ok"


def _table(ordered: list[KeyForecast], plans: Mapping[str, ReorderPlan], charted: int) -> str:
    head = "".join(
        f'<th class="{c}">{_e(name)}</th>' if c else f"<th>{_e(name)}</th>" for name, c in _COLUMNS
    )
    rows = [f'<div class="scroll"><table id="summary">\n<thead><tr>{head}</tr></thead>\n<tbody>']
    for i, f in enumerate(ordered):
        p = plans.get(f.key)
        css, status = _status(p)
        key = f'<a href="#chart-{i}">{_e(f.key)}</a>' if i < charted else _e(f.key)
        cells = [str(i + 1), key, _e(f.sku), _e(f.warehouse), _e(f.model)]
        if p is None:
            cells += ["—"] * 10
        else:
            cells += [
                _q(p.on_hand),
                _q(p.available),
                str(p.lead_time_days),
                f"{p.service_level:.1%}",
                _q(p.demand_over_lead_time),
                _q(p.safety_stock_needed),
                _q(p.safety_stock_configured),
                _q(p.reorder_point),
                _q(p.order_quantity),
                p.stockout_date.isoformat() if p.stockout_date else "—",
            ]
        cells.append(_e(status))
        tds = "".join(
            f'<td class="t">{v}</td>' if c else f"<td>{v}</td>"
            for v, (_, c) in zip(cells, _COLUMNS, strict=True)
        )
        rows.append(f'<tr class="{css}" data-key="{_e(f.key)}">{tds}</tr>')
    rows.append("</tbody>\n</table></div>")
    return "\n".join(rows)


def _chart_section(i: int, f: KeyForecast, plan: ReorderPlan | None, history_periods: int) -> str:
    svg = chart_svg(f, plan, history_periods=history_periods, id_prefix=f"c{i}-")
    _, status = _status(plan)
    shown = min(len(f.history), max(history_periods, 0))
    caption = (
        f"model {_e(f.model)} · {f.interval_pct}% prediction interval · per {f.period}"
        f" · last {shown} of {len(f.history)} history periods · {_e(status)}"
    )
    label = _e(f"forecast of {f.key}")
    return (
        f'<section class="chart" id="chart-{i}" data-key="{_e(f.key)}">\n'
        f"<h2>{i + 1}. {_e(f.key)} <small>SKU {_e(f.sku)} · {_e(f.warehouse)}</small></h2>\n"
        f'<figure role="img" aria-label="{label}">\n{svg}\n<figcaption>{caption}</figcaption>\n'
        "</figure>\n</section>"
    )
