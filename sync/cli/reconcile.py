"""Reconcile, conflicts, alerts and report commands (registered on the main app).

Exit codes: 0 in sync / ok, 1 differences found (after ``--apply``: differences
that remain), 2 error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sync import config as cfg
from sync.cli.app import (
    ConfigOpt,
    FormatOpt,
    app,
    check_format,
    emit,
    fail,
    guarded,
    open_state,
    open_state_url,
    out,
    selected_pipelines,
)
from sync.service.locks import exclusive
from sync.state.store import display_ref

if TYPE_CHECKING:
    from sync.reconcile import Finding

conflicts_app = typer.Typer(help="The conflicts log: list, show, resolve.", no_args_is_help=True)
alerts_app = typer.Typer(help="Safety-stock alerts.", no_args_is_help=True)
app.add_typer(conflicts_app, name="conflicts")
app.add_typer(alerts_app, name="alerts")

PipelineOpt = Annotated[str | None, typer.Option("--pipeline", help="only this pipeline")]
KINDS = (
    "erp_ledger_drift",
    "reserved_drift",
    "crm_modified",
    "crm_reserved_modified",
    "crm_available_modified",
    "missing_in_crm",
    "orphan_in_crm",
    "duplicate_in_crm",
    "in_flux",
)


def _q(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _duplicates(f: Finding, fmt: str) -> list[dict[str, str]] | str | None:
    """A duplicate_in_crm's other records: a list in JSON, ``id=qty; …`` in CSV and tables."""
    if not f.extras:
        return [] if fmt == "json" else None
    if fmt == "json":
        return f.duplicates_json()
    return "; ".join(f"{d['crm_id']}={d['crm']}" for d in f.duplicates_json())


# ------------------------------------------------------------------------ reconcile
@app.command("reconcile")
def reconcile_cmd(
    config: ConfigOpt = None,
    pipeline: PipelineOpt = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="correct the differences (default: only report)")
    ] = False,
    format: FormatOpt = "table",
    only: Annotated[
        str | None, typer.Option("--only", help=f"one kind: {', '.join(KINDS)}")
    ] = None,
) -> None:
    """Three-way reconcile: ERP on-hand and reserved vs ledger vs CRM.

    Without --apply it prints the plan: no adjustment, no CRM write (it does pull
    the ERP into the ledger first). Exit 0 in sync, 1 differences found (with
    --apply: differences that remain), 2 error.
    """
    from sync.reconcile_run import reconcile
    from sync.runtime import build_pipeline, open_store

    def body() -> int:
        check_format(format)
        if only is not None and only not in KINDS:
            fail(f"unknown kind {only!r}", f"use one of {', '.join(KINDS)}")
        settings = cfg.load(config)
        store = open_store(settings)
        rows: list[dict[str, Any]] = []
        remaining = 0
        for p in selected_pipelines(settings, pipeline):
            runtime = build_pipeline(p, store)
            try:
                if apply:  # it pushes: never beside a daemon's reconcile or another replica
                    with exclusive(store.engine, p.name, "reconcile"):
                        result = reconcile(runtime, apply_changes=True)
                else:
                    result = reconcile(runtime)
            finally:
                runtime.close()
            done = {(f.kind, f.key) for f in result.done}
            # with --only, the rows, the summary and the exit status speak of that kind
            asked = [f for f in result.conflicts if only is None or f.kind.value == only]
            left = (
                result.remaining
                if only is None
                else sum(1 for f in asked if (f.kind, f.key) not in done)
            )
            remaining += left
            for f in result.findings:
                if only is not None and f.kind.value != only:
                    continue
                row: dict[str, Any] = {
                    "pipeline": p.name,
                    "kind": f.kind.value,
                    "sku": f.key.sku,
                    "warehouse": f.key.warehouse,
                    "erp": _q(f.erp),
                    "ledger": _q(f.ledger),
                    "crm": _q(f.crm),
                    "pushed": _q(f.pushed),
                    "crm_id": f.crm_id,
                    "duplicates": _duplicates(f, format),
                    "action": f.action.value,
                }
                if apply:
                    row["applied"] = (f.kind, f.key) in done
                rows.append(row)
            if format == "table":
                verb = "applied" if apply else "dry run"
                kind = f" {only}" if only is not None else ""
                out.print(
                    f"{p.name} ({verb}): {result.keys} keys, {len(asked)}{kind} "
                    f"difference(s), {len(result.findings) - len(result.conflicts)} in flux, "
                    f"{left} remaining",
                    markup=False,
                )
        emit(rows, format, "differences", columns=_columns(apply))
        return 1 if remaining else 0

    raise typer.Exit(guarded(body))


def _columns(apply: bool) -> list[str]:
    """The reconcile output's columns (the CSV header even when nothing differs)."""
    columns = ["pipeline", "kind", "sku", "warehouse", "erp", "ledger", "crm", "pushed"]
    columns += ["crm_id", "duplicates", "action"]
    return [*columns, "applied"] if apply else columns


# ------------------------------------------------------------------------ conflicts
#: the columns of ``conflicts list`` (the CSV header when there is no conflict)
CONFLICT_COLUMNS = (
    "id",
    "kind",
    "pipeline",
    "ref",
    "erp",
    "ledger",
    "crm",
    "pushed",
    "detected_at",
    "last_seen_at",
    "occurrences",
    "resolution",
)


