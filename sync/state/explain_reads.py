"""Reads for the operators' tools: one stock key's story (``explain``) and the keys a
``resync`` selects; plus the push log's retention.

Movements are found by product and warehouse, a scan of the pipeline's lines: no
index serves it, and none is added because every ledger insert would pay for it.
That is fine for a command a person runs for one key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, select

import sync.state.schema as s
from sync.model import StockKey
from sync.state.base import StoreBase
from sync.state.rows import (
    ConflictRow,
    OutboxRow,
    PushLogEntry,
    StoredMovement,
    conflict_row,
    opt_qty,
    outbox_row,
    stored_movement,
)
from sync.state.schema import from_units


@dataclass(frozen=True, slots=True)
class BaselineRow:
    """The opening stock of a key: the ERP's on hand when the ledger started (or a re-seed)."""

    qty: Decimal
    set_at: datetime
    note: str


class ExplainReads(StoreBase):
    def baseline(self, pipeline: str, key: StockKey) -> BaselineRow | None:
        t = s.baselines
        with self.engine.connect() as conn:
            r = conn.execute(
                select(t.c.qty, t.c.set_at, t.c.note).where(
                    t.c.pipeline == pipeline, t.c.sku == key.sku, t.c.warehouse == key.warehouse
                )
            ).first()
        return BaselineRow(from_units(r[0]), r[1], r[2]) if r else None

    def has_level(self, pipeline: str, key: StockKey) -> bool:
        t = s.stock_levels
        with self.engine.connect() as conn:
            found = conn.execute(
                select(t.c.qty).where(
                    t.c.pipeline == pipeline, t.c.sku == key.sku, t.c.warehouse == key.warehouse
                )
            ).first()
        return found is not None

    def movements_of(self, pipeline: str, key: StockKey) -> list[StoredMovement]:
        """Every version, current and archived, of each line that ever touched ``key``.

        A line edited into another product or warehouse keeps its place here through
        its archived versions. Ordered by business date, line key, then version.
        """
        m, v = s.movements, s.movement_versions
        with self.engine.connect() as conn:
            keys = set(
                conn.execute(
                    select(m.c.key).where(
                        m.c.pipeline == pipeline, m.c.sku == key.sku, m.c.warehouse == key.warehouse
                    )
                ).scalars()
            )
            keys |= set(
                conn.execute(
                    select(v.c.key).where(
                        v.c.pipeline == pipeline, v.c.sku == key.sku, v.c.warehouse == key.warehouse
                    )
                ).scalars()
            )
            found: list[StoredMovement] = []
            ordered = sorted(keys)
            for start in range(0, len(ordered), 900):
                chunk = ordered[start : start + 900]
                for t in (m, v):
                    rows = conn.execute(
                        select(t).where(t.c.pipeline == pipeline, t.c.key.in_(chunk))
                    ).mappings()
                    found += [stored_movement(r) for r in rows]
        return sorted(found, key=lambda x: (x.occurred_at, x.key, x.version))

    def push_log(
        self, pipeline: str, target: str, ref: str, limit: int = 100
    ) -> list[PushLogEntry]:
        """The push outcomes of one outbox ref still within retention, newest first."""
        t = s.push_log
        q = (
            select(t)
            .where(t.c.pipeline == pipeline, t.c.target == target, t.c.ref == ref)
            .order_by(t.c.at.desc(), t.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                PushLogEntry(
                    target=r["target"],
                    ref=r["ref"],
                    at=r["at"],
                    outcome=r["outcome"],
                    crm_id=r["crm_id"],
                    qty=opt_qty(r["qty"]),
                    available=opt_qty(r["available"]),
                    attempts=r["attempts"],
                    error=r["error"],
                )
                for r in conn.execute(q).mappings()
            ]

    def prune_push_log(self, pipeline: str, before: datetime) -> int:
        """Delete the pipeline's push log rows older than ``before`` (an index range)."""
        t = s.push_log
        with self.transaction() as tx:
            result = tx.conn.execute(delete(t).where(t.c.pipeline == pipeline, t.c.at < before))
        return int(result.rowcount)

    def conflicts_of(
        self, pipeline: str, refs: Sequence[str], *, open_only: bool = True
    ) -> list[ConflictRow]:
        """Conflicts recorded under any of ``refs``, newest first."""
        t = s.conflicts
        found: list[ConflictRow] = []
        with self.engine.connect() as conn:
            for start in range(0, len(refs), 900):
                q = select(t).where(
                    t.c.pipeline == pipeline, t.c.ref.in_(refs[start : start + 900])
                )
                if open_only:
                    q = q.where(t.c.resolved_at.is_(None))
                found += [conflict_row(r) for r in conn.execute(q).mappings()]
        return sorted(found, key=lambda c: c.id, reverse=True)

    def outbox_row_of(self, pipeline: str, target: str, ref: str) -> OutboxRow | None:
        t = s.outbox
        with self.engine.connect() as conn:
            r = (
                conn.execute(
                    select(t).where(t.c.pipeline == pipeline, t.c.target == target, t.c.ref == ref)
                )
                .mappings()
                .first()
            )
        return outbox_row(r) if r else None

    def nearby_keys(self, pipeline: str, key: StockKey, limit: int = 200) -> list[StockKey]:
        """Level keys sharing the product, or the start of its code (a primary-key range),
        to suggest when ``key`` is unknown."""
        t = s.stock_levels
        prefix = key.sku[:3]
        q = (
            select(t.c.sku, t.c.warehouse)
            .where(t.c.pipeline == pipeline, t.c.sku >= prefix)
            .order_by(t.c.sku, t.c.warehouse)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = [StockKey(r[0], r[1]) for r in conn.execute(q)]
            same_warehouse = conn.execute(
                select(t.c.sku, t.c.warehouse)
                .where(t.c.pipeline == pipeline, t.c.warehouse == key.warehouse)
                .limit(limit)
            )
            rows += [StockKey(r[0], r[1]) for r in same_warehouse]
        return rows

    def select_levels(
        self,
        pipeline: str,
        *,
        skus: Sequence[str] = (),
        warehouses: Sequence[str] = (),
        keys: Sequence[StockKey] = (),
    ) -> list[StockKey]:
        """Level keys matching every given filter (a SKU in ``skus``, a warehouse in
        ``warehouses``, a key in ``keys``); with no filter, every level of the pipeline."""
        t = s.stock_levels
        q = select(t.c.sku, t.c.warehouse).where(t.c.pipeline == pipeline)
        if skus:
            q = q.where(t.c.sku.in_(list(skus)))
        if warehouses:
            q = q.where(t.c.warehouse.in_(list(warehouses)))
        wanted = set(keys)
        if wanted:  # a handful of keys named on the command line
            q = q.where(t.c.sku.in_(sorted({k.sku for k in wanted})))
        with self.engine.connect() as conn:
            found = [StockKey(r[0], r[1]) for r in conn.execute(q)]
        # exact matches only (a MariaDB collation may ignore case)
        return sorted(
            k
            for k in found
            if (not wanted or k in wanted)
            and (not skus or k.sku in skus)
            and (not warehouses or k.warehouse in warehouses)
        )
