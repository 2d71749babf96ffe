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
from sync.cli.tables import print_table
from sync.errors import ConfigError, StockSyncError
from sync.settings import mask

T = TypeVar("T")

app = typer.Typer(
    name="stocksync",
    help="Keep CRM stock equal to ERP stock: a movement ledger, an idempotent outbox and a "
    "three-way reconcile.\n\nConfig: stocksync COMMAND -c PATH (the option follows the command), "
    "else $STOCKSYNC_CONFIG, else ./stocksync.yaml. "
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

#: the exit status of a command whose reader closed the pipe (128 + SIGPIPE, as a shell shows)
EXIT_CLOSED_PIPE = 141


def closed_pipe() -> NoReturn:
    """``stocksync status | head``: the reader left; stop quietly (no error, no traceback).

    stdout is pointed at /dev/null first, so the interpreter's final flush cannot fail again.
    """
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(EXIT_CLOSED_PIPE)


class _Console(Console):
    """rich's console, ending on a closed pipe the way every other write does."""

    def on_broken_pipe(self) -> None:
        closed_pipe()


out = _Console(highlight=False, soft_wrap=True)
err = _Console(stderr=True, highlight=False, soft_wrap=True)
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
    except BrokenPipeError:
        closed_pipe()
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
    from sync.service.logging import configure

    configure("debug" if debug else "info")


FORMATS = ("table", "json", "csv")


def check_format(fmt: str) -> None:
    """Refuse an unknown ``--format`` before any work (exit 2), never fall back to a table."""
    if fmt not in FORMATS:
        fail(f"unknown format {fmt!r}", f"use {', '.join(FORMATS)}")


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


def selected_pipelines(settings: cfg.SettingsBase, name: str | None) -> list[cfg.PipelineBase]:
    """``--pipeline NAME`` (a ``ConfigError``, exit 2, names the known ones), else every
    enabled pipeline."""
    if name:
        return [settings.pipeline(name)]
    return [p for p in settings.pipelines if p.enabled]
