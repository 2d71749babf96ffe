"""Idle cycles prove the CRM answers with the cheapest call, not a describe per object.

The scheduler (``sync.runtime.crm_problem``) calls ``sink.check()`` after a
cycle that had nothing to push. Describes are cached for ``describe_ttl_s``; while
they are fresh, one StockObj query with limit 1 proves the CRM is reachable, and
the token is requested only when due.
"""

from __future__ import annotations

from sync.runtime import crm_problem, run_cycle
from tests.fxiaoke.rig import QUERY, TOKEN
from tests.fxiaoke.world import MakeWorld, World, make_world

__all__ = ["make_world"]

DESCRIBE = "/cgi/crm/v2/object/describe"
CYCLES = 10


def idle_cycles(w: World, n: int) -> None:
    for _ in range(n):
        w.clock.advance(60)
        result = run_cycle(w.pipeline)
        assert result.push.pushed == result.push.skipped == 0  # idle: nothing to push
        assert crm_problem(w.pipeline, result) is None


def test_idle_cycles_describe_once_then_query_one_record(make_world: MakeWorld) -> None:
    w = make_world()
    idle_cycles(w, CYCLES)
    objects = 3  # StockObj, ProductObj, WarehouseObj
    assert w.emulator.calls[DESCRIBE] == objects
    # the first check's describes proved the CRM answers; every later one is one query
    assert w.emulator.calls[QUERY] == CYCLES - 1
    assert w.emulator.calls[TOKEN] == 1
    assert sum(w.emulator.calls.values()) == objects + (CYCLES - 1) + 1


def test_describes_are_fetched_again_after_their_ttl(make_world: MakeWorld) -> None:
    w = make_world()
    idle_cycles(w, 2)
    w.emulator.reset_counters()
    w.clock.advance(3600)  # describe_ttl_s default: an hour
    idle_cycles(w, 2)
    assert w.emulator.calls[DESCRIBE] == 3 and w.emulator.calls[QUERY] == 1


def test_an_unreachable_crm_is_reported_by_the_idle_check(make_world: MakeWorld) -> None:
    w = make_world(crm_extra=", max_attempts: 1")
    idle_cycles(w, 1)
    w.emulator.fail_next("*", "http_500", times=20)
    w.clock.advance(60)
    result = run_cycle(w.pipeline)
    problem = crm_problem(w.pipeline, result)
    assert problem is not None and "CRM check failed" in problem
