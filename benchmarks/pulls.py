"""The two ways of pulling the K/3 Cloud emulator's receipts into SQLite: stocksync and the floor.

Both read the same pages with the same signed ExecuteBillQuery requests (the
connector's own client); stocksync runs them through the real source and the
ledger, the floor only decodes the ids and upserts one row per line with
``sqlite3.executemany``. ``python -m benchmarks.pulls`` runs one of them in a
fresh process so that its peak RSS is its own (scenario "memory").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from benchmarks.common import peak_rss_mb
from connectors.k3cloud.client import K3CloudClient
from connectors.k3cloud.settings import STATUS_DATES, K3CloudSettings
from connectors.k3cloud.source import K3CloudSource
from connectors.k3cloud.streams import STREAMS, field_keys
from sync.ledger import verify
from sync.model import StockKey
from sync.prefetch import Prefetched
from sync.pull import PullOptions, pull_stream
from sync.service.logging import configure
from sync.state import StateStore
from sync.state import schema as s

PIPELINE = "bench"
STREAM = "purchase_receipt"
PAGE_SIZE = 1000  # the pipeline default (pull.page_size)
FLOOR_UPSERT = (
    "INSERT INTO lines (key, sku, warehouse, qty) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET sku = excluded.sku, warehouse = excluded.warehouse, "
    "qty = excluded.qty"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def source_for(info: dict[str, Any]) -> K3CloudSource:
    settings = K3CloudSettings.model_validate(
        {
            "type": "k3cloud",
            "server_url": info["url"],
            "acct_id": info["acct_id"],
            "username": info["username"],
            "app_id": info["app_id"],
            "app_secret": info["app_secret"],
            "streams": [STREAM],
        }
    )
    client = K3CloudClient(
        server_url=settings.server_url,
        acct_id=settings.acct_id,
        username=settings.username,
        app_id=settings.app_id,
        app_secret=settings.app_secret.get_secret_value(),
    )
    return K3CloudSource(settings, client)


def full_query() -> dict[str, Any]:
    """The query the source sends for a pull without a cursor (the floor pages it by
    StartRow, the source by a keyset on the same order)."""
    defn = STREAMS[STREAM]
    return {
        "FormId": defn.form_id,
        "FieldKeys": ",".join([*field_keys(defn), *STATUS_DATES]),
        "FilterString": "",
        "OrderString": f"FID ASC, {defn.entry_id_key} ASC",
        "SubSystemId": "",
    }


def warm_up(info: dict[str, Any]) -> None:
    """One small page, so that neither side pays the emulator's one-off sort of the result."""
    source = source_for(info)
    try:
        source.client.execute_bill_query({**full_query(), "Limit": 1}, where="bench")
    finally:
        source.close()


def open_store(db_path: str) -> StateStore:
    store = StateStore(f"sqlite:///{db_path}")
    store.upgrade()
    return store


def stocksync_pull(
    info: dict[str, Any], store: StateStore, *, since_start: bool = False
) -> dict[str, Any]:
    """Pull the receipt stream through the real source and ledger; timings and counts.

    ``since_start`` re-reads the whole history (a backfill) instead of resuming at the cursor.
    """
    source = source_for(info)
    since = None
    if since_start:
        from sync.model import Cursor

        since = Cursor(datetime(2000, 1, 1, tzinfo=UTC), "")
    try:
        started = time.perf_counter()
        report = pull_stream(
            store,
            source,
            PIPELINE,
            STREAM,
            now=utcnow,
            options=PullOptions(page_size=PAGE_SIZE),
            since=since,
        )
        seconds = time.perf_counter() - started
    finally:
        source.close()
    return {
        "seconds": seconds,
        "received": report.received,
        "inserted": report.inserted,
        "updated": report.updated,
        "rejected": report.rejected,
        "pages": report.pages,
    }


def erp_on_hand(info: dict[str, Any]) -> dict[StockKey, Decimal]:
    """STK_Inventory as the emulator computes it (through the API)."""
    source = source_for(info)
    try:
        return {row.stock_key: row.qty for row in source.on_hand()}
    finally:
        source.close()


def ledger_checks(store: StateStore, info: dict[str, Any], expected: int) -> dict[str, bool]:
    levels = {k: v for k, v in store.levels(PIPELINE).items() if v != 0}
    with store.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(s.movements)).scalar_one()
    return {
        f"{expected:,} movements in the ledger": count == expected,
        "levels equal the emulator's STK_Inventory": levels == erp_on_hand(info),
        "levels equal a recomputation from scratch (db verify)": not verify(store, PIPELINE),
    }


def fingerprint(store: StateStore) -> dict[str, str]:
    """A digest of every ledger table (movements, versions, levels, outbox, cursors)."""
    out: dict[str, str] = {}
    tables = (s.movements, s.movement_versions, s.stock_levels, s.outbox, s.cursors)
    with store.engine.connect() as conn:
        for table in tables:
            digest = hashlib.blake2b(digest_size=16)
            order = list(table.primary_key.columns) or list(table.columns)
            for row in conn.execute(select(table).order_by(*order)):
                digest.update(repr(tuple(row)).encode())
            out[table.name] = digest.hexdigest()
    return out


def floor_pull(info: dict[str, Any], db_path: str, *, read_ahead: bool = False) -> dict[str, Any]:
    """The floor: same signed requests, rows upserted by key with no ledger logic.

    As the issue defines it, the floor fetches one page after the other.
    ``read_ahead`` gives it stocksync's own trick as well (the next page read in
    a thread while this one is stored), for the informational row beside it.
    """
    source = source_for(info)
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS lines "
        "(key TEXT PRIMARY KEY, sku TEXT, warehouse TEXT, qty TEXT)"
    )
    received = 0
    try:
        started = time.perf_counter()
        pages = source.client.iter_bill_query(full_query(), page_size=PAGE_SIZE, where="b")
        with Prefetched(pages) if read_ahead else nullcontext(pages) as rows_by_page:
            for rows in rows_by_page:
                with conn:
                    conn.executemany(
                        FLOOR_UPSERT, [(f"{r[0]}:{r[6]}", r[7], r[8], str(r[9])) for r in rows]
                    )
                received += len(rows)
        seconds = time.perf_counter() - started
        stored = conn.execute("SELECT count(*) FROM lines").fetchone()[0]
    finally:
        conn.close()
        source.close()
    return {"seconds": seconds, "received": received, "stored": stored}


def main() -> None:
    parser = argparse.ArgumentParser(description="one pull in this process, peak RSS on stdout")
    parser.add_argument("mode", choices=("stocksync", "floor"))
    parser.add_argument("--info", required=True, help="the emulator's connection JSON")
    parser.add_argument("--db", required=True)
    parser.add_argument("--expect", type=int, required=True)
    args = parser.parse_args()
    configure("warning")
    info = json.loads(args.info)
    if args.mode == "floor":
        result = floor_pull(info, args.db)
        result["checks"] = {f"{args.expect:,} lines stored": result["stored"] == args.expect}
    else:
        store = open_store(args.db)
        result = stocksync_pull(info, store)
        result["checks"] = ledger_checks(store, info, args.expect)
        store.close()
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
