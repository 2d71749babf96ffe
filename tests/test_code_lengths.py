"""A line whose key or code is longer than the ledger holds is quarantined, not fatal.

Written, a 129-character SKU fails its page's transaction on PostgreSQL and MariaDB
(the column holds 128), so the page failed at every pull and the stream stopped there
for good; SQLite stored it. Now it is a ``record_error`` conflict on every backend and
the rest of the page commits.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sync.ledger import apply_page
from sync.model import Cursor, Movement, MovementKind, Page, StockKey
from sync.state import StateStore
from sync.state.schema import CODE, KEY

T = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def receipt(key: str, sku: str = "A", warehouse: str = "W1", qty: int = 1) -> Movement:
    return Movement(key, MovementKind.RECEIPT, sku, warehouse, Decimal(qty), T, T, "D1")


@pytest.fixture
def pipeline() -> str:
    return f"len-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (receipt("m:doc:2:1", sku="S" * (CODE + 1)), "sku"),
        (receipt("m:doc:2:1", warehouse="长" * (CODE + 1)), "warehouse"),  # characters, not bytes
        (receipt("m:doc:2:" + "9" * KEY), "key"),
    ],
)
def test_a_code_longer_than_its_column_is_quarantined_and_the_page_commits(
    any_store: StateStore, pipeline: str, bad: Movement, field: str
) -> None:
    good = receipt("m:doc:1:1", qty=5)
    at_limit = receipt("m:doc:3:1", sku="S" * CODE, warehouse="长" * CODE, qty=2)
    page = Page("moves", [good, bad, at_limit], Cursor(T, "c1"))
    result = apply_page(any_store, pipeline, page, now=T)
    assert (result.inserted, result.rejected) == (2, 1)
    assert any_store.levels(pipeline) == {
        StockKey("A", "W1"): Decimal(5),
        StockKey("S" * CODE, "长" * CODE): Decimal(2),
    }
    assert any_store.cursor(pipeline, "moves") == Cursor(T, "c1")  # the stream goes on
    [conflict] = any_store.conflicts(pipeline=pipeline, kind="record_error")
    assert conflict.detail["field"] == field
    assert "the ledger holds at most" in conflict.detail["reason"]
    assert any_store.movement(pipeline, bad.key) is None
