"""Scenario "salesforce" of ``python -m benchmarks`` at a small size: it runs, its checks
hold, and its call count is the API's floor plus the login and the describe."""

from __future__ import annotations

from benchmarks import salesforce


def test_a_quick_run_is_correct_and_costs_one_call_per_200_records() -> None:
    result = salesforce.push(1_000, 300)
    assert result.checks and all(result.checks.values()), result.checks
    assert len(result.checks) == 6
    first, second = result.figures["first_push"], result.figures["second_push"]
    assert first["calls"] == 5 + 2  # 5 collections of 200, a login, a describe
    assert first["api_usage"] == 5 + 1  # the login is no REST call; the describe is
    assert (second["calls"], second["api_usage"]) == (2, 2)  # 200 + 100, nothing else
    assert second["calls_by_route"] == {"collections": 2}
    assert [row.met for row in result.rows] == [None, None]  # below the target's sizes
