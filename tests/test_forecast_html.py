"""The HTML forecast report (sync.forecast.html): order, values, escaping, one chart per
charted key, nothing fetched from elsewhere. Rendering in a real browser:
test_forecast_html_browser.py."""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import replace
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sync.errors import ConfigError
from sync.forecast.chart import _x, chart_svg, projected_stock
from sync.forecast.html import render_html, urgency_order, write_html_report
from sync.forecast.model import KeyForecast
from tests.forecast_report_data import (
    EVIL_KEY,
    EVIL_SKU,
    EVIL_WAREHOUSE,
    GENERATED,
    URGENCY,
    fleet,
    forecast,
    plan,
)


class Page(HTMLParser):
    """What a browser would see: elements, attributes, table rows and their cell texts."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.rows: list[tuple[str, list[str]]] = []
        self._cell: list[str] | None = None
        self.texts: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag == "tr" and "data-key" in attributes:
            self.rows.append((attributes["data-key"], []))
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1][1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag]

    def row(self, key: str) -> list[str]:
        return next(cells for k, cells in self.rows if k == key)


def report(**kwargs: object) -> str:
    """The fleet's report; no chart unless asked (a chart takes ~0.2 s)."""
    forecasts, plans = fleet()
    options: dict[str, object] = {"title": "Forecast", "generated_at": GENERATED}
    options |= {"max_charts": 0} | kwargs
    return render_html(forecasts, plans, **options)  # type: ignore[arg-type]


@functools.cache
def charted() -> str:
    """The fleet's report with every key charted, the last 10 history periods shown."""
    return report(max_charts=len(URGENCY), history_periods=10)


def test_the_table_lists_every_key_most_urgent_first() -> None:
    page = Page(report())
    assert [key for key, _ in page.rows] == URGENCY
    forecasts, plans = fleet()
    assert [f.key for f in urgency_order(forecasts, plans)] == URGENCY


def test_ties_fall_back_to_the_key() -> None:
    forecasts = [forecast("B@W"), forecast("A@W"), forecast("C@W")]
    plans = {k: plan(k, stockout=date(2027, 1, 1), within=True) for k in ("B@W", "C@W", "A@W")}
    assert [f.key for f in urgency_order(forecasts, plans)] == ["A@W", "B@W", "C@W"]


def test_the_table_shows_the_plan_figures() -> None:
    page = Page(report())
    assert page.row("NEW@WH-MAIN") == [
        "3",
        "NEW@WH-MAIN",
        "NEW",
        "WH-MAIN",
        "AutoETS",
        "320.0",  # on hand
        "300.0",  # available
        "60",
        "95.0%",
        "140.0",
        "30.0",
        "—",  # no safety stock configured
        "170.0",
        "1,234.5",
        "2027-01-29",
        "stock-out within lead time",
    ]
    assert page.row("NEG@WH-MAIN")[5:7] == ["15.0", "-5.0"]
    assert page.row("BELOW@WH-MAIN")[-2:] == ["—", "safety stock below need"]
    assert page.row("OK@WH-MAIN")[-1] == "ok"
    assert page.row("NOPLAN@WH-MAIN")[5:] == ["—"] * 10 + ["no plan"]
    classes = {a["data-key"]: a["class"] for a in page.all("tr") if "data-key" in a}
    assert classes["NEG@WH-MAIN"] == "stockout"
    assert classes["BELOW@WH-MAIN"] == "below"
    assert classes["OK@WH-MAIN"] == ""


def test_every_text_from_data_is_escaped() -> None:
    text = report(title="Stock <2027> & co", max_charts=2)
    for raw in (EVIL_KEY, EVIL_SKU, EVIL_WAREHOUSE, "<2027>"):
        assert raw not in text
    page = Page(text)
    assert page.all("script") == []
    assert page.all("b") == [] and page.all("main") == []
    assert page.row(EVIL_KEY)[1:4] == [EVIL_KEY, EVIL_SKU, EVIL_WAREHOUSE]
    assert "Stock <2027> & co" in page.texts  # the <title> and the <h1>
    [section] = [a for a in page.all("section") if a["data-key"] == EVIL_KEY]
    assert section["id"] == "chart-1"


def test_one_chart_per_charted_key_in_urgency_order() -> None:
    page = Page(report(max_charts=4))
    sections = page.all("section")
    assert [s["data-key"] for s in sections] == URGENCY[:4]
    assert [s["id"] for s in sections] == [f"chart-{i}" for i in range(4)]
    assert len(page.all("svg")) == 4
    links = [a["href"] for a in page.all("a")]
    assert links == [f"#chart-{i}" for i in range(4)]  # only charted keys link to a chart
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids)), "an id repeats across the charts"


def test_no_chart_is_drawn_when_none_is_asked_for() -> None:
    page = Page(report(max_charts=0))
    assert page.all("svg") == [] and page.all("section") == []
    assert len(page.rows) == len(URGENCY)


