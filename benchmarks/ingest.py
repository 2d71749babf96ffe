"""Scenarios "ledger", "ingest" (with "repull") and "memory": moving movements into the ledger."""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.common import Result, Row, fmt_ratio, k3cloud_emulator, rate, run_child
from benchmarks.pulls import (
    FLOOR_UPSERT,
    PIPELINE,
    fingerprint,
    floor_pull,
    ledger_checks,
    open_store,
    stocksync_pull,
    warm_up,
)
from sync.ledger import apply_page, queue_pending_levels, verify
from sync.model import Cursor, Movement, MovementKind, Page, StockKey
from sync.state import StateStore

LEDGER_LIMIT_S = 10.0
INGEST_TARGET_RATIO = 0.35
INGEST_TARGET_RATE = 40_000
#: full-size ingest runs, interleaved; each side reports its best
INGEST_REPEATS = 3
MEMORY_LIMIT_MB = 250.0


def synthetic_movements(n: int) -> list[Movement]:
    """``n`` receipt lines over 5,000 SKUs × 3 warehouses with distinct stamps."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Movement(
            key=f"bench:STK_InStock:{i // 10}:{i}",
            kind=MovementKind.RECEIPT,
            sku=f"M{i % 5000:05d}",
            warehouse=f"CK00{1 + i % 3}",
            qty=Decimal(f"{1 + i % 97}.{i % 10}"),
            occurred_at=start + timedelta(seconds=i),
            source_updated_at=start + timedelta(seconds=i),
            doc_no=f"CGRK{i // 10:08d}",
            active=True,
        )
        for i in range(n)
    ]


def ledger(n: int, page: int = 1000) -> Result:
    """The core issue: ``n`` movements through ``apply_page`` in pages of ``page`` (no HTTP)."""
    result = Result("ledger", f"Ledger ingest: {n:,} movements via apply_page, pages of {page:,}")
    movements = synthetic_movements(n)
    pages = [movements[i : i + page] for i in range(0, n, page)]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "state.db"))
        now = datetime.now(UTC)
        started = time.perf_counter()
        for chunk in pages:
            last = chunk[-1]
            apply_page(
                store,
                PIPELINE,
                Page("receipts", chunk, Cursor(last.source_updated_at, last.key)),
                now=now,
            )
        queued = queue_pending_levels(store, PIPELINE, now=now)  # what a pull ends with
        seconds = time.perf_counter() - started
        expected: dict[StockKey, Decimal] = defaultdict(Decimal)
        for m in movements:
            expected[m.stock_key] += m.qty
        result.check("levels equal the sum of the movements", store.levels(PIPELINE) == expected)
        result.check(
            "one outbox row per changed level",
            queued == len(expected) == len(store.outbox_rows(PIPELINE, limit=n)),
        )
        result.check("levels equal a recomputation from scratch", not verify(store, PIPELINE))
        store.close()

        conn = sqlite3.connect(str(Path(tmp) / "floor.db"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE lines (key TEXT PRIMARY KEY, sku TEXT, warehouse TEXT, qty TEXT)"
        )
        started = time.perf_counter()
        for chunk in pages:
            with conn:
                conn.executemany(
                    FLOOR_UPSERT, [(m.key, m.sku, m.warehouse, str(m.qty)) for m in chunk]
                )
        floor_s = time.perf_counter() - started
        stored = conn.execute("SELECT count(*) FROM lines").fetchone()[0]
        conn.close()
        result.check("floor stored every line", stored == n)
    result.figures = {"movements": n, "seconds": seconds, "floor_seconds": floor_s}
    result.rows.append(
        Row(
            "apply_page time",
            f"{seconds:.2f} s ({rate(n, seconds)})",
            f"{floor_s:.2f} s ({rate(n, floor_s)}) sqlite3.executemany",
            f"{fmt_ratio(floor_s / seconds)} of floor speed",
            f"< {LEDGER_LIMIT_S:.0f} s" if n >= 100_000 else "(quick: no target)",
            seconds < LEDGER_LIMIT_S if n >= 100_000 else None,
        )
    )
    return result


def ingest(n: int) -> list[Result]:
    """Scenario 1 (first pull vs the floor) and scenario 2 (re-pull of the same lines)."""
    first = Result("ingest", f"Ingest: {n:,} lines from the K/3 Cloud emulator (own process)")
    again = Result("repull", f"Re-pull: the same {n:,} lines again, nothing changed")
    reps = INGEST_REPEATS if n >= 100_000 else 1
    with k3cloud_emulator(n) as info, tempfile.TemporaryDirectory() as tmp:
        first.figures["emulator_seed_s"] = info["seed_s"]
        warm_up(info)
        floors: list[dict[str, Any]] = []
        aheads: list[dict[str, Any]] = []
        pulls: list[dict[str, Any]] = []
        store: StateStore | None = None
        # interleaved repeats, best of each: a shared machine only ever adds time, to
        # whichever side happens to run while it is busy
        for rep in range(reps):
            floors.append(floor_pull(info, str(Path(tmp) / f"floor-{rep}.db")))
            aheads.append(floor_pull(info, str(Path(tmp) / f"ahead-{rep}.db"), read_ahead=True))
            if store is not None:
                store.close()
            store = open_store(str(Path(tmp) / f"state-{rep}.db"))
            pulls.append(stocksync_pull(info, store))
            for what, ok in ledger_checks(store, info, n).items():
                first.check(f"{what} (run {rep + 1})", ok)
        assert store is not None
        for name, runs in (("floor", floors), ("read-ahead floor", aheads)):
            first.check(f"{name} stored {n:,} lines every run", all(r["stored"] == n for r in runs))
        first.check("nothing rejected", all(p["rejected"] == 0 for p in pulls))
        floor, ahead, pulled = (
            min(runs, key=lambda r: r["seconds"]) for runs in (floors, aheads, pulls)
        )
        first.figures["repeats"] = reps
        first.figures["all_seconds"] = {
            "stocksync": [p["seconds"] for p in pulls],
            "floor": [f["seconds"] for f in floors],
            "floor_read_ahead": [a["seconds"] for a in aheads],
        }
        ours = n / pulled["seconds"]
        theirs = n / floor["seconds"]
        theirs_ahead = n / ahead["seconds"]
        first.figures.update(
            stocksync=pulled,
            floor=floor,
            floor_read_ahead=ahead,
            movements_per_s=ours,
            floor_per_s=theirs,
            floor_read_ahead_per_s=theirs_ahead,
        )
        first.rows += [
            Row(
                "movements/s" + (f", best of {reps}" if reps > 1 else ""),
                f"{ours:,.0f}/s ({pulled['seconds']:.2f} s)",
                f"{theirs:,.0f}/s ({floor['seconds']:.2f} s) httpx + executemany",
                fmt_ratio(ours / theirs),
                f"≥ {INGEST_TARGET_RATIO} of floor",
                ours / theirs >= INGEST_TARGET_RATIO,
            ),
            Row(
                "vs a floor reading ahead",
                f"{ours:,.0f}/s",
                f"{theirs_ahead:,.0f}/s ({ahead['seconds']:.2f} s) floor, next page in a thread",
                fmt_ratio(ours / theirs_ahead),
                "(information)",
            ),
            Row(
                "absolute rate",
                f"{ours:,.0f}/s",
                target=f"≥ {INGEST_TARGET_RATE:,}/s",
                met=ours >= INGEST_TARGET_RATE,
            ),
        ]

        before = fingerprint(store)
        repulled = stocksync_pull(info, store, since_start=True)
        after = fingerprint(store)
        changed = [name for name in before if before[name] != after[name]]
        again.check(f"all {n:,} lines read again", repulled["received"] == n)
        again.check(
            "no inserts or updates reported", repulled["inserted"] + repulled["updated"] == 0
        )
        again.check(
            "nothing written (movements, versions, levels, outbox, cursors unchanged)", not changed
        )
        again.figures = {"repull": repulled, "first": pulled, "changed_tables": changed}
        again.rows.append(
            Row(
                "re-pull time",
                f"{repulled['seconds']:.2f} s ({rate(n, repulled['seconds'])})",
                f"{pulled['seconds']:.2f} s first pull",
                fmt_ratio(repulled["seconds"] / pulled["seconds"]),
                "writes nothing",
                not changed,
            )
        )
        store.close()
    return [first, again]


def memory(n: int) -> Result:
    """Scenario 5: peak RSS of a process that pulls ``n`` lines (emulator in another process)."""
    result = Result("memory", f"Memory: {n:,} lines pulled, peak RSS of the pulling process")
    with k3cloud_emulator(n) as info, tempfile.TemporaryDirectory() as tmp:
        warm_up(info)
        args = ["--info", json.dumps(info), "--expect", str(n)]
        floor = run_child("benchmarks.pulls", ["floor", "--db", f"{tmp}/floor.db", *args], 3600)
        ours = run_child("benchmarks.pulls", ["stocksync", "--db", f"{tmp}/state.db", *args], 3600)
    for what, ok in {**floor["checks"], **ours["checks"]}.items():
        result.check(what, ok)
    result.figures = {"stocksync": ours, "floor": floor}
    result.rows += [
        Row(
            "peak RSS",
            f"{ours['peak_rss_mb']:.0f} MB",
            f"{floor['peak_rss_mb']:.0f} MB floor process",
            fmt_ratio(ours["peak_rss_mb"] / floor["peak_rss_mb"]),
            f"≤ {MEMORY_LIMIT_MB:.0f} MB",
            ours["peak_rss_mb"] <= MEMORY_LIMIT_MB,
        ),
        Row(
            "movements/s (1 process)",
            f"{n / ours['seconds']:,.0f}/s ({ours['seconds']:.1f} s)",
            f"{n / floor['seconds']:,.0f}/s ({floor['seconds']:.1f} s)",
            fmt_ratio(floor["seconds"] / ours["seconds"]),
        ),
    ]
    return result
