"""Scenario "push": CRM calls per changed level and use of the rate limit, Fxiaoke emulator.

Time is compressed (``CompressedClock``): the emulator's rate windows, the
client's RateLimiter and its retry sleeps all read one clock that runs with real
time, and every sleep moves it ahead instead of waiting. A limiter wait of 19 s
therefore costs no wall time but 19 s of measured time, so calls/s is what the
same run would achieve against the real 100 calls / 20 s limit.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.common import CompressedClock, Result, Row, fmt_ratio
from benchmarks.pulls import PIPELINE, open_store
from connectors._emulator import transport_for
from connectors.fxiaoke.client import data_path
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.sink import FxiaokeSettings, FxiaokeSink
from sync.ledger import apply_page
from sync.model import Cursor, Movement, MovementKind, Page, StockKey
from sync.ports import ConnectorContext
from sync.push import Pusher
from sync.state import StateStore

LIMIT_CALLS = 100
LIMIT_PERIOD_S = 20.0
WAREHOUSES = ("WH1", "WH2", "WH3", "WH4", "WH5")
UPDATE_PATH = data_path("StockObj", "update")
TARGET_CALLS_PER_LEVEL = 1.0
TARGET_RATE_RATIO = 0.95


class _Recorder:
    """The emulator's WSGI app, noting the clock at every call per path."""

    def __init__(self, app: FxiaokeEmulator, clock: Callable[[], float]) -> None:
        self.app, self.clock = app, clock
        self.stamps: dict[str, list[float]] = defaultdict(list)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.stamps[str(environ.get("PATH_INFO", ""))].append(self.clock())
        return self.app(environ, start_response)


def sustained_rate(stamps: list[float]) -> float:
    """Calls/s after the first window's burst: (n − limit) / (last − first).

    A limiter that keeps exactly to "limit per period" scores limit/period;
    counting the initial burst would flatter short runs.
    """
    if len(stamps) <= LIMIT_CALLS or stamps[-1] <= stamps[0]:
        return float("nan")
    return (len(stamps) - LIMIT_CALLS) / (stamps[-1] - stamps[0])


def _movements(keys: Iterable[tuple[StockKey, Decimal]], tag: str, at: datetime) -> list[Movement]:
    return [
        Movement(
            key=f"bench:{tag}:{i}",
            kind=MovementKind.RECEIPT,
            sku=key.sku,
            warehouse=key.warehouse,
            qty=qty,
            occurred_at=at,
            source_updated_at=at + timedelta(microseconds=i),
            doc_no=f"{tag}-{i}",
        )
        for i, (key, qty) in enumerate(keys)
    ]


def _apply(store: StateStore, movements: list[Movement], now: datetime) -> None:
    for start in range(0, len(movements), 1000):
        chunk = movements[start : start + 1000]
        page = Page("moves", chunk, Cursor(chunk[-1].source_updated_at, chunk[-1].key))
        apply_page(store, PIPELINE, page, now=now)


def _crm_state(
    emulator: FxiaokeEmulator, products: dict[str, str], warehouses: dict[str, str]
) -> tuple[dict[StockKey, Decimal], int]:
    """CRM level per key, and how many keys have more than one live StockObj."""
    sku_of = {v: k for k, v in products.items()}
    wh_of = {v: k for k, v in warehouses.items()}
    values: dict[StockKey, Decimal] = {}
    counts: Counter[StockKey] = Counter()
    for rec in emulator.stock_records():
        key = StockKey(sku_of[str(rec["product_id"])], wh_of[str(rec["warehouse_id"])])
        counts[key] += 1
        values[key] = Decimal(str(rec["real_stock"]))
    return values, sum(1 for c in counts.values() if c > 1)


