"""``stocksync db upgrade|verify`` and ``status``: commands on the state database alone."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sync.cli.app import (
    ConfigOpt,
    FormatOpt,
    app,
    check_format,
    db_app,
    emit,
    guarded,
    open_state,
    out,
)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Create the state database or upgrade it to the newest schema."""

    def body() -> None:
        store = open_state(config, create=True)
        out.print(f"state database at revision {store.revision()}", markup=False)

    guarded(body)


#: the columns of `db verify` (the CSV header when every level equals its recomputation)
VERIFY_COLUMNS = ("pipeline", "sku", "warehouse", "maintained", "recomputed")


@db_app.command("verify")
def db_verify(
    config: ConfigOpt = None,
    pipeline: Annotated[str | None, typer.Option(help="only this pipeline")] = None,
    format: FormatOpt = "table",
) -> None:
    """Recompute every level from movements + baselines; exit 1 on any difference."""
    from sync.ledger import verify

    def body() -> None:
        check_format(format)
        store = open_state(config)
        names = [pipeline] if pipeline else store.pipelines()
        rows = []
        for name in names:
            for key, (kept, recomputed) in sorted(verify(store, name).items()):
                rows.append(
                    {
                        "pipeline": name,
                        "sku": key.sku,
                        "warehouse": key.warehouse,
                        "maintained": str(kept),
                        "recomputed": str(recomputed),
                    }
                )
        if rows or format != "table":
            emit(rows, format, "level differences", columns=list(VERIFY_COLUMNS))
        else:
            out.print(
                f"ledger verified: {len(names)} pipeline(s), levels equal their recomputation",
                markup=False,
            )
        if rows:
            raise typer.Exit(1)

    guarded(body)


@app.command("status")
def status(
    config: ConfigOpt = None,
    format: Annotated[
        str, typer.Option("--format", help="table, json, or csv (the dead and blocked rows)")
    ] = "table",
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="list at most this many dead/blocked rows")
    ] = 100,
) -> None:
    """Cursors, outbox depth by state, freshness, the dead and blocked rows (id, key,
    attempts, last error), open conflicts and the last runs."""
    from sync.cli.status import STUCK_COLUMNS, collect

    def body() -> None:
        check_format(format)
        store = open_state(config)
        data = collect(store, limit=limit)
        if format == "json":
            out.print_json(json.dumps(data, default=str, ensure_ascii=False))
            return
        if format == "csv":
            emit(data["stuck"], "csv", columns=list(STUCK_COLUMNS))
            return
        from sync.cli.status import render

        render(data, out)

    guarded(body)
