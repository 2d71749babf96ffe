"""Operational commands: once, retry, backfill, healthcheck, emulator (on the main app)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer

from sync import config as cfg
from sync.cli.app import ConfigOpt, app, err, fail, guarded, open_state, out, selected_pipelines
from sync.cli.progress import Progress
from sync.service.locks import exclusive
from sync.state.store import BLOCKED, DEAD, StateStore


@app.command("once")
def once(
    config: ConfigOpt = None,
    pipeline: Annotated[str | None, typer.Option(help="only this pipeline")] = None,
) -> None:
    """One pull → push cycle for every enabled pipeline, then exit.

    Exit 0 when everything was pushed, 1 while any dead or blocked row exists in these
    pipelines (left by this cycle or an earlier one; `stocksync status` lists them),
    2 on failure.
    """
    from sync.runtime import build_pipeline, open_store, run_cycle

    def body() -> int:
        settings = cfg.load(config)
        store = open_store(settings)
        selected = selected_pipelines(settings, pipeline)
        for p in selected:
            runtime = build_pipeline(p, store)
            try:
                with (
                    exclusive(store.engine, p.name, "cycle"),
                    Progress(f"{p.name}: pull → push") as progress,
                ):
                    result = run_cycle(runtime, on_page=progress.page, on_row=progress.row)
            finally:
                runtime.close()
            out.print(
                f"{p.name}: pulled {result.pulled}, changed {result.applied}, "
                f"reserved changed {result.reserved}, pushed {result.push.pushed}, "
                f"unchanged {result.push.skipped}, "
                f"retrying {result.push.retried}, dead {result.push.dead}, "
                f"blocked {result.push.blocked}",
                markup=False,
            )
        return 1 if _report_stuck(store, [p.name for p in selected]) else 0

    code = guarded(body)
    raise typer.Exit(code)


def _report_stuck(store: StateStore, pipelines: list[str]) -> int:
    """Print the dead and blocked rows left in ``pipelines``; return how many there are."""
    counts = store.outbox_counts()
    total = 0
    for name in pipelines:
        dead, blocked = counts.get((name, DEAD), 0), counts.get((name, BLOCKED), 0)
        if dead or blocked:
            out.print(
                f"{name}: {dead} dead and {blocked} blocked row(s) need you: "
                "see `stocksync status`",
                markup=False,
            )
        total += dead + blocked
    return total


@app.command("retry")
def retry(
    ids: Annotated[list[int] | None, typer.Argument(help="outbox row ids to requeue")] = None,
    all_rows: Annotated[bool, typer.Option("--all", help="requeue every dead row")] = False,
    config: ConfigOpt = None,
) -> None:
    """Requeue dead outbox rows so the next cycle pushes them again."""

    def body() -> None:
        if not ids and not all_rows:
            fail(
                "name outbox row ids or pass --all",
                "`stocksync status` lists the dead rows with their ids and last errors",
            )
        store = open_state(config)
        if ids and not all_rows:
            missing = sorted(set(ids) - store.dead_ids(ids))
            if missing:  # nothing is requeued: the operator meant other rows
                fail(
                    f"no dead outbox row with id {', '.join(map(str, missing))}",
                    "`stocksync status` lists the dead rows with their ids and last errors",
                )
        count = store.requeue_dead(None if all_rows else ids, datetime.now(UTC))
        out.print(f"requeued {count} dead row(s)", markup=False)

    guarded(body)


@app.command("backfill")
def backfill(
    pipeline: Annotated[str, typer.Option(help="pipeline to re-pull")],
    since: Annotated[str, typer.Option(help="start date, YYYY-MM-DD")],
    stream: Annotated[str | None, typer.Option(help="only this stream")] = None,
    config: ConfigOpt = None,
) -> None:
    """Re-pull a window of ERP history from midnight of --since in the ERP's time zone.
    Idempotent: unchanged lines write nothing."""
    from sync.model import Cursor
    from sync.ports import source_zone
    from sync.pull import day_start, pull_stream
    from sync.runtime import build_pipeline, ledger_options, open_store, pull_options

    def body() -> None:
        try:
            day = date.fromisoformat(since)
        except ValueError:
            fail(f"--since {since!r} is not a date", "use YYYY-MM-DD")
        settings = cfg.load(config)
        p = settings.pipeline(pipeline)
        store = open_store(settings)
        runtime = build_pipeline(p, store)
        try:
            start = day_start(day, source_zone(runtime.source))
            streams = [stream] if stream else list(runtime.source.streams())
            unknown = set(streams) - set(runtime.source.streams())
            if unknown:
                fail(
                    f"unknown stream(s) {', '.join(sorted(unknown))}",
                    f"known: {', '.join(runtime.source.streams())}",
                )
            with Progress(f"{p.name}: backfill since {since}") as progress:
                for name in streams:
                    report = pull_stream(
                        store,
                        runtime.source,
                        p.name,
                        name,
                        now=runtime.now,
                        options=pull_options(p),
                        ledger=ledger_options(p),
                        since=Cursor(start, ""),
                        on_page=progress.page,
                    )
                    out.print(
                        f"{name}: {report.received} read, {report.changed} changed", markup=False
                    )
        finally:
            runtime.close()

    guarded(body)


@app.command("healthcheck")
def healthcheck(
    config: ConfigOpt = None,
    timeout_s: Annotated[float, typer.Option("--timeout", help="seconds to wait")] = 4.0,
) -> None:
    """GET /healthz of the daemon run with this config, on its metrics host and port.

    Exit 0 when it answers 200, 1 when it answers anything else or nothing, 2 when the
    config cannot be read or serves no /healthz (metrics: null or port 0). Made for a
    container's HEALTHCHECK, which then follows the configured port.
    """
    from sync.service.healthcheck import healthz_url, probe

    def body() -> bool:
        # the metrics settings alone: the root-only secrets file need not be readable
        settings = cfg.load(config, with_connectors=False)
        healthy, line = probe(healthz_url(settings.metrics), timeout_s=timeout_s)
        out.print(f"{'healthy' if healthy else 'unhealthy'}: {line}", markup=False)
        return healthy

    raise typer.Exit(0 if guarded(body) else 1)


@app.command("emulator")
def emulator(
    name: Annotated[str, typer.Argument(help="k3cloud, fxiaoke or salesforce")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: a free one)")] = 0,
    scenario: Annotated[str | None, typer.Option(help="seed data, e.g. demo")] = None,
) -> None:
    """Serve a built-in emulator on loopback; print one JSON line with how to connect."""
    import connectors

    def body() -> None:
        spec = connectors.get(name, path="emulator")
        if spec.emulator is None:
            with_emulator = [n for n, s in connectors.available().items() if s.emulator]
            fail(f"{name} has no emulator", f"emulators: {', '.join(with_emulator)}")
        serve = connectors._load(spec.emulator.rsplit(":", 1)[0] + ":serve")
        err.print(f"serving the {name} emulator; stop with Ctrl-C or SIGTERM", markup=False)
        serve(host, port, scenario)

    guarded(body)


@app.command("demo")
def demo(
    duration: Annotated[float, typer.Option(help="seconds the story takes")] = 30.0,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="keep syncing after the story ends (Ctrl-C)")
    ] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="keep the state DB and a config here (default: a temporary folder)"),
    ] = None,
    crm: Annotated[
        str, typer.Option(help="the CRM emulator: fxiaoke or salesforce (ProductItem)")
    ] = "fxiaoke",
) -> None:
    """Run the built-in K/3 Cloud and a CRM emulator and the real engine between them.

    No config and no credentials: a product gets received, sold and returned, an order of
    phones and tablets ships, stock moves between warehouses; the table shows ERP and CRM
    stock converge. Exit 0 when both sides end equal.
    """
    from connectors.demo import run_demo

    def body() -> bool:
        if crm not in ("fxiaoke", "salesforce"):
            fail(f"unknown --crm {crm!r}", "use fxiaoke or salesforce")
        return run_demo(
            duration_s=duration,
            keep_running=keep_running,
            console=out,
            state_dir=state_dir,
            crm=crm,
        )

    raise typer.Exit(0 if guarded(body) else 1)
