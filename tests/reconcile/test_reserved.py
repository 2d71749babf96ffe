"""Reconcile of reserved and available stock on memory connectors: each figure its own kind."""

from __future__ import annotations

from decimal import Decimal

from connectors.memory import source as memory_source
from connectors.memory.source import MemoryErp
from sync.model import Reserved, StockKey
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


def test_an_erp_reservation_after_the_last_cycle_is_caught_up_not_drift(
    make_pipeline: MakePipeline,
) -> None:
    """Reconcile catches reserved stock up as a cycle does: a reservation made since the
    last cycle is stored and queued, not a conflict, and the CRM's old figures for the
    key are not taken for an edit while its write is owed."""
    mp = synced(make_pipeline)
    mp.erp.reserve("B", "W1", 6)  # an order reserves B after the cycle

    dry = reconcile(mp.pipeline)
    assert dry.findings == [] and mp.store.conflicts(pipeline=mp.name) == []
    assert mp.store.reserved(mp.name, B) == Decimal(6)
    assert mp.crm.figures(B) == (Decimal(17), Decimal(17), Decimal(0))  # a dry run writes nothing
    run_cycle(mp.pipeline)
    assert mp.crm.figures(B) == (Decimal(17), Decimal(11), Decimal(6))
    assert reconcile(mp.pipeline).findings == []


def race(mp: MemoryPipeline, sku: str, qty: str) -> None:
    """The ERP's reserved stock of ``sku`` changes right after reconcile's catch-up read:
    the snapshot reconcile compares differs from what the catch-up stored."""
    erp, real = mp.erp, MemoryErp.reserved

    def first_read() -> list[Reserved] | None:
        items = real(erp)
        erp.reserved = lambda: real(erp)  # type: ignore[method-assign]
        erp.reserve(sku, "W1", qty)
        return items

    erp.reserved = first_read  # type: ignore[method-assign]


def test_a_reservation_changed_during_reconcile_is_reserved_drift_stored_by_default(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline)
    race(mp, "B", "6")

    result = reconcile(mp.pipeline, apply_changes=True)
    assert found(result) == [("reserved_drift", B, "store", Decimal(6), Decimal(0), 0)]
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
    race(mp, "A", "0")  # released (shipped or cancelled) while reconcile runs

    result = reconcile(mp.pipeline, apply_changes=True)
    assert found(result) == [("reserved_drift", A, "none", Decimal(0), Decimal(4), 4)]
    assert result.done == [] and result.remaining == 1
    assert mp.store.reserved(mp.name, A) == Decimal(4)
    assert mp.crm.figures(A) == (Decimal(15), Decimal(11), Decimal(4))
    run_cycle(mp.pipeline)  # the cycle's own refresh catches it up
    assert mp.crm.figures(A) == (Decimal(15), Decimal(15), Decimal(0))
    assert reconcile(mp.pipeline).findings == []


def test_a_reservation_released_after_the_last_cycle_reaches_the_crm_at_the_next_cycle(
    make_pipeline: MakePipeline,
) -> None:
    """Released by shipment or cancellation in the ERP: stored 4, the ERP reports none."""
    mp = synced(make_pipeline)
    mp.erp.reserve("A", "W1", 0)

    result = reconcile(mp.pipeline, apply_changes=True)
    assert result.findings == [] and mp.store.reserved_units(mp.name) == {}
    run_cycle(mp.pipeline)
    assert mp.crm.figures(A) == (Decimal(15), Decimal(15), Decimal(0))


def test_a_reserved_figure_too_fine_to_store_stays_drift(make_pipeline: MakePipeline) -> None:
    """precision 2: the ERP's 6.005 reserved is refused, never rounded (reserved_inexact),
    and reconcile keeps reporting the difference it leaves."""
    mp = synced(make_pipeline, "    precision: 2\n")
    mp.erp.reserve("B", "W1", "6.005")

    result = reconcile(mp.pipeline, apply_changes=True)
    assert found(result) == [("reserved_drift", B, "store", Decimal("6.005"), Decimal(0), 0)]
    assert result.done == [] and result.remaining == 1
    assert mp.store.reserved(mp.name, B) == Decimal(0)
    (inexact,) = mp.store.conflicts(pipeline=mp.name, kind="reserved_inexact")
    assert inexact.ref == level_ref(B)


def test_a_blocked_edit_on_a_key_whose_write_is_owed_is_left_to_that_write(
    make_pipeline: MakePipeline,
) -> None:
    """The ERP reserves 7 of A and a person sets A's blocked stock to 1: the key's new
    figures are owed to the CRM (an outbox row), so reconcile reports nothing and the
    next cycle's one write puts all three figures right."""
    mp = synced(make_pipeline)
    mp.erp.reserve("A", "W1", 7)
    mp.crm.set_reserved(A, Decimal(1))
    updates = mp.crm.calls["update_level"]

    assert reconcile(mp.pipeline, apply_changes=True).findings == []
    run_cycle(mp.pipeline)
    assert mp.crm.figures(A) == (Decimal(15), Decimal(8), Decimal(7))
    assert mp.crm.calls["update_level"] == updates + 1


def test_a_failed_push_of_a_new_reservation_is_not_a_crm_edit(make_pipeline: MakePipeline) -> None:
    """Reserved 4 → 6 stored and queued, the CRM update fails: the CRM still shows 4 and
    11, which is the write stocksync owes (retried), not a person's edit."""
    mp = synced(make_pipeline)
    mp.erp.reserve("A", "W1", 6)
    mp.crm.faults.append(("update_level", "fail"))
    run_cycle(mp.pipeline)
    assert mp.crm.figures(A) == (Decimal(15), Decimal(11), Decimal(4))
    assert reconcile(mp.pipeline).findings == []


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
