"""End-to-end freshness (issue 16): the age of the oldest ERP change the CRM does not reflect
yet, in ``/healthz``, ``/metrics`` and ``status``; memory connectors, a clock moved by hand."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import generate_latest

from sync.cli.status import collect
from sync.errors import TransientError
from sync.freshness import freshness, measure
from sync.ledger import apply_page
from sync.model import Movement, MovementKind, Page
from sync.runtime import run_cycle
from sync.service.health import Metrics, build_app, health
from sync.state import StateStore
from sync.state.store import FreshnessInputs
from tests.conftest import Clock
from tests.reconcile.conftest import MakePipeline, MemoryPipeline, pipelines_on

INTERVAL_S, LIMIT_S = 300, 600
#: 3 intervals (900 s) for the last-success check, so the freshness limit is met first
SCHEDULE = f"    schedule: {{interval_s: {INTERVAL_S}, max_freshness_s: {LIMIT_S}}}\n"
CRM_DOWN = [("*", "fail")] * 1000


@pytest.fixture
def make_pipeline(store: StateStore, clock: Clock) -> Iterator[MakePipeline]:
    yield from pipelines_on(store, clock)


def cycle(mp: MemoryPipeline) -> datetime:
    """One cycle as the daemon runs it (degraded when the CRM was not reached); its start."""
    started = mp.clock.now
    try:
        run_cycle(mp.pipeline, check_crm=True)
    except Exception:  # recorded in the runs table, as the scheduler's error containment does
        return started
    return started


def check(mp: MemoryPipeline) -> tuple[bool, dict[str, Any]]:
    return health(mp.store, [mp.pipeline.settings], mp.clock.now)


def scrape(mp: MemoryPipeline) -> str:
    metrics = Metrics(lambda: mp.store, lambda: [mp.pipeline.settings], mp.clock)
    return generate_latest(metrics.registry).decode()


def metric(mp: MemoryPipeline) -> float | None:
    text = scrape(mp)
    found = re.search(rf'^stocksync_freshness_seconds{{pipeline="{mp.name}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else None


def age(mp: MemoryPipeline, since: datetime) -> float:
    return (mp.clock.now - since).total_seconds()


def test_a_crm_outage_ages_from_the_oldest_held_change_and_recovery_clears_it(
    make_pipeline: MakePipeline,
) -> None:
    mp = make_pipeline(SCHEDULE)
    mp.move("A", "5")
    started = cycle(mp)
    assert mp.crm.values() and check(mp)[0]
    assert metric(mp) == 0.0  # everything confirmed: fresh as of this cycle's start
    assert freshness(mp.store, mp.clock.now)[mp.name].since == started

    mp.crm.faults[:] = CRM_DOWN
    mp.clock.advance(100)
    mp.move("A", "3")
    seen = cycle(mp)  # pulled, push failed: the row is held from now on
    mp.clock.advance(300)
    mp.move("A", "2")  # a second change to the same key must not reset the age
    cycle(mp)
    ok, body = check(mp)
    assert ok, body
    assert body["pipelines"][mp.name]["freshness_s"] == age(mp, seen) == 301
    assert metric(mp) == 301

    mp.clock.advance(300)
    cycle(mp)
    ok, body = check(mp)
    assert not ok
    entry = body["pipelines"][mp.name]
    assert (entry["freshness_s"], entry["max_freshness_s"]) == (601, LIMIT_S)
    assert entry["freshness_cause"] == "outbox"
    assert body["reason"] == (
        f"{mp.name}: oldest unconfirmed change 601s old (limit 600s): "
        "held in the outbox (pending, retrying, uncertain, blocked or dead rows)"
    )
    assert metric(mp) == age(mp, seen) == 601

    mp.crm.faults.clear()
    mp.clock.advance(INTERVAL_S)
    cycle(mp)
    assert list(mp.crm.values().values()) == [Decimal(10)]
    ok, body = check(mp)
    assert ok and body["pipelines"][mp.name]["freshness_s"] == 0, body
    assert metric(mp) == 0.0


def test_a_crm_outage_with_nothing_to_push_holds_nothing(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline(SCHEDULE)
    mp.move("A", "5")
    cycle(mp)
    mp.crm.faults[:] = CRM_DOWN
    for _ in range(3):
        mp.clock.advance(INTERVAL_S)
        started = cycle(mp)  # degraded: the CRM check fails, but the ERP was read
    assert metric(mp) == 0.0
    assert freshness(mp.store, mp.clock.now)[mp.name].since == started


def test_a_healthy_idle_pipeline_never_reads_more_than_an_interval(
    make_pipeline: MakePipeline,
) -> None:
    mp = make_pipeline(SCHEDULE)
    mp.move("A", "5")
    cycle(mp)
    for _ in range(5):
        mp.clock.advance(INTERVAL_S)  # just before the next cycle: the highest it reads
        assert metric(mp) == INTERVAL_S
        assert check(mp)[0]
        cycle(mp)
        assert metric(mp) == 0.0


def test_a_failing_erp_pull_ages_from_the_last_completed_pull(
    make_pipeline: MakePipeline,
) -> None:
    mp = make_pipeline(SCHEDULE)
    mp.move("A", "5")
    last_good = cycle(mp)
    for _ in range(2):
        mp.clock.advance(INTERVAL_S)
        mp.erp.fail_next = TransientError("ERP down")
        cycle(mp)
    assert metric(mp) == 600 and check(mp)[0]  # at the limit, not past it

    mp.clock.advance(12)
    mp.erp.fail_next = TransientError("ERP down")
    cycle(mp)
    ok, body = check(mp)
    assert not ok and metric(mp) == age(mp, last_good) == 612
    assert body["pipelines"][mp.name]["freshness_cause"] == "pull"
    assert body["reason"] == (
        f"{mp.name}: oldest unconfirmed change 612s old (limit 600s): "
        f"no ERP pull completed since {last_good.isoformat(timespec='seconds')}"
    )

    mp.clock.advance(10)
    cycle(mp)
    assert check(mp)[0] and metric(mp) == 0.0


def test_an_erp_that_never_answered_ages_from_the_first_try(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline(SCHEDULE)
    mp.erp.fail_next = TransientError("ERP down")
    first = cycle(mp)
    mp.clock.advance(700)
    mp.erp.fail_next = TransientError("ERP down")
    cycle(mp)
    ok, body = check(mp)
    assert not ok and metric(mp) == 700
    assert "no successful cycle yet; oldest unconfirmed change 700s old" in body["reason"]
    assert freshness(mp.store, mp.clock.now)[mp.name].since == first


@pytest.mark.parametrize("stuck", ["blocked", "dead"])
def test_a_blocked_or_dead_row_counts_while_cycles_succeed(
    make_pipeline: MakePipeline, stuck: str
) -> None:
    mp = make_pipeline(SCHEDULE)
    mp.move("A", "5")
    cycle(mp)
    if stuck == "blocked":
        mp.crm.skus = {"A"}  # the CRM does not know SKU B
    else:
        mp.crm.faults.append(("create_level", "reject"))
    mp.clock.advance(10)
    mp.move("B", "4")
    seen = cycle(mp)
    assert mp.store.outbox_counts() == {(mp.name, stuck): 1}
    for _ in range(2):
        mp.clock.advance(INTERVAL_S)
        mp.move("A", "1")  # the pipeline keeps syncing A: its cycles are good
        cycle(mp)
    assert mp.store.runs(mp.name, limit=1)[0].status == "ok"
    ok, body = check(mp)
    assert not ok and metric(mp) == age(mp, seen) == 602
    assert body["pipelines"][mp.name]["freshness_cause"] == "outbox"
    assert body["reason"].startswith(f"{mp.name}: oldest unconfirmed change 602s old")

    if stuck == "blocked":
        mp.crm.skus = None  # the SKU is created in the CRM: the row is pushed
    else:
        # requeued by `stocksync retry`: still the same unconfirmed change, same age
        assert mp.store.requeue_dead(None, mp.clock.now) == 1
        assert metric(mp) == 602
    mp.clock.advance(INTERVAL_S)
    cycle(mp)
    assert check(mp)[0] and metric(mp) == 0.0


def test_a_level_flagged_and_not_queued_counts(store: StateStore, clock: Clock) -> None:
    at = clock.now
    line = Movement("memory:d:1:1", MovementKind.RECEIPT, "A", "W1", Decimal(2), at, at)
    apply_page(store, "flagged", Page("moves", [line], None), now=at)  # a pull cut short
    clock.advance(42)
    f = freshness(store, clock.now)["flagged"]
    assert (f.freshness_s, f.since, f.cause) == (42, at, "levels")
    snapshot = collect(store, now=clock.now)
    assert snapshot["freshness"]["flagged"] == {
        "freshness_s": 42.0,
        "since": at.isoformat(timespec="seconds"),
        "cause": "levels",
    }


def test_measure_takes_the_earliest_time_and_never_goes_negative(clock: Clock) -> None:
    t0 = clock.now
    t1 = t0 + timedelta(seconds=5)
    assert measure("p", FreshnessInputs(), t0) is None
    both = measure("p", FreshnessInputs(oldest_outbox=t1, last_pull=t0, first_cycle=t0), t1)
    assert both is not None and (both.cause, both.freshness_s) == ("pull", 5)
    tie = measure("p", FreshnessInputs(oldest_outbox=t0, last_pull=t0), t1)
    assert tie is not None and tie.cause == "outbox"  # a held change names the cause
    ahead = measure("p", FreshnessInputs(last_pull=t1), t0)  # another replica's clock ahead
    assert ahead is not None and ahead.freshness_s == 0


def test_metrics_and_healthz_only_for_configured_pipelines(make_pipeline: MakePipeline) -> None:
    mp, other = make_pipeline(SCHEDULE), make_pipeline(SCHEDULE)
    mp.move("A", "1")
    started = cycle(mp)
    other.move("A", "1")  # one clock: one more second
    cycle(other)
    mp.clock.advance(699)
    assert metric(mp) == age(mp, started) == 700
    assert other.name not in scrape(mp)
    app = build_app(
        Metrics(lambda: mp.store, lambda: [mp.pipeline.settings], mp.clock),
        lambda: mp.store,
        lambda: [mp.pipeline.settings],
        mp.clock,
    )
    statuses: list[str] = []
    body = b"".join(app({"PATH_INFO": "/healthz"}, lambda s, h: statuses.append(s)))
    assert statuses == ["503 Service Unavailable"]
    assert b"oldest unconfirmed change 700s old (limit 600s)" in body
    assert other.name.encode() not in body


def test_the_inputs_on_every_backend(any_store: StateStore, pipeline: str, clock: Clock) -> None:
    t0 = clock.now
    with any_store.transaction() as tx:
        tx.enqueue(pipeline, "level", ["A\x1fW1"], t0)
    with any_store.transaction() as tx:  # a later change to the same key: the row keeps t0
        tx.enqueue(pipeline, "level", ["A\x1fW1"], clock.advance(30))
    line = Movement(f"{pipeline}:1", MovementKind.RECEIPT, "B", "W1", Decimal(1), t0, t0)
    apply_page(any_store, pipeline, Page("moves", [line], None), now=clock.advance(10))
    runs = [("ok", clock.advance(5)), ("degraded", clock.advance(5)), ("error", clock.advance(5))]
    for status, at in runs:
        run = any_store.start_run(f"{pipeline}-{status}", pipeline, "cycle", at)
        any_store.finish_run(run, at, status=status)
    inputs = any_store.freshness_inputs()[pipeline]
    assert inputs == FreshnessInputs(
        oldest_outbox=t0,
        oldest_flagged=t0 + timedelta(seconds=40),
        last_pull=t0 + timedelta(seconds=50),
        first_cycle=t0 + timedelta(seconds=45),
    )


def test_an_undelivered_alert_is_not_an_unconfirmed_change(store: StateStore, clock: Clock) -> None:
    """A dead or retrying webhook row says nothing about the CRM's stock: freshness ignores it,
    while a level row queued at the same moment counts."""
    from sync.state.rows import ALERT, LEVEL

    with store.transaction() as tx:
        tx.enqueue("alerting", ALERT, ["3f1c2a9e-alert"], clock.now)
    clock.advance(5000)
    assert "alerting" not in store.freshness_inputs()
    with store.transaction() as tx:
        tx.enqueue("alerting", LEVEL, ["A@W1"], clock.now)
    assert store.freshness_inputs()["alerting"].oldest_outbox == clock.now


def test_a_cycle_that_misses_the_crm_is_never_recorded_as_good(
    make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CRM check runs before the cycle's runs row is finished: /healthz cannot read the
    cycle as ``ok`` during the seconds the check of a dead CRM takes (newcomer trial)."""
    mp = make_pipeline(SCHEDULE)
    seen: list[str] = []

    def dead_crm() -> str:
        seen.append(mp.store.runs(mp.name, limit=1)[0].status)
        raise TransientError("connection refused")

    monkeypatch.setattr(mp.pipeline.sink, "check", dead_crm)
    result = run_cycle(mp.pipeline, check_crm=True)  # nothing to push: the check decides
    assert seen == ["running"]
    run = mp.store.runs(mp.name, limit=1)[0]
    assert (run.status, run.error) == ("degraded", result.degraded)
    assert result.degraded == "CRM check failed: TransientError: connection refused"
    ok, body = check(mp)
    assert not ok and "no successful cycle yet" in body["reason"]
