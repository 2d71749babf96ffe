"""Pages larger than one multi-row statement, on every backend (the SQL differs per dialect)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from sync.ledger import apply_page, verify
from sync.model import Movement, MovementKind, Page, StockKey
from sync.state import StateStore, documents
from tests.conftest import Clock, _isolated, server_url


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


def _plan(store: StateStore, pipeline: str) -> str:
    """The backend's plan for finding two documents' lines (``sync.state.documents``)."""
    docs = ["memory:d:5", "memory:d:7"]
    with store.engine.connect() as conn:
        raw = conn.connection.cursor()
        name = conn.dialect.name
        if name == "sqlite":
            bounds = [b for doc in docs for b in _range(doc)]
            raw.execute(
                "EXPLAIN QUERY PLAN " + documents._sqlite_sql(len(docs)), (*bounds, pipeline)
            )
        elif name == "postgresql":
            raw.execute("ANALYZE movements")  # as autovacuum does: a tiny table's plans tie
            raw.execute("SET LOCAL enable_seqscan = off")  # tiny table: only ask if it *can*
            lo, hi = zip(*map(_range, docs), strict=True)
            params = {"pipeline": pipeline, "lo": list(lo), "hi": list(hi)}
            raw.execute("EXPLAIN " + documents._POSTGRES, params)
        else:
            likes = [documents._like_prefix(doc + ":") for doc in docs]
            raw.execute("EXPLAIN " + documents._mysql_sql(len(docs)), (pipeline, *likes))
        plan = "\n".join(" | ".join(str(c) for c in row) for row in raw.fetchall())
        conn.rollback()
        return plan


def _range(doc: str) -> tuple[str, str]:
    return doc + ":", doc + ";"


def test_document_lines_are_a_primary_key_range_scan(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    """Issue 13 item 2: a document's lines are found by key prefix through the index."""
    lines = [
        Movement(
            f"memory:d:{doc}:{n}", MovementKind.RECEIPT, "A", "W", Decimal(1), clock.now, clock.now
        )
        for doc in range(300)
        for n in range(3)
    ]
    apply_page(any_store, pipeline, Page("s", lines, None), now=clock.now)
    plan = _plan(any_store, pipeline)
    dialect = any_store.engine.dialect.name
    if dialect == "sqlite":
        assert "SEARCH m USING PRIMARY KEY (pipeline=? AND key>? AND key<?)" in plan, plan
        assert "SCAN m" not in plan, plan
    elif dialect == "postgresql":
        assert "Seq Scan" not in plan, plan
        assert "movements_pkey" in plan, plan
        index_cond = [row for row in plan.splitlines() if "Index Cond" in row]
        assert index_cond and all("key" in row and ">=" in row for row in index_cond), plan
    else:
        [row] = plan.splitlines()
        assert " | range | " in row and " | PRIMARY | " in row, plan
    with any_store.engine.connect() as conn:
        found = documents.document_lines(conn, pipeline, ["memory:d:5", "memory:d:7"])
    assert sorted(line.key for line in found) == [
        f"memory:d:{d}:{n}" for d in (5, 7) for n in range(3)
    ]


def test_postgres_finds_document_lines_under_a_language_collation(clock: Clock) -> None:
    """A database whose ``movements.key`` compares by language rules (a column created
    outside migration 0003, or altered back): there ';' sorts before ':', so the range
    [``doc:``, ``doc;``) compared in the column's collation is empty. The query compares
    in "C" on its own, and finds exactly the document's lines."""
    url = server_url("STOCKSYNC_TEST_PG_URL", "PostgreSQL")
    store = StateStore(_isolated(url))  # its own schema: the collation change stays there
    try:
        store.upgrade()
        with store.engine.begin() as conn:
            icu = conn.exec_driver_sql(
                "SELECT 1 FROM pg_collation WHERE collname = 'en-x-icu'"
            ).first()
            if icu is None:
                pytest.skip("this PostgreSQL has no ICU collation en-x-icu")
            conn.exec_driver_sql(
                'ALTER TABLE movements ALTER COLUMN key TYPE VARCHAR(255) COLLATE "en-x-icu"'
            )
            naive = conn.exec_driver_sql(
                "SELECT count(*) FROM (VALUES ('memory:t:1:2')) AS v(k)"
                " WHERE k COLLATE \"en-x-icu\" >= 'memory:t:1:'"
                " AND k COLLATE \"en-x-icu\" < 'memory:t:1;'"
            ).scalar()
        assert naive == 0  # the premise: under this collation the plain range misses lines
        keys = [
            "memory:t:1:1",
            "memory:t:1:a b",
            "memory:t:1-x:1",
            "memory:t:10:1",
            "memory:t:1;:1",
        ]
        lines = [
            Movement(k, MovementKind.RECEIPT, "A", "W", Decimal(1), clock.now, clock.now)
            for k in keys
        ]
        apply_page(store, "p", Page("s", lines, None), now=clock.now)
        with store.engine.connect() as conn:
            found = documents.document_lines(conn, "p", ["memory:t:1"])
        assert sorted(line.key for line in found) == ["memory:t:1:1", "memory:t:1:a b"]
    finally:
        store.close()
