"""Scenario "sql": lines pulled from a PostgreSQL ERP table through the SQL source.

Issue 18: the SQL source pulls at ≥ 0.5 of the floor's lines/s. The table (one row per
line: ``id``, document ``doc`` and ``line``, item, warehouse, signed qty, a document type,
a business date and a change stamp) lives in a fresh schema on the server of
``STOCKSYNC_TEST_PG_URL``, dropped afterwards; without that variable the scenario is
skipped. stocksync pulls it through ``SqlSource`` and ``sync.pull.pull_stream`` into a
SQLite state file, as a journal stream (keyset on ``id``) and as a document stream (changed
documents, then their lines); the floor, measured in the same run, is a plain keyset
SELECT of the same table with the same page size and ``sqlite3.executemany`` upserting the
rows by key into a SQLite file. At full size each of the three runs ``REPEATS`` times,
interleaved, and the best of each counts (a shared machine only ever adds time). A second
row per mode, for information, times the source alone (pages read and mapped, no ledger):
the pull's remainder is the ledger's ``apply_page``, scenario "ledger".
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

from benchmarks.common import Result, Row, fmt_ratio, rate
from benchmarks.pulls import FLOOR_UPSERT, PAGE_SIZE, PIPELINE, open_store
from connectors.sql.engine import read_only_url
from connectors.sql.settings import SqlSettings
from connectors.sql.source import SqlSource
from sync.ledger import verify
from sync.model import StockKey
from sync.pull import PullOptions, pull_stream
from sync.state import StateStore

ENV = "STOCKSYNC_TEST_PG_URL"
#: issue 18: the SQL source's lines/s as a share of the floor's, same run
TARGET_RATIO = 0.5
#: the issue's size; quick runs report the ratio without a target
FULL_SIZE = 200_000
#: runs of each side at full size, interleaved; the best of each counts
REPEATS = 3
LINES_PER_DOCUMENT = 4
MODES = ("journal", "document")


def utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def erp_table(url: str, n: int) -> Iterator[tuple[Engine, str]]:
    """A fresh schema with table ``moves`` of ``n`` lines; yields (writer engine, schema)."""
    schema = f"stocksync_bench_sql_{uuid.uuid4().hex[:10]}"
    engine = create_engine(read_only_url(url))
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE TABLE {schema}.moves (id bigint PRIMARY KEY, doc bigint NOT NULL, "
                    "line int NOT NULL, item varchar(20) NOT NULL, wh varchar(10) NOT NULL, "
                    "qty numeric(19, 6) NOT NULL, ttype int NOT NULL, ddate date NOT NULL, "
                    "ts timestamp NOT NULL)"
                )
            )
            # 2,000 items × 5 warehouses; receipts (20) of i % 97 + 1.5, every 3rd a
            # shipment (15) of −(i % 7 + 1); 4 lines a document, its stamp on every line
            conn.execute(
                text(
                    f"INSERT INTO {schema}.moves "
                    f"SELECT i, (i - 1) / {LINES_PER_DOCUMENT} + 1, "
                    f"(i - 1) % {LINES_PER_DOCUMENT} + 1, "
                    "'M' || lpad((i % 2000)::text, 5, '0'), 'W' || (i % 5), "
                    "CASE WHEN i % 3 = 0 THEN -(i % 7 + 1) ELSE i % 97 + 1.5 END, "
                    "CASE WHEN i % 3 = 0 THEN 15 ELSE 20 END, "
                    "date '2026-01-01' + (i % 300), "
                    f"timestamp '2026-01-01' + ((i - 1) / {LINES_PER_DOCUMENT}) * interval '1 s' "
                    "FROM generate_series(1, :n) AS i"
                ),
                {"n": n},
            )
            conn.execute(text(f"CREATE UNIQUE INDEX ON {schema}.moves (doc, line)"))
            conn.execute(text(f"CREATE INDEX ON {schema}.moves (ts)"))
            conn.execute(text(f"ANALYZE {schema}.moves"))
        yield engine, schema
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def settings(url: str, schema: str) -> SqlSettings:
    """A journal stream and a document stream over the same table; on hand summed by SQL."""
    common = {
        "table": f"{schema}.moves",
        "product": "item",
        "warehouse": "wh",
        "qty": "qty",
        "kind": {"column": "ttype", "map": {"20": "receipt", "15": "shipment"}},
        "date": "ddate",
    }
    return SqlSettings.model_validate(
        {
            "type": "sql",
            "url": url,
            "streams": [
                {"name": "journal", "mode": "journal", "key": ["id"], "position": "id", **common},
                {
                    "name": "document",
                    "mode": "document",
                    "document": ["doc"],
                    "key": ["line"],
                    "updated": "ts",
                    **common,
                },
            ],
            "on_hand": {
                "query": f"SELECT item, wh, SUM(qty) AS qty FROM {schema}.moves GROUP BY item, wh",
                "product": "item",
                "warehouse": "wh",
                "qty": "qty",
            },
        }
    )


def stocksync_pull(config: SqlSettings, stream: str, db_path: str) -> dict[str, Any]:
    """One first pull of ``stream`` into a fresh SQLite state; timings, counts, checks."""
    source = SqlSource(config)
    store = open_store(db_path)
    try:
        started = time.perf_counter()
        report = pull_stream(
            store, source, PIPELINE, stream, now=utcnow, options=PullOptions(page_size=PAGE_SIZE)
        )
        seconds = time.perf_counter() - started
        checks = ledger_checks(store, source, report.received)
    finally:
        store.close()
        source.close()
    return {
        "seconds": seconds,
        "received": report.received,
        "inserted": report.inserted,
        "rejected": report.rejected,
        "pages": report.pages,
        "checks": checks,
    }


def source_only(config: SqlSettings, stream: str) -> dict[str, Any]:
    """The source's part alone: every page read and mapped to movements, no ledger."""
    source = SqlSource(config)
    try:
        started = time.perf_counter()
        lines = sum(len(p.movements) for p in source.pull(stream, None, PAGE_SIZE))
        seconds = time.perf_counter() - started
    finally:
        source.close()
    return {"seconds": seconds, "received": lines}


