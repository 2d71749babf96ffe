"""A real Tryton server → the real engine (SQLite) → the Fxiaoke emulator over HTTP.

Tryton's stock comes from its own documents: purchases received, sales shipped,
a customer return (a sale with a negative line), a purchase return, a transfer
between the two warehouses and a stocktake with a difference (see
``tests.tryton.scenario``). The truth is Tryton's own `quantity` per warehouse,
read with proteus, not through our connector: the CRM must show exactly that
after every cycle, with one StockObj per (product, warehouse).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors._emulator import LoopbackServer
from connectors.fxiaoke.emulator import FxiaokeEmulator
from sync.ledger import verify
from sync.runtime import Pipeline, run_cycle
from tests.tryton import rig, scenario
from tests.tryton import server as tryton

pytestmark = pytest.mark.tryton


def crm_stock(crm: FxiaokeEmulator) -> dict[tuple[str, str], Decimal]:
    return {k: v for k, v in crm.stock_by_code().items() if v}


@pytest.fixture
def synced(
    tryton_server: tryton.TrytonServer,
    tryton_scenario: dict[str, int],
    tryton_proteus: Any,
    tmp_path: Path,
) -> Iterator[tuple[Pipeline, FxiaokeEmulator]]:
    crm = rig.crm_for(tryton_proteus)
    with LoopbackServer(crm) as srv:
        pipeline = rig.pipeline(
            tryton_server, crm, srv.url, tmp_path / "state.db", pull={"overlap_s": 5}
        )
        yield pipeline, crm
        pipeline.close()


def test_crm_equals_trytons_own_quantities_cycle_after_cycle(
    synced: tuple[Pipeline, FxiaokeEmulator], tryton_proteus: Any
) -> None:
    pipeline, crm = synced
    run_cycle(pipeline)
    truth = scenario.warehouse_quantities(tryton_proteus)
    assert {wh for _sku, wh in truth} == set(scenario.WAREHOUSES), truth
    assert crm_stock(crm) == truth
    assert len(crm.stock_records()) == len(truth)
    assert verify(pipeline.store, "tryton") == {}

    # phase 2, more documents (in WH2: test_live owns SKU-003 at WH in the shared
    # server): one purchase of three lines received in ONE shipment, which does
    # its three incoming moves in one transaction (one write_date: the
    # (write_date, id) cursor must not skip any), a sale shipped from the second warehouse, a
    # customer return into it, a transfer back and a stocktake there
    receipt = scenario.purchase_received(
        tryton_proteus, "WH2", {"SKU-001": 3, "SKU-002": 4, "SKU-003": 5}
    )
    assert len(set(scenario.shipment_in_stamps(tryton_proteus, receipt))) == 1
    scenario.sale_shipped(tryton_proteus, "WH2", {"SKU-001": 6, "SKU-003": 1})
    scenario.sale_return(tryton_proteus, "WH2", {"SKU-003": 1})
    scenario.transfer(tryton_proteus, "WH2", "WH", {"SKU-002": 1})
    scenario.stocktake(tryton_proteus, "WH2", {"SKU-002": 2})
    result = run_cycle(pipeline)
    assert result.pulled > 0
    assert crm_stock(crm) == scenario.warehouse_quantities(tryton_proteus)
    assert verify(pipeline.store, "tryton") == {}

    # nothing changed: the next cycle writes nothing to the CRM
    calls_before = sum(crm.calls.values())
    run_cycle(pipeline)
    token_and_queries = sum(crm.calls.values()) - calls_before
    assert token_and_queries == 0


def test_reconcile_against_tryton_finds_and_fixes_a_crm_edit(
    synced: tuple[Pipeline, FxiaokeEmulator], tryton_proteus: Any
) -> None:
    from sync.reconcile_run import reconcile

    pipeline, crm = synced
    run_cycle(pipeline)
    clean = reconcile(pipeline)
    assert clean.remaining == 0, [f.kind for f in clean.conflicts]

    # someone edits a StockObj by hand in the CRM
    record = crm.stock_records()[0]
    crm.store.update("StockObj", {"_id": record["_id"], "real_stock": "12345"})
    found = reconcile(pipeline)
    assert [f.kind for f in found.conflicts] == ["crm_modified"]
    assert found.conflicts[0].crm == Decimal(12345)

    fixed = reconcile(pipeline, apply_changes=True)
    assert fixed.remaining == 0
    assert crm_stock(crm) == scenario.warehouse_quantities(tryton_proteus)
    assert reconcile(pipeline).remaining == 0