def test_the_file_fetches_nothing() -> None:
    text = charted()
    page = Page(text)
    for tag in ("script", "link", "img", "iframe", "object", "embed", "image", "video", "audio"):
        assert page.all(tag) == [], tag
    targets = [
        value
        for _, attrs in page.tags
        for name, value in attrs.items()
        if name in {"src", "href", "xlink:href", "action", "srcset", "data"}
    ]
    assert targets and all(t.startswith("#") for t in targets), targets
    assert re.findall(r"url\((?!#)", text) == []
    assert "@import" not in text
    [csp] = [a for a in page.all("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp["content"].startswith("default-src 'none'")


def group(text: str, element_id: str) -> str:
    """The SVG group with this id (a line: its path, then its markers, if any)."""
    found = re.search(rf'<g id="{re.escape(element_id)}">(.*?)</g>', text, re.DOTALL)
    assert found, element_id
    return found.group(1)


def vertices(text: str, element_id: str) -> int:
    """How many points the group's (first) line joins."""
    d = re.search(r'<path\b[^>]*\bd="([^"]*)"', group(text, element_id))
    assert d, element_id
    return len(re.findall(r"[ML] ", d.group(1)))


def markers(text: str, element_id: str) -> int:
    return group(text, element_id).count("<use ")


def test_a_chart_draws_the_history_window_forecast_and_stock_lines() -> None:
    text = charted()
    neg, evil, new, weekly = (f"c{URGENCY.index(k)}-" for k in URGENCY[:4])
    assert vertices(text, f"{evil}history") == 10
    assert vertices(text, f"{new}history") == 3  # a new key
    assert vertices(text, f"{evil}forecast") == 30
    assert vertices(text, f"{weekly}forecast") == 12
    assert vertices(text, f"{evil}stock") == 31
    # a short history gets a marker per period, the forecast none
    assert (markers(text, f"{new}history"), markers(text, f"{new}forecast")) == (3, 0)
    for part in ("interval", "lead-time", "reorder", "need", "set", "stockout"):
        assert "<path " in group(text, f"{neg}{part}"), part
    assert f'id="{new}set"' not in text  # no safety stock configured
    nop = f"c{URGENCY.index('NOPLAN@WH-MAIN')}-"
    assert f'id="{nop}forecast"' in text and f'id="{nop}stock"' not in text
    assert "last 10 of 200 history periods" in text
    assert "last 3 of 3 history periods" in text


def test_a_long_history_is_a_plain_line_and_a_lone_point_a_marker() -> None:
    long = chart_svg(forecast("L@W"), None, history_periods=120, id_prefix="x-")
    assert (vertices(long, "x-history"), markers(long, "x-history")) == (120, 0)
    one = forecast("O@W", history_days=1, horizon=1)
    lone = chart_svg(one, None, history_periods=120, id_prefix="y-")
    assert (markers(lone, "y-history"), markers(lone, "y-forecast")) == (1, 1)


def test_the_projected_stock_is_available_minus_the_cumulative_forecast() -> None:
    def with_means(f: KeyForecast) -> KeyForecast:
        means = (10.0, 20.0, 30.0)
        return replace(
            f, points=tuple(replace(p, mean=m) for p, m in zip(f.points, means, strict=True))
        )

    daily = with_means(forecast("P@W", horizon=3))
    day = daily.points[0].period_start
    assert projected_stock(daily, plan("P@W", available=100.0)) == [
        (day, 100.0),
        (day + timedelta(days=1), 90.0),
        (day + timedelta(days=2), 70.0),
        (day + timedelta(days=3), 40.0),
    ]
    weekly = with_means(forecast("P@W", horizon=3, period="week"))
    assert projected_stock(weekly, plan("P@W", available=-5.0)) == [
        (day, -5.0),
        (day + timedelta(days=7), -15.0),
        (day + timedelta(days=14), -35.0),
        (day + timedelta(days=21), -65.0),
    ]
    assert projected_stock(replace(daily, points=()), plan("P@W")) == []


def test_chart_dates_are_matplotlibs_date_numbers() -> None:
    from matplotlib.dates import date2num

    for day in (date(1970, 1, 1), date(2026, 11, 30), date(1999, 12, 31)):
        assert _x(day) == date2num(datetime(day.year, day.month, day.day))


def test_the_same_input_renders_the_same_file(tmp_path: Path) -> None:
    forecasts, plans = fleet()
    forecasts.append(forecast("螺丝 M3@仓库", sku="螺丝 M3", warehouse="仓库"))
    options = {"title": "Forecast", "generated_at": GENERATED, "max_charts": 2}
    path = write_html_report(tmp_path / "report.html", forecasts, plans, **options)  # type: ignore[arg-type]
    text = path.read_text(encoding="utf-8")
    assert text == render_html(forecasts, plans, **options)  # type: ignore[arg-type]
    assert "螺丝 M3" in text and "generated 2026-11-30T06:00:00+00:00" in text


def test_an_empty_fleet_renders_an_empty_table() -> None:
    page = Page(render_html([], {}, title="Forecast", generated_at=GENERATED))
    assert page.rows == [] and page.all("svg") == []
    assert any("0 keys" in t for t in page.texts)


def test_caller_mistakes_are_refused() -> None:
    forecasts, plans = fleet()
    with pytest.raises(ValueError, match="plans without a forecast: GONE@W"):
        render_html(
            forecasts, plans | {"GONE@W": plan("GONE@W")}, title="t", generated_at=GENERATED
        )
    with pytest.raises(ValueError, match="max_charts"):
        render_html(forecasts, plans, title="t", generated_at=GENERATED, max_charts=-1)


def test_a_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    with pytest.raises(ConfigError, match=re.escape("pip install 'stocksync[forecast]'")):
        report(max_charts=1)
