"""Reconcile of reserved and available stock on memory connectors: each figure its own kind."""

from __future__ import annotations

from decimal import Decimal

from connectors.memory import source as memory_source
from connectors.memory.source import MemoryErp
from sync.model import StockKey
from sync.reconcile import Action, FindingKind
from sync.reconcile_run import ReconcileResult, reconcile
from sync.runtime import run_cycle
from sync.state.store import level_ref
from tests.reconcile.conftest import MakePipeline, MemoryPipeline

A, B = StockKey("A", "W1"), StockKey("B", "W1")


def synced(make_pipeline: MakePipeline, extra: str = "") -> MemoryPipeline:
    """A = 15 on hand with 4 reserved in the ERP, B = 17 with none; one cycle run."""
    mp = make_pipeline(extra)
    mp.erp.set_opening("A", "W1", 10)
    mp.erp.set_opening("B", "W1", 20)
    mp.move("A", "5")
    mp.move("B", "-3")
    mp.erp.reserve("A", "W1", 4)
    run_cycle(mp.pipeline)
    assert mp.crm.figures(A) == (Decimal(15), Decimal(11), Decimal(4))
    assert mp.crm.figures(B) == (Decimal(17), Decimal(17), Decimal(0))
    return mp


def found(result: ReconcileResult) -> list[tuple[str, StockKey, str, object, object, object]]:
    return [(f.kind.value, f.key, f.action.value, f.erp, f.ledger, f.crm) for f in result.findings]


def test_a_synced_pipeline_with_reservations_is_in_sync(make_pipeline: MakePipeline) -> None:
    mp = synced(make_pipeline)
    result = reconcile(mp.pipeline)
    assert result.findings == [] and result.remaining == 0


def test_blocked_edited_alone_is_crm_reserved_modified_and_overwritten(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline)
    mp.crm.set_reserved(A, Decimal(9))

    dry = reconcile(mp.pipeline)
    assert found(dry) == [("crm_reserved_modified", A, "overwrite", Decimal(4), Decimal(4), 9)]
    assert mp.crm.figures(A)[2] == Decimal(9)  # a dry run writes nothing

    result = reconcile(mp.pipeline, apply_changes=True)
    assert result.remaining == 0 and [f.kind for f in result.done] == [
        FindingKind.CRM_RESERVED_MODIFIED
    ]
    assert mp.crm.figures(A) == (Decimal(15), Decimal(11), Decimal(4))
    (row,) = mp.store.conflicts(pipeline=mp.name)
    assert (row.kind, row.ref, row.resolution) == (
        "crm_reserved_modified",
        level_ref(A),
        "overwritten",
    )
    assert (row.erp_qty, row.ledger_qty, row.crm_qty) == (Decimal(4), Decimal(4), Decimal(9))
    assert reconcile(mp.pipeline).findings == []


def test_available_edited_alone_is_crm_available_modified_and_overwritten(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline)
    mp.crm.set_available(A, Decimal(15))  # a person "frees" the reserved stock

    dry = reconcile(mp.pipeline)
    assert found(dry) == [("crm_available_modified", A, "overwrite", None, Decimal(11), 15)]
    assert dry.findings[0].pushed == Decimal(11)  # P − reserved

    result = reconcile(mp.pipeline, apply_changes=True)
    assert result.remaining == 0
    assert mp.crm.figures(A) == (Decimal(15), Decimal(11), Decimal(4))
    binding = mp.store.binding(mp.name, "level", level_ref(A))
    assert binding is not None and binding.pushed_qty == Decimal(15)  # on hand, as pushed


def test_real_stock_edited_alone_is_crm_modified_only(make_pipeline: MakePipeline) -> None:
    mp = synced(make_pipeline)
    mp.crm.set_value(A, Decimal(99))
    result = reconcile(mp.pipeline, apply_changes=True)
    assert [(f.kind, f.action) for f in result.findings] == [
        (FindingKind.CRM_MODIFIED, Action.OVERWRITE)
    ]
    assert mp.crm.figures(A) == (Decimal(15), Decimal(11), Decimal(4))


def test_an_erp_reservation_after_the_last_cycle_is_stored_and_pushed(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline)
    mp.erp.reserve("B", "W1", 6)  # an order reserves B after the cycle

    dry = reconcile(mp.pipeline)
    assert found(dry) == [("reserved_drift", B, "store", Decimal(6), Decimal(0), 0)]
    assert mp.store.reserved(mp.name, B) == Decimal(0)

    result = reconcile(mp.pipeline, apply_changes=True)
    assert result.remaining == 0 and [f.kind for f in result.done] == [FindingKind.RESERVED_DRIFT]
    assert mp.store.reserved(mp.name, B) == Decimal(6)
    assert mp.crm.figures(B) == (Decimal(17), Decimal(11), Decimal(6))
    (row,) = mp.store.conflicts(pipeline=mp.name)
    assert (row.kind, row.resolution) == ("reserved_drift", "stored")
    assert reconcile(mp.pipeline).findings == []