def ledger_checks(store: StateStore, source: SqlSource, received: int) -> dict[str, bool]:
    levels = {k: v for k, v in store.levels(PIPELINE).items() if v != 0}
    on_hand: dict[StockKey, Decimal] = {r.stock_key: r.qty for r in source.on_hand() if r.qty}
    return {
        "levels equal the table's on-hand query": levels == on_hand,
        "levels equal a recomputation from scratch (db verify)": not verify(store, PIPELINE),
        "a movement per line": sum(1 for _ in store.movement_keys(PIPELINE)) == received,
    }


def keyset_into_sqlite(
    engine: Engine,
    db_path: str,
    page_sql: str,
    write: Callable[[sqlite3.Connection, Sequence[Any]], None],
    table: str,
) -> dict[str, Any]:
    """The floors' loop: ``page_sql`` (``WHERE id > :last ORDER BY id LIMIT :n``, id first)
    page after page, each page handed to ``write`` in one SQLite transaction; timed from the
    first read to the last commit. ``table`` is counted afterwards (``stored``)."""
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    page = text(page_sql)
    received, last = 0, 0
    try:
        started = time.perf_counter()
        with engine.connect() as server:
            while True:
                rows = server.execute(page, {"last": last, "n": PAGE_SIZE}).all()
                if not rows:
                    break
                with conn:
                    write(conn, rows)
                received += len(rows)
                last = rows[-1][0]
                if len(rows) < PAGE_SIZE:
                    break
        seconds = time.perf_counter() - started
        stored = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()
    return {"seconds": seconds, "received": received, "stored": stored}


def floor_pull(engine: Engine, schema: str, db_path: str) -> dict[str, Any]:
    """The floor: ``WHERE id > :last ORDER BY id LIMIT :page`` and an executemany upsert."""
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS lines "
            "(key TEXT PRIMARY KEY, sku TEXT, warehouse TEXT, qty TEXT)"
        )
    conn.close()

    def upsert(conn: sqlite3.Connection, rows: Sequence[Any]) -> None:
        conn.executemany(FLOOR_UPSERT, [(str(r[0]), r[1], r[2], str(r[3])) for r in rows])

    page = f"SELECT id, item, wh, qty FROM {schema}.moves WHERE id > :last ORDER BY id LIMIT :n"
    return keyset_into_sqlite(engine, db_path, page, upsert, "lines")


