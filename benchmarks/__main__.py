"""``python -m benchmarks``: every scenario with its same-run baseline, a table and a JSON file.

Exit status: 0 when every scenario ran and its correctness checks passed
(timing targets never fail the run: they are reported), 1 otherwise, 2 on
bad arguments. ``--quick`` uses small sizes for a CI smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import (
    fleet,
    forecast,
    ingest,
    push,
    reconcile,
    reservations,
    salesforce,
    servers,
    sql,
)
from benchmarks.common import Result
from sync.service.logging import configure

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True, slots=True)
class Sizes:
    ledger: int
    ingest: int
    push_levels: int
    push_changed: int
    reconcile_small: int
    reconcile_large: int
    memory: int
    reserved_keys: int
    reserved_locked: int
    reserved_changed: int
    #: fleet: pipelines, their interval and the measured window (seconds)
    fleet_pipelines: int
    fleet_interval_s: int
    fleet_window_s: int
    #: sql: lines in the PostgreSQL ERP table
    sql_lines: int
    #: forecast: backtested series per family, days of history, series of the speed run
    forecast_per_family: int
    forecast_days: int
    forecast_series: int


FULL = Sizes(
    100_000,
    200_000,
    10_000,
    1_000,
    100_000,
    1_000_000,
    1_000_000,
    100_000,
    5_000,
    1_000,
    200,
    10,
    30,
    200_000,
    300,
    730,
    10_000,
)
QUICK = Sizes(
    20_000, 20_000, 1_000, 300, 5_000, 50_000, 50_000, 5_000, 250, 60, 15, 3, 4, 5_000, 3, 150, 30
)

Scenario = Callable[[Sizes], list[Result]]
SCENARIOS: dict[str, Scenario] = {
    "ledger": lambda z: [ingest.ledger(z.ledger)],
    "ingest": lambda z: ingest.ingest(z.ingest),
    "push": lambda z: [push.push(z.push_levels, z.push_changed)],
    "salesforce": lambda z: [salesforce.push(z.push_levels, z.push_changed)],
    "reconcile": lambda z: [reconcile.reconcile(z.reconcile_small, z.reconcile_large)],
    "memory": lambda z: [ingest.memory(z.memory)],
    "servers": lambda z: servers.servers(z.ingest),
    "reservations": lambda z: [
        reservations.reservations(z.reserved_keys, z.reserved_locked, z.reserved_changed)
    ],
    "fleet": lambda z: fleet.fleet(z.fleet_pipelines, z.fleet_interval_s, z.fleet_window_s),
    "sql": lambda z: sql.sql(z.sql_lines),
    "forecast": lambda z: forecast.forecast(
        z.forecast_per_family, z.forecast_days, z.forecast_series
    ),
}
#: names that select another scenario (the re-pull runs on the ingest's data)
ALIASES = {"repull": "ingest", "postgresql": "servers", "mariadb": "servers"}


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_average": [round(x, 2) for x in load],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="stocksync benchmarks with same-run baselines"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke test)")
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME]",
        help=f"run only these scenarios: {', '.join([*SCENARIOS, *ALIASES])}",
    )
    parser.add_argument("--json", metavar="PATH", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    names = list(SCENARIOS)
    if args.only:
        wanted = [ALIASES.get(n.strip(), n.strip()) for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
        names = [n for n in SCENARIOS if n in wanted]
    args.names = names
    return args


def run_scenario(name: str, sizes: Sizes, console: Console) -> list[Result]:
    started = time.perf_counter()
    console.print(f"[bold]▶ {name}[/bold] …")
    try:
        results = SCENARIOS[name](sizes)
    except Exception as exc:
        failed = Result(name, name, error=f"{type(exc).__name__}: {exc}")
        console.print(traceback.format_exc(), markup=False, highlight=False)
        results = [failed]
    elapsed = time.perf_counter() - started
    for r in results:
        r.seconds = elapsed
    return results


def status(result: Result) -> str:
    if result.error:
        return "[red]CRASHED[/red]"
    if result.skipped:
        return "[yellow]skipped[/yellow]"
    if not result.correct:
        return "[red]CHECK FAILED[/red]"
    return "[green]ok[/green]"


def table(results: list[Result], header: dict[str, Any]) -> Table:
    load = ", ".join(str(x) for x in header["load_average"])
    out = Table(
        title=(
            f"stocksync benchmarks — {header['date']} — {header['cores']} cores, "
            f"Python {header['python']}, load average {load}"
            + (" — QUICK sizes" if header["quick"] else "")
        ),
        show_lines=True,
    )
    for col in ("scenario", "measure", "stocksync", "baseline (same run)", "ratio", "target"):
        out.add_column(col)
    out.add_column("met")
    for r in results:
        label = f"{r.name}\n{status(r)}"
        if r.error or r.skipped:
            out.add_row(label, r.error or r.skipped or "", "", "", "", "", "")
            continue
        for i, row in enumerate(r.rows):
            met = {True: "[green]yes[/green]", False: "[red]NO[/red]", None: "–"}[row.met]
            out.add_row(
                label if i == 0 else "",
                row.measure,
                row.value,
                row.baseline,
                row.ratio,
                row.target,
                met,
            )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure("warning")
    console = Console(width=None if sys.stdout.isatty() else 200)
    sizes = QUICK if args.quick else FULL
    header = {**machine(), "quick": args.quick}
    load = ", ".join(str(x) for x in header["load_average"])
    console.print(
        f"stocksync benchmarks {header['date']}: {header['cores']} cores, Python "
        f"{header['python']} on {header['platform']}, load average {load}"
        + (" (quick sizes)" if args.quick else "")
    )
    started = time.perf_counter()
    results: list[Result] = []
    for name in args.names:
        results += run_scenario(name, sizes, console)
    header["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    header["total_s"] = round(time.perf_counter() - started, 1)
    console.print(table(results, header))
    for r in results:
        console.print(f"{r.name}: {r.title} ({r.seconds:.1f} s)")
    for r in results:
        for what, ok in r.checks.items():
            if not ok:
                console.print(f"[red]check failed[/red] {r.name}: {what}")
        if r.skipped:
            console.print(f"[yellow]skipped[/yellow] {r.name}: {r.skipped}")
    console.print(
        f"total {header['total_s']} s; load average at the end "
        f"{', '.join(str(x) for x in header['load_average_end'])}"
    )
    payload: dict[str, Any] = {"machine": header, "sizes": _sizes(sizes)}
    payload["scenarios"] = [r.as_json() for r in results]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.print(f"results written to {args.json}")
    return 0 if all(r.correct for r in results) else 1


def _sizes(sizes: Sizes) -> dict[str, int]:
    return {f: getattr(sizes, f) for f in Sizes.__dataclass_fields__}


if __name__ == "__main__":
    sys.exit(main())
