"""Levels the CRM can only show rounded, on every state backend (``status`` levels_inexact)."""

from __future__ import annotations

from decimal import Decimal

from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync.model import Movement, MovementKind, StockKey
from sync.pull import PullOptions, pull_all
from sync.push import Pusher
from sync.state import StateStore
from tests.conftest import Clock

A, B = StockKey("A", "W1"), StockKey("B", "W1")


def test_inexact_levels_on_every_backend(any_store: StateStore, pipeline: str) -> None:
    clock = Clock()
    erp, crm = MemoryErp(now=clock), MemoryCrm(precision=2)
    lines = iter(range(1, 100))

    def put(key: StockKey, qty: str) -> None:
        clock.advance(1)
        n = next(lines)
        erp.put(
            Movement(
                f"memory:d:{n}:1", MovementKind.RECEIPT, *key, Decimal(qty), clock.now, clock.now
            )
        )
        pull_all(any_store, erp, pipeline, now=clock, options=PullOptions(overlap_s=0))

    def push() -> None:
        Pusher(any_store, crm, pipeline, now=clock).run()

    put(A, "139.625")
    put(B, "5")
    push()
    assert crm.values() == {A: Decimal("139.62"), B: Decimal("5")}
    assert any_store.inexact_levels()[pipeline] == (1, [A])
    put(B, "0.001")  # waiting to be pushed: not (yet) reported
    assert any_store.inexact_levels()[pipeline] == (1, [A])
    push()
    assert any_store.inexact_levels()[pipeline] == (2, [A, B])
    assert any_store.inexact_levels(sample=1)[pipeline] == (2, [A])
    put(A, "0.005")  # 139.63: shown exactly
    put(B, "-0.001")
    push()
    assert pipeline not in any_store.inexact_levels()
