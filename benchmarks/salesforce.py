"""Scenario "salesforce": CRM calls per changed level through sObject Collections upserts.

The real Pusher and Salesforce sink write to the Salesforce emulator in process: a first
push of ``levels`` keys into an org that has the products and locations but no stock
record, then ``changed`` keys moved by 5 movements each. Counted: every call the org
answered (token, describe, collections) and the daily API usage it reported in
``Sforce-Limit-Info``. The baseline is the physical floor of the API, one call per 200
records: ceil(n / 200) / n. Checked: the org equals the ledger, no duplicate record (the
emulator's ``levels`` refuses two records for one key), the outbox drained.
"""

from __future__ import annotations

import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from benchmarks.common import Result, Row, fmt_ratio
from benchmarks.pulls import PIPELINE, open_store
from benchmarks.push import WAREHOUSES, _apply, _movements
from connectors._emulator import transport_for
from connectors.salesforce.emulator import SalesforceEmulator
from connectors.salesforce.settings import MAX_BATCH
from connectors.salesforce.sink import SalesforceSettings, SalesforceSink
from sync.model import StockKey
from sync.ports import ConnectorContext
from sync.push import Pusher
from sync.state import StateStore

TARGET_CALLS_PER_LEVEL = 0.006
#: the sizes the target is set for (issue 19); smaller runs (--quick) report without one,
#: as a login and a describe weigh on few levels
TARGET_SIZES = {"first push": 10_000, "change": 1_000}
URL = "https://salesforce.bench"


def _org_equals_ledger(emulator: SalesforceEmulator, store: StateStore) -> bool:
    ledger = {(k.sku, k.warehouse): v for k, v in store.levels(PIPELINE).items()}
    return emulator.levels() == ledger  # AssertionError on a duplicate record


def _row(what: str, calls: int, levels: int, used: int) -> Row:
    floor = math.ceil(levels / MAX_BATCH)
    per_level = calls / levels
    judged = levels >= TARGET_SIZES[what]
    return Row(
        f"Salesforce: CRM calls per changed level, {levels:,}-key {what}",
        f"{per_level:.4f} ({calls:,} calls / {levels:,}; API usage +{used:,})",
        f"{floor / levels:.4f} (ceil({levels:,} / {MAX_BATCH}) = {floor:,} calls)",
        fmt_ratio(per_level / (floor / levels)),
        f"≤ {TARGET_CALLS_PER_LEVEL}" if judged else "(information)",
        per_level <= TARGET_CALLS_PER_LEVEL if judged else None,
    )


def push(levels: int, changed: int, per_key: int = 5) -> Result:
    result = Result(
        "salesforce",
        f"Salesforce push: {levels:,} levels, then {changed:,} changed by "
        f"{changed * per_key:,} movements",
    )
    emulator = SalesforceEmulator(daily_api_limit=1_000_000)
    skus = [f"P{i:05d}" for i in range(-(-levels // len(WAREHOUSES)))]
    keys = [StockKey(sku, wh) for sku in skus for wh in WAREHOUSES][:levels]
    for sku in skus:
        emulator.add_product(sku)
    for wh in WAREHOUSES:
        emulator.add_location(wh)
    info = emulator.connection_info(URL)
    settings = SalesforceSettings.model_validate(
        {"login_url": URL, "client_id": info["client_id"], "client_secret": info["client_secret"]}
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "state.db"))
        context = ConnectorContext(
            pipeline=PIPELINE, token_cache=store, http_transport=transport_for(emulator)
        )
        sink = SalesforceSink(settings, context)
        pusher = Pusher(store, sink, PIPELINE, now=lambda: datetime.now(UTC))
        start = datetime(2025, 1, 6, tzinfo=UTC)
        now = datetime.now(UTC)
        _apply(store, _movements(((k, Decimal(100)) for k in keys), "open", start), now)

        used0 = emulator.api_usage[0]
        t0 = time.perf_counter()
        first = pusher.run()
        first_s = time.perf_counter() - t0
        first_calls, first_used = sum(emulator.calls.values()), emulator.api_usage[0] - used0
        result.check(f"first push created {levels:,} records", first.created == levels)
        result.check(
            "first push: org equals ledger, no duplicate", _org_equals_ledger(emulator, store)
        )

        moved = [(k, Decimal(j + 1)) for k in keys[:changed] for j in range(per_key)]
        _apply(store, _movements(moved, "change", start + timedelta(days=1)), now)
        emulator.calls.clear()
        used1 = emulator.api_usage[0]
        t0 = time.perf_counter()
        second = pusher.run()
        second_s = time.perf_counter() - t0
        second_calls, second_used = sum(emulator.calls.values()), emulator.api_usage[0] - used1
        result.check(
            "second push: org equals ledger, no duplicate", _org_equals_ledger(emulator, store)
        )
        result.check(
            f"{changed:,} levels updated, none created",
            second.updated == changed and second.created == 0,
        )
        result.check("outbox drained", not store.outbox_rows(PIPELINE))
        seen = sink.api_usage()
        result.check(
            "the sink's API usage is the org's",
            seen is not None and seen.used == emulator.api_usage[0],
        )
        sink.close()
        store.close()
    result.figures = {
        "levels": levels,
        "changed": changed,
        "first_push": {
            "calls": first_calls,
            "api_usage": first_used,
            "created": first.created,
            "wall_s": first_s,
        },
        "second_push": {
            "calls": second_calls,
            "calls_by_route": dict(emulator.calls),
            "api_usage": second_used,
            "updated": second.updated,
            "wall_s": second_s,
        },
        "batch": MAX_BATCH,
    }
    result.rows += [
        _row("first push", first_calls, levels, first_used),
        _row("change", second_calls, changed, second_used),
    ]
    return result
