"""Reads for the safety-stock alert check: states, and the keys whose figures moved.

The alert check looks only at keys that may have crossed (``sync.alert_scope``):
these reads find them with filters the database evaluates, so a quiet cycle
hands Python the changed keys, not every level.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, Table, delete, select, tuple_

import sync.state.schema as s
from sync.model import StockKey
from sync.state.base import StoreBase
from sync.state.rows import AlertEventRow, AlertState, alert_event_row, opt_qty
from sync.state.schema import from_units

#: keys per ``IN`` list (well under every backend's bound-parameter limit)
_CHUNK = 500


class AlertReads(StoreBase):
    def alert_states(
        self, pipeline: str, keys: Collection[StockKey] | None = None
    ) -> dict[StockKey, AlertState]:
        """The remembered alert state per key: every key's, or only those of ``keys``."""
        t = s.alert_states
        q = select(t).where(t.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return {
                StockKey(r["sku"], r["warehouse"]): AlertState(
                    low=bool(r["low"]),
                    threshold=opt_qty(r["threshold"]),
                    qty=from_units(r["qty"]),
                    changed_at=r["changed_at"],
                )
                for part in _parts(q, t, keys)
                for r in conn.execute(part).mappings()
            }

    def prune_alert_events(self, pipeline: str, before: datetime) -> int:
        """Delete the pipeline's alert events delivered before ``before`` (the push log's
        retention); an event not delivered yet stays, its outbox row still needs it."""
        t = s.alert_events
        with self.transaction() as tx:
            result = tx.conn.execute(
                delete(t).where(t.c.pipeline == pipeline, t.c.delivered_at < before)
            )
        return int(result.rowcount)

    def alert_event(self, alert_id: str) -> AlertEventRow | None:
        """The stored crossing ``alert_id`` (body as sent, delivery time), if any."""
        t = s.alert_events
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.alert_id == alert_id)).mappings().first()
        return None if row is None else alert_event_row(row)

    def alert_events(self, pipeline: str) -> list[AlertEventRow]:
        """Every stored crossing of ``pipeline``, oldest first."""
        t = s.alert_events
        q = select(t).where(t.c.pipeline == pipeline).order_by(t.c.created_at, t.c.alert_id)
        with self.engine.connect() as conn:
            return [alert_event_row(r) for r in conn.execute(q).mappings()]

    def low_alert_keys(self, pipeline: str) -> set[StockKey]:
        """Keys whose last alert check found them below their safety stock."""
        t = s.alert_states
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.sku, t.c.warehouse).where(t.c.pipeline == pipeline, t.c.low.is_(True))
            )
            return {StockKey(r[0], r[1]) for r in rows}

    def levels_since(self, pipeline: str, since: datetime) -> dict[StockKey, Decimal]:
        """Levels written at or after ``since`` (``stock_levels.updated_at``), on hand per key.

        Unindexed, like ``pending_levels``: the database filters along the primary key.
        """
        t = s.stock_levels
        q = select(t.c.sku, t.c.warehouse, t.c.qty).where(
            t.c.pipeline == pipeline, t.c.updated_at >= since
        )
        with self.engine.connect() as conn:
            return {StockKey(r[0], r[1]): from_units(r[2]) for r in conn.execute(q)}

    def reserved_since(self, pipeline: str, since: datetime) -> set[StockKey]:
        """Keys whose stored ERP reserved figure was written at or after ``since``.

        A released reservation deletes its row, so it is not among them (see
        ``sync.alert_scope`` for how the check still sees it).
        """
        t = s.reserved_stock
        q = select(t.c.sku, t.c.warehouse).where(t.c.pipeline == pipeline, t.c.updated_at >= since)
        with self.engine.connect() as conn:
            return {StockKey(r[0], r[1]) for r in conn.execute(q)}

    def levels_of(self, pipeline: str, keys: Collection[StockKey]) -> dict[StockKey, Decimal]:
        """On hand of those ``keys`` that have a level (others are left out)."""
        t = s.stock_levels
        q = select(t.c.sku, t.c.warehouse, t.c.qty).where(t.c.pipeline == pipeline)
        if not keys:
            return {}
        with self.engine.connect() as conn:
            return {
                StockKey(r[0], r[1]): from_units(r[2])
                for part in _parts(q, t, keys)
                for r in conn.execute(part)
            }


def _parts(q: Select[Any], t: Table, keys: Collection[StockKey] | None) -> Iterator[Select[Any]]:
    """``q`` as is (``keys`` None), or once per chunk of ``keys`` with a key ``IN`` filter."""
    if keys is None:
        yield q
        return
    ordered = sorted(keys)
    for i in range(0, len(ordered), _CHUNK):
        chunk = ordered[i : i + _CHUNK]
        yield q.where(tuple_(t.c.sku, t.c.warehouse).in_([(k.sku, k.warehouse) for k in chunk]))
