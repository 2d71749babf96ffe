"""The whole-page statements of the server backends (``sync.state.bulk``), against SQLite's path.

Every test runs on all three backends: SQLite's per-row path is the reference
the bulk statements of PostgreSQL and MariaDB must agree with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal

import pytest

from sync.ledger import apply_page, queue_pending_levels, verify
from sync.model import Movement, MovementKind, Page, StockKey
from sync.state import StateStore, bulk
from sync.state import schema as s
from sync.state.rows import LEVEL, MOVEMENT, level_ref
from tests.conftest import Clock

ODD = [
    "O'Brien",
    'say "hi"',
    "back\\slash",
    "tab\there",
    "new\nline",
    "percent %s %(x)s %%",
    "日本語の倉庫",
    "emoji 📦🚚",
    "e\u0301 combining",
    "semi;colon:colon",
    "  spaced  ",
]


def _move(key: str, sku: str, wh: str, qty: str, clock: Clock, **kw: object) -> Movement:
    return Movement(
        key,
        MovementKind.RECEIPT,
        sku,
        wh,
        Decimal(qty),
        clock.now,
        clock.now,
        **kw,  # type: ignore[arg-type]
    )


def _sums(lines: dict[str, Movement]) -> dict[StockKey, Decimal]:
    sums: defaultdict[StockKey, Decimal] = defaultdict(Decimal)
    for m in lines.values():
        if m.active:
            sums[m.stock_key] += m.qty
    return {k: v for k, v in sums.items() if v}


def _levels(store: StateStore, pipeline: str) -> dict[StockKey, Decimal]:
    return {k: v for k, v in store.levels(pipeline).items() if v}


@pytest.fixture(params=["rows", "bytes"])
def small_chunks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """MariaDB statements of at most 7 rows, cut by the row count or by the JSON
    document's length (a row of these tests is 100–200 bytes), so that a page of a few
    dozen rows spans several statements."""
    if request.param == "rows":
        monkeypatch.setattr(bulk, "MYSQL_ROWS_PER_STATEMENT", 7)
    else:
        monkeypatch.setattr(bulk, "MYSQL_DOCUMENT_BYTES", 700)
    return 7


def test_updates_and_inserts_of_stored_keys_in_pages_over_the_chunk_size(
    any_store: StateStore, pipeline: str, clock: Clock, small_chunks: int
) -> None:
    first = {
        m.key: m
        for m in (_move(f"m:d:{n}:1", f"S{n % 9}", f"W{n % 2}", f"{n}.5", clock) for n in range(40))
    }
    assert len(first) > 5 * small_chunks
    apply_page(any_store, pipeline, Page("s", list(first.values()), None), now=clock.now)
    clock.advance(60)
    # every other stored line edited (one moved to another stock key, one cancelled),
    # and new lines on the same stock keys, in one page
    second = [
        first[f"m:d:{n}:1"]._replace(qty=Decimal(n * 2), source_updated_at=clock.now)
        for n in range(0, 40, 2)
    ]
    second[1] = second[1]._replace(sku="S-moved")
    second[2] = second[2]._replace(active=False)
    second += [_move(f"m:d:{n}:1", f"S{n % 9}", "W0", "0.000001", clock) for n in range(40, 60)]
    result = apply_page(any_store, pipeline, Page("s", second, None), now=clock.now)
    assert (result.inserted, result.updated) == (20, 20)
    lines = first | {m.key: m for m in second}
    assert _levels(any_store, pipeline) == _sums(lines)
    assert not verify(any_store, pipeline)
    for n in (0, 2, 4, 40):
        key = f"m:d:{n}:1"
        stored = any_store.movement(pipeline, key)
        assert stored is not None
        assert (stored.sku, stored.qty, stored.active) == (
            lines[key].sku,
            lines[key].qty,
            lines[key].active,
        )
    versions = any_store.movement_versions(pipeline, "m:d:2:1")
    assert [(v.version, v.sku, v.qty) for v in versions] == [
        (1, "S2", Decimal("2.5")),
        (2, "S-moved", Decimal(4)),
    ]
    assert [v.version for v in any_store.movement_versions(pipeline, "m:d:1:1")] == [1]


def test_quantities_stay_exact_at_the_ledgers_scale(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    """Micro-units up to 19 digits go through COPY, arrays and VALUES without a float."""
    qtys = [
        "1234567890123.456789",
        "-999999999999.999999",
        "0.000001",
        "9007199254740.993",  # 2**53 + 1 micro-units: a float would round it
        "4611686018427.387903",
    ]
    page = [_move(f"x:d:{i}:1", "BIG", f"W{i}", q, clock) for i, q in enumerate(qtys)]
    page.append(_move("x:d:9:1", "BIG", "W0", "0.000001", clock))
    apply_page(any_store, pipeline, Page("s", page, None), now=clock.now)
    assert any_store.level(pipeline, StockKey("BIG", "W0")) == Decimal("1234567890123.45679")
    for i, q in enumerate(qtys[1:], start=1):
        assert any_store.level(pipeline, StockKey("BIG", f"W{i}")) == Decimal(q)
        stored = any_store.movement(pipeline, f"x:d:{i}:1")
        assert stored is not None and stored.qty == Decimal(q)
    clock.advance(1)
    # 2**53 + 3 micro-units: odd past 2**53, so no float holds it (the JSON update path)
    edit = page[3]._replace(qty=Decimal("9007199254740.995"), source_updated_at=clock.now)
    apply_page(any_store, pipeline, Page("s", [edit], None), now=clock.now)
    assert any_store.level(pipeline, StockKey("BIG", "W3")) == Decimal("9007199254740.995")
    old, new = any_store.movement_versions(pipeline, edit.key)
    assert (old.qty, new.qty) == (Decimal("9007199254740.993"), Decimal("9007199254740.995"))


def test_text_with_quotes_escapes_and_unicode_round_trips(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    page = [
        _move(f"odd:{text}:{i}", text, f"W {text}", str(i + 1), clock, doc_no=text)
        for i, text in enumerate(ODD)
    ]
    apply_page(any_store, pipeline, Page("s", page, None), now=clock.now)
    clock.advance(1)
    edits = [m._replace(qty=m.qty + 1, source_updated_at=clock.now) for m in page]
    apply_page(any_store, pipeline, Page("s", edits, None), now=clock.now)
    queue_pending_levels(any_store, pipeline, now=clock.now)
    for m in edits:
        stored = any_store.movement(pipeline, m.key)
        assert stored is not None
        assert (stored.sku, stored.warehouse, stored.doc_no, stored.qty) == (
            m.sku,
            m.warehouse,
            m.doc_no,
            m.qty,
        )
    assert _levels(any_store, pipeline) == {m.stock_key: m.qty for m in edits}
    queued = {r.ref for r in any_store.outbox_rows(pipeline) if r.target == LEVEL}
    assert queued == {level_ref(m.stock_key) for m in edits}
    assert any_store.pending_levels(pipeline) == []


def test_an_empty_page_writes_nothing(any_store: StateStore, pipeline: str, clock: Clock) -> None:
    result = apply_page(any_store, pipeline, Page("s", [], None), now=clock.now)
    assert (result.received, result.changed) == (0, 0)
    with any_store.transaction() as tx:
        tx.insert_movements(pipeline, "s", [], clock.now)
        tx.update_movements(pipeline, "s", [], clock.now)
        tx.add_level_deltas(pipeline, {}, clock.now)
        tx.queue_pending_levels(pipeline, [], clock.now)
        tx.enqueue(pipeline, MOVEMENT, [], clock.now)
        bulk.update(tx.conn, s.stock_levels, ("pipeline", "sku", "warehouse"), ("qty",), [])
    assert any_store.levels(pipeline) == {}
    assert any_store.outbox_rows(pipeline) == []


def test_enqueue_bumps_stored_rows_and_adds_new_ones(
    any_store: StateStore, pipeline: str, clock: Clock, small_chunks: int
) -> None:
    refs = [f"r{n}" for n in range(3 * small_chunks)]
    with any_store.transaction() as tx:
        tx.enqueue(pipeline, MOVEMENT, refs[::2], clock.now)
    with any_store.transaction() as tx:
        tx.enqueue(pipeline, MOVEMENT, refs, clock.now)
    generations = {r.ref: r.generation for r in any_store.outbox_rows(pipeline)}
    assert generations == {ref: 2 if n % 2 == 0 else 1 for n, ref in enumerate(refs)}


def test_clearing_flags_skips_keys_without_a_level_row(
    any_store: StateStore, pipeline: str, clock: Clock
) -> None:
    """A flagged key may be cleared beside a key with no row: no row appears for it."""
    keys = [StockKey(f"S{n}", "W") for n in range(5)]
    with any_store.transaction() as tx:
        tx.add_level_deltas(pipeline, {k: 1_000_000 for k in keys}, clock.now)
    missing = StockKey("S2a", "W")  # sorts between stored keys
    with any_store.transaction() as tx:
        tx.queue_pending_levels(pipeline, [*keys[:3], missing, *keys[3:]], clock.now)
    assert any_store.pending_levels(pipeline) == []
    assert set(any_store.levels(pipeline)) == set(keys)
    with any_store.transaction() as tx:
        tx.add_level_deltas(pipeline, {keys[0]: 1}, clock.now)
    with any_store.transaction() as tx:
        tx.queue_pending_levels(pipeline, [missing, keys[0]], clock.now)
    assert any_store.pending_levels(pipeline) == []
    assert any_store.level(pipeline, keys[0]) == Decimal("1.000001")


def _explain(store: StateStore, pipeline: str) -> str:
    """The server's plan for a bulk update of two movements (the statement ``bulk`` sends)."""
    with store.engine.connect() as conn:
        raw = conn.connection.cursor()
        if conn.dialect.name == "postgresql":
            raw.execute("ANALYZE movements")
            sql = bulk.pg_lock_sql(conn, s.movements, ("pipeline", "key"))
            params = {"pipeline": [pipeline, pipeline], "key": ["p:d:1:1", "p:d:2:1"]}
        else:
            sql = bulk.mysql_update_sql(conn, s.movements, ("pipeline", "key"), ("qty",))
            params = {"rows": bulk._json([[pipeline, "p:d:1:1", 5], [pipeline, "p:d:2:1", 6]])}
        raw.execute("EXPLAIN " + sql, params)
        plan = "\n".join(" | ".join(str(c) for c in row) for row in raw.fetchall())
        conn.rollback()
    return plan


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_updates_probe_the_primary_key(
    server_store: Callable[[str], StateStore], backend: str, clock: Clock
) -> None:
    """An update finds its rows key by key, never by reading the pipeline's lines."""
    store = server_store(backend)
    pipeline = f"plan{backend}"
    page = [_move(f"p:d:{n}:1", "A", "W", "1", clock) for n in range(600)]
    apply_page(store, pipeline, Page("s", page, None), now=clock.now)
    clock.advance(1)
    edits = [m._replace(qty=Decimal(2), source_updated_at=clock.now) for m in page[:2]]
    apply_page(store, pipeline, Page("s", edits, None), now=clock.now)  # compiles the statements
    plan = _explain(store, pipeline)
    if backend == "postgresql":
        assert "Index Scan using movements_pkey" in plan, plan
        assert "Seq Scan on movements" not in plan, plan
    else:
        [probe] = [line for line in plan.splitlines() if "| t |" in line]
        assert "eq_ref" in probe and "PRIMARY" in probe, plan


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_an_update_writes_each_found_row_its_own_values_around_missing_keys(
    server_store: Callable[[str], StateStore],
    backend: str,
    pipeline: str,
    clock: Clock,
    small_chunks: int,
) -> None:
    any_store = server_store(backend)
    keys = [StockKey(f"S{n:02d}", "W") for n in range(20)]
    with any_store.transaction() as tx:
        tx.add_level_deltas(pipeline, {k: 1 for k in keys}, clock.now)
    wanted = {k: 1000 + n for n, k in enumerate(keys) if n % 3}
    rows = []
    for n, k in enumerate(keys):
        if n % 3:
            rows.append((pipeline, k.sku, k.warehouse, wanted[k]))
        rows.append((pipeline, f"{k.sku}-missing", k.warehouse, -n))
    with any_store.transaction() as tx:
        bulk.update(tx.conn, s.stock_levels, ("pipeline", "sku", "warehouse"), ("qty",), rows)
    units = {k: int(v * 1_000_000) for k, v in any_store.levels(pipeline).items()}
    assert units == {k: wanted.get(k, 1) for k in keys}
