"""What pushing costs in Fxiaoke calls, counted by the emulator per path (architecture §5).

Steady state: one update per changed level, nothing else. First push onto a
CRM that already holds some of the records: bind them from one paged read,
update only those that differ, create the rest.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import pytest

from sync.model import StockKey
from sync.push import PushOptions
from sync.state import StateStore
from sync.state.store import LEVEL, level_ref
from tests.fxiaoke.rig import CREATE, QUERY, TOKEN, UPDATE, Rig

WAREHOUSES = ("WH-MAIN", "WH-EAST")


@pytest.fixture
def rigs(store: StateStore) -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.close()


def keys_for(rig: Rig, n: int, warehouses: tuple[str, ...] = WAREHOUSES) -> list[StockKey]:
    """``n`` stock keys, product-major, adding products beyond the demo's 20."""
    products = math.ceil(n / len(warehouses))
    for i in range(21, products + 1):
        rig.emulator.add_product(f"SKU-{i:04d}")
    return [StockKey(f"SKU-{i:04d}", wh) for i in range(1, products + 1) for wh in warehouses][:n]


def real_stock(rig: Rig) -> dict[StockKey, Decimal]:
    grouped = rig.stock_by_key()
    assert all(len(recs) == 1 for recs in grouped.values()), "a StockObj record was duplicated"
    return {key: Decimal(recs[0]["real_stock"]) for key, recs in grouped.items()}


@pytest.mark.parametrize(("n", "m"), [(40, 1), (60, 25), (200, 120)])
def test_steady_state_costs_exactly_one_update_per_changed_level(
    store: StateStore, rigs: list[Rig], n: int, m: int
) -> None:
    rig = Rig(store, mirror=False)
    rigs.append(rig)
    keys = keys_for(rig, n)
    for i, key in enumerate(keys):
        rig.put(key.sku, key.warehouse, i + 1)
    rig.pull()
    first = rig.push()
    assert first.created == n and len(rig.emulator.stock_records()) == n

    rig.reset()
    rig.clock.advance(600)
    changed, netted = keys[:m], keys[m : m + 10]
    for key in changed:  # several movements per key, one write per key
        for qty in (5, -2, "0.25"):
            rig.put(key.sku, key.warehouse, qty)
            rig.clock.advance(1)
    for key in netted:  # moved and pulled, then back to the last pushed value: no write
        rig.put(key.sku, key.warehouse, 3)
    rig.clock.advance(1)
    rig.pull()
    rig.clock.advance(1)
    for key in netted:
        rig.put(key.sku, key.warehouse, -3)
    rig.clock.advance(1)
    rig.pull()
    report = rig.push()

    assert rig.calls() == Counter({UPDATE: m})
    assert (report.updated, report.created, report.skipped) == (m, 0, len(netted))
    assert real_stock(rig) == store.levels(rig.pipeline)
    assert store.outbox_rows(rig.pipeline) == []

    rig.reset()
    rig.clock.advance(600)
    rig.pull()
    rig.push()
    assert rig.calls() == Counter(), "a push with nothing to do called the CRM"


def seed_stock(rig: Rig, levels: dict[StockKey, Decimal]) -> dict[StockKey, str]:
    """StockObj records the CRM holds before our first push; their ids by key."""
    ids = {r["product_code"]: r["_id"] for r in rig.emulator.records("ProductObj")}
    ids |= {r["number"]: r["_id"] for r in rig.emulator.records("WarehouseObj")}
    seeded = {}
    for key, qty in levels.items():
        seeded[key] = rig.emulator.add_stock(ids[key.sku], ids[key.warehouse], str(qty))
    return seeded


def first_push(rig: Rig, keys: list[StockKey], existing: list[StockKey]) -> None:
    """Seed ``existing`` (every fifth one with another value), push all ``keys``, check."""
    level = {key: Decimal(i % 7 + 1) for i, key in enumerate(keys)}
    differing = set(existing[::5])
    seeded = seed_stock(rig, {k: level[k] + (10 if k in differing else 0) for k in existing})
    for key in keys:
        rig.put(key.sku, key.warehouse, level[key])
    rig.pull()
    rig.reset()

    report = rig.push()

    calls = rig.calls()
    assert real_stock(rig) == level, "a key has no record, a duplicate or a wrong value"
    by_key = {key: recs[0]["_id"] for key, recs in rig.stock_by_key().items()}
    assert {k: by_key[k] for k in existing} == seeded, "an existing record was not reused"
    bindings = rig.store.bindings(rig.pipeline, LEVEL)
    assert {k: bindings[level_ref(k)].crm_id for k in keys} == by_key
    assert (calls[UPDATE], report.updated) == (len(differing), len(differing))
    assert (calls[CREATE], report.created) == (len(keys) - len(existing),) * 2
    # one paged read of StockObj (100 a page, plus the short last page), no per-row look-up
    assert rig.queries()["StockObj"] == len(existing) // 100 + 1
    assert calls[TOKEN] == 1


def test_first_push_binds_existing_records_in_bulk(store: StateStore, rigs: list[Rig]) -> None:
    """300 keys, 100 already in the CRM (every product and warehouse among them)."""
    rig = Rig(store, mirror=False)
    rigs.append(rig)
    rig.emulator.add_warehouse("WH-WEST")
    keys = keys_for(rig, 300, ("WH-MAIN", "WH-EAST", "WH-WEST"))
    existing = [keys[3 * p + p % 3] for p in range(100)]
    first_push(rig, keys, existing)
    records = len(rig.emulator.stock_records())
    assert records == 300
    assert rig.calls()[QUERY] <= math.ceil(records / 100) + 2, rig.queries()


def test_first_push_resolves_products_the_crm_has_no_stock_for_in_bulk(
    store: StateStore, rigs: list[Rig]
) -> None:
    """SKUs no StockObj references yet are resolved 100 codes a query, not one query each."""
    rig = Rig(store, mirror=False)
    rigs.append(rig)
    keys = keys_for(rig, 300)
    existing = keys[::3]  # 100 records over 100 of the 150 products
    first_push(rig, keys, existing)
    unreferenced = {k.sku for k in keys} - {k.sku for k in existing}
    assert len(unreferenced) == 50
    # ProductObj: two to map the bound records' ids to codes, then one IN query per batch of
    # outbox rows (200 rows: the 300 keys come in two) for the products it brings in first
    batches = math.ceil(len(keys) / PushOptions().batch_size)
    assert rig.queries() == Counter({"StockObj": 2, "ProductObj": 2 + batches, "WarehouseObj": 1})


def test_bulk_resolution_records_misses_and_blocks_unknown_products(
    store: StateStore, rigs: list[Rig]
) -> None:
    """A code the CRM lacks is missed once in bulk, blocked, and not asked again per row."""
    rig = Rig(store, mirror=False)
    rigs.append(rig)
    keys = keys_for(rig, 40)
    rig.put("NO-SUCH-SKU", WAREHOUSES[0], 3)
    for i, key in enumerate(keys):
        rig.put(key.sku, key.warehouse, i + 1)
    rig.pull()
    rig.reset()

    report = rig.push()

    assert (report.created, report.blocked) == (40, 1)
    assert real_stock(rig) == {k: Decimal(i + 1) for i, k in enumerate(keys)}
    # one (empty) paged read of StockObj to bind in bulk, one IN query per referenced object
    assert rig.queries() == Counter({"StockObj": 1, "ProductObj": 1, "WarehouseObj": 1})
