"""Pipelined pulls on the real servers: the timings that expose what the property misses.

Each case holds one page back (a sleep inside its transaction) so that the page after it
reads, writes and waits meanwhile, the order in which a review found:
- the same quarantined record twice as two open conflicts, and a cursor moved back, on
  MariaDB (REPEATABLE READ kept the page's first snapshot after it waited): fixed by READ
  COMMITTED on every server;
- page N waiting 50 s for page N+1 on MariaDB when both wrote outbox rows (the unique
  index's gap lock): fixed by writing outbox rows after the page before has committed;
- a shutdown that waited for the next ERP read and applied pages read after the stop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

import sync.ledger as ledger_module
from sync.model import Page, RejectedRecord
from sync.pull import pull_stream
from sync.state import StateStore
from sync.state import schema as s
from sync.state.tx import Tx
from tests.test_pipeline import STREAM, T0, line, run_pull, state_of

SERVERS = ["postgresql", "mysql"]


def run(store: StateStore, pipeline: str, pages: list[Page], mirror: bool = False) -> None:
    run_pull(store, pipeline, pages, mirror=mirror)


def hold_rejects(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Every page sleeps ``seconds`` in its transaction before writing its conflicts."""
    real = ledger_module._record_rejects

    def slow(tx: Any, pipeline: str, stream: str, rejects: Any, now: Any) -> None:
        time.sleep(seconds)
        real(tx, pipeline, stream, rejects, now)

    monkeypatch.setattr(ledger_module, "_record_rejects", slow)


def hold_levels_of(monkeypatch: pytest.MonkeyPatch, sku: str, seconds: float) -> None:
    """A page that adds to a level of ``sku`` sleeps ``seconds`` before writing its levels."""
    real = Tx.add_level_deltas

    def slow(self: Tx, pipeline: str, deltas: Any, now: Any) -> None:
        if any(k.sku == sku for k in deltas):
            time.sleep(seconds)
        real(self, pipeline, deltas, now)

    monkeypatch.setattr(Tx, "add_level_deltas", slow)


