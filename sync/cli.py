"""The ``stocksync`` command.

Exit codes everywhere: 0 ok, 1 findings (differences, dead rows…), 2 error.
Errors print one clear sentence plus the fix; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from sync import __version__
from sync import config as cfg
from sync.cli_tables import print_table
from sync.errors import ConfigError, StockSyncError
from sync.settings import mask, mask_url

T = TypeVar("T")

app = typer.Typer(
    name="stocksync",
    help="Keep CRM stock equal to ERP stock: a movement ledger, an idempotent outbox and a "
    "three-way reconcile.\n\nConfig: -c PATH, else $STOCKSYNC_CONFIG, else ./stocksync.yaml. "
    "Exit codes: 0 ok, 1 findings, 2 error.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(
    help="State database: create/upgrade the schema, verify the ledger.", no_args_is_help=True
)
app.add_typer(db_app, name="db")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help="config file (default $STOCKSYNC_CONFIG or ./stocksync.yaml)",
        envvar=cfg.ENV_CONFIG,
        show_envvar=False,
    ),
]
FormatOpt = Annotated[str, typer.Option("--format", help="table, json or csv")]


def fail(message: str, hint: str | None = None, code: int = 2) -> NoReturn:
    err.print(f"error: {mask(message)}", markup=False)
    if hint:
        err.print(f"hint: {mask(hint)}", markup=False)
    raise typer.Exit(code)


def _traceback() -> None:
    """With ``--debug``, print the current exception's traceback (secrets masked) to stderr."""
    if _state["debug"]:
        import traceback

        err.print(mask(traceback.format_exc()).rstrip(), markup=False)


def guarded(fn: Callable[[], T]) -> T:
    """Run a command body, turning our errors into one sentence and exit 2.

    ``--debug`` only adds the traceback: the exit code never depends on it (issue 16).
    """
    try:
        return fn()
    except typer.Exit:
        raise
    except ConfigError as exc:
        _traceback()
        err.print(mask(str(exc)), markup=False)
        raise typer.Exit(2) from None
    except StockSyncError as exc:
        _traceback()
        fail(str(exc), exc.hint)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except Exception as exc:
        _traceback()
        hint = None if _state["debug"] else "run again with --debug for the traceback"
        fail(f"{type(exc).__name__}: {exc}", hint)


def emit(
    rows: list[dict[str, Any]],
    fmt: str,
    title: str | None = None,
    columns: list[str] | None = None,
) -> None:
    """Print rows as a rich table (no cell ever cut: ``print_table``), JSON or CSV
    (``columns``: the CSV header when no rows)."""
    check_format(fmt)
    if fmt == "json":
        out.print_json(json.dumps(rows, default=str, ensure_ascii=False))
        return
    if fmt == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]) if rows else columns or [])
        writer.writeheader()
        for row in rows:
            # booleans as JSON writes them (true/false), not Python's True/False
            writer.writerow(
                {k: str(v).lower() if isinstance(v, bool) else v for k, v in row.items()}
            )
        return
    if not rows:
        out.print(f"{title or 'nothing'}: none", markup=False)
        return
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    print_table(out, table)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"stocksync {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks on errors")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    _state["debug"] = debug
    from sync.logging import configure

    configure("debug" if debug else "info")


# ------------------------------------------------------------------------ config
@app.command("check-config")
def check_config(
    path: Annotated[Path | None, typer.Argument(help="config file to check")] = None,
    config: ConfigOpt = None,
    connect: Annotated[
        bool, typer.Option("--connect", help="also log in to each ERP and CRM and run one query")
    ] = False,
) -> None:
    """Validate a config file and print a summary (every problem at once, with YAML paths)."""

    def body() -> None:
        settings = cfg.load(path or config)
        out.print(f"{cfg.resolve_path(path or config)}: valid", markup=False)
        out.print(f"state: {mask_url(settings.state.url)}", markup=False)
        for p in settings.pipelines:
            state = "enabled" if p.enabled else "disabled"
            out.print(
                f"pipeline {p.name} ({state}): {p.erp.type} → {p.crm.type}, every "
                f"{p.schedule.interval_s:g}s, reconcile '{p.schedule.reconcile_cron}'",
                markup=False,
            )
        if connect:
            _check_connections(settings)

    guarded(body)


def _check_connections(settings: cfg.SettingsBase) -> None:
    from sync.ports import ConnectorContext, MemoryTokenCache
    from sync.runtime import build_connector

    failures = 0
    for p in settings.pipelines:
        for role, section in (("erp", p.erp), ("crm", p.crm)):
            ctx = ConnectorContext(pipeline=p.name, token_cache=MemoryTokenCache())
            try:
                connector = build_connector(role, section, ctx)
                try:
                    detail = connector.check()
                finally:
                    connector.close()
                out.print(f"  {p.name}.{role} ({section.type}): ok: {detail}", markup=False)
            except StockSyncError as exc:
                failures += 1
                out.print(
                    f"  {p.name}.{role} ({section.type}): FAILED: {mask(str(exc))}", markup=False
                )
                if exc.hint:
                    out.print(f"    hint: {mask(exc.hint)}", markup=False)
    if failures:
        raise typer.Exit(1)


@app.command("config-schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file (for editor completion)."""
    guarded(lambda: out.print_json(json.dumps(cfg.json_schema())))


# ------------------------------------------------------------------------ state
def open_state(config: Path | None, *, create: bool = False) -> Any:
    """The state store from $STOCKSYNC_STATE_URL or the config (no config needed with the env).

    The config is read without its connector sections: no connector secret needs to be set.
    ``create=False`` (every command but ``db upgrade``) refuses a database that does not
    exist or has no stocksync tables (exit 2) instead of creating an empty one.
    """
    return open_state_url(cfg.state_url(config), create=create)


def open_state_url(url: str, *, create: bool = False) -> Any:
    """The state store at ``url``, upgraded to the newest schema; see ``open_state``."""
    from sync.state import StateStore

    store = StateStore(url, create=create)
    if not create:
        store.require_schema()
    store.upgrade()
    return store


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


FORMATS = ("table", "json", "csv")


def check_format(fmt: str) -> None:
    """Refuse an unknown ``--format`` before any work (exit 2), never fall back to a table."""
    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}", f"use {', '.join(FORMATS)}")


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
    from sync.status import STUCK_COLUMNS, collect

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
        from sync.status import render

        render(data, out)

    guarded(body)


def main() -> None:
    """Console-script entry point."""
    import sync.cli_explain
    import sync.cli_reconcile
    import sync.cli_run  # noqa: F401  (registers `run`, the daemon)
    from sync import commands  # noqa: F401  (registers the operational commands)

    try:
        app()
    except Exception as exc:  # raised outside a command body (guarded() handles theirs)
        _print_masked_traceback(exc)
        raise SystemExit(1) from None


def _print_masked_traceback(exc: BaseException) -> None:
    """The ``--debug`` traceback with its chained causes, every line through ``mask()``.

    A driver error (psycopg, PyMySQL) may quote the state URL or DSN with its password.
    """
    import traceback

    text = "".join(traceback.format_exception(exc))
    sys.stderr.write(mask(text))
    sys.stderr.flush()


if __name__ == "__main__":
    main()
