"""Scenario "reservations" of ``python -m benchmarks`` at a small size: its checks and targets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from benchmarks.reservations import reservations
from connectors.k3cloud import stock_reads
from connectors.k3cloud.source import K3CloudSource
from sync.model import Reserved
from sync.push import Pusher


def test_small_run_is_correct_and_meets_every_target() -> None:
    result = reservations(4_500, 100, 30)
    assert result.checks and all(result.checks.values()), result.checks
    assert [row.met for row in result.rows] == [True, True, None, True, True]
    quiet = result.figures["quiet"]
    # 100 locked rows: one page and the empty answer; 4,500 keys: three pages and the empty one
    assert (quiet["erp_calls"], quiet["full_scan"]["erp_calls"]) == (2, 4)
    assert (quiet["crm_calls"], quiet["queued"]) == (0, 0)
    changed = result.figures["changed_cycle"]
    assert (changed["outbox"], changed["crm_calls"], changed["updated"]) == (30, 30, 30)
    assert changed["shipment_lines_pulled"] == 10


def test_a_snapshot_costing_more_than_its_pages_is_reported_not_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A source paging its reserved snapshot 10 rows at a time misses the target: the row
    says so, while the result stays correct (the figures are still exact)."""

    def small_pages(self: K3CloudSource) -> list[Reserved]:
        return stock_reads.reserved(self.client, self._filter, self._in_scope, page_size=10)

    monkeypatch.setattr(K3CloudSource, "reserved", small_pages)
    result = reservations(4_500, 100, 30)
    assert result.correct, result.checks
    assert result.figures["quiet"]["erp_calls"] == 11
    assert result.rows[0].met is False and result.rows[-1].met is False


def test_a_push_that_ignores_reservations_fails_the_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The checks compare with the emulator's own columns: a CRM showing no blocked stock
    (available = on hand) is caught at setup and after the changes."""
    monkeypatch.setattr(Pusher, "reserved_of", lambda self, key: Decimal(0))
    result = reservations(1_000, 20, 6)
    assert not result.correct
    assert result.checks["setup: CRM equals the ERP"] is False
    failed = {what for what, ok in result.checks.items() if not ok}
    crm = "changed: every StockObj's real/available/blocked = FBaseQty/FBaseAvbQty/FBaseLockQty"
    assert crm in failed
    assert "changed: ledger level of every key = FBaseQty" not in failed, "on hand is right"
