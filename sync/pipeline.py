"""A pull's pages applied two at a time on a server state database (architecture §4.4).

On PostgreSQL and MariaDB a page's transaction spends much of its time waiting
for the server, and the next page's Python work (intake, look-up, plan, the
statements' parameters) could run meanwhile. Here page N+1 starts in a second
thread, on a second connection, while page N is still writing; each page stays
one transaction, and the pages still commit in their order:

- page N+1 first writes only its own movement rows (inserts, new versions,
  withdrawals). Then it adds its level deltas: at once when page N's level keys
  (known once N has planned) are none of its own, else after page N has
  committed; additions to other rows commute, so the levels end as a serial pull
  leaves them. Then it waits (``apply_page``'s ``turn``) until page N has
  committed before writing its outbox rows, conflicts and cursor, and commits:
  those and the commits keep page order, as one page after the other would. The
  servers run READ COMMITTED (``sync.state.engine``), so what N+1 reads after
  the wait (an open conflict, the stored cursor) includes N's writes.
- page N+1 starts at once only when it touches no document of page N (no line
  key, no complete document, of the same ``document_key``): its look-up then
  reads the same rows whether or not page N has committed, so its plan is the
  one a serial pull would make. A page that shares a document with the page
  before waits for that page to commit before it starts.
- page N's statements never wait for page N+1: until N has committed, N+1 holds
  locks only on its own movement rows and on level rows N does not touch (outbox
  rows wait: MariaDB's unique index locks the gap before a row it finds, which made
  N wait 50 s for N+1 when they came first).
- if page N fails, page N+1 is rolled back (its turn raises) and the pull stops
  with page N's error, as a serial pull would.
- a backstop: page N+1 waits for page N at most ``TURN_WAIT_S``. Were page N ever
  to wait for a lock page N+1 holds (nothing above lets it), neither server would
  see the cycle, half of it being this wait; page N+1 then rolls back, which
  frees page N, and the pull stops with ``PageAborted`` (the next run re-reads).

SQLite keeps one writer at a time, so its pulls stay serial (``pull_stream``).
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

from sync.errors import TransientError
from sync.ledger import ApplyResult, Turn
from sync.model import Page, StockKey, document_key

#: pages in flight: the one committing and the one preparing behind it
DEPTH = 2
#: how long a page waits inside its transaction for the page before it to end
TURN_WAIT_S = 120.0

Apply = Callable[[Page, Turn], ApplyResult]


class PageAborted(TransientError):
    """The page before failed or did not end in time: this page is rolled back and the
    pull stops there (the next run reads it again)."""


def footprint(page: Page) -> frozenset[str]:
    """The documents a page reads or writes: its lines' and its complete documents."""
    return frozenset(document_key(m.key) for m in page.movements) | page.complete_documents


@dataclass(eq=False)
class _InFlight:
    documents: frozenset[str]
    future: Future[ApplyResult] | None = None
    #: the stock keys whose levels this page adds to, once it has planned
    levels: frozenset[StockKey] | None = None
    #: set once ``levels`` is known, or the page has ended without them
    planned: threading.Event = field(default_factory=threading.Event)
    #: set once this page's transaction has ended, committed or not
    ended: threading.Event = field(default_factory=threading.Event)
    committed: bool = False


class PagePipeline:
    """Apply pages in order, the next one's own work overlapping the last one's commit.

    ``apply(page, turn)`` applies one page in one transaction and calls ``turn``'s
    ``before_levels`` and ``before_final`` inside it (``sync.ledger.apply_page``).
    ``submit`` returns the results of pages that have finished, in page order;
    ``drain`` waits for the rest. An error of a page is raised, after every page
    still in flight has ended, by the ``submit`` or ``drain`` that reaches it.
    Use as a context manager: leaving it waits for every page in flight.
    """

    def __init__(
        self, apply: Apply, *, name: str = "pipeline", turn_wait_s: float = TURN_WAIT_S
    ) -> None:
        self._apply = apply
        self._turn_wait_s = turn_wait_s
        self._pool = ThreadPoolExecutor(max_workers=DEPTH, thread_name_prefix=name)
        self._flight: deque[_InFlight] = deque()

    def __enter__(self) -> PagePipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for page in self._flight:
            page.ended.wait()
        self._flight.clear()
        self._pool.shutdown(wait=True)

    def submit(self, page: Page) -> list[ApplyResult]:
        """Start ``page``; the results of the pages that finished first, in order."""
        done: list[ApplyResult] = []
        documents = footprint(page)
        while self._flight and (
            len(self._flight) >= DEPTH
            or any(not documents.isdisjoint(other.documents) for other in self._flight)
        ):
            done.append(self._finish_oldest())
        before = self._flight[-1] if self._flight else None
        current = _InFlight(documents)
        context = contextvars.copy_context()
        current.future = self._pool.submit(context.run, self._run, page, current, before)
        self._flight.append(current)
        return done

    def drain(self) -> Iterator[ApplyResult]:
        """The results of every page still in flight, in order, as each finishes."""
        while self._flight:
            yield self._finish_oldest()

    def _finish_oldest(self) -> ApplyResult:
        oldest = self._flight[0]
        assert oldest.future is not None
        try:
            result = oldest.future.result()
        except BaseException:
            for page in self._flight:  # nothing may still write when the error surfaces
                page.ended.wait()
            self._flight.clear()
            raise
        self._flight.popleft()
        return result

    def _run(self, page: Page, current: _InFlight, before: _InFlight | None) -> ApplyResult:
        try:
            result = self._apply(page, _Turn(current, before, self._turn_wait_s))
        except BaseException:
            current.planned.set()
            current.ended.set()
            raise
        current.committed = True
        current.planned.set()
        current.ended.set()
        return result


class _Turn:
    """One page's waits for the page before it (``sync.ledger.Turn``)."""

    def __init__(self, current: _InFlight, before: _InFlight | None, wait_s: float) -> None:
        self._current = current
        self._before = before
        self._wait_s = wait_s

    def before_levels(self, keys: frozenset[StockKey]) -> None:
        self._current.levels = keys
        self._current.planned.set()
        before = self._before
        if before is None:
            return
        self._wait(before.planned)
        if before.levels is not None and keys.isdisjoint(before.levels):
            return  # no level row in common: the additions commute
        self.before_final()

    def before_final(self) -> None:
        before = self._before
        if before is None:
            return
        self._wait(before.ended)
        if not before.committed:
            raise PageAborted("the page before this one was not written")

    def _wait(self, event: threading.Event) -> None:
        if not event.wait(self._wait_s):
            raise PageAborted(f"the page before this one did not end within {self._wait_s:g} s")
