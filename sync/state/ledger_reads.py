"""Reads of the ledger: cursors, levels, baselines, movements, pipeline metadata."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    and_,
    func,
    literal,
    select,
    tuple_,
)

import sync.state.schema as s
from sync.model import Cursor, StockKey
from sync.state.base import StoreBase
from sync.state.rows import (
    LEVEL,
    REF_SEPARATOR,
    CursorRow,
    StoredMovement,
    opt_qty,
    stored_movement,
)
from sync.state.schema import from_micros, from_units


class LedgerReads(StoreBase):
    def cursor(self, pipeline: str, stream: str) -> Cursor | None:
        t = s.cursors
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.updated_at, t.c.tie_break).where(
                    t.c.pipeline == pipeline, t.c.stream == stream
                )
            ).first()
        return Cursor(row[0], row[1]) if row else None

    def cursors(self, pipeline: str | None = None) -> list[CursorRow]:
        t = s.cursors
        q = select(t).order_by(t.c.pipeline, t.c.stream)
        if pipeline:
            q = q.where(t.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [
                CursorRow(
                    r["pipeline"],
                    r["stream"],
                    Cursor(r["updated_at"], r["tie_break"]),
                    r["advanced_at"],
                )
                for r in conn.execute(q).mappings()
            ]

    def level(self, pipeline: str, key: StockKey) -> Decimal:
        """The ledger's on hand of ``key`` (0 when it has no level)."""
        return self._qty_of(s.stock_levels, pipeline, key)

    def _qty_of(self, t: Any, pipeline: str, key: StockKey) -> Decimal:
        """The ``qty`` of one key's row of a per-key table, 0 when it has none."""
        with self.engine.connect() as conn:
            units = conn.execute(
                select(t.c.qty).where(
                    t.c.pipeline == pipeline, t.c.sku == key.sku, t.c.warehouse == key.warehouse
                )
            ).scalar()
        return from_units(units)

    def levels(self, pipeline: str) -> dict[StockKey, Decimal]:
        t = s.stock_levels
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.sku, t.c.warehouse, t.c.qty).where(t.c.pipeline == pipeline)
            )
            return {StockKey(r[0], r[1]): from_units(r[2]) for r in rows}

    def pending_levels(
        self, pipeline: str, *, after: StockKey | None = None, limit: int | None = None
    ) -> list[StockKey]:
        """Levels flagged as changed since they last got an outbox row, in key order
        (``after`` and ``limit`` page through them).

        A scan along the primary key, with no index on the flag: keeping one up to
        date cost every page more than the scan costs (about 0.1 s per million levels).
        """
        t = s.stock_levels
        q = (
            select(t.c.sku, t.c.warehouse)
            .where(t.c.pipeline == pipeline, t.c.push_pending == 1)
            .order_by(t.c.sku, t.c.warehouse)
        )
        if after is not None:
            q = q.where(tuple_(t.c.sku, t.c.warehouse) > tuple_(after.sku, after.warehouse))
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [StockKey(r[0], r[1]) for r in conn.execute(q)]

    def pending_level_counts(self) -> dict[str, int]:
        """Per pipeline, how many levels changed and are not in the outbox yet (a scan)."""
        t = s.stock_levels
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.pipeline, func.count())
                .where(t.c.push_pending == 1)
                .group_by(t.c.pipeline)
            )
            return {r[0]: int(r[1]) for r in rows}

    def reserved_summary(self) -> dict[str, tuple[int, Decimal, datetime | None]]:
        """Per pipeline with reserved stock: (keys, total reserved, when a figure last
        changed) from the last snapshot stored (``reserved_stock``)."""
        t = s.reserved_stock
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    t.c.pipeline, func.count(), func.sum(t.c.qty), func.max(t.c.updated_at)
                ).group_by(t.c.pipeline)
            )
            return {r[0]: (int(r[1]), from_units(int(r[2] or 0)), _stamp(r[3])) for r in rows}

    def inexact_levels(self, sample: int = 20) -> dict[str, tuple[int, list[StockKey]]]:
        """Per pipeline, levels the CRM shows rounded: (how many, the first ``sample`` keys).

        A level is inexact when the value last pushed — recorded as the CRM shows
        it, at its field's precision — differs from the ledger level although
        nothing is waiting to be pushed for the key (no outbox row, not flagged).
        """
        t, b, o = s.stock_levels, s.bindings, s.outbox
        ref = t.c.sku + literal(REF_SEPARATOR) + t.c.warehouse
        queued = (
            select(o.c.id)
            .where(o.c.pipeline == t.c.pipeline, o.c.target == LEVEL, o.c.ref == ref)
            .exists()
        )
        q = (
            select(t.c.pipeline, t.c.sku, t.c.warehouse)
            .select_from(
                t.join(b, and_(b.c.pipeline == t.c.pipeline, b.c.target == LEVEL, b.c.ref == ref))
            )
            .where(
                b.c.pushed_qty.is_not(None),
                b.c.pushed_qty != t.c.qty,
                t.c.push_pending == 0,
                ~queued,
            )
            .order_by(t.c.pipeline, t.c.sku, t.c.warehouse)
        )
        found: dict[str, tuple[int, list[StockKey]]] = {}
        with self.engine.connect() as conn:
            for pipeline, sku, warehouse in conn.execute(q):
                count, keys = found.get(pipeline, (0, []))
                if len(keys) < sample:
                    keys.append(StockKey(sku, warehouse))
                found[pipeline] = (count + 1, keys)
        return found

    def iter_levels(self, pipeline: str, batch: int = 5000) -> Iterator[tuple[StockKey, Decimal]]:
        """Levels ordered by key, streamed (reconcile of millions of keys)."""
        t = s.stock_levels
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(
                select(t.c.sku, t.c.warehouse, t.c.qty)
                .where(t.c.pipeline == pipeline)
                .order_by(t.c.sku, t.c.warehouse)
            )
            for r in result:
                yield StockKey(r[0], r[1]), from_units(r[2])

    def _codepoint_order(self, column: Any) -> Any:
        """ORDER BY ``column`` in code-point order (Python's ``sorted``) on any backend."""
        if self.dialect == "postgresql":
            return column.collate("C")
        if self.dialect in ("mysql", "mariadb"):
            return column.collate("utf8mb4_bin")
        return column

    def iter_level_bindings(
        self, pipeline: str, batch: int = 5000
    ) -> Iterator[tuple[StockKey, Decimal, Decimal | None]]:
        """(key, ledger level, last pushed qty or None) in code-point key order, streamed.

        Reconcile merge-joins this with sorted ERP and CRM snapshots, so the order
        must match Python's string order whatever the database collation is.
        """
        t, b = s.stock_levels, s.bindings
        ref = t.c.sku + literal(REF_SEPARATOR) + t.c.warehouse
        q = (
            select(t.c.sku, t.c.warehouse, t.c.qty, b.c.pushed_qty)
            .select_from(
                t.outerjoin(
                    b,
                    and_(b.c.pipeline == t.c.pipeline, b.c.target == LEVEL, b.c.ref == ref),
                )
            )
            .where(t.c.pipeline == pipeline)
            .order_by(self._codepoint_order(t.c.sku), self._codepoint_order(t.c.warehouse))
        )
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(q)
            for r in result:
                yield StockKey(r[0], r[1]), from_units(r[2]), opt_qty(r[3])

    def reserved(self, pipeline: str, key: StockKey) -> Decimal:
        """The ERP's reserved stock of ``key`` as of the last snapshot (0 when none)."""
        return self._qty_of(s.reserved_stock, pipeline, key)

    def reserved_units(self, pipeline: str) -> dict[StockKey, int]:
        """Every key with reserved stock in the last snapshot, in micro-units."""
        t = s.reserved_stock
        with self.engine.connect() as conn:
            return {
                StockKey(r[0], r[1]): int(r[2])
                for r in conn.execute(
                    select(t.c.sku, t.c.warehouse, t.c.qty).where(t.c.pipeline == pipeline)
                )
            }

    def baselines(self, pipeline: str) -> dict[StockKey, Decimal]:
        t = s.baselines
        with self.engine.connect() as conn:
            return {
                StockKey(r[0], r[1]): from_units(r[2])
                for r in conn.execute(
                    select(t.c.sku, t.c.warehouse, t.c.qty).where(t.c.pipeline == pipeline)
                )
            }

    def recomputed_levels(self, pipeline: str) -> dict[StockKey, Decimal]:
        """Levels computed from scratch: baseline + Σ effective quantities (for `db verify`)."""
        m, b = s.movements, s.baselines
        out: dict[StockKey, int] = {}
        with self.engine.connect() as conn:
            for sku, wh, qty in conn.execute(
                select(m.c.sku, m.c.warehouse, func.sum(m.c.qty))
                .where(m.c.pipeline == pipeline, m.c.active.is_(True))
                .group_by(m.c.sku, m.c.warehouse)
            ):
                out[StockKey(sku, wh)] = int(qty)
            for sku, wh, qty in conn.execute(
                select(b.c.sku, b.c.warehouse, b.c.qty).where(b.c.pipeline == pipeline)
            ):
                key = StockKey(sku, wh)
                out[key] = out.get(key, 0) + int(qty)
        return {k: from_units(v) for k, v in out.items()}

    def pipelines(self) -> list[str]:
        names: set[str] = set()
        with self.engine.connect() as conn:
            for t in (s.stock_levels, s.cursors, s.outbox, s.runs, s.movements):
                names |= {r[0] for r in conn.execute(select(t.c.pipeline).distinct())}
        return sorted(names)

    def movements_in_window(
        self, pipeline: str, stream: str, since: datetime
    ) -> Iterator[StoredMovement]:
        t = s.movements
        with self.engine.connect() as conn:
            for r in conn.execute(
                select(t).where(
                    t.c.pipeline == pipeline,
                    t.c.stream == stream,
                    t.c.occurred_at >= since,
                    t.c.active.is_(True),
                )
            ).mappings():
                yield stored_movement(r)

    def movement_keys(self, pipeline: str) -> Iterator[str]:
        t = s.movements
        with self.engine.connect() as conn:
            yield from (r[0] for r in conn.execute(select(t.c.key).where(t.c.pipeline == pipeline)))

    def movement(self, pipeline: str, key: str) -> StoredMovement | None:
        t = s.movements
        with self.engine.connect() as conn:
            r = (
                conn.execute(select(t).where(t.c.pipeline == pipeline, t.c.key == key))
                .mappings()
                .first()
            )
        return stored_movement(r) if r else None

    def movement_versions(self, pipeline: str, key: str) -> list[StoredMovement]:
        """Every version of a line, oldest first: the archived ones, then the current one."""
        t = s.movement_versions
        with self.engine.connect() as conn:
            archived = [
                stored_movement(r)
                for r in conn.execute(
                    select(t).where(t.c.pipeline == pipeline, t.c.key == key).order_by(t.c.version)
                ).mappings()
            ]
        current = self.movement(pipeline, key)
        return archived + ([current] if current else [])

    def meta(self, pipeline: str, name: str) -> str | None:
        t = s.pipeline_meta
        with self.engine.connect() as conn:
            value = conn.execute(
                select(t.c.value).where(t.c.pipeline == pipeline, t.c.name == name)
            ).scalar()
        return str(value) if value is not None else None

    def meta_all(self, name: str) -> dict[str, str]:
        """pipeline → its ``name`` entry, for every pipeline that has one."""
        t = s.pipeline_meta
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.pipeline, t.c.value).where(t.c.name == name))
            return {str(r[0]): str(r[1]) for r in rows}

    def set_meta(self, pipeline: str, name: str, value: str) -> None:
        with self.transaction() as tx:
            tx.set_meta(pipeline, name, value)


def _stamp(value: Any) -> datetime | None:
    """``max(updated_at)``: an aware datetime where the driver kept the column's type,
    else its raw integer microseconds."""
    if value is None or isinstance(value, datetime):
        return value
    return from_micros(int(value))
