"""Reserved stock: a real Tryton → the engine (SQLite) → the Fxiaoke emulator over HTTP.

Sales from Tryton's own documents reserve stock when their customer shipment is
assigned, and release it when the shipment is done or cancelled. After every
step a cycle runs and, for the keys involved, the CRM's StockObj must show
``real_stock`` = Tryton's ``quantity``, ``blocked_stock`` = the stock the
assigned moves hold, ``available_stock`` = Tryton's ``quantity`` with context
``stock_assign`` — both hard-coded and read from Tryton. And for every
(product, warehouse) Tryton stocks, the connector's on hand − reserved must be
Tryton's own ``stock_assign`` quantity (JSON-RPC, not our mapping).

The products RES-1..3 are this module's own (one test each, RES-1 in both
warehouses), so the figures are exact. No move is left assigned (other modules
forecast with assigned moves).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.tryton.source import TrytonSource
from sync.runtime import Pipeline, run_cycle
from tests.tryton import documents, rig, scenario
from tests.tryton import server as tryton

pytestmark = pytest.mark.tryton

Key = tuple[str, str]
#: (real_stock, blocked_stock, available_stock) of one StockObj
Figures = tuple[Decimal, Decimal, Decimal]
RES = ("RES-1", "RES-2", "RES-3")
Synced = tuple[Pipeline, FxiaokeEmulator, TrytonSource]


def crm_figures(crm: FxiaokeEmulator) -> dict[Key, Figures]:
    products = {r["_id"]: r["product_code"] for r in crm.records("ProductObj")}
    warehouses = {r["_id"]: r["number"] for r in crm.records("WarehouseObj")}
    out: dict[Key, Figures] = {}
    for r in crm.stock_records():
        key = (str(products[r["product_id"]]), str(warehouses[r["warehouse_id"]]))
        assert key not in out, f"duplicate StockObj for {key}"
        names = ("real_stock", "blocked_stock", "available_stock")
        real, blocked, available = (Decimal(str(r.get(n) or 0)) for n in names)
        out[key] = (real, blocked, available)
    return out


def crm_record(crm: FxiaokeEmulator, key: Key) -> dict[str, Any]:
    products = {r["_id"]: r["product_code"] for r in crm.records("ProductObj")}
    warehouses = {r["_id"]: r["number"] for r in crm.records("WarehouseObj")}
    (record,) = (
        r
        for r in crm.stock_records()
        if (products[r["product_id"]], warehouses[r["warehouse_id"]]) == key
    )
    return dict(record)


def trytons_available(source: TrytonSource) -> dict[Key, Decimal]:
    """Tryton's ``quantity`` with ``stock_assign`` per (sku, warehouse), non-zero, over JSON-RPC."""
    client = source.client
    result: dict[Key, Decimal] = {}
    for code in scenario.WAREHOUSES:
        (wh,) = client.search_read(
            "stock.location", [["code", "=", code], ["type", "=", "warehouse"]], fields=("id",)
        )
        context = {"locations": [wh["id"]], "stock_assign": True, "active_test": False}
        for row in client.search_read(
            "product.product",
            [["type", "in", ["goods", "assets"]]],
            fields=("code", "quantity"),
            context=context,
        ):
            qty = Decimal(str(row.get("quantity") or 0))
            if qty and row.get("code"):
                result[(str(row["code"]), code)] = qty
    return result


def check_against_tryton(source: TrytonSource) -> tuple[dict[Key, Decimal], dict[Key, Decimal]]:
    """Every key: on hand − reserved == Tryton's stock_assign quantity. Returns (on hand,
    Tryton's available)."""
    on_hand = {(r.sku, r.warehouse): r.qty for r in source.on_hand()}
    snapshot = source.reserved()
    assert snapshot is not None
    reserved = {(r.sku, r.warehouse): r.qty for r in snapshot}
    assert all(q > 0 for q in reserved.values()), reserved
    available = trytons_available(source)
    keys = on_hand.keys() | reserved.keys() | available.keys()
    zero = Decimal(0)
    ours = {k: on_hand.get(k, zero) - reserved.get(k, zero) for k in keys}
    assert ours == {k: available.get(k, zero) for k in keys}
    return on_hand, available


@pytest.fixture
def reserving(
    tryton_server: tryton.TrytonServer,
    tryton_scenario: dict[str, int],
    tryton_proteus: Any,
    tryton_source: TrytonSource,
    tmp_path: Path,
) -> Iterator[Synced]:
    for sku in RES:
        documents.product(tryton_proteus, sku)
    crm = rig.crm_for(tryton_proteus)
    with LoopbackServer(crm) as srv:
        pipeline = rig.pipeline(tryton_server, crm, srv.url, tmp_path / "state.db")
        yield pipeline, crm, tryton_source
        pipeline.close()


