"""Issue 13 items 2 and 6 through the cycle `stocksync once` runs: ledger = ERP, no ADJUSTMENT."""

from __future__ import annotations

from decimal import Decimal

from sync.model import Movement, MovementKind, StockKey
from sync.reconcile_run import reconcile
from sync.runtime import run_cycle
from tests.reconcile.conftest import MakePipeline

DOC = "memory:STK_StockCountGain:100001"


def test_once_after_lines_were_removed_needs_no_adjustment(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline()
    mp.erp.set_opening("M1", "CK001", 4)
    for n, qty in ((1, "10"), (2, "20"), (3, "30")):
        at = mp.clock.advance(1)
        mp.erp.put(
            Movement(f"{DOC}:{n}", MovementKind.COUNT_GAIN, f"M{n}", "CK001", Decimal(qty), at, at)
        )
    run_cycle(mp.pipeline)
    mp.clock.advance(60)
    mp.erp.delete_line(f"{DOC}:2")  # the bill edited to keep only its first line
    mp.erp.delete_line(f"{DOC}:3")
    mp.clock.advance(60)
    result = run_cycle(mp.pipeline)
    assert result.applied == 2
    expected = {StockKey("M1", "CK001"): Decimal(14)}
    assert {k: v for k, v in mp.crm.values().items() if v} == expected
    assert {k: v for k, v in mp.store.levels(mp.name).items() if v} == expected
    check = reconcile(mp.pipeline)
    assert check.findings == [], check.findings


def test_sub_precision_lines_reach_the_crm_exactly(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline()
    for _ in range(3):
        mp.move("A", "0.005")
    mp.move(
        "B", "0.0000005"
    )  # finer than the store keeps: quarantined, not rounded to 0 or 0.000001
    run_cycle(mp.pipeline)
    assert mp.crm.values() == {StockKey("A", "W1"): Decimal("0.015")}
    conflicts = mp.store.conflicts(pipeline=mp.name, kind="record_error")
    # the line, and the ERP's on-hand of B when the first run took its opening snapshot
    assert sorted(c.ref for c in conflicts) == ["memory:d:4:1", "opening:B@W1"]
    for conflict in conflicts:
        assert "quantity 0.0000005 has more decimal places" in conflict.detail["reason"]
        assert "pipelines[].precision" in conflict.detail["reason"]
    # reconcile sees the ERP's exact 0.0000005 and reports it; it cannot adjust it away
    check = reconcile(mp.pipeline)
    assert {(f.kind.value, f.key) for f in check.findings} == {
        ("erp_ledger_drift", StockKey("B", "W1")),
        ("missing_in_crm", StockKey("B", "W1")),
    }
    drift = next(f for f in check.findings if f.kind.value == "erp_ledger_drift")
    assert drift.erp == Decimal("0.0000005")
    # and applying writes no rounded ADJUSTMENT: the correction itself is quarantined
    reconcile(mp.pipeline, apply_changes=True)
    assert mp.store.levels(mp.name).get(StockKey("B", "W1"), Decimal(0)) == 0
    refs = {c.ref for c in mp.store.conflicts(pipeline=mp.name, kind="record_error")}
    assert any(ref.startswith("reconcile:") for ref in refs), refs
