"""Scenario "reservations": the cost of keeping reserved stock exact, K/3 Cloud → Fxiaoke.

The K/3 Cloud emulator (in process) holds ``keys`` inventory rows (materials ×
5 warehouses, opening stock), ``locked`` of them with a lock (FBaseLockQty); the
state DB holds the same ``keys`` levels (``set_baseline``). The real K/3 Cloud
source's ``reserved()`` (STK_Inventory ``FBaseLockQty <> 0``, keyset on FID),
``refresh_reservations`` and the real Pusher to the Fxiaoke emulator (compressed
clock, as scenario "push") then run two cycles:

1. quiet: nothing changed. Measured: STK_Inventory queries of the reserved
   snapshot against the same run's full on-hand scan of every key (what a
   source that cannot filter on the lock would have to read), CRM calls and
   keys queued (both must be 0).
2. ``changed`` locks changed in the ERP (a third each: raised, cancelled, half
   shipped): keys queued must be exactly those, one CRM call each, and every
   StockObj's real / available / blocked must equal the emulator's FBaseQty /
   FBaseAvbQty / FBaseLockQty.

Setup, not measured: the 95 % of keys without a lock are taken as already in the
CRM (their outbox rows from the baseline are dropped, the CRM never sees them);
the first push creates the ``locked`` keys' StockObj with known product and
warehouse ids.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete

from benchmarks.common import CompressedClock, Result, Row, fmt_ratio
from benchmarks.pulls import PIPELINE, open_store
from connectors._emulator import transport_for
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.sink import FxiaokeSettings, FxiaokeSink
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.settings import K3CloudSettings
from connectors.k3cloud.source import K3CloudSource, build
from connectors.k3cloud.stock_reads import INVENTORY_FORM, SCAN_PAGE_SIZE
from sync.ledger import set_baseline
from sync.model import StockKey
from sync.ports import ConnectorContext
from sync.pull import PullOptions, pull_stream
from sync.push import Pusher
from sync.reservations import refresh_reservations
from sync.state import StateStore
from sync.state import schema as s
from sync.state.rows import parse_level_ref

WAREHOUSES = ("WH1", "WH2", "WH3", "WH4", "WH5")
STREAM = "sales_outbound"
#: a real K/3 Cloud server's zone (the emulator's local time)
ZONE = ZoneInfo("Asia/Shanghai")
#: CRM figures per key: (real, available, blocked)
Figures = tuple[Decimal, Decimal, Decimal]


@dataclass
class Bench:
    """Both emulators, the source, the state DB and the pusher of one run."""

    clock: CompressedClock
    k3: K3CloudEmulator
    crm: FxiaokeEmulator
    source: K3CloudSource
    sink: FxiaokeSink
    store: StateStore
    pusher: Pusher
    products: dict[str, str]
    warehouses: dict[str, str]
    #: K/3 requests of the last refresh per service (ExecuteBillQuery only, expected)
    refresh_services: dict[str, int] = field(default_factory=dict)

    def erp_calls(self) -> int:
        """Requests the K/3 Cloud emulator got so far, every service and form (only the
        step measured runs between two readings, so its count is all its own)."""
        return sum(self.k3.calls.values())

    def crm_calls(self) -> int:
        return sum(self.crm.calls.values())

    def pull(self) -> int:
        """The cycle's pull of the shipments (SAL_OUTSTOCK: what ``ship_locked`` makes);
        returns the movements received."""
        report = pull_stream(
            self.store,
            self.source,
            PIPELINE,
            STREAM,
            now=self.clock.now,
            options=PullOptions(page_size=1000),
        )
        return report.received

    def refresh(self) -> tuple[int, float, int]:
        """refresh_reservations → (ERP queries it made, wall seconds, keys it queued)."""
        before, t0 = Counter(self.k3.calls), time.perf_counter()
        report = refresh_reservations(
            self.store, self.source, PIPELINE, now=self.clock.now(), static={}
        )
        seconds = time.perf_counter() - t0
        self.refresh_services = dict(Counter(self.k3.calls) - before)
        return sum(self.refresh_services.values()), seconds, report.changed

    def queued(self) -> set[StockKey]:
        rows = self.store.outbox_rows(PIPELINE, limit=10_000_000)
        return {parse_level_ref(r.ref) for r in rows}

    def warm_up(self) -> None:
        """One STK_Inventory row in FID order: the emulator rebuilds and sorts its rows
        after a change (a server has its table and index); neither side pays that."""
        query = {"FormId": INVENTORY_FORM, "FieldKeys": "FID", "OrderString": "FID ASC"}
        self.source.client.execute_bill_query({**query, "Limit": 1}, where="bench")


def _opening(keys: int) -> dict[StockKey, Decimal]:
    skus = [f"M{i:06d}" for i in range(-(-keys // len(WAREHOUSES)))]
    found = [StockKey(sku, wh) for sku in skus for wh in WAREHOUSES][:keys]
    return {key: Decimal(100 + i % 50) for i, key in enumerate(found)}


def _locks(opening: dict[StockKey, Decimal], locked: int) -> list[tuple[str, str, Decimal]]:
    """``locked`` keys spread over the inventory, 2..10 each (under on hand)."""
    keys = list(opening)
    step = max(1, len(keys) // locked)
    chosen = keys[::step][:locked]
    return [(k.sku, k.warehouse, Decimal(2 + i % 9)) for i, k in enumerate(chosen)]


def _k3_source(k3: K3CloudEmulator, clock: CompressedClock) -> K3CloudSource:
    info = k3.connection_info("http://k3cloud.bench")
    settings = K3CloudSettings.model_validate(
        {
            "server_url": info["url"],
            **{k: info[k] for k in ("acct_id", "username", "app_id", "app_secret")},
            "streams": [STREAM],
        }
    )
    context = ConnectorContext(
        pipeline=PIPELINE, now=clock.now, http_transport=transport_for(k3), sleep=clock.sleep
    )
    return build(settings, context)


@contextmanager
def _bench(opening: dict[StockKey, Decimal], tmp: str) -> Iterator[Bench]:
    clock = CompressedClock()
    k3 = K3CloudEmulator(now=lambda: clock.now().astimezone(ZONE).replace(tzinfo=None))
    for key, qty in opening.items():
        k3.set_opening(key.sku, key.warehouse, qty)
    crm = FxiaokeEmulator(clock=clock.time)
    skus = sorted({k.sku for k in opening})
    products = {sku: crm.add_product(sku) for sku in skus}
    warehouses = {wh: crm.add_warehouse(wh) for wh in WAREHOUSES}
    settings = FxiaokeSettings.model_validate(
        {
            **crm.crm_settings("http://fxiaoke.bench"),
            "product_map": products,
            "warehouse_map": warehouses,
        }
    )
    store = open_store(str(Path(tmp) / "state.db"))
    context = ConnectorContext(
        pipeline=PIPELINE,
        now=clock.now,
        token_cache=store,
        http_transport=transport_for(crm),
        sleep=clock.sleep,
    )
    sink = FxiaokeSink(settings, context)
    source = _k3_source(k3, clock)
    pusher = Pusher(store, sink, PIPELINE, now=clock.now)
    try:
        yield Bench(clock, k3, crm, source, sink, store, pusher, products, warehouses)
    finally:
        source.close()
        sink.close()
        store.close()


def _erp_figures(k3: K3CloudEmulator) -> dict[StockKey, Figures]:
    """FBaseQty, FBaseAvbQty, FBaseLockQty per material × warehouse, as STK_Inventory has them."""
    sums: dict[StockKey, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for row in k3.store.rows(INVENTORY_FORM):
        figures = sums[StockKey(str(row["fmaterialid.fnumber"]), str(row["fstockid.fnumber"]))]
        for i, column in enumerate(("fbaseqty", "fbaseavbqty", "fbaselockqty")):
            figures[i] += row[column]
    return {key: (f[0], f[1], f[2]) for key, f in sums.items()}


def _crm_figures(bench: Bench) -> dict[StockKey, Figures]:
    sku_of = {v: k for k, v in bench.products.items()}
    wh_of = {v: k for k, v in bench.warehouses.items()}
    out: dict[StockKey, Figures] = {}
    for rec in bench.crm.stock_records():
        key = StockKey(sku_of[str(rec["product_id"])], wh_of[str(rec["warehouse_id"])])
        figures = (rec["real_stock"], rec["available_stock"], rec["blocked_stock"])
        out[key] = (Decimal(str(figures[0])), Decimal(str(figures[1])), Decimal(str(figures[2])))
    return out


def _crm_matches_erp(bench: Bench) -> bool:
    """Every StockObj's (real, available, blocked) equals the ERP's (on hand, avb, locked)."""
    erp = _erp_figures(bench.k3)
    crm = _crm_figures(bench)
    return bool(crm) and all(erp.get(key) == figures for key, figures in crm.items())


def _setup(bench: Bench, result: Result, opening: dict[StockKey, Decimal], locked: int) -> None:
    """Locks, the 100k levels, the first refresh and push (the locked keys' StockObj)."""
    lock_ids = bench.k3.lock_many(_locks(opening, locked))
    result.figures["lock_ids"] = len(lock_ids)
    set_baseline(bench.store, PIPELINE, opening, now=bench.clock.now())
    with bench.store.engine.begin() as conn:  # the unlocked keys: already in the CRM
        conn.execute(delete(s.outbox).where(s.outbox.c.pipeline == PIPELINE))
    bench.pull()
    _, seconds, queued = bench.refresh()
    first = bench.pusher.run()
    result.figures["setup"] = {"first_refresh_s": seconds, "created": first.created}
    result.check(f"setup: {locked:,} keys reserved, queued and created", queued == locked)
    result.check("setup: first push created them", first.created == locked)
    result.check("setup: CRM equals the ERP", _crm_matches_erp(bench))


def _quiet(bench: Bench, result: Result, keys: int) -> dict[str, Any]:
    """A cycle where nothing changed, then the full on-hand scan of the same run."""
    bench.pull()
    bench.warm_up()
    bench.crm.reset_counters()
    calls, seconds, queued = bench.refresh()
    services = bench.refresh_services
    outbox = bench.queued()
    push = bench.pusher.run()
    crm_calls = bench.crm_calls()
    bench.warm_up()
    scan_calls, t0 = bench.erp_calls(), time.perf_counter()
    on_hand = {row.stock_key: row.qty for row in bench.source.on_hand()}
    scan_s, scan_calls = time.perf_counter() - t0, bench.erp_calls() - scan_calls
    result.check("quiet: nothing queued, nothing pushed", not queued and not outbox)
    result.check("quiet: push wrote nothing", push.pushed == 0)
    result.check(
        "quiet: the snapshot made bill queries only", set(services) == {"ExecuteBillQuery"}
    )
    result.check(
        f"full scan read all {keys:,} keys, equal to the ledger",
        len(on_hand) == keys and on_hand == bench.store.levels(PIPELINE),
    )
    return {
        "erp_calls": calls,
        "erp_calls_by_service": services,
        "wall_s": seconds,
        "queued": queued,
        "outbox": len(outbox),
        "crm_calls": crm_calls,
        "full_scan": {"erp_calls": scan_calls, "wall_s": scan_s, "keys": len(on_hand)},
    }


def _change_locks(k3: K3CloudEmulator, changed: int) -> set[StockKey]:
    """``changed`` locks, a third each: raised by 3, cancelled, half shipped; their keys."""
    locks = sorted(k3.store.locks.locks.items())
    step = max(1, len(locks) // changed)
    touched: set[StockKey] = set()
    for i, (lock_id, lock) in enumerate(locks[::step][:changed]):
        _org, material, stock, _lot = lock.row
        touched.add(StockKey(material, stock))
        if i % 3 == 0:
            k3.change_lock(lock_id, lock.qty + 3)
        elif i % 3 == 1:
            k3.unlock(lock_id)
        else:
            k3.ship_locked(lock_id, lock.qty // 2)
    return touched


def _changed(bench: Bench, result: Result, changed: int) -> dict[str, Any]:
    """A cycle after ``changed`` locks changed: pull, refresh, push."""
    t0 = time.perf_counter()
    touched = _change_locks(bench.k3, changed)
    erp_change_s = time.perf_counter() - t0
    bench.clock.sleep(60)  # the shipments settle before the pull reads them
    shipments = bench.pull()
    bench.warm_up()
    calls, seconds, queued = bench.refresh()
    outbox = bench.queued()
    bench.crm.reset_counters()
    push = bench.pusher.run()
    crm_calls = bench.crm_calls()
    result.check(f"changed: {changed:,} locks on {len(touched):,} keys", len(touched) == changed)
    result.check("changed: the pull read the shipments", shipments == len(range(2, changed, 3)))
    result.check("changed: keys queued = exactly the changed keys", outbox == touched)
    result.check("changed: refresh queued every changed lock", queued == changed)
    result.check("changed: push updated them, created none", push.updated == changed)
    result.check("changed: outbox drained", not bench.queued())
    result.check(
        "changed: every StockObj's real/available/blocked = FBaseQty/FBaseAvbQty/FBaseLockQty",
        _crm_matches_erp(bench),
    )
    levels = bench.store.levels(PIPELINE)
    erp = _erp_figures(bench.k3)
    result.check(
        "changed: ledger level of every key = FBaseQty",
        levels == {key: f[0] for key, f in erp.items()},
    )
    return {
        "erp_calls": calls,
        "wall_s": seconds,
        "queued_by_refresh": queued,
        "outbox": len(outbox),
        "crm_calls": crm_calls,
        "crm_calls_by_path": dict(bench.crm.calls),
        "updated": push.updated,
        "erp_change_s": erp_change_s,
        "shipment_lines_pulled": shipments,
    }


def reservations(keys: int, locked: int, changed: int) -> Result:
    """The scenario: ``keys`` levels, ``locked`` of them reserved, then ``changed`` locks moved."""
    result = Result(
        "reservations",
        f"Reserved stock exact: {keys:,} keys, {locked:,} locked, then {changed:,} locks changed",
    )
    opening = _opening(keys)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, _bench(opening, tmp) as bench:
        _setup(bench, result, opening, locked)
        setup_s = time.perf_counter() - t0
        quiet = _quiet(bench, result, keys)
        moved = _changed(bench, result, changed)
    expected = math.ceil(locked / SCAN_PAGE_SIZE) + 1
    result.figures.update(
        {
            "keys": keys,
            "locked": locked,
            "changed": changed,
            "page_size": SCAN_PAGE_SIZE,
            "setup_s": setup_s,
            "quiet": quiet,
            "changed_cycle": moved,
        }
    )
    result.rows += _rows(quiet, moved, keys, changed, expected)
    return result


def _rows(
    quiet: dict[str, Any], moved: dict[str, Any], keys: int, changed: int, expected: int
) -> list[Row]:
    scan = quiet["full_scan"]
    per_key = moved["crm_calls"] / changed
    return [
        Row(
            "quiet cycle: ERP calls for the reserved snapshot",
            f"{quiet['erp_calls']} requests (STK_Inventory)",
            f"{scan['erp_calls']} (full on-hand scan of {keys:,} keys)",
            fmt_ratio(quiet["erp_calls"] / scan["erp_calls"]),
            f"≤ ceil(R/{SCAN_PAGE_SIZE})+1 = {expected}, no CRM call",
            quiet["erp_calls"] <= expected and quiet["crm_calls"] == 0,
        ),
        Row(
            "quiet cycle: CRM calls, keys queued",
            f"{quiet['crm_calls']} calls, {quiet['queued']} keys",
            "0 (nothing changed)",
            "",
            "0 and 0",
            quiet["crm_calls"] == 0 and quiet["queued"] == 0 and quiet["outbox"] == 0,
        ),
        Row(
            "quiet cycle: wall s of the reserved refresh",
            f"{quiet['wall_s']:.3f} s",
            f"{scan['wall_s']:.3f} s full on-hand scan",
            fmt_ratio(quiet["wall_s"] / scan["wall_s"]),
            "",
            None,
        ),
        Row(
            f"{changed:,} locks changed: keys queued, CRM calls per changed key",
            f"{moved['outbox']:,} keys; {per_key:.2f} ({moved['crm_calls']:,} calls)",
            f"{changed:,} changed keys; 1.00 (one update each)",
            fmt_ratio(per_key),
            "queued = changed keys, 1.00",
            moved["outbox"] == changed and abs(per_key - 1.0) < 1e-9,
        ),
        Row(
            "extra ERP calls per cycle (the reserved snapshot)",
            f"{moved['erp_calls']} requests ({moved['wall_s']:.3f} s)",
            f"{scan['erp_calls']} full scan",
            fmt_ratio(moved["erp_calls"] / scan["erp_calls"]),
            f"≤ {expected}",
            moved["erp_calls"] <= expected,
        ),
    ]