def test_report_only_leaves_a_reserved_drift_for_the_next_cycle(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline, "    reconcile: {reserved_drift: report_only}\n")
    mp.erp.reserve("B", "W1", 6)

    result = reconcile(mp.pipeline, apply_changes=True)
    assert found(result) == [("reserved_drift", B, "none", Decimal(6), Decimal(0), 0)]
    assert result.done == [] and result.remaining == 1
    assert mp.store.reserved(mp.name, B) == Decimal(0)
    assert mp.crm.figures(B) == (Decimal(17), Decimal(17), Decimal(0))
    run_cycle(mp.pipeline)  # the cycle's own refresh catches it up
    assert mp.crm.figures(B) == (Decimal(17), Decimal(11), Decimal(6))
    assert reconcile(mp.pipeline).findings == []


def test_a_reservation_released_after_the_last_cycle_is_drift_to_zero(
    make_pipeline: MakePipeline,
) -> None:
    """Released by shipment or cancellation in the ERP: stored 4, the ERP reports none."""
    mp = synced(make_pipeline)
    mp.erp.reserve("A", "W1", 0)

    result = reconcile(mp.pipeline, apply_changes=True)
    assert found(result) == [("reserved_drift", A, "store", Decimal(0), Decimal(4), 4)]
    assert result.remaining == 0
    assert mp.store.reserved_units(mp.name) == {}
    assert mp.crm.figures(A) == (Decimal(15), Decimal(15), Decimal(0))


def test_a_reserved_figure_too_fine_to_store_is_not_applied(make_pipeline: MakePipeline) -> None:
    """precision 2: the ERP's 6.005 reserved is refused, never rounded (reserved_inexact)."""
    mp = synced(make_pipeline, "    precision: 2\n")
    mp.erp.reserve("B", "W1", "6.005")

    result = reconcile(mp.pipeline, apply_changes=True)
    assert found(result) == [("reserved_drift", B, "store", Decimal("6.005"), Decimal(0), 0)]
    assert result.done == [] and result.remaining == 1
    assert mp.store.reserved(mp.name, B) == Decimal(0)
    (inexact,) = mp.store.conflicts(pipeline=mp.name, kind="reserved_inexact")
    assert inexact.ref == level_ref(B)


def test_drift_and_a_blocked_edit_on_one_key_push_the_new_figure_once(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline)
    mp.erp.reserve("A", "W1", 7)
    mp.crm.set_reserved(A, Decimal(1))
    updates = mp.crm.calls["update_level"]

    result = reconcile(mp.pipeline, apply_changes=True)
    assert {f.kind for f in result.findings} == {
        FindingKind.RESERVED_DRIFT,
        FindingKind.CRM_RESERVED_MODIFIED,
    }
    assert result.remaining == 0
    assert mp.crm.figures(A) == (Decimal(15), Decimal(8), Decimal(7))
    assert mp.crm.calls["update_level"] == updates + 1


def keeps_none(make_pipeline: MakePipeline) -> MemoryPipeline:
    """A pipeline whose ERP keeps no reservations (``reserved()`` gives None)."""
    mp = make_pipeline()
    erp = MemoryErp(now=mp.clock, reservations=False)
    memory_source.REGISTRY[mp.name] = erp
    mp.pipeline.source = erp
    mp.erp = erp
    mp.erp.set_opening("A", "W1", 10)
    mp.erp.reserve("A", "W1", 4)  # held by the fake, never reported
    run_cycle(mp.pipeline)
    return mp


def test_an_erp_that_keeps_no_reservations_compares_available_with_on_hand(
    make_pipeline: MakePipeline,
) -> None:
    mp = keeps_none(make_pipeline)
    assert mp.crm.figures(A) == (Decimal(10), Decimal(10), Decimal(0))
    assert reconcile(mp.pipeline).findings == []

    mp.crm.set_available(A, Decimal(6))
    result = reconcile(mp.pipeline, apply_changes=True)
    assert found(result) == [("crm_available_modified", A, "overwrite", None, Decimal(10), 6)]
    assert mp.crm.figures(A) == (Decimal(10), Decimal(10), Decimal(0))
    kinds = {f.kind for f in result.findings}
    assert not kinds & {FindingKind.RESERVED_DRIFT, FindingKind.CRM_RESERVED_MODIFIED}
