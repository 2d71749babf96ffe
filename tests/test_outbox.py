"""Outbox enqueue semantics on every backend (the upsert is dialect-specific SQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

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
