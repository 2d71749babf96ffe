"""duplicate_in_crm: two or more live CRM records for one key (architecture §6.3).

A person, an import or another tool made a second StockObj for a product ×
warehouse: the push keeps writing the bound one while the other keeps showing
an old figure. Reconcile reports it (conflict row, log event, JSON/CSV/table);
under ``invalidate_extras`` it keeps the bound record and invalidates the others.
"""

from __future__ import annotations

from decimal import Decimal

from structlog.testing import capture_logs

from sync.model import StockKey
from sync.reconcile import Action, FindingKind
from sync.reconcile_run import reconcile
from sync.state.store import LEVEL, level_ref
from tests.reconcile.conftest import MakePipeline, MemoryPipeline
from tests.reconcile.test_run import synced

A, B, ORPHAN = StockKey("A", "W1"), StockKey("B", "W1"), StockKey("ZZZ", "W1")
INVALIDATE = "    reconcile: {duplicate_in_crm: invalidate_extras}\n"


def bound_id(mp: MemoryPipeline, key: StockKey) -> str:
    binding = mp.store.binding(mp.name, LEVEL, level_ref(key))
    assert binding is not None
    return binding.crm_id


def duplicates(result: object) -> list[tuple[StockKey, str | None, list[str], Action]]:
    return [
        (f.key, f.crm_id, [r.crm_id for r in f.extras], f.action)
        for f in result.findings  # type: ignore[attr-defined]
        if f.kind is FindingKind.DUPLICATE_IN_CRM
    ]


def test_a_second_record_is_reported_and_left_alone_by_default(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline)
    kept = bound_id(mp, A)
    extra = mp.crm.add_record(A, Decimal(7))  # sales keeps seeing 7
    with capture_logs() as logs:
        result = reconcile(mp.pipeline, apply_changes=True)
    assert duplicates(result) == [(A, kept, [extra], Action.NONE)]
    assert result.remaining == 1
    assert mp.crm.records(A) == {kept: Decimal(15), extra: Decimal(7)}  # untouched
    (row,) = mp.store.conflicts(pipeline=mp.name, kind="duplicate_in_crm")
    assert (row.ref, row.crm_qty, row.ledger_qty, row.resolution) == (
        level_ref(A),
        Decimal(15),
        Decimal(15),
        None,
    )
    assert row.detail["crm_id"] == kept
    assert row.detail["duplicates"] == [{"crm_id": extra, "crm": "7"}]
    (event,) = [e for e in logs if e["event"] == "duplicate_in_crm"]
    assert event["duplicates"] == [{"crm_id": extra, "crm": "7"}] and event["applied"] is False


def test_invalidate_extras_keeps_the_bound_record_equal_to_the_ledger(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline, INVALIDATE)
    kept = bound_id(mp, A)
    extra = mp.crm.add_record(A, Decimal(7))
    result = reconcile(mp.pipeline, apply_changes=True)
    assert duplicates(result) == [(A, kept, [extra], Action.INVALIDATE)]
    assert result.remaining == 0
    assert mp.crm.records(A) == {kept: Decimal(15)}
    assert mp.crm.calls["invalidate_level"] == 1
    (row,) = mp.store.conflicts(pipeline=mp.name, kind="duplicate_in_crm")
    assert row.resolution == "invalidated"
    again = reconcile(mp.pipeline)
    assert again.findings == [] and again.remaining == 0


def test_the_extra_may_be_the_bound_records_older_sibling(make_pipeline: MakePipeline) -> None:
    """The record bound is the newer one (the older was made invisible, then restored by a
    person): it is the one kept, though a fresh look-up would have picked the older."""
    mp = synced(make_pipeline, INVALIDATE)
    kept = bound_id(mp, A)
    older = mp.crm.add_record(A, Decimal(3), oldest=True)
    assert mp.crm.find_level(A) == older
    mp.move("A", "2")  # and the level moves meanwhile: 17
    result = reconcile(mp.pipeline, apply_changes=True)
    assert duplicates(result) == [(A, kept, [older], Action.INVALIDATE)]
    assert mp.crm.records(A) == {kept: Decimal(17)}
    assert bound_id(mp, A) == kept


def test_three_records_for_one_key_lose_both_extras(make_pipeline: MakePipeline) -> None:
    mp = synced(make_pipeline, INVALIDATE)
    kept = bound_id(mp, B)
    extras = [mp.crm.add_record(B, Decimal(17)), mp.crm.add_record(B, Decimal(0))]
    result = reconcile(mp.pipeline, apply_changes=True)
    assert duplicates(result) == [(B, kept, extras, Action.INVALIDATE)]
    assert mp.crm.records(B) == {kept: Decimal(17)}
    assert mp.crm.records(A) == {bound_id(mp, A): Decimal(15)}


def test_a_duplicate_on_a_key_the_ledger_does_not_have_keeps_the_oldest(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline, INVALIDATE)
    first = mp.crm.add_record(ORPHAN, Decimal(4))
    second = mp.crm.add_record(ORPHAN, Decimal(9))
    result = reconcile(mp.pipeline, apply_changes=True)
    assert duplicates(result) == [(ORPHAN, first, [second], Action.INVALIDATE)]
    orphan = [f for f in result.findings if f.kind is FindingKind.ORPHAN_IN_CRM]
    assert [(f.crm_id, f.crm, f.action) for f in orphan] == [(first, Decimal(4), Action.NONE)]
    assert mp.crm.records(ORPHAN) == {first: Decimal(4)}
    assert result.remaining == 1  # the orphan itself is reported only (default policy)


def test_an_extra_that_cannot_be_invalidated_is_not_applied(
    make_pipeline: MakePipeline,
) -> None:
    mp = synced(make_pipeline, INVALIDATE)
    extra = mp.crm.add_record(A, Decimal(7))
    mp.crm.faults.append(("invalidate_level", "fail"))
    result = reconcile(mp.pipeline, apply_changes=True)
    assert result.done == [] and result.remaining == 1
    assert extra in mp.crm.records(A)
    (row,) = mp.store.conflicts(pipeline=mp.name, kind="duplicate_in_crm")
    assert row.resolution is None
    reconcile(mp.pipeline, apply_changes=True)  # the next run finishes the job
    assert mp.crm.records(A) == {bound_id(mp, A): Decimal(15)}
    (row,) = mp.store.conflicts(pipeline=mp.name, kind="duplicate_in_crm")
    assert row.resolution == "invalidated"
