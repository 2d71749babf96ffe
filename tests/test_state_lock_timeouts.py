"""A lock wait that times out inside a page's bulk statements is a TransientError.

The bulk statements (``sync.state.bulk``) run on the driver's own cursor, so a lock
timeout or a deadlock there came out as the driver's ``OperationalError`` (psycopg's
``LockNotAvailable``, PyMySQL's 1205), not the typed error the daemon retries. Here
another session holds a stock level's row lock and the store's sessions give up after
a fraction of a second (PostgreSQL ``lock_timeout``, MariaDB
``innodb_lock_wait_timeout``): the page fails as ``TransientError`` and writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.engine import make_url

from sync.errors import TransientError
from sync.ledger import apply_page
from sync.model import Movement, MovementKind, Page, StockKey
from sync.state import StateStore
from sync.state import schema as s
from tests.conftest import _backend_url

T = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def impatient(url: str) -> str:
    """``url`` whose sessions wait at most about a second for a row lock."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        options = parsed.query.get("options", "")
        return parsed.update_query_dict(
            {"options": f"{options} -clock_timeout=300".strip()}
        ).render_as_string(hide_password=False)
    return parsed.update_query_dict(
        {"init_command": "SET SESSION innodb_lock_wait_timeout = 1"}
    ).render_as_string(hide_password=False)


@pytest.fixture(params=["postgresql", "mysql"])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[StateStore, StateStore]]:
    """A migrated store on the server, and one on the same database that gives up quickly."""
    url = _backend_url(request.param)
    patient = StateStore(url)
    patient.upgrade()
    quick = StateStore(impatient(url))
    yield patient, quick
    quick.close()
    patient.close()


def receipt(key: str, qty: int) -> Movement:
    return Movement(key, MovementKind.RECEIPT, "A", "W1", Decimal(qty), T, T)


def test_a_lock_wait_timeout_in_a_bulk_statement_is_transient(
    stores: tuple[StateStore, StateStore],
) -> None:
    patient, quick = stores
    pipeline = f"lk-{uuid.uuid4().hex[:10]}"
    apply_page(patient, pipeline, Page("s", [receipt("m:d:1:1", 1)], None), now=T)
    levels = s.stock_levels
    with patient.engine.connect() as holder:
        holder.execute(
            levels.select()
            .where(levels.c.pipeline == pipeline, levels.c.sku == "A")
            .with_for_update()
        ).all()  # the level row is locked until this transaction ends
        with pytest.raises(TransientError, match="state database"):
            apply_page(quick, pipeline, Page("s", [receipt("m:d:2:1", 5)], None), now=T)
        holder.rollback()
    assert patient.levels(pipeline) == {StockKey("A", "W1"): Decimal(1)}
    assert patient.movement(pipeline, "m:d:2:1") is None
