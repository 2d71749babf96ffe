"""``stocksync run``: the long-running daemon (scheduler, signals, hot reload, /healthz)."""

from __future__ import annotations

import typer

from sync.cli.app import ConfigOpt, app, guarded


@app.command("run")
def run(config: ConfigOpt = None) -> None:
    """Run the daemon: every enabled pipeline on its schedule until SIGTERM/SIGINT.

    The config file is watched (and SIGHUP reloads it): a valid edit is applied
    without a restart, an invalid one is logged and ignored. Serves /healthz and
    /metrics on metrics.host:metrics.port. Exit 0 after a clean stop, 2 when it
    cannot start (invalid config, another daemon on the same SQLite file).
    """
    from sync.service.daemon import run as run_daemon

    code = guarded(lambda: run_daemon(config))
    raise typer.Exit(code)