def step(
    synced: tuple[Pipeline, FxiaokeEmulator, TrytonSource],
    expected: dict[Key, tuple[int, int, int]],
) -> None:
    """One cycle, then: the CRM shows ``expected`` (real, blocked, available) for those keys,
    real is Tryton's quantity and available Tryton's stock_assign quantity."""
    pipeline, crm, source = synced
    run_cycle(pipeline)
    on_hand, available = check_against_tryton(source)
    figures = crm_figures(crm)
    want = {k: tuple(Decimal(v) for v in values) for k, values in expected.items()}
    assert {k: figures.get(k) for k in expected} == want
    for key, (real, _blocked, avail) in want.items():
        assert on_hand.get(key, Decimal(0)) == real, key
        assert available.get(key, Decimal(0)) == avail, key


def test_sales_reserve_then_ship_or_cancel(reserving: Synced, tryton_proteus: Any) -> None:
    config = tryton_proteus
    wh, wh2 = ("RES-1", "WH"), ("RES-1", "WH2")
    scenario.purchase_received(config, "WH", {"RES-1": 10})
    scenario.purchase_received(config, "WH2", {"RES-1": 4})
    step(reserving, {wh: (10, 0, 10), wh2: (4, 0, 4)})

    # made: sale A's shipment assigned in WH; RES-1 is also held in WH2, whose record
    # is not written at all
    untouched = crm_record(reserving[1], wh2)
    sale_a = scenario.sale_assigned(config, "WH", {"RES-1": 3})
    step(reserving, {wh: (10, 3, 7), wh2: (4, 0, 4)})
    assert crm_record(reserving[1], wh2) == untouched

    # changed: a second sale assigned for the same product and warehouse
    sale_b = scenario.sale_assigned(config, "WH", {"RES-1": 2})
    step(reserving, {wh: (10, 5, 5), wh2: (4, 0, 4)})

    # sale A through Tryton's steps: picked (storage → output done, output → customer
    # back in draft: Tryton holds nothing for it), packed (output → customer
    # assigned: held again), done (on hand −3, reserved −3, available unchanged)
    scenario.shipment_out(config, sale_a, "pick", state="picked")
    step(reserving, {wh: (10, 2, 8)})
    scenario.shipment_out(config, sale_a, "pack", state="packed")
    step(reserving, {wh: (10, 5, 5)})
    scenario.shipment_out(config, sale_a, "do", state="done")
    step(reserving, {wh: (7, 2, 5), wh2: (4, 0, 4)})

    # released by cancellation of sale B's assigned shipment
    scenario.shipment_out(config, sale_b, "cancel", state="cancelled")
    step(reserving, {wh: (7, 0, 7), wh2: (4, 0, 4)})
    assert reserving[2].reserved() == []


def test_internal_and_forced_reservations_follow_tryton(
    reserving: Synced, tryton_proteus: Any
) -> None:
    config = tryton_proteus
    res2, res3 = ("RES-2", "WH"), ("RES-3", "WH2")
    scenario.purchase_received(config, "WH", {"RES-2": 6})
    scenario.purchase_received(config, "WH2", {"RES-3": 4})
    step(reserving, {res2: (6, 0, 6), res3: (4, 0, 4)})

    # an internal shipment assigned inside WH (storage → a shelf below it): Tryton's
    # stock_assign quantity holds the goods until it is done, whatever the
    # destination, so they are reserved at WH; done, they are back
    storage = scenario._warehouse(config, "WH").storage_location
    shelf = documents.location(config, "RES-SHELF", storage)
    inside = documents.internal_assigned(config, storage, shelf, {"RES-2": 4})
    step(reserving, {res2: (6, 4, 2)})
    documents.internal_done(config, inside)
    step(reserving, {res2: (6, 0, 6)})

    # a sale of 9 from WH2, which has 4: assign_try assigns the 4 (Tryton splits the
    # move) and the shipment waits; assign_force assigns the rest, and Tryton's own
    # available goes below zero
    sale = scenario.sale_assigned(config, "WH2", {"RES-3": 9}, whole=False)
    scenario.shipment_out(config, sale, state="waiting")
    step(reserving, {res3: (4, 4, 0)})
    scenario.shipment_out(config, sale, "assign_force", state="assigned")
    step(reserving, {res3: (4, 9, -5)})
    scenario.shipment_out(config, sale, "cancel", state="cancelled")
    step(reserving, {res3: (4, 0, 4)})
    assert reserving[2].reserved() == []


def test_reserved_is_one_search_read_and_can_be_off(
    tryton_server: tryton.TrytonServer, tryton_source: TrytonSource
) -> None:
    from connectors.tryton.source import TrytonSettings, build
    from sync.ports import ConnectorContext

    tryton_source.reserved()  # product types and location tree read once, then cached
    calls: list[str] = []
    original = tryton_source.client.call

    def counting(method: str, *params: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return original(method, *params, **kwargs)

    tryton_source.client.call = counting  # type: ignore[method-assign]
    tryton_source.reserved()
    assert calls == ["model.stock.move.search_read"]

    off = build(
        TrytonSettings(**tryton_server.settings(reservations=False)),
        ConnectorContext(sleep=lambda _s: None),
    )
    assert off.reserved() is None
    off.close()
