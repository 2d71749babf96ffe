"""The reconcile executor on memory connectors: dry run, apply, conflicts, in flux."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from sync.model import Movement, MovementKind, StockKey
from sync.reconcile import FindingKind
from sync.reconcile_run import reconcile, run_scheduled
from sync.runtime import run_cycle
from sync.state.store import level_ref
from tests.reconcile.conftest import MakePipeline, MemoryPipeline

A, B, NEW, ORPHAN = (StockKey(s, "W1") for s in ("A", "B", "NEW", "ZZZ"))


def synced(make_pipeline: MakePipeline, extra: str = "") -> MemoryPipeline:
    mp = make_pipeline(extra)
    mp.erp.set_opening("A", "W1", 10)
    mp.erp.set_opening("B", "W1", 20)
    mp.move("A", "5")
    mp.move("B", "-3")
    run_cycle(mp.pipeline)
    assert mp.crm.values() == {A: Decimal(15), B: Decimal(17)}
    return mp


def kinds(result: object) -> set[tuple[str, StockKey]]:
    return {(f.kind.value, f.key) for f in result.findings}  # type: ignore[attr-defined]


def miss_a_movement(mp: MemoryPipeline, sku: str, qty: str) -> None:
    """A line committed so late that its stamp lies behind the cursor: no pull will see it."""
    old = mp.clock.now - timedelta(days=1)
    m = Movement("memory:late:1:1", MovementKind.RECEIPT, sku, "W1", Decimal(qty), old, old)
    mp.erp._lines[m.key] = ("moves", m)


def test_in_sync_pipeline_reports_nothing(make_pipeline: MakePipeline) -> None:
    mp = synced(make_pipeline)
    result = reconcile(mp.pipeline)
    assert result.findings == [] and result.remaining == 0 and result.keys == 2


def test_dry_run_reports_every_kind_and_changes_nothing(make_pipeline: MakePipeline) -> None:
    mp = synced(make_pipeline)
    mp.crm.set_value(B, Decimal(99))  # someone edits the CRM
    miss_a_movement(mp, "A", "4")
    mp.move("NEW", "6")  # a product created in the ERP, not yet in the CRM
    mp.crm.create_level(ORPHAN, mp.crm.levels["L1"].value)  # a CRM record the ERP never had
    writes = mp.crm.calls["update_level"] + mp.crm.calls["create_level"]

    result = reconcile(mp.pipeline)

    assert kinds(result) == {
        ("erp_ledger_drift", A),
        ("crm_modified", B),
        ("missing_in_crm", NEW),
        ("orphan_in_crm", ORPHAN),
    }
    assert result.remaining == 4
    assert mp.crm.calls["update_level"] + mp.crm.calls["create_level"] == writes
    assert mp.store.level(mp.name, A) == Decimal(15)  # no adjustment
    rows = mp.store.conflicts(pipeline=mp.name, open_only=True)
    assert {(r.kind, r.ref) for r in rows} == {(k, level_ref(key)) for k, key in kinds(result)}


def test_apply_fixes_everything_and_a_second_run_is_clean(make_pipeline: MakePipeline) -> None:
    mp = synced(make_pipeline, "    reconcile: {orphan_in_crm: zero}\n")
    mp.crm.set_value(B, Decimal(99))
    miss_a_movement(mp, "A", "4")
    mp.move("NEW", "6")
    mp.crm.create_level(ORPHAN, mp.crm.levels["L1"].value)

    result = reconcile(mp.pipeline, apply_changes=True)

    assert result.remaining == 0
    assert mp.crm.values() == {A: Decimal(19), B: Decimal(17), NEW: Decimal(6), ORPHAN: 0}
    assert mp.store.level(mp.name, A) == Decimal(19)
    adjustment = next(k for k in mp.store.movement_keys(mp.name) if k.startswith("reconcile:"))
    assert adjustment.startswith(f"reconcile:{mp.name}:A:W1:")
    stored = mp.store.movement(mp.name, adjustment)
    assert stored is not None and stored.kind == "adjustment" and stored.qty == Decimal(4)
    assert mp.store.movement_versions(mp.name, adjustment)[0].reason == "reconcile"
    resolved = {r.kind: r.resolution for r in mp.store.conflicts(pipeline=mp.name)}
    assert resolved == {
        "erp_ledger_drift": "adjusted",
        "crm_modified": "overwritten",
        "missing_in_crm": "created",
        "orphan_in_crm": "zeroed",
    }
    again = reconcile(mp.pipeline)
    # the zeroed orphan now agrees with the ERP (no stock anywhere): a clean run
    assert again.findings == [] and again.remaining == 0


def test_report_only_policies_leave_differences(make_pipeline: MakePipeline) -> None:
    extra = "    reconcile: {erp_ledger_drift: report_only, crm_modified: report_only}\n"
    mp = synced(make_pipeline, extra)
    mp.crm.set_value(B, Decimal(99))
    miss_a_movement(mp, "A", "4")
    result = reconcile(mp.pipeline, apply_changes=True)
    assert result.remaining == 2 and result.done == []
    assert mp.crm.values()[B] == Decimal(99)
    assert mp.store.level(mp.name, A) == Decimal(15)


def test_key_moving_during_reconcile_is_in_flux(make_pipeline: MakePipeline) -> None:
    mp = synced(make_pipeline)
    real_on_hand = mp.erp.on_hand

    def on_hand_then_move():  # type: ignore[no-untyped-def]
        yield from real_on_hand()
        mp.move("A", "2")  # lands after the snapshot: caught by the second catch-up

    mp.erp.on_hand = on_hand_then_move  # type: ignore[method-assign]
    result = reconcile(mp.pipeline, apply_changes=True)
    assert [(f.kind, f.key) for f in result.findings] == [(FindingKind.IN_FLUX, A)]
    assert result.remaining == 0 and result.done == []
    assert mp.store.conflicts(pipeline=mp.name) == []
    mp.erp.on_hand = real_on_hand  # type: ignore[method-assign]
    assert reconcile(mp.pipeline).findings == []
    assert mp.crm.values()[A] == Decimal(17)


def test_deleted_erp_document_is_settled_by_the_rescan(make_pipeline: MakePipeline) -> None:
    mp = synced(make_pipeline)
    gone = mp.move("A", "7")
    run_cycle(mp.pipeline)
    mp.erp.delete(gone.key)
    dry = reconcile(mp.pipeline)
    assert kinds(dry) == {("erp_ledger_drift", A)}
    result = run_scheduled(mp.pipeline)
    assert result.vanished == [gone.key] and result.remaining == 0
    # no adjustment: the line was deactivated, so a later rescan cannot count it twice
    assert not [k for k in mp.store.movement_keys(mp.name) if k.startswith("reconcile:")]
    assert mp.crm.values()[A] == Decimal(15)
    assert reconcile(mp.pipeline).findings == []


def test_redetected_conflict_is_updated_not_duplicated(make_pipeline: MakePipeline) -> None:
    mp = synced(make_pipeline)
    mp.crm.set_value(B, Decimal(99))
    reconcile(mp.pipeline)
    mp.crm.set_value(B, Decimal(98))
    reconcile(mp.pipeline)
    rows = mp.store.conflicts(pipeline=mp.name)
    assert len(rows) == 1 and rows[0].occurrences == 2 and rows[0].crm_qty == Decimal(98)
    assert replace(rows[0], crm_qty=None).resolution is None


def test_a_correction_the_ledger_cannot_hold_is_not_applied(make_pipeline: MakePipeline) -> None:
    """The ERP's on-hand moved by 0.0000001 (finer than the store's micro-units): the
    ADJUSTMENT is quarantined, never rounded, so the drift is reported as not fixed."""
    mp = synced(make_pipeline)
    mp.erp.set_opening("A", "W1", "10.0000001")

    result = reconcile(mp.pipeline, apply_changes=True)

    [drift] = [f for f in result.findings if f.kind is FindingKind.ERP_LEDGER_DRIFT]
    assert drift not in result.done and result.remaining == 1
    assert mp.store.level(mp.name, A) == Decimal(15)
    errors = mp.store.conflicts(pipeline=mp.name, kind="record_error", open_only=True)
    assert [r.ref.startswith(f"reconcile:{mp.name}:A:W1:") for r in errors] == [True]
    assert "pipelines[].precision" in (errors[0].detail or {}).get("reason", "")


def test_a_correction_finer_than_the_pipelines_precision_is_not_applied(
    make_pipeline: MakePipeline,
) -> None:
    """Same kind, another setting: precision 2 keeps cents; a drift of 0.005 is not one."""
    mp = synced(make_pipeline, "    precision: 2\n")
    mp.erp.set_opening("B", "W1", "20.005")
    mp.erp.set_opening("A", "W1", "10.01")  # a drift the ledger can hold: fixed

    result = reconcile(mp.pipeline, apply_changes=True)

    fixed = {f.key for f in result.done if f.kind is FindingKind.ERP_LEDGER_DRIFT}
    assert fixed == {A} and result.remaining == 1
    assert mp.store.level(mp.name, A) == Decimal("15.01")
    assert mp.store.level(mp.name, B) == Decimal(17)