def push(levels: int, changed: int, per_key: int = 5) -> Result:
    result = Result(
        "push",
        f"Push: {levels:,} levels, then {changed:,} changed by {changed * per_key:,} movements",
    )
    clock = CompressedClock()
    emulator = FxiaokeEmulator(
        clock=clock.time, rate_limit_calls=LIMIT_CALLS, rate_limit_period_s=LIMIT_PERIOD_S
    )
    skus = [f"P{i:05d}" for i in range(-(-levels // len(WAREHOUSES)))]
    keys = [StockKey(sku, wh) for sku in skus for wh in WAREHOUSES][:levels]
    products = {sku: emulator.add_product(sku) for sku in skus}
    warehouses = {wh: emulator.add_warehouse(wh) for wh in WAREHOUSES}
    recorder = _Recorder(emulator, clock.time)
    settings = FxiaokeSettings.model_validate(
        {
            **emulator.crm_settings("http://fxiaoke.bench"),
            "rate_limit_calls": LIMIT_CALLS,
            "rate_limit_period_s": LIMIT_PERIOD_S,
            # known ids, so that the first push is creates only (setup, not measured)
            "product_map": products,
            "warehouse_map": warehouses,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "state.db"))
        context = ConnectorContext(
            pipeline=PIPELINE,
            now=clock.now,
            token_cache=store,
            http_transport=transport_for(recorder),
            sleep=clock.sleep,
        )
        sink = FxiaokeSink(settings, context)
        pusher = Pusher(store, sink, PIPELINE, now=clock.now)
        start = datetime(2025, 1, 6, tzinfo=UTC)
        _apply(store, _movements(((k, Decimal(100)) for k in keys), "open", start), clock.now())

        t0 = time.perf_counter()
        first = pusher.run()
        first_s = time.perf_counter() - t0
        crm, dupes = _crm_state(emulator, products, warehouses)
        result.check(f"first push created {levels:,} StockObj", first.created == levels)
        result.check("first push: CRM equals ledger", crm == store.levels(PIPELINE))

        # 1) steady state: ``changed`` keys moved by ``per_key`` movements each
        moved = [(k, Decimal(j + 1)) for k in keys[:changed] for j in range(per_key)]
        _apply(store, _movements(moved, "change", start + timedelta(days=1)), clock.now())
        emulator.reset_counters()
        recorder.stamps.clear()
        v0, t0 = clock.time(), time.perf_counter()
        second = pusher.run()
        virtual_s, wall_s = clock.time() - v0, time.perf_counter() - t0
        calls = sum(emulator.calls.values())
        stamps = list(recorder.stamps[UPDATE_PATH])
        crm, dupes = _crm_state(emulator, products, warehouses)
        limit_30004 = emulator.errors[30004]
        result.check("second push: CRM equals ledger", crm == store.levels(PIPELINE))
        result.check("no duplicate StockObj", dupes == 0 and len(crm) == levels)
        result.check(
            f"{changed:,} levels updated, none created",
            second.updated == changed and second.created == 0,
        )
        result.check("outbox drained", not store.outbox_rows(PIPELINE))

        # 2) baseline: the same number of updates straight through the client, no engine
        clock.sleep(LIMIT_PERIOD_S)  # an empty window, as the engine's run had
        record_ids = {str(r["_id"]): r for r in emulator.stock_records()}
        ids = list(record_ids)[:changed]
        emulator.reset_counters()
        recorder.stamps.clear()
        b0 = clock.time()
        for crm_id in ids:
            sink.client.update(
                "StockObj", crm_id, {"real_stock": str(record_ids[crm_id]["real_stock"])}
            )
        base_virtual_s = clock.time() - b0
        base_stamps = list(recorder.stamps[UPDATE_PATH])
        base_30004 = emulator.errors[30004]
        sink.close()
        store.close()

    limit = LIMIT_CALLS / LIMIT_PERIOD_S
    ours, theirs = sustained_rate(stamps), sustained_rate(base_stamps)
    per_level = calls / changed
    result.check("zero 30004 (rate limit) errors", limit_30004 == 0 and base_30004 == 0)
    result.figures = {
        "levels": levels,
        "changed": changed,
        "movements": len(moved),
        "first_push": {"created": first.created, "wall_s": first_s},
        "second_push": {
            "calls_by_path": dict(emulator.calls),
            "calls": calls,
            "updated": second.updated,
            "virtual_s": virtual_s,
            "wall_s": wall_s,
            "sustained_calls_per_s": ours,
            "errors_30004": limit_30004,
        },
        "baseline_direct_updates": {
            "calls": len(base_stamps),
            "virtual_s": base_virtual_s,
            "sustained_calls_per_s": theirs,
            "errors_30004": base_30004,
        },
        "limit_calls_per_s": limit,
        "time_scale": "real time 1:1 plus every limiter/retry sleep skipped and added to the clock",
    }
    result.rows += [
        Row(
            "CRM calls per changed level",
            f"{per_level:.2f} ({calls:,} calls / {changed:,})",
            "1.00 (one update each)",
            fmt_ratio(per_level / TARGET_CALLS_PER_LEVEL),
            f"{TARGET_CALLS_PER_LEVEL:.2f}",
            abs(per_level - TARGET_CALLS_PER_LEVEL) < 1e-9,
        ),
        Row(
            "update calls/s ÷ limit",
            f"{ours:.3f}/s ({virtual_s:,.0f} s measured, {wall_s:.1f} s wall)",
            f"{theirs:.3f}/s direct client.update; limit {limit:.2f}/s",
            f"{fmt_ratio(ours / limit)} of limit, {fmt_ratio(ours / theirs)} of direct",
            f"≥ {TARGET_RATE_RATIO} of limit, no 30004",
            ours / limit >= TARGET_RATE_RATIO and limit_30004 == 0,
        ),
    ]
    return result
