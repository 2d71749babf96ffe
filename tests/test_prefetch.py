"""Reading pages one step ahead: order, errors, early stops, and the GC pause."""

from __future__ import annotations

import contextvars
import gc
import threading
import time
from collections.abc import Iterator

import pytest

from sync.prefetch import Prefetched, gc_paused


class Source:
    """A generator source that records which thread read each item and whether it closed."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n = n
        self.fail_at = fail_at
        self.read: list[int] = []
        self.threads: set[str] = set()
        self.closed = threading.Event()

    def items(self) -> Iterator[int]:
        try:
            for i in range(self.n):
                if i == self.fail_at:
                    raise ValueError(f"bad item {i}")
                self.threads.add(threading.current_thread().name)
                self.read.append(i)
                yield i
        finally:
            self.closed.set()


def test_items_arrive_in_order_and_the_source_is_read_in_the_worker() -> None:
    source = Source(50)
    with Prefetched(source.items(), name="reader") as items:
        assert list(items) == list(range(50))
    assert source.threads == {"reader"}
    assert source.closed.is_set()


def test_an_error_arrives_after_every_item_before_it() -> None:
    source = Source(10, fail_at=4)
    got: list[int] = []
    with pytest.raises(ValueError, match="bad item 4"), Prefetched(source.items()) as items:
        for item in items:
            got.append(item)
    assert got == [0, 1, 2, 3]


def test_stopping_early_closes_the_source_and_reads_at_most_depth_plus_one_ahead() -> None:
    source = Source(1000)
    with Prefetched(source.items(), depth=1) as items:
        for item in items:
            if item == 2:
                break
    assert source.closed.is_set()
    # consumed 0..2; one waiting in the queue and one being handed over, at most
    assert len(source.read) <= 5
    assert not any(t.name == "prefetch" for t in threading.enumerate())


def test_an_exception_in_the_consumer_stops_the_worker() -> None:
    source = Source(1000)
    with pytest.raises(RuntimeError), Prefetched(source.items()) as items:
        for item in items:
            if item == 1:
                raise RuntimeError("the page could not be stored")
    assert source.closed.is_set()
    assert len(source.read) < 1000


def test_abandon_leaves_a_stuck_read_behind_and_the_source_is_closed_when_it_returns() -> None:
    """A shutdown does not wait for a read-ahead stuck in an ERP that stopped answering."""
    release = threading.Event()
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            yield 0
            release.wait(10)  # the next page's request hangs
            yield 1
        finally:
            closed.set()

    started = time.monotonic()
    with Prefetched(items()) as got:
        for item in got:
            assert item == 0
            got.abandon()
            break
    assert time.monotonic() - started < 2, "close() waited for the stuck read"
    assert not closed.is_set()
    release.set()
    assert closed.wait(5), "the worker did not close the source once its read returned"


def test_the_worker_sees_the_callers_context_variables() -> None:
    """Connector log lines from the reader carry the run id the caller bound."""
    run_id: contextvars.ContextVar[str] = contextvars.ContextVar("run_id", default="none")
    seen: list[str] = []

    def items() -> Iterator[int]:
        for i in range(3):
            seen.append(run_id.get())
            yield i

    token = run_id.set("run-42")
    try:
        with Prefetched(items()) as got:
            assert list(got) == [0, 1, 2]
    finally:
        run_id.reset(token)
    assert seen == ["run-42"] * 3


def test_gc_paused_restores_the_collector_and_respects_a_caller_that_disabled_it() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
