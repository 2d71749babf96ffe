"""Outbox enqueue and level queueing on every backend (the upserts are dialect-specific SQL)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from sync.ledger import apply_page, queue_pending_levels
from sync.model import Movement, MovementKind, Page, StockKey
from sync.state import StateStore
from sync.state.store import DEAD, LEVEL, PENDING, UNCERTAIN
from tests.conftest import Clock


@pytest.mark.parametrize("state", [PENDING, UNCERTAIN, DEAD])
def test_enqueue_bumps_generation_and_revives_only_dead_rows(
    any_store: StateStore, pipeline: str, clock: Clock, state: str
) -> None:
    with any_store.transaction() as tx:
        tx.enqueue(pipeline, LEVEL, ["A\x1fW1"], clock.now)
    [row] = any_store.outbox_rows(pipeline)
    later = clock.now + timedelta(hours=1)
    with any_store.transaction() as tx:
        tx.reschedule_outbox(
            row, state=state, attempts=3, next_attempt_at=later, error="boom", now=clock.now
        )
    clock.advance(60)
    with any_store.transaction() as tx:
        tx.enqueue(pipeline, LEVEL, ["A\x1fW1", "B\x1fW1"], clock.now)
    rows = {r.ref: r for r in any_store.outbox_rows(pipeline)}
    again = rows["A\x1fW1"]
    assert again.generation == row.generation + 1
    if state == DEAD:
        assert (again.state, again.attempts, again.next_attempt_at) == (PENDING, 0, clock.now)
        assert again.last_error is None
    else:  # the state and its backoff survive a newer value
        assert (again.state, again.attempts, again.next_attempt_at) == (state, 3, later)
    assert rows["B\x1fW1"].state == PENDING and rows["B\x1fW1"].generation == 1


def _receipt(n: int, sku: str, qty: str, clock: Clock) -> Movement:
    return Movement(
        f"memory:d:{n}:1", MovementKind.RECEIPT, sku, "W1", Decimal(qty), clock.now, clock.now
    )


def test_pages_flag_levels_and_queueing_turns_each_flag_into_one_outbox_row(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    page = Page("s", [_receipt(1, "A", "2", clock), _receipt(2, "A", "3", clock)], None)
    apply_page(any_store, pipeline, page, now=clock.now)
    apply_page(any_store, pipeline, Page("s", [_receipt(3, "B", "1", clock)], None), now=clock.now)
    # the pages wrote no outbox row: their levels carry the flag instead
    assert any_store.outbox_rows(pipeline) == []
    assert sorted(any_store.pending_levels(pipeline)) == [StockKey("A", "W1"), StockKey("B", "W1")]

    assert queue_pending_levels(any_store, pipeline, now=clock.now, chunk=1) == 2
    rows = {r.ref: r for r in any_store.outbox_rows(pipeline)}
    assert set(rows) == {"A\x1fW1", "B\x1fW1"}
    assert all(r.generation == 1 and r.state == PENDING for r in rows.values())
    assert any_store.pending_levels(pipeline) == []
    assert queue_pending_levels(any_store, pipeline, now=clock.now) == 0

    # the same page again changes nothing, so nothing is flagged
    apply_page(any_store, pipeline, page, now=clock.now)
    assert any_store.pending_levels(pipeline) == []

    # a newer value of A bumps A's row (a push in flight keeps it), B is left alone
    clock.advance(60)
    apply_page(any_store, pipeline, Page("s", [_receipt(4, "A", "1", clock)], None), now=clock.now)
    assert queue_pending_levels(any_store, pipeline, now=clock.now) == 1
    again = {r.ref: r for r in any_store.outbox_rows(pipeline)}
    assert again["A\x1fW1"].generation == 2 and again["B\x1fW1"].generation == 1
    assert any_store.level(pipeline, StockKey("A", "W1")) == Decimal(6)
