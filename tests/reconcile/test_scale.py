"""20,000 keys through the streaming reconcile with memory connectors (timing is a benchmark)."""

from __future__ import annotations

from benchmarks.reconcile_scale import run


def test_twenty_thousand_keys_reconcile_and_apply() -> None:
    result = run(20_000)
    # crm edit, drift, a new ERP key (drift + missing in CRM), an orphan
    assert result["findings"] == 5
    assert result["remaining_after_apply"] == 1  # the orphan: report only by default