@pytest.mark.parametrize("backend", SERVERS)
def test_same_reject_ref_in_two_pages_gives_one_open_conflict(
    backend: str,
    server_store: Callable[[str], StateStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = server_store(backend)
    pipeline = f"r-{uuid.uuid4().hex[:12]}"
    bad = RejectedRecord(STREAM, "qty is not a number", {"qty": "x"}, key="mem:doc:9:0")
    a = Page(STREAM, [line(1, 0, "A", "W1", Decimal(1), True, 1)], None, rejects=[bad])
    b = Page(STREAM, [line(2, 0, "B", "W1", Decimal(1), True, 2)], None, rejects=[bad])
    hold_rejects(monkeypatch, 0.5)  # page a commits late: page b has read (and waits) meanwhile
    run(store, pipeline, [a, b])
    sqlite = StateStore("sqlite://")
    sqlite.upgrade()
    run(sqlite, pipeline, [a, b])
    with store.engine.connect() as conn:
        occ = conn.execute(
            s.conflicts.select()
            .with_only_columns(s.conflicts.c.ref, s.conflicts.c.occurrences)
            .where(s.conflicts.c.pipeline == pipeline)
        ).all()
    assert occ == [("mem:doc:9:0", 2)]
    assert state_of(store, pipeline)["conflicts"] == state_of(sqlite, pipeline)["conflicts"]


@pytest.mark.parametrize("backend", SERVERS)
def test_cursor_never_moves_back_when_pages_overlap(
    backend: str,
    server_store: Callable[[str], StateStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sync.model import Cursor

    store = server_store(backend)
    pipeline = f"c-{uuid.uuid4().hex[:12]}"
    a = Page(
        STREAM,
        [line(1, 0, "A", "W1", Decimal(1), True, 1)],
        Cursor(T0 + timedelta(seconds=10), "b"),
    )
    b = Page(
        STREAM,
        [line(2, 0, "B", "W1", Decimal(1), True, 2)],
        Cursor(T0 + timedelta(seconds=10), "a"),
    )
    hold_rejects(monkeypatch, 0.5)
    run(store, pipeline, [a, b])
    sqlite = StateStore("sqlite://")
    sqlite.upgrade()
    run(sqlite, pipeline, [a, b])
    assert state_of(store, pipeline)["cursor"][0][2] == "b"
    assert state_of(store, pipeline)["cursor"] == state_of(sqlite, pipeline)["cursor"]


@pytest.mark.parametrize("backend", SERVERS)
def test_mirrored_outbox_rows_do_not_make_page_n_wait_for_page_n_plus_1(
    backend: str,
    server_store: Callable[[str], StateStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = server_store(backend)
    pipeline = f"o-{uuid.uuid4().hex[:12]}"
    run(
        store,
        pipeline,
        [Page(STREAM, [line(d, 0, "C", "W1", Decimal(1), True, d) for d in (2, 4)], None)],
        mirror=True,
    )
    # page a: new lines in docs 1 and 3 (new outbox refs around mem:doc:2:0); page b: doc 2 edited
    a = Page(STREAM, [line(d, 0, "A", "W1", Decimal(1), True, 10 + d) for d in (1, 3)], None)
    b = Page(STREAM, [line(2, 0, "B", "W1", Decimal(5), True, 20)], None)
    hold_levels_of(monkeypatch, "A", 1.0)  # page a's levels are slow: page b enqueues first
    started = time.monotonic()
    run(store, pipeline, [a, b], mirror=True)
    assert time.monotonic() - started < 10  # MariaDB's lock wait timeout is 50 s


@pytest.mark.parametrize("backend", SERVERS)
@pytest.mark.parametrize("mirror", [False, True])
def test_level_rows_do_not_make_page_n_wait_for_page_n_plus_1(
    backend: str,
    mirror: bool,
    server_store: Callable[[str], StateStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = server_store(backend)
    pipeline = f"l-{uuid.uuid4().hex[:12]}"
    run(
        store,
        pipeline,
        [
            Page(
                STREAM,
                [
                    line(2, 0, "C", "W1", Decimal(1), True, 2),
                    line(4, 0, "E", "W1", Decimal(1), True, 4),
                ],
                None,
            )
        ],
        mirror=mirror,
    )
    # page a: new level rows A and D (around C); page b: level C again (an existing row)
    a = Page(
        STREAM,
        [line(1, 0, "A", "W1", Decimal(1), True, 11), line(3, 0, "D", "W1", Decimal(1), True, 13)],
        None,
    )
    b = Page(STREAM, [line(2, 0, "C", "W1", Decimal(5), True, 20)], None)
    hold_levels_of(monkeypatch, "A", 1.0)
    started = time.monotonic()
    run(store, pipeline, [a, b], mirror=mirror)
    assert time.monotonic() - started < 10


class SlowSource:
    """Page 1 at once; every later page only after ``read_s`` (an ERP in retries)."""

    name = "slow"

    def __init__(self, pages: list[Page], read_s: float) -> None:
        self.pages, self.read_s = pages, read_s

    def streams(self) -> list[str]:
        return [STREAM]

    def pull(self, stream: str, since: Any, page_size: int) -> Any:
        for i, page in enumerate(self.pages):
            if i:
                time.sleep(self.read_s)
            yield page


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
def test_a_shutdown_does_not_wait_for_the_next_read(
    backend: str,
    server_store: Callable[[str], StateStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    store = StateStore("sqlite://") if backend == "sqlite" else server_store(backend)
    if backend == "sqlite":
        store.upgrade()
    pipeline = f"s-{uuid.uuid4().hex[:12]}"
    pages = [Page(STREAM, [line(d, 0, "A", "W1", Decimal(1), True, d)], None) for d in range(4)]
    hold_rejects(monkeypatch, 1.0)  # each page takes 1 s to apply
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()  # SIGTERM while page 0 is applied
    started = time.monotonic()
    report = pull_stream(
        store,
        SlowSource(pages, read_s=4.0),
        pipeline,
        STREAM,
        now=lambda: T0 + timedelta(days=1),
        stop=stop,
    )
    took = time.monotonic() - started
    assert took < 2.5  # the read in flight (4 s) is not waited for
    assert report.stopped
    assert report.pages == 1  # the page being applied commits; none read after the stop
