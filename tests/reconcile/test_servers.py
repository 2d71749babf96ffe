"""Reconcile's streamed merge-join on PostgreSQL and MariaDB, whose default collations differ
from Python's string order: the store must hand keys over in code-point order there too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from sync.model import StockKey
from sync.reconcile_run import reconcile
from sync.runtime import run_cycle
from sync.state import StateStore
from tests.conftest import Clock
from tests.reconcile.conftest import MakePipeline, pipelines_on


@pytest.fixture(params=["postgresql", "mysql"])
def make_server_pipeline(
    request: pytest.FixtureRequest, server_store: Callable[[str], StateStore], clock: Clock
) -> Iterator[MakePipeline]:
    yield from pipelines_on(server_store(request.param), clock)


def test_apply_on_a_database_server(make_server_pipeline: MakePipeline) -> None:
    mp = make_server_pipeline("    reconcile: {orphan_in_crm: zero}\n")
    # codes whose order differs between code points and case-insensitive collations
    for sku, qty in (("a-1", "3"), ("B-2", "4"), ("b_3", "5"), ("Z", "6"), ("é", "7")):
        mp.move(sku, qty)
    run_cycle(mp.pipeline)
    mp.crm.set_value(StockKey("B-2", "W1"), Decimal(99))
    mp.move("NEW", "2")
    mp.crm.create_level(StockKey("ORPHAN", "W1"), mp.crm.levels["L1"].value)

    dry = reconcile(mp.pipeline)
    assert {(f.kind.value, f.key.sku) for f in dry.conflicts} == {
        ("crm_modified", "B-2"),
        ("missing_in_crm", "NEW"),
        ("orphan_in_crm", "ORPHAN"),
    }
    assert reconcile(mp.pipeline, apply_changes=True).remaining == 0
    assert reconcile(mp.pipeline).remaining == 0
    assert mp.crm.values()[StockKey("B-2", "W1")] == Decimal(4)
