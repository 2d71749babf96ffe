"""An in-memory ERP: documents are movements you add, edit, cancel or delete.

It behaves like a real incremental source: every change stamps its document
with the (injectable) clock, pulls return every line changed at or after the
cursor ordered by (updated_at, key), deletions vanish from pulls and only show
in the window rescan, and on-hand is opening stock plus active lines.

A document is the lines whose keys share a ``document_key``. The stamp is the
document's (an ERP's modify date, as K/3 Cloud's ``FModifyDate``): creating,
editing or cancelling one line (``put``, ``set_active``) and removing one
(``delete_line``, an edit of the document) stamp every line of the document
anew. Its lines therefore always share one stamp and sort together, so a pull
reads a changed document whole and every page names the documents it carries
whole in ``complete_documents``; a document left with no line is still named
once, with no movements, at its stamp.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pydantic import Field

from sync.errors import TransientError
from sync.model import (
    Cursor,
    Movement,
    OnHand,
    Page,
    RejectedRecord,
    Reserved,
    StockKey,
    document_key,
)
from sync.ports import ConnectorContext
from sync.settings import StrictModel


class MemoryErpSettings(StrictModel):
    """Settings of the in-memory ERP (tests and experiments only)."""

    type: Literal["memory"] = "memory"
    streams: list[str] = Field(default_factory=lambda: ["moves"])
    reservations: bool = Field(
        True, description="report reserved stock (false: an ERP that keeps none)"
    )


class MemoryErp:
    """The fake ERP's data plus the ErpSource view of it."""

    name = "memory"

    def __init__(
        self,
        streams: Sequence[str] = ("moves",),
        *,
        now: Callable[[], datetime] | None = None,
        reservations: bool = True,
    ) -> None:
        self._streams = list(streams)
        #: whether this ERP keeps reservations (``reserved()`` gives None when not)
        self.keeps_reservations = reservations
        self._reserved: dict[StockKey, Decimal] = {}
        self._now = now or (lambda: datetime.now(UTC))
        self._lines: dict[str, tuple[str, Movement]] = {}
        #: documents whose last line was deleted by an edit: document key → (stream, stamp)
        self._emptied: dict[str, tuple[str, datetime]] = {}
        self._opening: dict[StockKey, Decimal] = defaultdict(Decimal)
        self._raw: dict[str, list[tuple[datetime, dict[str, object]]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._last_stamp = datetime(1970, 1, 1, tzinfo=UTC)
        #: set to an exception to make the next pull raise it (fault injection)
        self.fail_next: Exception | None = None
        self.pull_calls = 0

    # -- mutations (the "ERP users") -------------------------------------------
    def now(self) -> datetime:
        """The ERP's clock (the injected one)."""
        return self._now()

    def _stamp(self) -> datetime:
        now = self._now()
        # ERP timestamps never go backwards for one writer
        if now <= self._last_stamp:
            now = self._last_stamp
        self._last_stamp = now
        return now

    def set_opening(self, sku: str, warehouse: str, qty: Decimal | int | str) -> None:
        self._opening[StockKey(sku, warehouse)] = Decimal(qty)

    def put(self, movement: Movement, stream: str | None = None) -> Movement:
        """Create or edit a line: an edit of its document, whose every line gets the new
        stamp as ``source_updated_at``."""
        with self._lock:
            stamp = self._stamp()
            stamped = movement._replace(source_updated_at=stamp)
            self._restamp(document_key(movement.key), stamp)
            self._lines[movement.key] = (stream or self._streams[0], stamped)
            self._emptied.pop(document_key(movement.key), None)
            return stamped

    def _restamp(self, doc: str, stamp: datetime) -> list[str]:
        """Give every current line of ``doc`` the document's new ``stamp``; their keys.

        A line edited alone would otherwise sort apart from its siblings, and no page
        would carry the document whole again (a line removed earlier stayed counted).
        """
        keys = [k for k in self._lines if document_key(k) == doc]
        for key in keys:
            line_stream, m = self._lines[key]
            self._lines[key] = (line_stream, m._replace(source_updated_at=stamp))
        return keys

    def set_active(self, key: str, active: bool) -> Movement:
        stream, m = self._lines[key]
        return self.put(m._replace(active=active), stream)

    def delete(self, key: str) -> None:
        """Delete a line without a trace in pulls (only the window rescan sees it)."""
        with self._lock:
            self._lines.pop(key, None)

    def delete_line(self, key: str) -> None:
        """Remove a line from its document by editing the document (issue 13, item 2).

        The document's remaining lines get a new stamp, as an ERP's modify date
        does on any edit of the document, so the next pull reads the document whole.
        """
        with self._lock:
            stream, _ = self._lines.pop(key)
            doc = document_key(key)
            stamp = self._stamp()
            if not self._restamp(doc, stamp):
                self._emptied[doc] = (stream, stamp)

    def reserve(self, sku: str, warehouse: str, qty: Decimal | int | str) -> None:
        """Set the reserved stock of one key (an order's reservation made, changed or
        released: 0 releases it). Reservations may exceed on-hand, as ERPs allow."""
        with self._lock:
            key = StockKey(sku, warehouse)
            if Decimal(qty):
                self._reserved[key] = Decimal(qty)
            else:
                self._reserved.pop(key, None)

    def add_raw(self, stream: str, raw: dict[str, object]) -> None:
        """A malformed record the source will quarantine."""
        self._raw[stream].append((self._stamp(), raw))

    def lines(self) -> list[Movement]:
        return [m for _, m in self._lines.values()]

    # -- ErpSource ----------------------------------------------------------------
    def streams(self) -> Sequence[str]:
        return list(self._streams)

    def pull(self, stream: str, since: Cursor | None, page_size: int) -> Iterator[Page]:
        self.pull_calls += 1
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        with self._lock:
            entries, sizes = self._changed(stream, since)
            rejects = [
                RejectedRecord(stream=stream, reason="malformed record", raw=raw)
                for at, raw in self._raw[stream]
                if since is None or at >= since.updated_at
            ]
        for start, end in _page_bounds(entries, page_size):
            chunk = entries[start:end]
            if not chunk and not rejects:
                return
            movements = [m for _, _, m in chunk if m is not None]
            cursor = Cursor(chunk[-1][0], chunk[-1][1]) if chunk else None
            yield Page(
                stream,
                movements,
                cursor,
                rejects if start == 0 else (),
                _complete(chunk, sizes),
            )

    def _changed(self, stream: str, since: Cursor | None) -> tuple[list[_Entry], dict[str, int]]:
        """What a pull from ``since`` returns, in (stamp, key) order, and each document's
        current line count (emptied documents are entries with no movement)."""
        entries: list[_Entry] = []
        sizes: dict[str, int] = defaultdict(int)
        for s, m in self._lines.values():
            if s != stream:
                continue
            sizes[document_key(m.key)] += 1
            if since is None or m.source_updated_at >= since.updated_at:
                entries.append((m.source_updated_at, m.key, m))
        for doc, (s, at) in self._emptied.items():
            if s == stream and (since is None or at >= since.updated_at):
                entries.append((at, doc, None))
        entries.sort(key=lambda e: (e[0], e[1]))
        return entries, sizes

    def keys_in_window(self, stream: str, since: datetime) -> Iterator[str]:
        with self._lock:
            keys = [
                m.key for s, m in self._lines.values() if s == stream and m.occurred_at >= since
            ]
        yield from keys

    def on_hand(self) -> Iterator[OnHand]:
        totals: dict[StockKey, Decimal] = defaultdict(Decimal, self._opening)
        with self._lock:
            for _, m in self._lines.values():
                totals[m.stock_key] += m.effective_qty
        for key, qty in sorted(totals.items()):
            if qty:
                yield OnHand(key.sku, key.warehouse, qty)

    def reserved(self) -> list[Reserved] | None:
        """Every key with reserved stock (None when this ERP keeps no reservations)."""
        if not self.keeps_reservations:
            return None
        with self._lock:
            return [Reserved(k.sku, k.warehouse, q) for k, q in sorted(self._reserved.items())]

    def check(self) -> str:
        if self.fail_next is not None:
            raise TransientError("memory ERP: injected failure")
        return f"memory ERP with {len(self._lines)} lines"

    def close(self) -> None:
        return None


_Entry = tuple[datetime, str, Movement | None]


def _page_bounds(entries: Sequence[_Entry], page_size: int) -> Iterator[tuple[int, int]]:
    """Pages of about ``page_size`` entries; a page ends where a document does, so a
    document whose lines come together is read whole in one page (at least one page)."""
    start = 0
    while True:
        end = min(start + page_size, len(entries))
        while 0 < end < len(entries) and _doc(entries[end]) == _doc(entries[end - 1]):
            end += 1
        yield start, end
        if end >= len(entries):
            return
        start = end


def _doc(entry: _Entry) -> str:
    return entry[1] if entry[2] is None else document_key(entry[1])


def _complete(chunk: Sequence[_Entry], sizes: dict[str, int]) -> frozenset[str]:
    """Documents every current line of which is in ``chunk`` (emptied ones included)."""
    counts: dict[str, int] = defaultdict(int)
    emptied: set[str] = set()
    for _, key, m in chunk:
        if m is None:
            emptied.add(key)
        else:
            counts[document_key(key)] += 1
    return frozenset(doc for doc, n in counts.items() if n == sizes[doc]) | emptied


#: named in-memory ERPs, so tests and the demo can reach the instance a config built
REGISTRY: dict[str, MemoryErp] = {}


def build(settings: MemoryErpSettings, context: ConnectorContext) -> MemoryErp:
    erp = REGISTRY.get(context.pipeline)
    if erp is None:
        erp = REGISTRY[context.pipeline] = MemoryErp(
            settings.streams, now=context.now, reservations=settings.reservations
        )
    return erp
