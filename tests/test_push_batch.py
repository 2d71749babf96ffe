"""Batch pushes (``BatchLevelSink``) against the in-memory CRM: calls per level, per-item
outcomes, whole-call failures, a spent budget, and no duplicate whatever fails."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from io import StringIO

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from rich.console import Console

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryBatchCrm, MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.cli.status import collect, render
from sync.ledger import LedgerOptions
from sync.model import Movement, MovementKind, StockKey
from sync.ports import ApiUsage, BatchLevelSink
from sync.pull import PullOptions, pull_all
from sync.push import Pusher, PushOptions, PushReport
from sync.push_batch import USAGE_META, recorded_usage
from sync.runtime import build_pipeline, run_cycle
from sync.service.health import Metrics
from sync.state import StateStore
from sync.state.store import BLOCKED, DEAD, LEVEL, MOVEMENT, PENDING, UNCERTAIN
from tests.conftest import Clock
from tests.reconcile.conftest import memory_yaml

OPTIONS = PullOptions(page_size=500, overlap_s=0)


def receipt(clock: Clock, n: int, sku: str = "A", wh: str = "W1", qty: str = "1") -> Movement:
    return Movement(
        f"memory:d:{n}:1", MovementKind.RECEIPT, sku, wh, Decimal(qty), clock.now, clock.now
    )


def sync(
    store: StateStore, erp: MemoryErp, crm: MemoryBatchCrm, clock: Clock, pipeline: str = "p"
) -> PushReport:
    pull_all(store, erp, pipeline, now=clock, options=OPTIONS)
    options = PushOptions(retry_initial_s=1, retry_max_s=1)
    return Pusher(store, crm, pipeline, now=clock, options=options).run()


def states(store: StateStore, pipeline: str = "p") -> dict[str, tuple[str, int]]:
    """sku → (outbox state, attempts) of each level row still in the outbox."""
    return {
        row.ref.split("\x1f")[0]: (row.state, row.attempts)
        for row in store.outbox_rows(pipeline)
        if row.target == LEVEL
    }


def test_the_memory_batch_crm_is_a_batch_sink_and_the_plain_one_is_not() -> None:
    assert isinstance(MemoryBatchCrm(), BatchLevelSink)
    assert not isinstance(MemoryCrm(), BatchLevelSink)


def test_a_first_push_costs_one_call_per_batch_and_no_lookup(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm(batch_size=50)
    for n in range(120):
        erp.put(receipt(clock, n, sku=f"S{n:03}", qty=str(n + 1)))
    report = sync(store, erp, crm, clock)
    assert (report.pushed, report.created) == (120, 120)
    assert crm.calls["upsert_levels"] == 3  # 50 + 50 + 20
    assert not (crm.calls["find_level"] or crm.calls["read_levels"] or crm.calls["create_level"])
    assert crm.values() == store.levels("p")
    bound = store.bindings("p", LEVEL)
    assert {b.crm_id for b in bound.values()} == set(crm.levels)


def test_a_smaller_outbox_step_still_fills_the_sinks_calls(store: StateStore, clock: Clock) -> None:
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm(batch_size=10)
    for n in range(25):
        erp.put(receipt(clock, n, sku=f"S{n:03}"))
    pull_all(store, erp, "p", now=clock, options=OPTIONS)
    Pusher(store, crm, "p", now=clock, options=PushOptions(batch_size=3)).run()
    assert crm.calls["upsert_levels"] == 3 and crm.values() == store.levels("p")


def test_unchanged_levels_cost_no_call_and_changed_ones_one_batch(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm(batch_size=200)
    for n in range(30):
        erp.put(receipt(clock, n, sku=f"S{n:03}"))
    sync(store, erp, crm, clock)
    clock.advance(5)
    assert sync(store, erp, crm, clock).pushed == 0
    assert crm.calls["upsert_levels"] == 1
    for n in range(30, 40):
        erp.put(receipt(clock, n, sku=f"S{n % 10:03}"))
    clock.advance(5)
    report = sync(store, erp, crm, clock)
    assert (report.updated, report.created, crm.calls["upsert_levels"]) == (10, 0, 2)
    assert crm.values() == store.levels("p")


def test_a_record_error_in_the_middle_of_a_batch_dead_letters_that_row_only(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm()
    for n in range(5):
        erp.put(receipt(clock, n, sku=f"S{n}"))
    crm.faults = [("upsert_item", "lock"), ("upsert_item", "lock"), ("upsert_item", "reject")]
    report = sync(store, erp, crm, clock)
    # items are consumed in order: S0 and S1 locked, S2 rejected, S3 and S4 written
    assert (report.pushed, report.retried, report.dead) == (2, 2, 1)
    assert states(store) == {"S0": (PENDING, 1), "S1": (PENDING, 1), "S2": (DEAD, 1)}
    assert set(crm.values()) == {StockKey("S3", "W1"), StockKey("S4", "W1")}
    clock.advance(60)
    assert sync(store, erp, crm, clock).pushed == 2  # the locked rows, in one more call
    assert states(store) == {"S2": (DEAD, 1)}
    assert store.requeue_dead(None, clock.now) == 1
    sync(store, erp, crm, clock)
    assert crm.values() == store.levels("p") and not states(store)


def test_a_lost_answer_leaves_the_batch_uncertain_and_resending_it_duplicates_nothing(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm()
    for n in range(4):
        erp.put(receipt(clock, n, sku=f"S{n}", qty="5"))
    crm.faults = [("upsert_levels", "lost")]
    report = sync(store, erp, crm, clock)
    assert report.retried == 4 and len(crm.levels) == 4  # applied, answer lost
    assert {s for s, _ in states(store).values()} == {UNCERTAIN}
    clock.advance(60)
    sync(store, erp, crm, clock)
    assert len(crm.levels) == 4 and crm.values() == store.levels("p")
    assert not states(store)


def test_an_uncertain_row_is_written_even_when_its_value_is_back_to_the_last_pushed(
    store: StateStore, clock: Clock
) -> None:
    """5 pushed; 7 sent but the answer lost (the CRM holds 7); back to 5: must write."""
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm()
    erp.put(receipt(clock, 1, qty="5"))
    sync(store, erp, crm, clock)
    erp.put(receipt(clock, 2, qty="2"))
    crm.faults = [("upsert_levels", "lost")]
    clock.advance(5)
    sync(store, erp, crm, clock)
    assert crm.values() == {StockKey("A", "W1"): Decimal(7)}
    erp.set_active("memory:d:2:1", False)
    clock.advance(60)
    sync(store, erp, crm, clock)
    assert crm.values() == {StockKey("A", "W1"): Decimal(5)} == store.levels("p")


def test_a_whole_call_failure_leaves_every_row_of_it_pending(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm(batch_size=2)
    for n in range(3):
        erp.put(receipt(clock, n, sku=f"S{n}"))
    crm.faults = [("upsert_levels", "fail")]
    report = sync(store, erp, crm, clock)
    assert (report.retried, report.pushed) == (2, 1)  # the first call failed, the second not
    assert states(store) == {"S0": (PENDING, 1), "S1": (PENDING, 1)}
    assert crm.values() == {StockKey("S2", "W1"): Decimal(1)}


def test_a_spent_budget_pauses_the_push_and_leaves_rows_untouched(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm(batch_size=2)
    for n in range(5):
        erp.put(receipt(clock, n, sku=f"S{n}"))
    crm.budget = 1
    crm.usage = ApiUsage(used=99, limit=100, ceiling=50, seen_at=clock.now)
    report = sync(store, erp, crm, clock)
    assert report.paused == "memory CRM: call budget spent"
    assert (report.pushed, report.retried, report.dead) == (2, 0, 0)
    assert states(store) == {"S2": (PENDING, 0), "S3": (PENDING, 0), "S4": (PENDING, 0)}
    assert crm.calls["upsert_levels"] == 2  # the refused call was the last one
    figures = recorded_usage(store)["p"]
    assert figures["used"] == 99 and figures["ceiling"] == 50
    assert figures["paused"] == "memory CRM: call budget spent"
    crm.budget = None
    assert sync(store, erp, crm, clock).pushed == 3
    assert json.loads(store.meta("p", USAGE_META) or "{}")["paused"] is None
    assert crm.values() == store.levels("p")


def test_an_unknown_product_in_a_batch_is_blocked_and_the_rest_written(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm(skus={"S0", "S2"})
    for n in range(3):
        erp.put(receipt(clock, n, sku=f"S{n}"))
    report = sync(store, erp, crm, clock)
    assert (report.pushed, report.blocked) == (2, 1)
    assert states(store) == {"S1": (BLOCKED, 0)}
    assert [c.kind for c in store.conflicts(pipeline="p")] == ["unmapped_sku"]
    crm.skus = None
    clock.advance(5)
    sync(store, erp, crm, clock)
    assert crm.values() == store.levels("p") and not states(store)
    assert not store.conflicts(pipeline="p", open_only=True)


def test_mirrored_movements_go_in_batches_too(store: StateStore, clock: Clock) -> None:
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm(batch_size=3)
    for n in range(7):
        erp.put(receipt(clock, n, sku=f"S{n % 2}"))
    pull_all(
        store, erp, "p", now=clock, options=OPTIONS, ledger=LedgerOptions(mirror_movements=True)
    )
    crm.faults = [("upsert_movements", "lost")]
    Pusher(store, crm, "p", now=clock, options=PushOptions(retry_initial_s=1)).run()
    clock.advance(60)
    Pusher(store, crm, "p", now=clock).run()
    assert sorted(k for k, _ in crm.movements.values()) == sorted(
        f"memory:d:{n}:1" for n in range(7)
    )
    assert crm.calls["upsert_movements"] == 3 + 1 and not crm.calls["create_movement"]
    assert len(store.bindings("p", MOVEMENT)) == 7


CALL_FAULTS = st.tuples(st.just("upsert_levels"), st.sampled_from(["lost", "fail", "quota"]))
ITEM_FAULTS = st.tuples(st.just("upsert_item"), st.sampled_from(["reject", "lock"]))


@settings(max_examples=40, deadline=None)
@given(
    faults=st.lists(st.one_of(CALL_FAULTS, ITEM_FAULTS), max_size=12),
    qtys=st.lists(st.integers(-3, 9), min_size=1, max_size=16),
    batch=st.integers(1, 4),
)
def test_no_duplicate_and_every_level_equal_whatever_a_batch_meets(
    shared_sqlite: StateStore, faults: list[tuple[str, str]], qtys: list[int], batch: int
) -> None:
    clock = Clock()
    pipeline = f"p{uuid.uuid4().hex[:10]}"
    erp, crm = MemoryErp(now=clock), MemoryBatchCrm(batch_size=batch)
    crm.faults = list(faults)
    for n, q in enumerate(qtys):
        erp.put(receipt(clock, n, sku=f"S{n % 5}", qty=str(q)))
        clock.advance(1)
        if n % 3 == 0:
            sync(shared_sqlite, erp, crm, clock, pipeline)
    for _ in range(30):
        clock.advance(3600)
        shared_sqlite.requeue_dead(None, clock.now)  # the operator's `stocksync retry`
        sync(shared_sqlite, erp, crm, clock, pipeline)
        if not shared_sqlite.outbox_rows(pipeline):
            break
    keys = [r.key for r in crm.levels.values()]
    assert len(keys) == len(set(keys)), "a CRM record was duplicated"
    assert crm.values() == shared_sqlite.levels(pipeline)
    bound = shared_sqlite.bindings(pipeline, LEVEL)
    assert all(b.crm_id in crm.levels for b in bound.values())


def test_a_paused_cycle_is_degraded_and_status_and_metrics_say_why(
    store: StateStore, clock: Clock
) -> None:
    name = f"p{uuid.uuid4().hex[:10]}"
    settings = cfg.parse(memory_yaml(name)).pipeline(name)
    erp = memory_source.REGISTRY[name] = MemoryErp(now=clock)
    crm = memory_sink.REGISTRY[name] = MemoryBatchCrm()
    try:
        pipeline = build_pipeline(settings, store, now=clock)
        erp.put(receipt(clock, 1))
        crm.budget = 0
        crm.usage = ApiUsage(used=600, limit=1000, ceiling=500, seen_at=clock.now)
        result = run_cycle(pipeline, check_crm=True)
        assert result.degraded == "pushing paused: memory CRM: call budget spent"
        assert store.runs(name)[0].status == "degraded"
        data = collect(store, now=clock.now)
        assert data["api_budget"][name]["paused"] == "memory CRM: call budget spent"
        out = StringIO()
        render(data, Console(file=out, width=200))
        assert (
            f"{name}: CRM API calls 600 of 1000 (60.0 %) at 2026-03-01T08:00:00+00:00; "
            "pushing pauses at 500; PAUSED: memory CRM: call budget spent"
        ) in out.getvalue()
        text = generate_latest(Metrics(lambda: store, lambda: [settings], clock).registry).decode()
        assert f'stocksync_crm_api_used{{pipeline="{name}"}} 600.0' in text
        assert f'stocksync_crm_api_ceiling{{pipeline="{name}"}} 500.0' in text
        assert f'stocksync_push_paused{{pipeline="{name}"}} 1.0' in text
        crm.budget = None
        assert run_cycle(pipeline, check_crm=True).degraded is None
        assert collect(store, now=clock.now)["api_budget"][name]["paused"] is None
        pipeline.close()
    finally:
        memory_source.REGISTRY.pop(name, None)
        memory_sink.REGISTRY.pop(name, None)
