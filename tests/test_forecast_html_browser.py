"""The HTML forecast report in real headless Chromium (Debian's ``chromium``, driven by
Playwright over its own pipe): it loads without a console message, fetches nothing but
itself, and every chart draws: a box of the right size whose screenshot has the colours of
its lines.

Skipped with the reason where chromium or playwright is missing; under CI (``CI`` set)
that is a failure instead, so the check cannot silently vanish (.ci/run installs both).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.forecast.chart import FORECAST, HISTORY, REORDER
from sync.forecast.html import write_html_report
from tests.conftest import IN_CI
from tests.forecast_report_data import GENERATED, URGENCY, fleet

CHROMIUM = os.environ.get("STOCKSYNC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}: CI must run the browser tests (.ci/run installs it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    forecasts, plans = fleet()
    path = tmp_path_factory.mktemp("report") / "forecast.html"
    return write_html_report(
        path,
        forecasts,
        plans,
        title="Forecast <test>",
        generated_at=GENERATED,
        max_charts=len(URGENCY),
    )


class Visit:
    """One page load with everything the browser reported on the way."""

    def __init__(self, browser: Any, url: str) -> None:
        self.messages: list[str] = []
        self.requests: list[str] = []
        self.failed: dict[str, str | None] = {}
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.update({r.url: r.failure}))
        self.page.goto(url, wait_until="load")


def ink(pixel: tuple[int, int, int], colour: str) -> float:
    """How much of ``colour`` a pixel on white holds (0 to 1): an antialiased line's edge
    is colour blended with white; 0 for a pixel off that blend (another colour)."""
    target = [255 - int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    seen = [255 - v for v in pixel]
    alpha = sum(a * b for a, b in zip(seen, target, strict=True)) / sum(t * t for t in target)
    off = max(abs(v - alpha * t) for v, t in zip(seen, target, strict=True))
    return alpha if off <= 24 else 0.0


def drawn(png: bytes) -> dict[str, int]:
    """Pixels holding at least 40 % of each line's colour in a screenshot."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    wanted = {"history": HISTORY, "forecast": FORECAST, "reorder": REORDER}
    counts = dict.fromkeys(wanted, 0)
    for n, pixel in image.getcolors(maxcolors=1 << 20) or []:
        for name, colour in wanted.items():
            if ink(pixel, colour) >= 0.4:
                counts[name] += n
    return counts


def test_the_report_loads_without_messages_and_fetches_nothing(
    browser: Any, report_file: Path
) -> None:
    url = report_file.as_uri()
    visit = Visit(browser, url)
    assert visit.messages == []
    assert visit.requests == [url] and visit.failed == {}
    assert visit.page.title() == "Forecast <test>"
    rows = visit.page.eval_on_selector_all(
        "#summary tbody tr", "rows => rows.map(r => r.dataset.key)"
    )
    assert rows == URGENCY
    visit.page.close()


def test_every_chart_draws(browser: Any, report_file: Path) -> None:
    visit = Visit(browser, report_file.as_uri())
    charts = visit.page.locator("section.chart svg")
    assert charts.count() == len(URGENCY)
    _, plans = fleet()
    for i, key in enumerate(URGENCY):
        chart = charts.nth(i)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 200, (key, box)
        lines = ["history", "forecast", *(["stock"] if key in plans else [])]
        lengths = visit.page.evaluate(
            """([prefix, names]) => names.map(
                name => document.querySelector(`#${prefix}${name} path`)?.getTotalLength() ?? 0)""",
            [f"c{i}-", lines],
        )
        pixels = drawn(chart.screenshot())
        assert all(length > 20 for length in lengths), (key, lengths)
        # a legend's sample line alone is < 100 pixels
        assert pixels["history"] > 300 and pixels["forecast"] > 150, (key, pixels)
        assert (pixels["reorder"] > 300) == (key in plans), (key, pixels)
    visit.page.close()


def test_the_pixel_check_sees_a_chart_that_did_not_draw(browser: Any, report_file: Path) -> None:
    """The check above can fail: the same chart with its lines hidden counts no pixel."""
    hidden = report_file.with_name("hidden.html")
    text = report_file.read_text(encoding="utf-8")
    hidden.write_text(text.replace("</style>", "svg path{display:none}</style>", 1), "utf-8")
    visit = Visit(browser, hidden.as_uri())
    assert drawn(visit.page.locator("section.chart svg").first.screenshot()) == {
        "history": 0,
        "forecast": 0,
        "reorder": 0,
    }
    visit.page.close()


def test_the_page_policy_refuses_a_fetch_that_slipped_in(browser: Any, report_file: Path) -> None:
    """Should data ever smuggle an element in, the Content-Security-Policy blocks its fetch."""
    tainted = report_file.with_name("tainted.html")
    text = report_file.read_text(encoding="utf-8")
    img = '<img src="http://127.0.0.1:9/pixel.png" alt="">'
    tainted.write_text(text.replace("<body>", f"<body>{img}", 1), "utf-8")
    visit = Visit(browser, tainted.as_uri())
    # Chromium reports the request, then its failure: blocked before any connection
    assert visit.failed == {"http://127.0.0.1:9/pixel.png": "csp"}
    assert any("Content Security Policy" in m for m in visit.messages), visit.messages
    visit.page.close()
