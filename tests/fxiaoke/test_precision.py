"""Field precision end to end: a memory ERP, the ledger, the real Fxiaoke sink, the emulator.

StockObj numbers hold 2 decimals (reference §7) and the emulator refuses more, so a
level of 139.625 must be written rounded (half-even: 139.62), count as unchanged
on the next push, and reconcile as in sync.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from rich.console import Console

from sync.cli.status import collect, render
from sync.model import StockKey
from sync.reconcile import FindingKind
from sync.reconcile_run import reconcile
from tests.fxiaoke.rig import CREATE, UPDATE
from tests.fxiaoke.world import KEY, MakeWorld, make_world

__all__ = ["make_world"]


def test_a_level_with_three_decimals_is_written_rounded_and_then_left_alone(
    make_world: MakeWorld,
) -> None:
    w = make_world()
    w.put("139.625")
    assert w.cycle() == (1, 0)
    rec = w.record()
    assert (rec["real_stock"], rec["available_stock"], rec["blocked_stock"]) == (
        "139.62",
        "139.62",
        "0",
    )
    assert w.pipeline.store.level(w.name, KEY) == Decimal("139.625")  # the ledger keeps it all
    # a level the CRM shows the same (139.621 → 139.62) is no write
    w.emulator.reset_counters()
    w.put("-0.004")
    assert w.cycle() == (0, 1)
    assert w.emulator.calls[CREATE] == w.emulator.calls[UPDATE] == 0
    result = reconcile(w.pipeline)
    assert result.conflicts == [] and result.remaining == 0


def test_a_level_just_below_zero_shows_zero_and_costs_no_write(make_world: MakeWorld) -> None:
    """-0.001 at 2 dp is "-0.00": the same 0 the CRM shows, so not a change to push
    (found by the push recovery property test: a negative zero hashed apart)."""
    w = make_world()
    w.put("0.375")
    w.cycle()
    w.put("-0.375")
    assert w.cycle() == (1, 0)
    assert w.record()["real_stock"] == "0"
    w.emulator.reset_counters()
    w.put("-0.001")
    assert w.cycle() == (0, 1)
    assert w.emulator.calls[CREATE] == w.emulator.calls[UPDATE] == 0


def test_reconcile_accepts_either_rounding_of_a_tie_and_nothing_else(
    make_world: MakeWorld,
) -> None:
    w = make_world()
    w.put("139.625")
    w.cycle()
    rid = w.record()["_id"]
    w.emulator.store.update("StockObj", {"_id": rid, "real_stock": "139.63"})  # half-up
    assert reconcile(w.pipeline).conflicts == []
    w.emulator.store.update("StockObj", {"_id": rid, "real_stock": "139.61"})
    (finding,) = reconcile(w.pipeline).conflicts
    assert finding.kind is FindingKind.CRM_MODIFIED and finding.crm == Decimal("139.61")
    assert finding.ledger == Decimal("139.625") and finding.pushed == Decimal("139.62")


def test_a_reservation_is_sent_as_blocked_stock(make_world: MakeWorld) -> None:
    w = make_world("    push: {reservations: {SKU-0001@WH-MAIN: '2.5'}}\n")
    w.put("10.125")
    w.cycle()
    rec = w.record()
    # real and available are rounded half-even; blocked = real − available as shown
    assert (rec["real_stock"], rec["available_stock"], rec["blocked_stock"]) == (
        "10.12",
        "7.62",
        "2.5",
    )


def test_a_tenant_whose_stock_fields_hold_no_decimals(make_world: MakeWorld) -> None:
    w = make_world()
    describe = w.emulator.store.tables["StockObj"].describe
    for name in ("real_stock", "available_stock", "blocked_stock"):
        describe.with_field(name, decimal_places=0)
    w.put("7.5")
    assert w.cycle() == (1, 0)
    assert w.record()["real_stock"] == "8"  # half-even: 7.5 → 8
    w.put("1")  # 8.5 → 8 (half-even): what the CRM shows is unchanged
    assert w.cycle() == (0, 1)
    assert reconcile(w.pipeline).conflicts == []
    w.put("0.25")  # 8.75 → 9
    assert w.cycle() == (1, 0) and w.record()["real_stock"] == "9"


def test_the_movement_mirror_quantity_is_rounded_to_its_field(make_world: MakeWorld) -> None:
    w = make_world("    push: {mirror_movements: true}\n")
    mirror = w.emulator.store.tables["stock_movement__c"].describe
    mirror.with_field("qty__c", decimal_places=3)
    w.put("1.2345")
    w.cycle()
    (rec,) = w.emulator.movement_records()
    assert rec["qty__c"] == "1.234"  # half-even
    assert w.record()["real_stock"] == "1.23"


def test_status_counts_levels_the_crm_cannot_show_exactly(make_world: MakeWorld) -> None:
    w = make_world()
    w.put("139.625")
    w.put("5", StockKey("SKU-0002", "WH-MAIN"))
    w.cycle()
    data = collect(w.pipeline.store)
    assert data["levels_inexact"][w.name] == {"count": 1, "keys": ["SKU-0001@WH-MAIN"]}
    console = Console(record=True, width=200)
    render(data, console)
    assert f"{w.name}: 1 level(s) shown rounded in the CRM" in console.export_text()
    w.put("0.005")  # 139.63: shown exactly now
    w.cycle()
    assert w.name not in collect(w.pipeline.store)["levels_inexact"]


def test_decimal_places_from_the_settings_win_over_the_describe(make_world: MakeWorld) -> None:
    w = make_world(crm_extra=", decimal_places: {real_stock: 0}")
    w.put("139.625")
    w.cycle()
    rec = w.record()
    assert (rec["real_stock"], rec["available_stock"], rec["blocked_stock"]) == (
        "140",
        "139.62",
        "0.38",
    )


def test_blocked_is_real_minus_available_as_the_crm_shows_them(make_world: MakeWorld) -> None:
    """On hand 10.005, reserved 0.01, fields of 2 decimals: real 10.00 and available
    9.995 → 10.00 (half-even, sent as "10"), so blocked is written 0 — the three figures
    agree with each other in the CRM, where blocked 0.01 would not (10 − 10 ≠ 0.01)."""
    w = make_world("    push: {reservations: {SKU-0001@WH-MAIN: '0.01'}}\n")
    w.put("10.005")
    w.cycle()
    rec = w.record()
    assert (rec["real_stock"], rec["available_stock"], rec["blocked_stock"]) == ("10", "10", "0")


@pytest.mark.parametrize("refused", [True, False], ids=["edit-refused", "edit-accepted"])
def test_a_record_voided_in_the_crm_is_live_again_under_either_answer(
    make_world: MakeWorld, refused: bool
) -> None:
    """The reference is silent on editing a voided (作废) StockObj. Refused (32000 数据已作废):
    the next push re-creates it. Accepted (the edit lands on the voided record): the push
    cannot tell, and reconcile finds the key missing in the CRM and creates it. Either way
    the key ends with one live record holding the ledger's figure."""
    w = make_world()
    w.emulator.store.voided_edit_refused = refused
    w.put("10")
    w.cycle()
    old = w.record()["_id"]
    w.emulator.store.set_status("StockObj", [old], "invalid")
    w.put("5")
    w.cycle()
    if not refused:
        assert w.emulator.stock_records() == []  # the write went to the voided record
        result = reconcile(w.pipeline, apply_changes=True)
        assert [f.kind for f in result.findings] == [FindingKind.MISSING_IN_CRM]
    record = w.record()
    assert (record["real_stock"], record["_id"] != old) == ("15", True)
    assert reconcile(w.pipeline).remaining == 0


@pytest.mark.parametrize(
    ("value", "places", "shown"),
    [
        # 25 integer digits at 2 places: 28 digits, one past decimal's default context
        ("1234567890123456789012345.675", 2, "1234567890123456789012345.68"),
        # a field described with 30 places
        ("139.625", 30, "139.625" + "0" * 27),
        ("139.625", 2, "139.62"),
    ],
)
def test_rounding_never_overflows_the_decimal_context(value: str, places: int, shown: str) -> None:
    """A long quantity or many described places is rounded, not an InvalidOperation that
    would fail every push run at that row; the CRM then judges the number."""
    from connectors.fxiaoke.mapping import at_places

    assert at_places(Decimal(value), places) == Decimal(shown)
    assert str(at_places(Decimal(value), places)) == shown
