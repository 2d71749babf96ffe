"""ERP codes are exact strings on every backend (migration 0008).

MariaDB's default collation (``utf8mb4_general_ci``) made ``A1`` and ``a1``, and
``abc`` and ``abc `` (a trailing space), one key: a page holding lines of documents
``A1`` and ``a1`` failed with a duplicate primary key, and the levels of SKUs
``abc``/``ABC`` were summed into one row. SQLite and PostgreSQL kept them apart.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from sync.ledger import apply_page
from sync.model import Movement, MovementKind, Page, StockKey
from sync.state import StateStore

T = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def receipt(key: str, sku: str, qty: int, at: datetime = T) -> Movement:
    return Movement(key, MovementKind.RECEIPT, sku, "W1", Decimal(qty), at, at)


@pytest.fixture
def pipeline() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def test_keys_and_codes_that_differ_in_case_or_a_trailing_space_stay_apart(
    any_store: StateStore, pipeline: str
) -> None:
    page = Page(
        "s",
        [
            receipt("k3:doc:A1:1", "abc", 1),
            receipt("k3:doc:a1:1", "ABC", 2),
            receipt("k3:doc:a1 :1", "abc ", 4),
            receipt("k3:doc:Ä1:1", "äbc", 8),
        ],
        None,
    )
    apply_page(any_store, pipeline, page, now=T)
    assert sorted(any_store.movement_keys(pipeline)) == sorted(m.key for m in page.movements)
    assert any_store.levels(pipeline) == {
        StockKey("abc", "W1"): Decimal(1),
        StockKey("ABC", "W1"): Decimal(2),
        StockKey("abc ", "W1"): Decimal(4),
        StockKey("äbc", "W1"): Decimal(8),
    }
    # a later page edits one of them: only that line changes
    later = T + timedelta(minutes=5)
    apply_page(
        any_store, pipeline, Page("s", [receipt("k3:doc:a1:1", "ABC", 3, later)], None), now=later
    )
    assert any_store.levels(pipeline)[StockKey("ABC", "W1")] == Decimal(3)
    assert any_store.levels(pipeline)[StockKey("abc", "W1")] == Decimal(1)


def test_a_complete_document_does_not_withdraw_the_lines_of_its_namesake_in_other_case(
    any_store: StateStore, pipeline: str
) -> None:
    apply_page(
        any_store,
        pipeline,
        Page("s", [receipt("k3:doc:A1:1", "X", 5), receipt("k3:doc:a1:1", "X", 7)], None),
        now=T,
    )
    later = T + timedelta(minutes=5)
    # document A1 re-read whole with its one line: a1's line is not A1's
    apply_page(
        any_store,
        pipeline,
        Page(
            "s",
            [receipt("k3:doc:A1:1", "X", 5, later)],
            None,
            complete_documents=frozenset({"k3:doc:A1"}),
        ),
        now=later,
    )
    assert any_store.levels(pipeline)[StockKey("X", "W1")] == Decimal(12)


def test_every_text_column_on_mariadb_compares_byte_for_byte(
    server_store: object,
) -> None:
    store = server_store("mysql")  # type: ignore[operator]
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = DATABASE() AND COLLATION_NAME IS NOT NULL"
                " AND TABLE_NAME <> 'alembic_version'"
            )
        ).all()
    assert rows, "no text column found"
    inexact = [(t, c, coll) for t, c, coll in rows if not coll.endswith("_bin")]
    assert inexact == []
