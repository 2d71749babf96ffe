"""A database written by an older release upgrades in place and keeps its ledger."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import inspect

from sync.ledger import apply_page, verify
from sync.model import Movement, MovementKind, Page, StockKey
from sync.state import StateStore
from sync.state.schema import to_micros
from tests.conftest import Clock


def test_a_0001_database_upgrades_and_its_lines_stay_unchanged(
    tmp_path: Path, clock: Clock
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    old = StateStore(url)
    assert old.upgrade("0001") == "0001"
    at = to_micros(clock.now)
    with old.engine.begin() as conn:  # what release 0001 wrote for one receipt of 5
        conn.exec_driver_sql(
            "INSERT INTO movements (pipeline, key, stream, kind, sku, warehouse, qty, occurred_at,"
            " source_updated_at, doc_no, active, content_hash, version, recorded_at)"
            " VALUES ('p', 'memory:d:1:1', 's', 'receipt', 'A', 'W1', 5000000, ?, ?, 'D1', 1,"
            " '0123456789abcdef0123456789abcdef', 1, ?)",
            (at, at, at),
        )
        conn.exec_driver_sql(
            "INSERT INTO stock_levels (pipeline, sku, warehouse, qty, updated_at)"
            " VALUES ('p', 'A', 'W1', 5000000, ?)",
            (at,),
        )
    old.close()

    store = StateStore(url)
    assert store.upgrade() == "0009"
    columns = {c["name"] for c in inspect(store.engine).get_columns("movements")}
    assert store.alert_events("p") == []  # alerts owed to a webhook come with 0006
    assert store.reserved_units("p") == {}  # reserved stock comes with the first snapshot
    assert "content_hash" not in columns
    assert store.levels("p") == {StockKey("A", "W1"): Decimal(5)}
    assert store.pending_levels("p") == []  # nothing was waiting for a push before

    # the ERP sends the same line again: the same content, so no version and no flag
    line = Movement(
        "memory:d:1:1", MovementKind.RECEIPT, "A", "W1", Decimal(5), clock.now, clock.now, "D1"
    )
    result = apply_page(store, "p", Page("s", [line], None), now=clock.now)
    assert result.changed == 0
    assert store.pending_levels("p") == [] and not verify(store, "p")
    store.close()
