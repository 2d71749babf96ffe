"""refresh_reservations on every backend, and reserved stock through a whole cycle.

The refresh stores the ERP's reserved snapshot per key (micro-units, nonzero rows
only) and queues the level row of each key whose figure changed; a quiet refresh
opens no transaction at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from decimal import Decimal

import pytest

from connectors.memory.source import MemoryErp
from sync.model import LevelValue, Reserved, StockKey
from sync.reservations import INEXACT, refresh_reservations
from sync.runtime import run_cycle
from sync.state import StateStore
from sync.state.store import LEVEL, Tx, level_ref
from tests.conftest import Clock
from tests.reconcile.conftest import MakePipeline, MemoryPipeline, pipelines_on

A, B, C = StockKey("A", "W1"), StockKey("B", "W2"), StockKey("C", "W1")


class Snapshot:
    """An ERP whose reserved snapshot is given as is (duplicates and all)."""

    def __init__(self, items: list[Reserved] | None) -> None:
        self.items = items

    def reserved(self) -> list[Reserved] | None:
        return self.items


class Counted:
    """Counts the transactions a store opens (wraps ``StateStore.transaction``)."""

    def __init__(self, store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = 0
        real = store.transaction

        def counting() -> AbstractContextManager[Tx]:
            self.opened += 1
            return real()

        monkeypatch.setattr(store, "transaction", counting)


def _refresh(
    store: StateStore, source: object, pipeline: str, clock: Clock, precision: int = 6
) -> int:
    clock.advance(60)
    report = refresh_reservations(
        store,
        source,  # type: ignore[arg-type]  # only reserved() is called
        pipeline,
        now=clock.now,
        static={},
        precision=precision,
    )
    return report.changed


def _generations(store: StateStore, pipeline: str) -> dict[str, int]:
    return {r.ref: r.generation for r in store.outbox_rows(pipeline) if r.target == LEVEL}


def _queued(before: dict[str, int], store: StateStore, pipeline: str) -> set[str]:
    """Refs whose outbox row appeared or had its generation bumped since ``before``."""
    after = _generations(store, pipeline)
    return {ref for ref, gen in after.items() if before.get(ref, 0) < gen}


def _units(store: StateStore, pipeline: str) -> dict[StockKey, int]:
    return store.reserved_units(pipeline)


def test_made_changed_released(any_store: StateStore, pipeline: str, clock: Clock) -> None:
    erp = MemoryErp(now=clock)
    erp.reserve("A", "W1", 5)
    assert _refresh(any_store, erp, pipeline, clock) == 1  # made
    assert _units(any_store, pipeline) == {A: 5_000_000}
    assert _generations(any_store, pipeline) == {level_ref(A): 1}

    before = _generations(any_store, pipeline)
    erp.reserve("A", "W1", "7.25")  # changed
    erp.reserve("B", "W2", "0.000001")  # made, the finest figure the ledger keeps
    assert _refresh(any_store, erp, pipeline, clock) == 2
    assert _units(any_store, pipeline) == {A: 7_250_000, B: 1}
    assert any_store.reserved(pipeline, A) == Decimal("7.25")
    assert _queued(before, any_store, pipeline) == {level_ref(A), level_ref(B)}

    before = _generations(any_store, pipeline)
    erp.reserve("A", "W1", 0)  # released: A drops out of the snapshot
    assert _refresh(any_store, erp, pipeline, clock) == 1
    assert _units(any_store, pipeline) == {B: 1}  # A's row is deleted
    assert any_store.reserved(pipeline, A) == 0
    assert _queued(before, any_store, pipeline) == {level_ref(A)}


def test_status_summarises_reserved_stock_on_every_backend(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    """`stocksync status`: keys with reserved stock, the total and the last change."""
    from sync.cli.status import collect

    erp = MemoryErp(now=clock)
    erp.reserve("A", "W1", "7.25")
    erp.reserve("B", "W2", 3)
    _refresh(any_store, erp, pipeline, clock)
    assert collect(any_store)["reserved"][pipeline] == {
        "keys": 2,
        "total": "10.25",
        "changed_at": clock.now.isoformat(timespec="seconds"),
    }
    erp.reserve("A", "W1", 0)
    erp.reserve("B", "W2", 0)
    _refresh(any_store, erp, pipeline, clock)
    assert pipeline not in collect(any_store)["reserved"]


def test_an_erp_that_keeps_none_clears_the_stored_rows(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    erp = MemoryErp(now=clock)
    erp.reserve("A", "W1", 4)
    erp.reserve("B", "W2", 6)
    _refresh(any_store, erp, pipeline, clock)
    before = _generations(any_store, pipeline)
    none = MemoryErp(now=clock, reservations=False)
    none.reserve("C", "W1", 9)  # kept by the object, never reported: reserved() is None
    report = refresh_reservations(any_store, none, pipeline, now=clock.advance(60), static={})
    assert (report.supported, report.keys, report.changed) == (False, 0, 2)
    assert _units(any_store, pipeline) == {}
    assert _queued(before, any_store, pipeline) == {level_ref(A), level_ref(B)}


def test_a_figure_finer_than_precision_keeps_the_previous_one(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    erp = MemoryErp(now=clock)
    erp.reserve("A", "W1", "1.25")
    erp.reserve("B", "W2", "0.125")  # 3 decimals: more than precision 2, never stored
    before = _generations(any_store, pipeline)
    report = refresh_reservations(
        any_store, erp, pipeline, now=clock.advance(60), static={}, precision=2
    )
    assert (report.keys, report.changed, report.rejected) == (1, 1, 1)
    assert _units(any_store, pipeline) == {A: 1_250_000}
    assert _queued(before, any_store, pipeline) == {level_ref(A)}
    (conflict,) = any_store.conflicts(pipeline=pipeline, kind=INEXACT)
    assert (conflict.ref, conflict.erp_qty) == (level_ref(B), Decimal("0.125"))
    assert "pipelines[].precision" in conflict.detail["message"]

    erp.reserve("A", "W1", "1.255")  # A had 1.25: it keeps 1.25, nothing queued
    before = _generations(any_store, pipeline)
    assert _refresh(any_store, erp, pipeline, clock, precision=2) == 0
    assert _units(any_store, pipeline) == {A: 1_250_000}
    assert _queued(before, any_store, pipeline) == set()
    refs = {c.ref for c in any_store.conflicts(pipeline=pipeline, kind=INEXACT)}
    assert refs == {level_ref(A), level_ref(B)}


def test_a_quiet_refresh_queues_and_writes_nothing(
    any_store: StateStore, pipeline: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    erp = MemoryErp(now=clock)
    erp.reserve("A", "W1", 3)
    erp.reserve("C", "W1", "2.5")
    assert _refresh(any_store, erp, pipeline, clock) == 2
    rows = any_store.outbox_rows(pipeline)
    counted = Counted(any_store, monkeypatch)
    for _ in range(3):
        assert _refresh(any_store, erp, pipeline, clock) == 0
    assert counted.opened == 0  # not even an empty transaction
    assert any_store.outbox_rows(pipeline) == rows  # same rows, same generations
    erp.reserve("C", "W1", 3)  # one change: one transaction
    assert _refresh(any_store, erp, pipeline, clock) == 1 and counted.opened == 1


def test_duplicates_in_a_snapshot_add_up(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    snapshot = Snapshot(
        [
            Reserved("A", "W1", Decimal(2)),
            Reserved("B", "W2", Decimal(1)),
            Reserved("A", "W1", Decimal("3.5")),
            Reserved("B", "W2", Decimal(-1)),
        ]
    )
    assert _refresh(any_store, snapshot, pipeline, clock) == 1
    # A: two orders' reservations, 5.5; B: 1 and −1 net to nothing, so no row
    assert _units(any_store, pipeline) == {A: 5_500_000}
    snapshot.items = [Reserved("A", "W1", Decimal("5.5"))]  # the same total in one item
    assert _refresh(any_store, snapshot, pipeline, clock) == 0


# ------------------------------------------------------------------ a whole cycle
@pytest.fixture
def make_pipeline(store: StateStore, clock: Clock) -> Iterator[MakePipeline]:
    yield from pipelines_on(store, clock)


def _crm(mp: MemoryPipeline) -> dict[StockKey, LevelValue]:
    return {r.key: r.value for r in mp.crm.levels.values()}


def _writes(mp: MemoryPipeline) -> int:
    return mp.crm.calls["create_level"] + mp.crm.calls["update_level"]


def test_a_reservation_in_one_warehouse_of_three(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline()
    w1, w2, w3 = (StockKey("P", w) for w in ("W1", "W2", "W3"))
    for key, qty in ((w1, 40), (w2, 25), (w3, 10)):
        mp.erp.set_opening(key.sku, key.warehouse, qty)
    run_cycle(mp.pipeline)
    assert _writes(mp) == 3
    mp.erp.reserve("P", "W2", 8)  # an order reserves 8 in W2
    result = run_cycle(mp.pipeline)
    assert (result.reserved, result.push.pushed, _writes(mp)) == (1, 1, 4)
    assert _crm(mp) == {
        w1: LevelValue(Decimal(40), Decimal(40)),
        w2: LevelValue(Decimal(25), Decimal(17)),
        w3: LevelValue(Decimal(10), Decimal(10)),
    }
    # the order ships: on hand goes down and the reservation is released in one cycle
    mp.move("P", "-8", wh="W2")
    mp.erp.reserve("P", "W2", 0)
    result = run_cycle(mp.pipeline)
    assert (result.reserved, result.push.pushed) == (1, 1)
    assert _crm(mp)[w2] == LevelValue(Decimal(17), Decimal(17))
    quiet = run_cycle(mp.pipeline)
    assert (quiet.reserved, quiet.push.pushed, _writes(mp)) == (0, 0, 5)


def test_reservations_over_on_hand_show_available_below_zero(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline()
    mp.erp.set_opening("P", "W3", 10)
    mp.erp.reserve("P", "W3", 12)
    run_cycle(mp.pipeline)
    value = _crm(mp)[StockKey("P", "W3")]
    assert value == LevelValue(Decimal(10), Decimal(-2)) and value.reserved == 12
    mp.erp.reserve("P", "W3", "10.5")  # cancelled in part: still over on hand
    run_cycle(mp.pipeline)
    assert _crm(mp)[StockKey("P", "W3")] == LevelValue(Decimal(10), Decimal("-0.5"))
