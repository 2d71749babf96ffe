"""The operators' tools: ``explain`` one key, ``resync`` chosen keys (registered on the main app).

Exit codes: 0 done, 1 (resync) dead or blocked rows remain, 2 error — an unknown
key or pipeline, no selector, nothing matched.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from sync import config as cfg
from sync.cli.app import (
    ConfigOpt,
    app,
    fail,
    guarded,
    open_state_url,
    out,
    selected_pipelines,
)
from sync.cli.tables import print_table
from sync.model import StockKey
from sync.service.locks import exclusive
from sync.state.store import StateStore

PipelineOpt = Annotated[str | None, typer.Option("--pipeline", help="only this pipeline")]


def _parse_key(text: str) -> StockKey:
    sku, at, warehouse = text.rpartition("@")
    if not at or not sku or not warehouse:
        fail(f"{text!r} is not a stock key", "write it as SKU@WAREHOUSE, e.g. A100@WH-MAIN")
    return StockKey(sku, warehouse)


# ------------------------------------------------------------------------ explain
@app.command("explain")
def explain_cmd(
    key: Annotated[str, typer.Argument(metavar="SKU@WAREHOUSE", help="the stock key")],
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10000, help="newest movements and pushes listed")
    ] = 50,
) -> None:
    """Why the CRM shows what it shows for one key: on hand (opening + movements),
    reserved, available, the CRM record and what was last pushed, every movement with
    its edits, the pushes that carried it, open conflicts. Reads the state only.

    Exit 0 found, 2 unknown key or pipeline.
    """
    from sync.explain import as_json, close_keys, explain

    def body() -> None:
        if format not in ("table", "json"):
            fail(f"unknown format {format!r}", "use table or json")
        stock_key = _parse_key(key)
        settings = cfg.load(config, with_connectors=False)  # the state alone: no secret needed
        store = open_state_url(settings.state.url)  # a mistyped URL is refused, not created
        found = []
        pipelines = selected_pipelines(settings, pipeline)
        for p in pipelines:
            e = explain(store, p.name, stock_key, static=p.push.reservations, limit=limit)
            if e is not None:
                found.append(e)
        if not found:
            close = sorted({c for p in pipelines for c in close_keys(store, p.name, stock_key)})
            where = ", ".join(p.name for p in pipelines) or "no enabled pipeline"
            fail(
                f"{stock_key} is unknown in {where}: no level, movement or CRM binding",
                f"did you mean {', '.join(close)}?" if close else "check the SKU and warehouse",
            )
        if len(found) > 1:
            fail(
                f"{stock_key} is in several pipelines: {', '.join(e.pipeline for e in found)}",
                "choose one with --pipeline",
            )
        data = as_json(found[0])
        if format == "json":
            out.print_json(json.dumps(data, ensure_ascii=False))
        else:
            _render(data)

    guarded(body)


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        out.print(f"{title}: none", markup=False)
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
    print_table(out, table)


def _render(data: dict[str, Any]) -> None:
    """The explanation for a person: the level's figures, then movements, pushes, conflicts."""
    level = data["level"]
    out.print(f"{data['key']} in pipeline {data['pipeline']}", markup=False)
    for name, value in level.items():
        if name == "outbox" and value is not None:
            value = f"{value['state']} (attempts {value['attempts']})"
        out.print(f"  {name}: {'' if value is None else value}", markup=False)
    movements = [
        {**m, "edits": len(m["edits"]), "active": str(m["active"]).lower()}
        for m in data["movements"]
    ]
    columns = ["stream", "bill_no", "line", "kind", "qty", "counts", "active"]
    _table(
        "movements", movements, [*columns, "business_date", "erp_modified_at", "version", "edits"]
    )
    _table("pushes", data["pushes"], ["at", "outcome", "on_hand", "available", "crm_id", "error"])
    _table("open conflicts", data["conflicts"], ["id", "kind", "ref", "erp", "ledger", "crm"])


# ------------------------------------------------------------------------ resync
@app.command("resync")
def resync_cmd(
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    sku: Annotated[list[str] | None, typer.Option("--sku", help="this SKU (repeatable)")] = None,
    warehouse: Annotated[
        list[str] | None, typer.Option("--warehouse", help="this warehouse (repeatable)")
    ] = None,
    key: Annotated[
        list[str] | None, typer.Option("--key", help="this SKU@WAREHOUSE (repeatable)")
    ] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="every level of the pipeline")] = False,
) -> None:
    """Write chosen keys to the CRM again, even when unchanged since the last push (a record
    edited in the CRM by hand), then push like `once` (never beside a running daemon).

    Filters combine: --sku A --warehouse W1 is A in W1. Exit 0 pushed, 1 dead or blocked
    rows remain, 2 no selector (pass --all for every key), nothing matched, or an error.
    """
    from sync.resync import Selection

    def body() -> int:
        keys = tuple(_parse_key(k) for k in key or ())
        selection = Selection(tuple(sku or ()), tuple(warehouse or ()), keys)
        if selection.empty and not all_keys:
            fail(
                "name what to resync: --sku, --warehouse or --key",
                "or pass --all to write every key of the pipeline again",
            )
        return _resync(config, pipeline, selection)

    raise typer.Exit(guarded(body))


def _resync(config: Any, pipeline: str | None, selection: Any) -> int:
    from sync.cli.ops import _report_stuck
    from sync.resync import queue_resync, select_keys
    from sync.runtime import build_pipeline, open_store

    settings = cfg.load(config)
    store: StateStore = open_store(settings)
    pipelines = selected_pipelines(settings, pipeline)
    chosen = {p.name: select_keys(store, p.name, selection) for p in pipelines}
    matched = {k for keys in chosen.values() for k in keys}
    unknown = [str(k) for k in selection.keys if k not in matched]
    if unknown or not matched:
        where = ", ".join(p.name for p in pipelines) or "no enabled pipeline"
        what = f"no level {', '.join(unknown)}" if unknown else "no level matches"
        fail(f"{what} in {where}: nothing queued", "`stocksync explain SKU@WAREHOUSE` shows a key")
    for p in pipelines:
        if not chosen[p.name]:
            continue
        runtime = build_pipeline(p, store)
        try:
            # the lock `once` and the daemon take; the daemon never forces a write itself
            with exclusive(
                store.engine,
                p.name,
                "cycle",
                daemon_hint="stop the daemon (SIGTERM), run resync, then start it again",
            ):
                queued = queue_resync(store, p.name, chosen[p.name], runtime.now())
                report = runtime.pusher().run()
        finally:
            runtime.close()
        out.print(
            f"{p.name}: queued {queued} key(s); pushed {report.pushed}, unchanged "
            f"{report.skipped}, retrying {report.retried}, dead {report.dead}, "
            f"blocked {report.blocked}",
            markup=False,
        )
    return 1 if _report_stuck(store, [p.name for p in pipelines if chosen[p.name]]) else 0
