"""``stocksync check-config`` and ``config-schema``: the config file, checked and described."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sync import config as cfg
from sync.cli.app import ConfigOpt, app, guarded, out
from sync.errors import StockSyncError
from sync.settings import mask, mask_url


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
