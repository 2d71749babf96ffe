"""K/3 Cloud locks (锁库) → real engine → Fxiaoke over HTTP: on hand, available and blocked.

After every cycle the CRM's StockObj must show real_stock = on hand, blocked_stock =
the ERP's FBaseLockQty and available_stock = on hand − locked, which is the ERP's own
FBaseAvbQty when the ledger equals the ERP (``connectors.k3cloud.stock_reads``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from connectors.k3cloud.locks import LockRefused
from connectors.k3cloud.store import INVENTORY
from sync.config import settings_model
from sync.ledger import verify
from sync.runtime import Pipeline, build_pipeline, open_store, run_cycle
from tests.e2e.conftest import Systems

#: (real_stock, available_stock, blocked_stock)
Figures = tuple[Decimal, Decimal, Decimal]
CRM_WRITES = ("/cgi/crm/v2/data/create", "/cgi/crm/v2/data/update")


def crm_figures(systems: Systems) -> dict[tuple[str, str], Figures]:
    """Every StockObj's three figures per (product code, warehouse number)."""
    crm = systems.crm
    products = {r["_id"]: r["product_code"] for r in crm.records("ProductObj")}
    warehouses = {r["_id"]: r["number"] for r in crm.records("WarehouseObj")}
    return {
        (products[r["product_id"]], warehouses[r["warehouse_id"]]): (
            Decimal(str(r["real_stock"])),
            Decimal(str(r["available_stock"])),
            Decimal(str(r["blocked_stock"])),
        )
        for r in crm.stock_records()
    }


def erp_figures(systems: Systems) -> dict[tuple[str, str], Figures]:
    """STK_Inventory's FBaseQty, FBaseAvbQty and FBaseLockQty summed per material × stock."""
    totals: dict[tuple[str, str], Figures] = {}
    for row in systems.erp.store.rows(INVENTORY):
        key = (row["fmaterialid.fnumber"], row["fstockid.fnumber"])
        real, available, blocked = totals.get(key, (Decimal(0), Decimal(0), Decimal(0)))
        totals[key] = (
            real + row["fbaseqty"],
            available + row["fbaseavbqty"],
            blocked + row["fbaselockqty"],
        )
    return totals


def figures(real: int | str, available: int | str, blocked: int | str) -> Figures:
    return Decimal(real), Decimal(available), Decimal(blocked)


def cycle(pipeline: Pipeline, systems: Systems, expected: dict[tuple[str, str], Figures]) -> None:
    """One cycle; then the CRM shows ``expected`` for those keys, as the ERP does."""
    run_cycle(pipeline)
    crm, erp = crm_figures(systems), erp_figures(systems)
    for key, want in expected.items():
        assert crm[key] == want, key
        assert erp[key] == want, key  # FBaseAvbQty is the CRM's available
    assert verify(pipeline.store, "main") == {}


def test_a_reservation_made_changed_shipped_and_cancelled(systems: Systems) -> None:
    erp = systems.erp
    erp.set_opening("A-100", "WH-MAIN", 100)
    erp.set_opening("PHONE-X", "WH-MAIN", 50)
    pipeline = systems.pipeline()
    a, phone = ("A-100", "WH-MAIN"), ("PHONE-X", "WH-MAIN")
    untouched = figures(50, 50, 0)
    cycle(pipeline, systems, {a: figures(100, 100, 0), phone: untouched})
    order = erp.lock("A-100", "WH-MAIN", 30)  # made
    cycle(pipeline, systems, {a: figures(100, 70, 30), phone: untouched})
    erp.change_lock(order, 45)  # changed
    cycle(pipeline, systems, {a: figures(100, 55, 45), phone: untouched})
    erp.ship_locked(order, 20)  # part shipped: on hand and reserved drop, available stays
    cycle(pipeline, systems, {a: figures(80, 55, 25), phone: untouched})
    erp.ship_locked(order)  # the rest shipped: released by shipment
    cycle(pipeline, systems, {a: figures(55, 55, 0), phone: untouched})
    second = erp.lock("A-100", "WH-MAIN", "12.5")
    cycle(pipeline, systems, {a: figures(55, "42.5", "12.5"), phone: untouched})
    erp.unlock(second)  # released by cancellation: on hand untouched
    cycle(pipeline, systems, {a: figures(55, 55, 0), phone: untouched})
    pipeline.close()


def test_a_reservation_in_one_warehouse_of_three(systems: Systems) -> None:
    erp, crm = systems.erp, systems.crm
    crm.add_warehouse("WH-WEST", "WH-WEST")
    for stock, qty in (("WH-MAIN", 80), ("WH-EAST", 10), ("WH-WEST", 25)):
        erp.set_opening("A-100", stock, qty)
    pipeline = systems.pipeline()
    main, east, west = (("A-100", wh) for wh in ("WH-MAIN", "WH-EAST", "WH-WEST"))

    def only_east(*east_figures: int) -> dict[tuple[str, str], Figures]:
        """The other two warehouses stay untouched: available = on hand, blocked 0."""
        return {main: figures(80, 80, 0), east: figures(*east_figures), west: figures(25, 25, 0)}

    cycle(pipeline, systems, only_east(10, 10, 0))
    order = erp.lock("A-100", "WH-EAST", 4)
    cycle(pipeline, systems, only_east(10, 6, 4))
    erp.ship_locked(order, 3)
    cycle(pipeline, systems, only_east(7, 6, 1))
    erp.unlock(order)
    cycle(pipeline, systems, only_east(7, 7, 0))
    pipeline.close()


