"""A first run's history counts in its cycle: `once` and `status` said "changed 0" for the
cycle that pulled a pipeline's whole history (newcomer trial)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.runtime import run_cycle
from sync.state import StateStore
from tests.conftest import Clock
from tests.reconcile.conftest import MakePipeline, pipelines_on


@pytest.fixture
def make_pipeline(store: StateStore, clock: Clock) -> Iterator[MakePipeline]:
    yield from pipelines_on(store, clock)


def test_the_first_cycle_counts_the_history_it_pulled(make_pipeline: MakePipeline) -> None:
    mp = make_pipeline()
    for sku, qty in (("A", "5"), ("B", "3"), ("A", "-1")):
        mp.move(sku, qty)
    first = run_cycle(mp.pipeline)
    assert first.applied == 3  # every history line entered the ledger in this cycle
    run = mp.store.runs(mp.name, limit=1)[0]
    assert (run.applied, run.pushed) == (3, 2)
    mp.clock.advance(60)
    mp.move("B", "2")
    assert run_cycle(mp.pipeline).applied == 1  # a later cycle counts its own changes only