#: the movement row as the ledger stores it (``sync.state.schema.movements``)
LEDGER_ROW_INSERT = (
    "INSERT INTO movements (pipeline, key, stream, kind, sku, warehouse, qty, occurred_at, "
    "source_updated_at, doc_no, active, version, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
EPOCH_DAY = datetime(1970, 1, 1).date()
KINDS = {20: "receipt", 15: "shipment"}


def rows_floor(engine: Engine, schema: str, db_path: str) -> dict[str, Any]:
    """A bound, for information: the floor's loop writing the rows any ledger must keep.

    The same keyset SELECT, now of every column the mapping reads, and ``executemany`` of
    one movement row per line into the ledger's own ``movements`` table (a fresh state file,
    its schema and index) with the least conversion possible: no mapping checks, no level,
    no cursor, no outbox. What stocksync does beyond the floor's four columns starts here.
    """
    open_store(db_path).close()
    stamp = int(time.time() * 1_000_000)

    def insert(conn: sqlite3.Connection, rows: Sequence[Any]) -> None:
        # inline, one tuple per line in LEDGER_ROW_INSERT's order (µs stamps): a function
        # call per row would add its own cost to the bound
        conn.executemany(
            LEDGER_ROW_INSERT,
            [
                (
                    PIPELINE,
                    f"sql:journal:{r[0]}:0",
                    "journal",
                    KINDS[r[4]],
                    r[1],
                    r[2],
                    int(r[3] * 1_000_000),
                    day := (r[5] - EPOCH_DAY).days * 86_400_000_000,
                    day,
                    "",
                    1,
                    1,
                    stamp,
                )
                for r in rows
            ],
        )

    page = (
        f"SELECT id, item, wh, qty, ttype, ddate FROM {schema}.moves "
        "WHERE id > :last ORDER BY id LIMIT :n"
    )
    return keyset_into_sqlite(engine, db_path, page, insert, "movements")


def sql(n: int) -> list[Result]:
    """``n`` lines pulled by the SQL source (journal, document) and by the floor."""
    results = [
        Result(
            f"sql-{mode}",
            f"SQL source, {mode} stream: {n:,} lines from a PostgreSQL table into SQLite state",
        )
        for mode in MODES
    ]
    url = os.environ.get(ENV)
    if not url:
        for r in results:
            r.skipped = f"{ENV} is not set"
        return results
    full = n >= FULL_SIZE
    reps = REPEATS if full else 1
    floors: list[dict[str, Any]] = []
    bounds: list[dict[str, Any]] = []
    pulls: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    alone: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with erp_table(url, n) as (engine, schema), tempfile.TemporaryDirectory() as tmp:
        config = settings(url, schema)
        with engine.connect() as conn:  # read once, so that no side pays a cold cache
            conn.execute(text(f"SELECT count(*), sum(qty) FROM {schema}.moves")).one()
        for rep in range(reps):
            floors.append(floor_pull(engine, schema, str(Path(tmp) / f"floor-{rep}.db")))
            bounds.append(rows_floor(engine, schema, str(Path(tmp) / f"bound-{rep}.db")))
            for mode in MODES:
                path = str(Path(tmp) / f"{mode}-{rep}.db")
                pulls[mode].append(stocksync_pull(config, mode, path))
                alone[mode].append(source_only(config, mode))
    floor = min(floors, key=lambda p: p["seconds"])
    bound = min(bounds, key=lambda p: p["seconds"])
    for result, mode in zip(results, MODES, strict=True):
        runs = pulls[mode]
        result.check(f"floor stored {n:,} lines", all(f["stored"] == n for f in floors))
        result.check(f"bound stored {n:,} movement rows", all(b["stored"] == n for b in bounds))
        result.check(f"{n:,} lines received", all(p["received"] == n for p in runs))
        result.check("nothing rejected", all(p["rejected"] == 0 for p in runs))
        result.check(
            f"the source alone read {n:,} lines", all(p["received"] == n for p in alone[mode])
        )
        for what in runs[0]["checks"]:
            result.check(what, all(p["checks"][what] for p in runs))
        best = min(runs, key=lambda p: p["seconds"])
        ratio = floor["seconds"] / best["seconds"]
        source = min(alone[mode], key=lambda p: p["seconds"])
        result.figures = {
            "stocksync": best,
            "source_alone": source,
            "floor": floor,
            "ledger_rows_only": bound,
            "ratio": ratio,
            "repeats": reps,
            "page_size": PAGE_SIZE,
            "all_seconds": {
                mode: [p["seconds"] for p in runs],
                "source_alone": [p["seconds"] for p in alone[mode]],
                "floor": [f["seconds"] for f in floors],
                "ledger_rows_only": [b["seconds"] for b in bounds],
            },
        }
        result.rows.append(
            Row(
                "lines/s, first pull" + (f", best of {reps}" if reps > 1 else ""),
                f"{rate(n, best['seconds'])} ({best['seconds']:.2f} s)",
                f"{rate(n, floor['seconds'])} ({floor['seconds']:.2f} s) keyset SELECT + "
                "sqlite3.executemany",
                fmt_ratio(ratio),
                f"≥ {TARGET_RATIO} of the floor" if full else "(quick: no target)",
                ratio >= TARGET_RATIO if full else None,
            )
        )
        result.rows.append(
            Row(
                "lines/s, the source alone (read and mapped, no ledger)",
                f"{rate(n, source['seconds'])} ({source['seconds']:.2f} s)",
                f"{rate(n, floor['seconds'])} floor",
                fmt_ratio(floor["seconds"] / source["seconds"]),
                "(information)",
                None,
            )
        )
        result.rows.append(
            Row(
                "lines/s, the floor's loop writing only the ledger's movement rows",
                f"{rate(n, bound['seconds'])} ({bound['seconds']:.2f} s)",
                f"{rate(n, floor['seconds'])} floor",
                fmt_ratio(floor["seconds"] / bound["seconds"]),
                "(information: no mapping, level, cursor or outbox)",
                None,
            )
        )
    return results
