"""Scenario "sql" of ``python -m benchmarks`` at a small size: it runs and its checks hold,
and they fail when the pull is wrong."""

from __future__ import annotations

import pytest

from benchmarks import sql
from benchmarks.pulls import PAGE_SIZE
from connectors.sql.mapping import RowMapper
from tests.conftest import server_url

LINES = 3_000


@pytest.fixture
def pg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sql.ENV, server_url(sql.ENV, "PostgreSQL"))


@pytest.mark.pg
def test_a_quick_run_is_correct(pg: None) -> None:
    results = sql.sql(LINES)
    assert [r.name for r in results] == ["sql-journal", "sql-document"]
    for result in results:
        assert result.checks and all(result.checks.values()), result.checks
        assert len(result.checks) == 8
        assert [row.met for row in result.rows] == [None, None, None]  # quick: no target
        figures = result.figures
        assert figures["stocksync"]["received"] == figures["floor"]["stored"] == LINES
        assert figures["stocksync"]["pages"] >= LINES // PAGE_SIZE
        assert figures["ratio"] == figures["floor"]["seconds"] / figures["stocksync"]["seconds"]


@pytest.mark.pg
def test_a_wrong_quantity_fails_the_level_check(pg: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source that drops the sign of shipments: the ledger no longer equals the table's
    on-hand query, and the scenario says so (it still runs)."""
    right = RowMapper.qty
    monkeypatch.setattr(RowMapper, "qty", lambda self, row: abs(right(self, row)))
    for result in sql.sql(LINES):
        assert result.error is None and not result.correct
        assert result.checks["levels equal the table's on-hand query"] is False
        assert result.checks[f"{LINES:,} lines received"] is True


def test_without_a_server_the_scenario_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sql.ENV, raising=False)
    results = sql.sql(LINES)
    assert [r.skipped for r in results] == [f"{sql.ENV} is not set"] * 2
    assert all(r.correct and not r.rows for r in results)
