"""Lines removed from an approved K/3 Cloud bill, through the real ``stocksync once``
against both emulators: the next run withdraws them, and the ledger and the CRM
equal the ERP's on-hand without reconcile (issue 13 item 2)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import yaml

from sync.model import MovementKind, StockKey
from sync.state import StateStore
from tests.e2e.conftest import Systems
from tests.reconcile.conftest import cli

MAIN, EAST = "WH-MAIN", "WH-EAST"


def once(systems: Systems) -> Path:
    path = systems.tmp / "stocksync.yaml"
    path.write_text(yaml.safe_dump(systems.config()))
    code, out = cli("once", "-c", str(path))
    assert code == 0, out
    return path


def ledger(systems: Systems) -> tuple[dict[StockKey, Decimal], set[MovementKind]]:
    """Non-zero levels, and the kinds of every movement the ledger holds."""
    store = StateStore(f"sqlite:///{systems.tmp / 'state.db'}")
    try:
        levels = {k: v for k, v in store.levels("main").items() if v}
        kinds = {store.movement("main", key).kind for key in store.movement_keys("main")}  # type: ignore[union-attr]
    finally:
        store.close()
    return levels, kinds


def assert_all_equal(systems: Systems, expected: dict[StockKey, Decimal]) -> None:
    levels, kinds = ledger(systems)
    assert systems.erp_stock() == expected
    assert levels == expected
    assert {k: v for k, v in systems.crm_stock().items() if v} == expected
    assert MovementKind.ADJUSTMENT not in kinds


def test_a_count_gain_edited_to_keep_its_first_line_withdraws_the_other_two(
    systems: Systems,
) -> None:
    erp, form = systems.erp, "STK_StockCountGain"
    fid = erp.create_document(
        form,
        [
            {"material": "A-100", "qty": "5", "stock": MAIN},
            {"material": "PHONE-X", "qty": "7", "stock": MAIN},
            {"material": "A-100", "qty": "2", "stock": EAST},
        ],
    )
    erp.audit(form, fid)
    once(systems)
    assert_all_equal(
        systems,
        {
            StockKey("A-100", MAIN): Decimal(5),
            StockKey("PHONE-X", MAIN): Decimal(7),
            StockKey("A-100", EAST): Decimal(2),
        },
    )

    _, second, third = erp.line_ids(form, fid)
    erp.remove_line(form, fid, second)
    erp.remove_line(form, fid, third)
    once(systems)

    assert_all_equal(systems, {StockKey("A-100", MAIN): Decimal(5)})
    assert systems.crm_stock()[StockKey("PHONE-X", MAIN)] == 0


def test_an_outbound_unaudited_trimmed_and_reaudited_withdraws_the_line(
    systems: Systems,
) -> None:
    """The other way to remove a line: un-audit, delete the line, audit again; on a
    server whose status changes do not stamp FModifyDate (the removal does)."""
    erp, form = systems.erp, "SAL_OUTSTOCK"
    erp.store.status_bumps_modify_date = False
    erp.set_opening("TABLET-S", EAST, 40)
    erp.set_opening("PHONE-X", EAST, 10)
    fid = erp.create_document(
        form,
        [
            {"material": "TABLET-S", "qty": "0.25", "stock": EAST},
            {"material": "PHONE-X", "qty": "3", "stock": EAST},
        ],
    )
    erp.audit(form, fid)
    once(systems)
    assert_all_equal(
        systems,
        {StockKey("TABLET-S", EAST): Decimal("39.75"), StockKey("PHONE-X", EAST): Decimal(7)},
    )

    erp.unaudit(form, fid)
    erp.remove_line(form, fid, erp.line_ids(form, fid)[1])
    erp.audit(form, fid)
    once(systems)

    assert_all_equal(
        systems,
        {StockKey("TABLET-S", EAST): Decimal("39.75"), StockKey("PHONE-X", EAST): Decimal(10)},
    )
