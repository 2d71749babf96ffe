"""Pages larger than one multi-row statement, on every backend (the SQL differs per dialect)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sync.ledger import apply_page, verify
from sync.model import Movement, MovementKind, Page, StockKey
from sync.state import StateStore
from tests.conftest import Clock


def _line(n: int, qty: str, clock: Clock, *, keys: int) -> Movement:
    sku, warehouse = f"S{n % keys:03d}", f"W{n % 2}"
    return Movement(
        f"memory:d:{n}:1", MovementKind.RECEIPT, sku, warehouse, Decimal(qty), clock.now, clock.now
    )


def _expected(lines: dict[str, Movement]) -> dict[StockKey, Decimal]:
    sums: defaultdict[StockKey, Decimal] = defaultdict(Decimal)
    for m in lines.values():
        sums[m.stock_key] += m.qty
    return {k: v for k, v in sums.items() if v}


def test_big_pages_insert_update_and_sum_exactly(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    # 123 new lines over 61 stock keys: 2 full multi-row statements and a remainder each
    first = {m.key: m for m in (_line(n, f"{n % 7}.25", clock, keys=61) for n in range(123))}
    result = apply_page(any_store, pipeline, Page("s", list(first.values()), None), now=clock.now)
    assert (result.inserted, result.updated) == (123, 0)
    assert {k: v for k, v in any_store.levels(pipeline).items() if v} == _expected(first)

    # edits of 40 of them plus 70 new lines on other keys, in one page
    clock.advance(60)
    second = [_line(n, "3", clock, keys=61) for n in range(0, 80, 2)]
    second += [_line(n, "1.5", clock, keys=97) for n in range(200, 270)]
    result = apply_page(any_store, pipeline, Page("s", second, None), now=clock.now)
    assert (result.inserted, result.updated) == (70, 40)
    lines = first | {m.key: m for m in second}
    assert {k: v for k, v in any_store.levels(pipeline).items() if v} == _expected(lines)
    assert not verify(any_store, pipeline)
    assert len(any_store.pending_levels(pipeline)) == len({m.stock_key for m in lines.values()})

    again = apply_page(any_store, pipeline, Page("s", second, None), now=clock.now)
    assert again.changed == 0
