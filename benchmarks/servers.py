"""The ingest on the server state backends: the same pull into PostgreSQL and MariaDB.

Measured against a SQLite pull of the same lines in the same run (SQLite's
path is the reference speed). Issue 17 (fault 3) sets the targets: a first
pull into PostgreSQL state at ≥ 0.6 of SQLite's speed, into MariaDB at ≥ 0.5,
every page still one transaction. The scenario first existed because a
planner choice made a first pull into a fresh PostgreSQL database 45 times
slower than into SQLite, and nothing measured it. Each server gets a fresh
namespace (a schema, a database) that is dropped afterwards; a server whose URL is not set
(``STOCKSYNC_TEST_PG_URL``, ``STOCKSYNC_TEST_MYSQL_URL``, the variables the
tests read) is reported as skipped.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from benchmarks.common import Result, Row, fmt_ratio, k3cloud_emulator, rate
from benchmarks.pulls import ledger_checks, open_store, stocksync_pull, warm_up
from sync.state import StateStore
from sync.state.engine import create_state_engine

SERVERS = (
    ("postgresql", "PostgreSQL", "STOCKSYNC_TEST_PG_URL"),
    ("mariadb", "MariaDB/MySQL", "STOCKSYNC_TEST_MYSQL_URL"),
)
#: issue 17, fault 3: a server's pull speed as a share of SQLite's, same run
TARGET_RATIO = {"postgresql": 0.6, "mariadb": 0.5}
#: the issue's size; quick runs report the ratio without a target
FULL_SIZE = 200_000
#: pulls of each backend at full size, interleaved; the best of each counts
REPEATS = 3


@contextmanager
def fresh_namespace(url: str) -> Iterator[str]:
    """A URL for a new, empty schema (PostgreSQL) or database (MySQL) on ``url``'s server."""
    name = f"stocksync_bench_{uuid.uuid4().hex[:10]}"
    engine = create_state_engine(url)
    postgres = engine.dialect.name == "postgresql"
    kind = "SCHEMA" if postgres else "DATABASE"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE {kind} {name}"))
    parsed = make_url(url)
    if postgres:
        parsed = parsed.update_query_dict({"options": f"-csearch_path={name}"})
    else:
        parsed = parsed.set(database=name)
    try:
        yield parsed.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP {kind} {name}{' CASCADE' if postgres else ''}"))
        engine.dispose()


def _pull_into(info: dict[str, Any], url: str, n: int, result: Result) -> dict[str, Any]:
    store = StateStore(url)
    try:
        store.upgrade()
        pulled = stocksync_pull(info, store)
        for what, ok in ledger_checks(store, info, n).items():
            result.check(what, ok)
        return pulled
    finally:
        store.close()


def servers(n: int) -> list[Result]:
    """``n`` emulator lines pulled into each configured server, and into SQLite for the ratio.

    At full size each pull runs ``REPEATS`` times, interleaved (SQLite, then each
    server, again), and the best of each counts: a shared machine only ever adds
    time, to whichever pull happens to run while it is busy.
    """
    results = [
        Result(key, f"Ingest into {label} state: {n:,} lines from the K/3 Cloud emulator")
        for key, label, _ in SERVERS
    ]
    urls = {key: os.environ.get(env) for key, _, env in SERVERS}
    for result, (key, _, env) in zip(results, SERVERS, strict=True):
        if not urls[key]:
            result.skipped = f"{env} is not set"
    if all(r.skipped for r in results):
        return results
    full = n >= FULL_SIZE
    reps = REPEATS if full else 1
    sqlites: list[dict[str, Any]] = []
    pulls: dict[str, list[dict[str, Any]]] = {key: [] for key, _, _ in SERVERS}
    with k3cloud_emulator(n) as info, tempfile.TemporaryDirectory() as tmp:
        warm_up(info)
        for rep in range(reps):
            store = open_store(str(Path(tmp) / f"state-{rep}.db"))
            try:
                sqlites.append(stocksync_pull(info, store))
            finally:
                store.close()
            for result, (key, _, _) in zip(results, SERVERS, strict=True):
                url = urls[key]
                if url is None:
                    continue
                with fresh_namespace(url) as isolated:
                    pulls[key].append(_pull_into(info, isolated, n, result))
    sqlite = min(sqlites, key=lambda p: p["seconds"])
    for result, (key, _, _) in zip(results, SERVERS, strict=True):
        if result.skipped:
            continue
        runs = pulls[key]
        result.check("nothing rejected", all(p["rejected"] == 0 for p in runs))
        pulled = min(runs, key=lambda p: p["seconds"])
        ratio = sqlite["seconds"] / pulled["seconds"]
        result.figures = {
            "stocksync": pulled,
            "sqlite": sqlite,
            "ratio": ratio,
            "repeats": reps,
            "all_seconds": {
                key: [p["seconds"] for p in runs],
                "sqlite": [p["seconds"] for p in sqlites],
            },
        }
        target = TARGET_RATIO[key]
        result.rows.append(
            Row(
                "movements/s, first pull" + (f", best of {reps}" if reps > 1 else ""),
                f"{rate(n, pulled['seconds'])} ({pulled['seconds']:.2f} s)",
                f"{rate(n, sqlite['seconds'])} ({sqlite['seconds']:.2f} s) SQLite state",
                fmt_ratio(ratio),
                f"≥ {target} of SQLite" if full else "(quick: no target)",
                ratio >= target if full else None,
            )
        )
    return results
