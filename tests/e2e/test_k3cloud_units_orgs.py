"""K/3 Cloud units of measure and stock organisations, through the real engine:
the ledger and the CRM equal the ERP's on-hand after each cycle (issue 13, items 5, 8)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sync.config import settings_model
from sync.ledger import verify
from sync.model import StockKey
from sync.runtime import Pipeline, build_pipeline, open_store, run_cycle
from tests.e2e.conftest import Systems


def pipeline_with(systems: Systems, **erp: Any) -> Pipeline:
    config = systems.config()
    config["pipelines"][0]["erp"].update(erp)
    settings = settings_model().model_validate(config)
    return build_pipeline(settings.pipelines[0], open_store(settings))


def ledger(pipeline: Pipeline) -> dict[StockKey, Decimal]:
    return {k: v for k, v in pipeline.store.levels("main").items() if v}


def approved(systems: Systems, form: str, *lines: dict[str, str]) -> int:
    fid = systems.erp.create_document(form, list(lines))
    systems.erp.audit(form, fid)
    return fid


@pytest.mark.parametrize("knows_base_key", [True, False])
def test_two_boxes_shipped_leave_76_pieces(systems: Systems, knows_base_key: bool) -> None:
    erp = systems.erp
    erp.add_material("A-100", "Pcs")
    erp.add_conversion("A-100", "Box", 12)
    erp.set_opening("A-100", "WH-MAIN", 100)
    if not knows_base_key:
        erp.forget_fields("SAL_OUTSTOCK", "FBaseUnitQty")
    pipeline = pipeline_with(systems)
    run_cycle(pipeline)
    approved(
        systems,
        "SAL_OUTSTOCK",
        {"material": "A-100", "qty": "2", "unit": "Box", "stock": "WH-MAIN"},
    )
    run_cycle(pipeline)
    key = StockKey("A-100", "WH-MAIN")
    assert systems.erp_stock() == {key: Decimal(76)}
    assert ledger(pipeline) == {key: Decimal(76)}
    assert systems.crm_stock()[key] == Decimal(76)
    assert verify(pipeline.store, "main") == {}
    pipeline.close()


def test_kilograms_received_into_grams_and_an_unconvertible_line(systems: Systems) -> None:
    erp = systems.erp
    erp.add_material("TABLET-S", "g")
    erp.add_conversion("TABLET-S", "kg", 1000)
    erp.forget_fields("STK_InStock", "FBaseUnitQty")
    pipeline = pipeline_with(systems)
    run_cycle(pipeline)
    approved(
        systems,
        "STK_InStock",
        {"material": "TABLET-S", "qty": "1.5", "unit": "kg", "stock": "WH-EAST"},
    )
    run_cycle(pipeline)
    key = StockKey("TABLET-S", "WH-EAST")
    assert ledger(pipeline) == systems.erp_stock() == {key: Decimal(1500)}
    assert systems.crm_stock()[key] == Decimal(1500)
    # a sack typed in with its own weight (floating conversion): no rate to read
    approved(
        systems,
        "STK_InStock",
        {
            "material": "TABLET-S",
            "qty": "1",
            "unit": "Sack",
            "base_qty": "25000",
            "stock": "WH-EAST",
        },
    )
    run_cycle(pipeline)
    assert systems.erp_stock() == {key: Decimal(26500)}
    assert ledger(pipeline) == {key: Decimal(1500)}  # quarantined, never counted wrong
    assert systems.crm_stock()[key] == Decimal(1500)
    (conflict,) = pipeline.store.conflicts(pipeline="main", kind="record_error")
    assert "no conversion from unit Sack to base unit g of material TABLET-S" in str(
        conflict.detail["reason"]
    )
    pipeline.close()


@pytest.mark.parametrize(
    ("orgs", "expected"),
    [
        (["100"], {"WH-MAIN": Decimal(31)}),
        (["200"], {"WH-EAST": Decimal(20)}),
        (["100", "200"], {"WH-MAIN": Decimal(31), "WH-EAST": Decimal(20)}),
    ],
)
def test_a_transfer_between_orgs_counts_each_side_in_its_own_org(
    systems: Systems, orgs: list[str], expected: dict[str, Decimal]
) -> None:
    erp = systems.erp
    erp.set_warehouse_org("WH-MAIN", "100")
    erp.set_warehouse_org("WH-EAST", "200")
    erp.set_opening("PHONE-X", "WH-MAIN", 51)
    pipeline = pipeline_with(systems, stock_orgs=orgs)
    run_cycle(pipeline)
    approved(
        systems,
        "STK_TransferDirect",
        {"material": "PHONE-X", "qty": "20", "src_stock": "WH-MAIN", "dest_stock": "WH-EAST"},
    )
    run_cycle(pipeline)
    want = {StockKey("PHONE-X", wh): qty for wh, qty in expected.items()}
    in_scope = {k: v for k, v in systems.erp_stock().items() if k.warehouse in expected}
    assert in_scope == want
    assert ledger(pipeline) == want
    assert {k: v for k, v in systems.crm_stock().items() if v} == want
    assert verify(pipeline.store, "main") == {}
    pipeline.close()
