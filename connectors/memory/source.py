"""An in-memory ERP: documents are movements you add, edit, cancel or delete.

It behaves like a real incremental source: every change stamps the line with
the (injectable) clock, pulls return every line changed at or after the cursor
ordered by (updated_at, key), deletions vanish from pulls and only show in the
window rescan, and on-hand is opening stock plus active lines.
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
from sync.model import Cursor, Movement, OnHand, Page, RejectedRecord, StockKey
from sync.ports import ConnectorContext
from sync.settings import StrictModel


class MemoryErpSettings(StrictModel):
    """Settings of the in-memory ERP (tests and experiments only)."""

    type: Literal["memory"] = "memory"
    streams: list[str] = Field(default_factory=lambda: ["moves"])


class MemoryErp:
    """The fake ERP's data plus the ErpSource view of it."""

    name = "memory"

    def __init__(
        self,
        streams: Sequence[str] = ("moves",),
        *,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._streams = list(streams)
        self._now = now or (lambda: datetime.now(UTC))
        self._lines: dict[str, tuple[str, Movement]] = {}
        self._opening: dict[StockKey, Decimal] = defaultdict(Decimal)
        self._raw: dict[str, list[tuple[datetime, dict[str, object]]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._last_stamp = datetime(1970, 1, 1, tzinfo=UTC)
        #: set to an exception to make the next pull raise it (fault injection)
        self.fail_next: Exception | None = None
        self.pull_calls = 0

    # -- mutations (the "ERP users") -------------------------------------------
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
        """Create or edit a line (the stamp becomes its source_updated_at)."""
        with self._lock:
            stamped = movement._replace(source_updated_at=self._stamp())
            self._lines[movement.key] = (stream or self._streams[0], stamped)
            return stamped

    def set_active(self, key: str, active: bool) -> Movement:
        stream, m = self._lines[key]
        return self.put(m._replace(active=active), stream)

    def delete(self, key: str) -> None:
        with self._lock:
            self._lines.pop(key, None)

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
            rows = sorted(
                (
                    m
                    for s, m in self._lines.values()
                    if s == stream and (since is None or m.source_updated_at >= since.updated_at)
                ),
                key=lambda m: (m.source_updated_at, m.key),
            )
            rejects = [
                RejectedRecord(stream=stream, reason="malformed record", raw=raw)
                for at, raw in self._raw[stream]
                if since is None or at >= since.updated_at
            ]
        for start in range(0, max(len(rows), 1), page_size):
            chunk = rows[start : start + page_size]
            if not chunk and not rejects:
                return
            cursor = Cursor(chunk[-1].source_updated_at, chunk[-1].key) if chunk else None
            yield Page(stream, chunk, cursor, rejects if start == 0 else ())

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

    def check(self) -> str:
        if self.fail_next is not None:
            raise TransientError("memory ERP: injected failure")
        return f"memory ERP with {len(self._lines)} lines"

    def close(self) -> None:
        return None


#: named in-memory ERPs, so tests and the demo can reach the instance a config built
REGISTRY: dict[str, MemoryErp] = {}


def build(settings: MemoryErpSettings, context: ConnectorContext) -> MemoryErp:
    erp = REGISTRY.get(context.pipeline)
    if erp is None:
        erp = REGISTRY[context.pipeline] = MemoryErp(settings.streams, now=context.now)
    return erp
