"""The push engine against the in-memory CRM: idempotency, coalescing, failures, blocking."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync.errors import TransientError
from sync.ledger import apply_page
from sync.model import Movement, MovementKind, Page, StockKey
from sync.pull import PullOptions, pull_all, pull_stream
from sync.push import Pusher, PushOptions
from sync.state import StateStore
from sync.state.store import BLOCKED, DEAD, LEVEL, level_ref
from tests.conftest import Clock

OPTIONS = PullOptions(page_size=50, overlap_s=0)


def receipt(clock: Clock, n: int, sku: str = "A", wh: str = "W1", qty: str = "1") -> Movement:
    return Movement(
        f"memory:d:{n}:1", MovementKind.RECEIPT, sku, wh, Decimal(qty), clock.now, clock.now
    )


def sync(
    store: StateStore,
    erp: MemoryErp,
    crm: MemoryCrm,
    clock: Clock,
    pipeline: str = "p",
    **options: object,
) -> None:
    pull_all(store, erp, pipeline, now=clock, options=OPTIONS)
    Pusher(store, crm, pipeline, now=clock, options=PushOptions(**options)).run()  # type: ignore[arg-type]


def test_ten_movements_on_one_key_become_one_write(store: StateStore, clock: Clock) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    for n in range(10):
        erp.put(receipt(clock, n))
    sync(store, erp, crm, clock)
    assert crm.values() == {StockKey("A", "W1"): Decimal(10)}
    assert crm.calls["create_level"] == 1 and crm.calls["update_level"] == 0


def test_pushing_again_changes_nothing(store: StateStore, clock: Clock) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    erp.put(receipt(clock, 1))
    sync(store, erp, crm, clock)
    calls = sum(crm.calls.values())
    clock.advance(5)
    sync(store, erp, crm, clock)
    assert sum(crm.calls.values()) == calls


def test_equal_to_last_pushed_value_is_not_pushed(store: StateStore, clock: Clock) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    m = erp.put(receipt(clock, 1, qty="5"))
    sync(store, erp, crm, clock)
    clock.advance(5)
    erp.set_active(m.key, False)  # 5 → 0
    clock.advance(5)
    erp.set_active(m.key, True)  # 0 → 5 again before the next push
    calls = sum(crm.calls.values())
    sync(store, erp, crm, clock)
    assert sum(crm.calls.values()) == calls


def test_steady_state_costs_one_update_per_changed_level(store: StateStore, clock: Clock) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    for n in range(30):
        erp.put(receipt(clock, n, sku=f"S{n}"))
    sync(store, erp, crm, clock)
    crm.calls.clear()
    clock.advance(5)
    for n in range(7):
        erp.put(receipt(clock, 100 + n, sku=f"S{n}", qty="2"))
    sync(store, erp, crm, clock)
    assert dict(crm.calls) == {"update_level": 7}


def test_bulk_binding_reuses_existing_crm_records(store: StateStore, clock: Clock) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    existing = {f"S{n}": crm.create_level(StockKey(f"S{n}", "W1"), _lv(1)) for n in range(25)}
    crm.calls.clear()
    for n in range(25):
        erp.put(receipt(clock, n, sku=f"S{n}", qty="1" if n % 2 else "3"))
    sync(store, erp, crm, clock)
    assert crm.calls["create_level"] == 0 and crm.calls["find_level"] == 0
    assert crm.calls["update_level"] == 13  # the even ones differ (3 ≠ 1)
    assert {r.key.sku: i for i, r in crm.levels.items()} == {s: i for s, i in existing.items()}


def test_bulk_binding_takes_the_oldest_duplicate_and_keeps_existing_bindings(
    store: StateStore, clock: Clock
) -> None:
    """Design note 23: like find_level, the bulk read binds the oldest record of a key,
    and never moves a key already bound to another of its records."""
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    erp.put(receipt(clock, 0, sku="S0", qty="4"))
    sync(store, erp, crm, clock)
    (bound_s0,) = crm.records(StockKey("S0", "W1"))
    crm.add_record(StockKey("S0", "W1"), Decimal(4), oldest=True)  # older, never bound
    older = crm.add_record(StockKey("S1", "W1"), Decimal(9))
    newer = crm.add_record(StockKey("S1", "W1"), Decimal(9))
    for n in range(1, 6):
        erp.put(receipt(clock, n, sku=f"S{n}", qty="9"))
    clock.advance(5)
    sync(store, erp, crm, clock, bulk_bind_threshold=2)
    bound = {ref.split("\x1f")[0]: b.crm_id for ref, b in store.bindings("p", LEVEL).items()}
    assert bound["S0"] == bound_s0 and bound["S1"] == older
    assert crm.records(StockKey("S1", "W1")) == {older: Decimal(9), newer: Decimal(9)}


def _lv(q: int) -> object:
    from sync.model import LevelValue

    return LevelValue(Decimal(q), Decimal(q))


def test_unknown_sku_is_blocked_with_a_conflict_and_retried(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm(skus={"A"})
    erp.put(receipt(clock, 1, sku="NEW"))
    sync(store, erp, crm, clock)
    [row] = store.outbox_rows("p")
    assert row.state == BLOCKED
    [conflict] = store.conflicts(pipeline="p", open_only=True)
    assert conflict.kind == "unmapped_sku" and conflict.detail["code"] == "NEW"
    crm.skus = {"A", "NEW"}  # someone creates the product in the CRM
    clock.advance(60)
    Pusher(store, crm, "p", now=clock).run()
    assert crm.values() == {StockKey("NEW", "W1"): Decimal(1)}
    assert store.outbox_rows("p") == []
    assert store.conflicts(pipeline="p", open_only=True) == []


def test_row_goes_dead_after_max_attempts_and_retry_requeues(
    store: StateStore, clock: Clock
) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    erp.put(receipt(clock, 1))
    pull_all(store, erp, "p", now=clock, options=OPTIONS)
    pusher = Pusher(store, crm, "p", now=clock, options=PushOptions(max_attempts=3))
    for _ in range(3):
        crm.faults = [("*", "fail")] * 5
        pusher.run()
        clock.advance(7200)
    [row] = store.outbox_rows("p")
    assert row.state == DEAD and row.attempts == 3
    assert store.requeue_dead(None, clock.now) == 1
    crm.faults = []
    pusher.run()
    assert crm.values() == {StockKey("A", "W1"): Decimal(1)}


@given(
    faults=st.lists(
        st.tuples(
            st.sampled_from(["create_level", "update_level", "find_level", "*"]),
            st.sampled_from(["lost", "fail"]),
        ),
        max_size=12,
    ),
    qtys=st.lists(st.integers(1, 9), min_size=1, max_size=12),
)
def test_no_duplicates_whatever_fails(
    shared_sqlite: StateStore, faults: list[tuple[str, str]], qtys: list[int]
) -> None:
    clock = Clock()
    pipeline = f"p{uuid.uuid4().hex[:10]}"
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    crm.faults = list(faults)
    for n, q in enumerate(qtys):
        erp.put(receipt(clock, n, sku=f"S{n % 4}", qty=str(q)))
        clock.advance(1)
        if n % 3 == 0:
            sync(shared_sqlite, erp, crm, clock, pipeline, bulk_bind_threshold=3, retry_initial_s=1)
    for _ in range(20):
        clock.advance(3600)
        # more faults in a row than max_attempts kill a row; the operator's `stocksync retry`
        shared_sqlite.requeue_dead(None, clock.now)
        sync(shared_sqlite, erp, crm, clock, pipeline, bulk_bind_threshold=3, retry_initial_s=1)
        if not shared_sqlite.outbox_rows(pipeline):
            break
    keys = [r.key for r in crm.levels.values()]
    assert len(keys) == len(set(keys)), "a CRM record was duplicated"
    expected = {k: v for k, v in shared_sqlite.levels(pipeline).items()}
    assert crm.values() == expected
    assert all(b.crm_id in crm.levels for b in shared_sqlite.bindings(pipeline, LEVEL).values())


def test_retry_backoff_is_scheduled(store: StateStore, clock: Clock) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    erp.put(receipt(clock, 1))
    pull_all(store, erp, "p", now=clock, options=OPTIONS)
    crm.faults = [("*", "fail")]
    Pusher(store, crm, "p", now=clock, options=PushOptions(retry_initial_s=30)).run()
    [row] = store.outbox_rows("p")
    assert row.attempts == 1
    assert (
        clock.now + timedelta(seconds=14)
        <= row.next_attempt_at
        <= clock.now + timedelta(seconds=31)
    )


def test_a_failed_bulk_read_falls_back_to_lookups(store: StateStore, clock: Clock) -> None:
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    existing = crm.create_level(StockKey("S0", "W1"), _lv(1))
    for n in range(25):
        erp.put(receipt(clock, n, sku=f"S{n}"))
    pull_all(store, erp, "p", now=clock, options=OPTIONS)
    original = crm.read_levels

    def broken() -> object:
        raise TransientError("CRM busy")

    crm.read_levels = broken  # type: ignore[method-assign]
    report = Pusher(store, crm, "p", now=clock).run()
    crm.read_levels = original  # type: ignore[method-assign]
    assert report.pushed == 25 and crm.calls["find_level"] == 25
    assert [i for i, r in crm.levels.items() if r.key.sku == "S0"] == [existing]


def test_a_push_queues_levels_that_a_crashed_pull_left_flagged(
    store: StateStore, clock: Clock
) -> None:
    # pages committed, then the process died before the stream's levels were queued
    page = Page("s", [receipt(clock, 1, qty="4"), receipt(clock, 2, sku="B", qty="2")], None)
    apply_page(store, "p", page, now=clock.now)
    assert store.outbox_rows("p") == [] and len(store.pending_levels("p")) == 2
    crm = MemoryCrm()
    report = Pusher(store, crm, "p", now=clock).run()
    assert report.created == 2
    assert crm.values() == {StockKey("A", "W1"): Decimal(4), StockKey("B", "W1"): Decimal(2)}
    assert store.pending_levels("p") == [] and store.outbox_rows("p") == []


def test_a_pull_stopped_by_shutdown_leaves_its_levels_to_the_next_push(
    store: StateStore, clock: Clock
) -> None:
    erp = MemoryErp(now=clock)
    for n in range(120):
        erp.put(receipt(clock, n, sku=f"S{n}"))
    stop = threading.Event()
    report = pull_stream(
        store,
        erp,
        "p",
        next(iter(erp.streams())),
        now=clock,
        options=OPTIONS,
        stop=stop,
        on_page=lambda _: stop.set(),  # SIGTERM arrives while the first page is applied
    )
    assert report.stopped and report.pages == 1
    assert store.outbox_rows("p") == [] and len(store.pending_levels("p")) == 50
    crm = MemoryCrm()
    Pusher(store, crm, "p", now=clock).run()
    assert len(crm.values()) == 50 and store.pending_levels("p") == []


def test_a_bound_record_deleted_in_the_crm_is_bound_again_or_created(
    store: StateStore, clock: Clock
) -> None:
    """The bound record is gone: the same attempt looks the key up and binds the record a
    person made meanwhile (no create); gone again with none left, it creates one."""
    erp, crm = MemoryErp(now=clock), MemoryCrm()
    key = StockKey("A", "W1")
    erp.put(receipt(clock, 1))
    sync(store, erp, crm, clock)
    (first,) = crm.records(key)
    crm.delete(first)
    made_by_hand = crm.add_record(key, Decimal(0))
    clock.advance(5)
    erp.put(receipt(clock, 2))
    crm.calls.clear()
    sync(store, erp, crm, clock)
    assert crm.records(key) == {made_by_hand: Decimal(2)}
    assert dict(crm.calls) == {"update_level": 2, "find_level": 1}  # gone, then the found one
    crm.delete(made_by_hand)
    clock.advance(5)
    erp.put(receipt(clock, 3))
    sync(store, erp, crm, clock)
    ((created, qty),) = crm.records(key).items()
    assert qty == 3 and created not in (first, made_by_hand)
    binding = store.binding("p", LEVEL, level_ref(key))
    assert binding is not None and binding.crm_id == created
    assert store.outbox_rows("p") == []
