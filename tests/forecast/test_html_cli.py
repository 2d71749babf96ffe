"""``stocksync forecast --format html`` end to end: the memory pipeline's ledger → forecast
and plan → the offline report (sync.forecast.html), to a file or stdout."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.reconcile.conftest import cli
from tests.test_forecast_html import Page


def test_forecast_html_writes_the_report(world: Path, tmp_path: Path) -> None:
    target = tmp_path / "forecast.html"
    code, out = cli("forecast", "-c", str(world), "--format", "html", "--output", str(target))
    assert code == 0, out
    text = target.read_text(encoding="utf-8")
    page = Page(text)
    keys = [key for key, _ in page.rows]
    # NEG is out today, NEW on day 3, both within the 4-day lead time; then the rest
    assert keys[:2] == ["NEG@WH-MAIN", "NEW@WH-MAIN"]
    assert sorted(keys) == ["IDLE@WH-MAIN", "NEG@WH-MAIN", "NEW@WH-MAIN", "SEAS@WH-MAIN"]
    assert page.row("NEG@WH-MAIN")[5:7] == ["-6.0", "-6.0"]  # on hand, available
    assert page.row("NEG@WH-MAIN")[-1].startswith("stock-out within lead time")
    assert [s["data-key"] for s in page.all("section")] == keys  # all four charted
    assert len(page.all("svg")) == 4
    assert "stocksync forecast: fccli" in page.texts


def test_forecast_html_goes_to_stdout_without_output(world: Path) -> None:
    code, out = cli("forecast", "-c", str(world), "--format", "html", "--key", "NEW@WH-MAIN")
    assert code == 0, out
    assert out.startswith("<!DOCTYPE html>")
    assert [key for key, _ in Page(out).rows] == ["NEW@WH-MAIN"]


def test_without_matplotlib_html_is_refused_before_any_forecast(
    world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extra is checked first: a forecast of many keys is not computed to be thrown away."""
    import sync.forecast.run

    def no_forecast(*args: object, **kwargs: object) -> None:
        raise AssertionError("the forecast ran before the check")

    monkeypatch.setattr(sync.forecast.run, "forecast_pipeline", no_forecast)
    import structlog
    from typer.testing import CliRunner

    from sync.cli.main import app

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    result = CliRunner().invoke(app, ["forecast", "-c", str(world), "--format", "html"])
    structlog.reset_defaults()
    assert result.exit_code == 2, result.output
    assert "stocksync[forecast]" in result.stderr
