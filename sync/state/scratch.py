"""An external sort for snapshots too large to hold in memory.

Reconcile needs the ERP and CRM snapshots in (sku, warehouse) order, but both
arrive in whatever order their APIs page. Rows are spooled into a temporary
SQLite file and read back sorted, so a million keys cost a few megabytes of
RAM instead of two full copies. SQLite's BINARY collation compares UTF-8
bytes, which is exactly Python's code-point order, so the merge-join with the
ledger's stream lines up.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from types import TracebackType

from sync.model import StockKey, exact_units
from sync.state.schema import from_units

#: (sku, warehouse, micro-units, tag, exact text when micro-units cannot hold it)
_Row = tuple[str, str, int, str | None, str | None]

_BATCH = 10_000


class SortedSpool:
    """Rows (key, qty, tag) in, rows by key out: summed, or every row grouped by key."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="stocksync-spool-")
        self._db = sqlite3.connect(Path(self._dir.name) / "spool.db")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute(
            "CREATE TABLE spool (sku TEXT NOT NULL, warehouse TEXT NOT NULL,"
            " qty INTEGER NOT NULL, tag TEXT, exact TEXT)"
        )

    def add(self, rows: Iterable[tuple[StockKey, Decimal, str | None]]) -> int:
        """Spool ``rows``; returns how many went in."""
        count = 0
        batch: list[_Row] = []
        for key, qty, tag in rows:
            units = exact_units(qty)
            if units is None:  # more decimals than micro-units: kept whole, as text
                batch.append((key.sku, key.warehouse, 0, tag, str(qty)))
            else:
                batch.append((key.sku, key.warehouse, units, tag, None))
            if len(batch) >= _BATCH:
                count += self._flush(batch)
        return count + self._flush(batch)

    def _flush(self, batch: list[_Row]) -> int:
        self._db.executemany("INSERT INTO spool VALUES (?, ?, ?, ?, ?)", batch)
        count = len(batch)
        batch.clear()
        return count

    def summed(self) -> Iterator[tuple[StockKey, Decimal]]:
        """One row per key with the quantities added up, in key order."""
        for sku, warehouse, units, exact in self._db.execute(
            "SELECT sku, warehouse, SUM(qty), GROUP_CONCAT(exact, ' ') FROM spool"
            " GROUP BY sku, warehouse ORDER BY sku, warehouse"
        ):
            total = from_units(units)
            if exact is not None:
                total += sum((Decimal(q) for q in exact.split()), Decimal(0))
            yield StockKey(sku, warehouse), total

    def grouped(self) -> Iterator[tuple[StockKey, list[tuple[Decimal, str | None]]]]:
        """Every row, grouped by key in key order; within a key, in the order spooled.

        A figure finer than micro-units comes back exactly (its text), never rounded."""
        key: StockKey | None = None
        group: list[tuple[Decimal, str | None]] = []
        for sku, warehouse, units, tag, exact in self._db.execute(
            "SELECT sku, warehouse, qty, tag, exact FROM spool ORDER BY sku, warehouse, rowid"
        ):
            if key is None or (sku, warehouse) != (key.sku, key.warehouse):
                if key is not None:
                    yield key, group
                key, group = StockKey(sku, warehouse), []
            group.append((from_units(units) if exact is None else Decimal(exact), tag))
        if key is not None:
            yield key, group

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> SortedSpool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