def _conflict_row(c: Any) -> dict[str, Any]:
    return {
        "id": c.id,
        "kind": c.kind,
        "pipeline": c.pipeline,
        "ref": display_ref(c.ref),
        "erp": _q(c.erp_qty),
        "ledger": _q(c.ledger_qty),
        "crm": _q(c.crm_qty),
        "pushed": _q(c.pushed_qty),
        "detected_at": c.detected_at.isoformat(timespec="seconds"),
        "last_seen_at": c.last_seen_at.isoformat(timespec="seconds"),
        "occurrences": c.occurrences,
        "resolution": c.resolution,
    }


@conflicts_app.command("list")
def conflicts_list(
    config: ConfigOpt = None,
    open_only: Annotated[bool, typer.Option("--open", help="only unresolved conflicts")] = False,
    kind: Annotated[str | None, typer.Option("--kind", help="only this kind")] = None,
    pipeline: PipelineOpt = None,
    format: FormatOpt = "table",
    limit: Annotated[int, typer.Option(help="at most this many, newest first")] = 1000,
) -> None:
    """List conflicts, newest first."""

    def body() -> None:
        check_format(format)  # before the database: a typo is the first thing to fix
        store = open_state(config)
        found = store.conflicts(pipeline=pipeline, kind=kind, open_only=open_only, limit=limit)
        emit([_conflict_row(c) for c in found], format, "conflicts", list(CONFLICT_COLUMNS))

    guarded(body)


@conflicts_app.command("show")
def conflicts_show(
    conflict_id: Annotated[int, typer.Argument(metavar="ID", help="conflict id")],
    config: ConfigOpt = None,
    format: FormatOpt = "table",
) -> None:
    """Every value of one conflict, with its detail payload (JSON)."""

    def body() -> None:
        store = open_state(config)
        c = store.conflict(conflict_id)
        if c is None:
            fail(f"no conflict with id {conflict_id}", "see `stocksync conflicts list`")
        row = {
            **_conflict_row(c),
            "resolved_at": c.resolved_at.isoformat(timespec="seconds") if c.resolved_at else None,
            "note": c.note,
            "detail": c.detail,
        }
        if format == "json":
            out.print_json(json.dumps(row, default=str, ensure_ascii=False))
            return
        if format == "csv":
            emit([{**row, "detail": json.dumps(c.detail, default=str)}], "csv")
            return
        for name, value in row.items():
            if name == "detail":
                value = json.dumps(value, default=str, ensure_ascii=False, indent=2)
            out.print(f"{name}: {'' if value is None else value}", markup=False)

    guarded(body)


@conflicts_app.command("resolve")
def conflicts_resolve(
    conflict_id: Annotated[int, typer.Argument(metavar="ID", help="conflict id")],
    note: Annotated[str, typer.Option("--note", help="why it is settled")],
    config: ConfigOpt = None,
) -> None:
    """Mark an open conflict resolved by hand, with a note."""

    def body() -> None:
        store = open_state(config)
        if not store.resolve_conflict(conflict_id, note, datetime.now(UTC)):
            fail(f"no open conflict with id {conflict_id}", "see `stocksync conflicts list --open`")
        out.print(f"conflict {conflict_id} resolved", markup=False)

    guarded(body)


# ------------------------------------------------------------------------ alerts
@alerts_app.command("list")
def alerts_list(
    config: ConfigOpt = None, pipeline: PipelineOpt = None, format: FormatOpt = "table"
) -> None:
    """Stock keys currently below their safety stock (as of the last alert check)."""
    from sync.alerts import LOW_KEY_COLUMNS, low_keys

    def body() -> None:
        check_format(format)
        store = open_state(config)
        names = [pipeline] if pipeline else store.pipelines()
        rows = [row for name in names for row in low_keys(name, store.alert_states(name))]
        emit(rows, format, "low stock", list(LOW_KEY_COLUMNS))

    guarded(body)


# ------------------------------------------------------------------------ report
@app.command("report")
def report_cmd(
    config: ConfigOpt = None,
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="demand window (default: cover_days)")
    ] = None,
    basis: Annotated[
        cfg.Basis | None,
        typer.Option(
            "--basis",
            help="stock that days of cover and reorder qty count: on_hand, or available = "
            "on hand − reserved (default: alerts.basis)",
        ),
    ] = None,
    pipeline: PipelineOpt = None,
    format: FormatOpt = "table",
) -> None:
    """Stock cover per SKU × warehouse: on hand, reserved, available, customer demand
    (shipments − customer returns) and its daily rate, days of cover, reorder qty (on the basis
    figure), and the other outflows (transfers out, supplier returns, count losses, other out)."""
    from sync.report import COVER_COLUMNS, stock_cover

    def body() -> None:
        check_format(format)
        settings = cfg.load(config, with_connectors=False)  # no connector secret needed
        store = open_state_url(settings.state.url)
        now = datetime.now(UTC)
        rows = []
        for p in selected_pipelines(settings, pipeline):
            window = days or p.alerts.cover_days
            static = p.push.reservations
            for r in stock_cover(
                store,
                p.name,
                p.alerts,
                days=window,
                now=now,
                static=static,
                basis=basis,
                transfers_as_demand=p.forecast.transfers_as_demand,
            ):
                rows.append({**r.as_dict(p.name), "days": window})
        emit(rows, format, "stock cover", [*COVER_COLUMNS, "days"])

    guarded(body)