def test_reservations_larger_than_on_hand_show_negative_available(systems: Systems) -> None:
    erp = systems.erp
    assert erp.lock_beyond_stock  # the emulator's default
    erp.set_opening("A-100", "WH-MAIN", 20)
    pipeline = systems.pipeline()
    key = ("A-100", "WH-MAIN")
    cycle(pipeline, systems, {key: figures(20, 20, 0)})
    order = erp.lock("A-100", "WH-MAIN", 30)
    cycle(pipeline, systems, {key: figures(20, -10, 30)})  # as FBaseAvbQty shows it
    erp.ship_locked(order, 20)  # every unit on hand shipped, 10 still reserved
    cycle(pipeline, systems, {key: figures(0, -10, 10)})
    erp.unlock(order)
    cycle(pipeline, systems, {key: figures(0, 0, 0)})
    pipeline.close()


def test_with_the_switch_off_the_erp_refuses_a_lock_over_stock(systems: Systems) -> None:
    erp = systems.erp
    erp.lock_beyond_stock = False
    erp.set_opening("A-100", "WH-MAIN", 20)
    pipeline = systems.pipeline()
    key = ("A-100", "WH-MAIN")
    cycle(pipeline, systems, {key: figures(20, 20, 0)})
    with pytest.raises(LockRefused):
        erp.lock("A-100", "WH-MAIN", 25)
    cycle(pipeline, systems, {key: figures(20, 20, 0)})
    order = erp.lock("A-100", "WH-MAIN", 20)
    cycle(pipeline, systems, {key: figures(20, 0, 20)})
    with pytest.raises(LockRefused):
        erp.lock("A-100", "WH-MAIN", 1)
    erp.ship_locked(order, 5)
    cycle(pipeline, systems, {key: figures(15, 0, 15)})
    pipeline.close()


def test_two_locks_on_one_key_add_up(systems: Systems) -> None:
    erp = systems.erp
    erp.set_opening("TABLET-S", "WH-EAST", 40)
    pipeline = systems.pipeline()
    key = ("TABLET-S", "WH-EAST")
    first, second = erp.lock("TABLET-S", "WH-EAST", 5), erp.lock("TABLET-S", "WH-EAST", 7)
    cycle(pipeline, systems, {key: figures(40, 28, 12)})
    erp.ship_locked(first)
    cycle(pipeline, systems, {key: figures(35, 28, 7)})
    erp.change_lock(second, 2)
    cycle(pipeline, systems, {key: figures(35, 33, 2)})
    pipeline.close()


def test_a_lock_on_one_lot_of_a_lot_split_key(systems: Systems) -> None:
    erp = systems.erp
    erp.set_opening("A-100", "WH-MAIN", 30, lot="L1")
    erp.set_opening("A-100", "WH-MAIN", 20, lot="L2")
    pipeline = systems.pipeline()
    key = ("A-100", "WH-MAIN")
    cycle(pipeline, systems, {key: figures(50, 50, 0)})
    in_l2 = erp.lock("A-100", "WH-MAIN", 12, lot="L2")
    in_l1 = erp.lock("A-100", "WH-MAIN", 9, lot="L1")
    cycle(pipeline, systems, {key: figures(50, 29, 21)})
    erp.ship_locked(in_l2)  # ships from L2, the lot the lock holds
    cycle(pipeline, systems, {key: figures(38, 29, 9)})
    assert erp.inventory() == {key: Decimal(38)}
    erp.unlock(in_l1)
    cycle(pipeline, systems, {key: figures(38, 38, 0)})
    pipeline.close()


def test_a_quiet_cycle_writes_nothing_and_a_change_writes_its_key_once(systems: Systems) -> None:
    erp, crm = systems.erp, systems.crm
    for material in ("A-100", "PHONE-X", "TABLET-S"):
        erp.set_opening(material, "WH-MAIN", 10)
    order = erp.lock("PHONE-X", "WH-MAIN", 4)
    pipeline = systems.pipeline()
    cycle(pipeline, systems, {("PHONE-X", "WH-MAIN"): figures(10, 6, 4)})
    crm.reset_counters()
    result = run_cycle(pipeline)  # nothing changed in the ERP
    assert result.reserved == 0
    assert sum(crm.calls[path] for path in CRM_WRITES) == 0
    erp.change_lock(order, 5)
    crm.reset_counters()
    result = run_cycle(pipeline)
    assert result.reserved == 1
    assert crm.calls["/cgi/crm/v2/data/update"] == 1 and crm.calls["/cgi/crm/v2/data/create"] == 0
    assert crm_figures(systems)[("PHONE-X", "WH-MAIN")] == figures(10, 5, 5)
    pipeline.close()


def test_reservations_off_shows_available_as_on_hand(systems: Systems) -> None:
    erp = systems.erp
    erp.set_opening("A-100", "WH-MAIN", 20)
    erp.lock("A-100", "WH-MAIN", 8)
    config = systems.config()
    config["pipelines"][0]["erp"]["reservations"] = False
    settings = settings_model().model_validate(config)
    pipeline = build_pipeline(settings.pipelines[0], open_store(settings))
    run_cycle(pipeline)
    assert crm_figures(systems)[("A-100", "WH-MAIN")] == figures(20, 20, 0)
    erp.lock("A-100", "WH-MAIN", 2)
    run_cycle(pipeline)
    assert crm_figures(systems)[("A-100", "WH-MAIN")] == figures(20, 20, 0)
    assert erp_figures(systems)[("A-100", "WH-MAIN")] == figures(20, 10, 10)  # the ERP has them
    assert pipeline.store.reserved_units("main") == {}
    pipeline.close()
