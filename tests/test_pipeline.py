"""Pages applied two at a time on the server backends (``sync.pipeline``).

The property: a pull applied through the pipeline on PostgreSQL or MariaDB leaves
exactly the state the same pull leaves applied page after page on SQLite —
movements and their versions, levels, push flags, outbox rows, conflicts and the
cursor — whatever the pages share (lines edited between pages, documents split
over two pages, complete documents, quarantined lines). And a page that fails
stops the pull there: the pages before it are committed, the page after it (in
flight beside it) is rolled back, and the next pull ends where a serial one would.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sync.pull as pull_module
from sync.ledger import ApplyResult, LedgerOptions, Turn
from sync.model import Cursor, Movement, MovementKind, Page, StockKey
from sync.pipeline import PageAborted, PagePipeline, footprint
from sync.pull import PullOptions, pull_stream
from sync.state import StateStore
from sync.state import schema as s

STREAM = "moves"
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SERVERS = ["postgresql", "mysql"]


class ListSource:
    """An ERP whose one stream answers with the given pages, whatever the cursor."""

    name = "list"

    def __init__(self, pages: Sequence[Page]) -> None:
        self.pages = pages

    def streams(self) -> Sequence[str]:
        return [STREAM]

    def pull(self, stream: str, since: Cursor | None, page_size: int) -> Iterator[Page]:
        yield from self.pages


def line(doc: int, n: int, sku: str, wh: str, qty: Decimal, active: bool, at: int) -> Movement:
    stamp = T0 + timedelta(seconds=at)
    return Movement(
        f"mem:doc:{doc}:{n}",
        MovementKind.RECEIPT if qty >= 0 else MovementKind.SHIPMENT,
        sku,
        wh,
        qty,
        stamp - timedelta(days=1),
        stamp,
        f"D{doc}",
        active,
    )


lines = st.tuples(
    st.integers(0, 5),  # document: few, so that pages share them
    st.integers(0, 3),  # line within it
    st.sampled_from(["A", "B", "C"]),
    st.sampled_from(["W1", "W2"]),
    st.one_of(
        st.decimals(min_value=Decimal(-50), max_value=Decimal(50), places=2),
        st.just(Decimal("0.0000001")),  # finer than the precision: quarantined
    ),
    st.booleans(),
)
page_specs = st.lists(
    st.tuples(st.lists(lines, min_size=0, max_size=6), st.booleans(), st.booleans()),
    min_size=1,
    max_size=8,
)


def build_pages(specs: list[tuple[list[tuple[Any, ...]], bool, bool]], at: int = 0) -> list[Page]:
    """Pages in stamp order after ``at``; a page may name its documents complete and carry
    a cursor."""
    pages = []
    for spec, complete, with_cursor in specs:
        movements = []
        seen = set()
        for doc, n, sku, wh, qty, active in spec:
            if (doc, n) in seen:  # a source never repeats a line within one page
                continue
            seen.add((doc, n))
            at += 1
            movements.append(line(doc, n, sku, wh, qty, active, at))
        docs = frozenset(f"mem:doc:{d}" for d, *_ in spec) if complete else frozenset()
        cursor = Cursor(T0 + timedelta(seconds=at), f"{at:06d}") if with_cursor else None
        pages.append(Page(STREAM, movements, cursor, complete_documents=docs))
    return pages


def state_of(store: StateStore, pipeline: str) -> dict[str, Any]:
    """Everything a pull writes for ``pipeline``, in a backend-neutral form."""
    out: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for name, table, columns in (
            ("movements", s.movements, ("key", "sku", "warehouse", "qty", "active", "version")),
            ("versions", s.movement_versions, ("key", "version", "qty", "active")),
            ("levels", s.stock_levels, ("sku", "warehouse", "qty", "push_pending")),
            ("outbox", s.outbox, ("target", "ref", "state", "generation")),
            ("conflicts", s.conflicts, ("kind", "ref")),
            ("cursor", s.cursors, ("stream", "updated_at", "tie_break")),
        ):
            cols = [table.c[c] for c in columns]
            rows = conn.execute(
                table.select().with_only_columns(*cols).where(table.c.pipeline == pipeline)
            ).all()
            out[name] = sorted(
                tuple(bool(v) if c == "active" else v for c, v in zip(columns, r, strict=True))
                for r in rows
            )
    return out


def run_pull(
    store: StateStore, pipeline: str, pages: Sequence[Page], *, mirror: bool = True
) -> None:
    pull_stream(
        store,
        ListSource(pages),
        pipeline,
        STREAM,
        now=lambda: T0 + timedelta(days=1),
        options=PullOptions(page_size=6),
        ledger=LedgerOptions(mirror_movements=mirror),
    )


@pytest.mark.parametrize("backend", SERVERS)
@settings(max_examples=60)
@given(specs=page_specs, again=page_specs)
def test_a_pipelined_pull_leaves_what_a_serial_pull_leaves(
    backend: str,
    server_store: Callable[[str], StateStore],
    sqlite_reference: StateStore,
    specs: list[tuple[list[tuple[Any, ...]], bool, bool]],
    again: list[tuple[list[tuple[Any, ...]], bool, bool]],
) -> None:
    server = server_store(backend)
    pipeline = f"p-{uuid.uuid4().hex[:12]}"
    first, second = build_pages(specs), build_pages(again, at=1000)
    for store in (server, sqlite_reference):
        run_pull(store, pipeline, first)
        run_pull(store, pipeline, second)  # edits, re-reads, lines removed
    assert state_of(server, pipeline) == state_of(sqlite_reference, pipeline)


@pytest.fixture(scope="module")
def sqlite_reference() -> Iterator[StateStore]:
    store = StateStore("sqlite://")
    store.upgrade()
    yield store
    store.close()


def numbered_pages(count: int, per_page: int = 5) -> list[Page]:
    """``count`` pages of distinct documents, each with its cursor."""
    pages = []
    for p in range(count):
        movements = [
            line(p * 100 + i, 0, "A", "W1", Decimal(1), True, p * per_page + i)
            for i in range(per_page)
        ]
        cursor = Cursor(T0 + timedelta(seconds=p * per_page + per_page), f"{p:06d}")
        pages.append(Page(STREAM, movements, cursor))
    return pages


@pytest.mark.parametrize("backend", SERVERS)
@pytest.mark.parametrize("failing", [0, 3, 9])
def test_a_failed_page_stops_the_pull_there_and_the_page_beside_it_rolls_back(
    backend: str,
    failing: int,
    server_store: Callable[[str], StateStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = server_store(backend)
    pipeline = f"f-{uuid.uuid4().hex[:12]}"
    pages = numbered_pages(10)
    real = pull_module.apply_page
    aborted: list[int] = []

    class FailingTurn:
        """The real turn, and page ``failing`` failing after its levels are written."""

        def __init__(self, turn: Turn, index: int) -> None:
            self.turn, self.index = turn, index

        def before_levels(self, keys: frozenset[StockKey]) -> None:
            self._aborted(lambda: self.turn.before_levels(keys))

        def before_final(self) -> None:
            self._aborted(self.turn.before_final)
            if self.index == failing:
                time.sleep(0.05)  # let the next page write its movements meanwhile
                raise RuntimeError(f"page {self.index} failed")

        def _aborted(self, step: Callable[[], None]) -> None:
            try:
                step()
            except PageAborted:
                aborted.append(self.index)
                raise

    def faulty(store: StateStore, pipeline: str, page: Page, **kw: Any) -> ApplyResult:
        turn = FailingTurn(kw.pop("turn"), pages.index(page))
        return real(store, pipeline, page, turn=turn, **kw)

    monkeypatch.setattr(pull_module, "apply_page", faulty)
    with pytest.raises(RuntimeError, match=f"page {failing} failed"):
        run_pull(store, pipeline, pages)
    state = state_of(store, pipeline)
    # exactly the pages before the failed one, and the cursor of the last of them
    assert len(state["movements"]) == 5 * failing
    assert {k for k, *_ in state["movements"]} == {
        m.key for p in pages[:failing] for m in p.movements
    }
    if failing:
        assert state["cursor"] == [
            (STREAM, pages[failing - 1].cursor.updated_at, f"{failing - 1:06d}")
        ]
    else:
        assert state["cursor"] == []
    if failing < 9:
        assert aborted == [failing + 1]  # the page in flight beside it was rolled back
    monkeypatch.setattr(pull_module, "apply_page", real)
    run_pull(store, pipeline, pages)  # the next pull completes the ledger
    assert len(state_of(store, pipeline)["movements"]) == 50
    assert store.levels(pipeline)[("A", "W1")] == Decimal(50)


def result_of(received: int) -> ApplyResult:
    return ApplyResult(received, received, 0, 0, 0, frozenset())


def test_pages_that_share_a_document_start_one_after_the_other() -> None:
    """The next page starts beside the last one only when they share no document."""
    running: list[str] = []
    overlaps: list[tuple[str, str]] = []
    lock = threading.Lock()

    def apply(page: Page, turn: Turn) -> ApplyResult:
        name = page.movements[0].key
        with lock:
            overlaps.extend((other, name) for other in running)
            running.append(name)
        time.sleep(0.05)
        turn.before_levels(frozenset())
        turn.before_final()
        with lock:
            running.remove(name)
        return result_of(len(page.movements))

    a = Page(STREAM, [line(1, 0, "A", "W1", Decimal(1), True, 1)], None)
    b = Page(STREAM, [line(2, 0, "A", "W1", Decimal(1), True, 2)], None)
    a_again = Page(STREAM, [line(1, 1, "A", "W1", Decimal(1), True, 3)], None)
    c = Page(STREAM, [line(3, 0, "A", "W1", Decimal(1), True, 4)], None)
    with PagePipeline(apply) as flight:
        results = []
        for page in (a, b, a_again, c):
            results.extend(flight.submit(page))
        results.extend(flight.drain())
    assert [r.received for r in results] == [1, 1, 1, 1]
    assert ("mem:doc:1:0", "mem:doc:2:0") in overlaps  # disjoint: side by side
    # doc 1 again: a_again waited for ``a``; it is never beside a page of doc 1
    assert ("mem:doc:1:0", "mem:doc:1:1") not in overlaps
    assert footprint(a) & footprint(a_again) == {"mem:doc:1"}


def test_results_come_back_in_page_order_and_an_error_after_the_pages_in_flight() -> None:
    ended: list[int] = []

    def apply(page: Page, turn: Turn) -> ApplyResult:
        n = len(page.movements)
        time.sleep(0.03 if n == 1 else 0)
        try:
            turn.before_levels(frozenset())
            turn.before_final()
        finally:
            ended.append(n)
        if n == 2:
            raise ValueError("two")
        return result_of(n)

    pages = [
        Page(STREAM, [line(d, i, "A", "W1", Decimal(1), True, d) for i in range(d)], None)
        for d in (1, 3, 2, 4)
    ]
    got: list[int] = []
    with pytest.raises(ValueError, match="two"), PagePipeline(apply) as flight:
        for page in pages:
            got.extend(r.received for r in flight.submit(page))
        got.extend(r.received for r in flight.drain())
    assert got == [1, 3]
    assert 4 in ended  # the page after the failed one ended (aborted) before the error surfaced


def test_a_page_never_waits_forever_for_the_page_before() -> None:
    """Backstop: were page N to wait for something page N+1 holds (nothing in the ledger
    lets it), N+1 gives up its turn after ``turn_wait_s``, rolls back and frees N."""
    released = threading.Event()
    a = Page(STREAM, [line(1, 0, "A", "W1", Decimal(1), True, 1)], None)
    b = Page(STREAM, [line(2, 0, "A", "W1", Decimal(1), True, 2)], None)

    def apply(page: Page, turn: Turn) -> ApplyResult:
        if page is a:
            assert released.wait(5), "page A was never freed"
            return result_of(1)
        try:
            turn.before_levels(frozenset())
        finally:
            released.set()  # B's locks go with its transaction
        return result_of(2)

    got: list[int] = []
    started = time.monotonic()
    with (
        pytest.raises(PageAborted, match=r"did not end within 0\.2 s"),
        PagePipeline(apply, turn_wait_s=0.2) as flight,
    ):
        for page in (a, b):
            got.extend(r.received for r in flight.submit(page))
        got.extend(r.received for r in flight.drain())
    assert got == [1]
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("shared", [False, True])
def test_levels_wait_for_the_page_before_only_when_they_share_a_stock_key(shared: bool) -> None:
    """Additions to other level rows commute: a page adds to its own at once; to a level
    the page before also changes, only once that page has committed. The cursor always
    waits."""
    events: list[str] = []
    lock = threading.Lock()
    a = Page(STREAM, [line(1, 0, "A", "W1", Decimal(1), True, 1)], None)
    b = Page(STREAM, [line(2, 0, "A" if shared else "B", "W1", Decimal(1), True, 2)], None)

    def note(what: str) -> None:
        with lock:
            events.append(what)

    def apply(page: Page, turn: Turn) -> ApplyResult:
        name = "a" if page is a else "b"
        keys = frozenset(StockKey(m.sku, m.warehouse) for m in page.movements)
        turn.before_levels(keys)
        note(f"{name} levels")
        if page is a:
            time.sleep(0.1)  # page a is slow to finish: b's levels overtake it unless shared
        turn.before_final()
        note(f"{name} cursor")
        return result_of(1)

    with PagePipeline(apply) as flight:
        for page in (a, b):
            flight.submit(page)
        assert [r.received for r in flight.drain()] == [1, 1]
    if shared:
        assert events == ["a levels", "a cursor", "b levels", "b cursor"]
    else:
        assert events == ["a levels", "b levels", "a cursor", "b cursor"]
