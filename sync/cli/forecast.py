"""``stocksync forecast``: demand forecast, reorder plan and backtest (issue 20).

Exit codes: 0 ok, 2 error (also when the ``forecast`` extra is missing).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from sync import config as cfg
from sync.cli.app import ConfigOpt, app, emit, fail, guarded, open_state_url, selected_pipelines

FORMATS = ("table", "json", "csv", "html")
BACKTEST_COLUMNS = ["pipeline", "model", "series", "mase", "vs_flat_rate"]


@app.command("forecast")
def forecast_cmd(
    config: ConfigOpt = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon", min=1, max=730, help="days ahead (default forecast.horizon_days)"
        ),
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="only SKU@WAREHOUSE")] = None,
    sku: Annotated[str | None, typer.Option("--sku", help="only this SKU")] = None,
    warehouse: Annotated[str | None, typer.Option("--warehouse", help="only this one")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="only this pipeline")] = None,
    format: Annotated[str, typer.Option("--format", help="table, json, csv or html")] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="html: the file (default stdout)")
    ] = None,
    backtest: Annotated[
        bool,
        typer.Option("--backtest", help="MASE of each model and of the flat rate, held out"),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", min=1, help="processes (default forecast.jobs)"),
    ] = None,
) -> None:
    """Customer demand forecast per SKU × warehouse with prediction intervals, and the reorder
    plan: reorder point, order quantity, projected stock-out (most urgent first)."""
    from sync.forecast.run import KeyFilter

    def body() -> None:
        if format not in FORMATS:
            fail(f"unknown format {format!r}", f"use {', '.join(FORMATS)}")
        settings = cfg.load(config, with_connectors=False)
        store = open_state_url(settings.state.url)
        pipes = selected_pipelines(settings, pipeline)
        wanted = KeyFilter(key, sku, warehouse)
        today = datetime.now(UTC).date()
        if backtest:
            rows = _backtest(store, pipes, today, wanted, horizon, jobs)
            emit(rows, "table" if format == "html" else format, "backtest", BACKTEST_COLUMNS)
            return
        _forecast(store, pipes, today, wanted, horizon, jobs, format, output)

    guarded(body)


def _forecast(
    store: Any,
    pipes: list[cfg.PipelineBase],
    today: Any,
    wanted: Any,
    horizon: int | None,
    jobs: int | None,
    fmt: str,
    output: Path | None,
) -> None:
    from sync.forecast.rows import SUMMARY_COLUMNS, summary, urgency, with_points
    from sync.forecast.run import forecast_pipeline

    if fmt == "html":  # refused before the forecast, which can take a minute
        from sync.forecast.chart import require_matplotlib

        if len(pipes) > 1:
            fail("--format html shows one pipeline", "choose it with --pipeline NAME")
        require_matplotlib()
    rows, forecasts, plans = [], [], {}
    for p in pipes:
        fitted, plan_list = forecast_pipeline(
            store, p, today, wanted=wanted, horizon_days=horizon, n_jobs=jobs or p.forecast.jobs
        )
        for f, plan in zip(fitted, plan_list, strict=True):
            row = summary(p.name, f.forecast, plan)
            rows.append(with_points(row, f.forecast) if fmt == "json" else row)
            forecasts.append(f.forecast)
            plans[plan.key] = plan
    if fmt == "html":
        _html(forecasts, plans, pipes[0].name, output)
        return
    emit(urgency(rows), fmt, "demand forecast and reorder plan", list(SUMMARY_COLUMNS))


def _html(forecasts: list[Any], plans: dict[str, Any], name: str, output: Path | None) -> None:
    from sync.forecast.html import render_html

    page = render_html(
        forecasts, plans, title=f"stocksync forecast: {name}", generated_at=datetime.now(UTC)
    )
    if output is None:
        sys.stdout.write(page)
    else:
        output.write_text(page, encoding="utf-8")


def _backtest(
    store: Any,
    pipes: list[cfg.PipelineBase],
    today: Any,
    wanted: Any,
    horizon: int | None,
    jobs: int | None,
) -> list[dict[str, Any]]:
    from sync.forecast.backtest import backtest
    from sync.forecast.engine import FLAT_RATE
    from sync.forecast.run import levels, options, read_series

    rows = []
    for p in pipes:
        series = read_series(store, p, today, wanted, levels(store, p))
        scores = backtest(series, options(p, horizon_days=horizon, n_jobs=jobs or p.forecast.jobs))
        flat = next((s.mase for s in scores if s.model == FLAT_RATE), None)
        for s in scores:
            vs = None if not flat else f"{(s.mase / flat - 1) * 100:+.1f}%"
            rows.append(
                {
                    "pipeline": p.name,
                    "model": s.model,
                    "series": s.series,
                    "mase": round(s.mase, 3),
                    "vs_flat_rate": vs,
                }
            )
    return rows
