"""Read an iterator one step ahead in a worker thread.

A pull alternates between waiting for the ERP (the network, the ERP building
its answer) and writing a page to the state database. Reading the next page in a
thread lets that wait happen while the current page is written. Our own CPU work
does not overlap: both threads share the interpreter lock, and the SQLite driver
takes it back for every row. Only the iteration moves to the worker; everything
the caller does with an item stays in the caller's thread, one item at a time,
in order.
"""

from __future__ import annotations

import contextvars
import gc
import queue
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

_POLL_S = 0.05


class _Done:
    """The worker's last message: the iterator ended (``error`` None) or raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Prefetched(Generic[T]):
    """``items`` iterated ``depth`` items ahead of the consumer, in a worker thread.

    Use as a context manager: leaving it (normally, on ``break`` or on an
    exception) stops the worker, closes the underlying generator in the worker
    and waits for it, so nothing runs against the source afterwards. An
    exception raised by ``items`` reaches the consumer at the item where it
    happened, after every item before it.
    """

    def __init__(self, items: Iterable[T], *, depth: int = 1, name: str = "prefetch") -> None:
        self._items = items
        self._queue: queue.Queue[T | _Done] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        # the reader logs as the caller would: same structlog context (run id, pipeline)
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name=name, daemon=True
        )
        self._finished = False
        self._abandoned = False

    def __enter__(self) -> Prefetched[T]:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        while not self._finished:
            item = self._queue.get()
            if isinstance(item, _Done):
                self._finished = True
                if item.error is not None:
                    raise item.error
                return
            yield item

    def until(self, stop: threading.Event | None) -> Iterator[T]:
        """The items, as ``iter(self)``, but ending as soon as ``stop`` is set, even while
        the worker is still reading: a shutdown must not wait for the next item (the
        caller then ``abandon``s the read in flight)."""
        while not self._finished:
            if stop is not None and stop.is_set():
                return
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if isinstance(item, _Done):
                self._finished = True
                if item.error is not None:
                    raise item.error
                return
            yield item

    def close(self) -> None:
        """Stop the worker and wait for it (it finishes the item it is reading).

        After ``abandon()`` it does not wait: see there.
        """
        self._stop.set()
        while self._thread.is_alive() and not self._abandoned:
            self._drain()
            self._thread.join(_POLL_S)
        self._drain()

    def abandon(self) -> None:
        """Stop without waiting for a read in flight: for a process that is shutting down.

        A read-ahead may be stuck in the source's retries against an ERP that stopped
        answering; a shutdown must not wait for an item it will never use. The worker
        (a daemon thread) closes the source when that read returns. Only for when
        nothing will use the source again in this process.
        """
        self._abandoned = True
        self._stop.set()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _put(self, item: T | _Done) -> bool:
        """Hand ``item`` over unless the consumer has gone; False when it has."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        iterator = iter(self._items)
        try:
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_Done(None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Done(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting still frees).

    A page holds thousands of short-lived objects at once. Collections that run
    while they are alive promote them to older generations, and those promotions
    are what trigger full collections: about a tenth of a pull's time went there.
    Paused for one page, the collector runs between pages, when the page's objects
    are already gone. Nothing in a page builds reference cycles that need it sooner.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
