"""The ledger lines customer demand is computed from (``sync.demand``), and the stored
reorder plans (``sync.forecast.nightly``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import select

import sync.state.schema as s
from sync.demand import DemandLine
from sync.forecast.model import ReorderPlan
from sync.model import StockKey
from sync.state.base import StoreBase
from sync.state.rows import PLAN_FIELDS, StoredPlan
from sync.state.schema import from_units


class DemandReads(StoreBase):
    def demand_lines(
        self, pipeline: str, since: datetime, kinds: Sequence[str]
    ) -> Iterator[DemandLine]:
        """Active lines of ``kinds`` that occurred at or after ``since`` (uses
        ``ix_movements_date``); streamed, so two years of a large ledger fit in memory."""
        t = s.movements
        query = select(t.c.key, t.c.kind, t.c.sku, t.c.warehouse, t.c.qty, t.c.occurred_at).where(
            t.c.pipeline == pipeline,
            t.c.occurred_at >= since,
            t.c.active.is_(True),
            t.c.kind.in_(list(kinds)),
        )
        with self.engine.connect() as conn:
            for r in conn.execution_options(yield_per=5000).execute(query):
                yield DemandLine(r[0], r[1], r[2], r[3], from_units(int(r[4])), r[5])

    def reorder_plans(self, pipeline: str) -> dict[StockKey, StoredPlan]:
        """The plans the last nightly job stored, per key."""
        t = s.reorder_plans
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.pipeline == pipeline)).mappings().all()
        out = {}
        for r in rows:
            key = StockKey(r["sku"], r["warehouse"])
            plan = ReorderPlan(key=str(key), **{n: r[n] for n in PLAN_FIELDS})
            out[key] = StoredPlan(r["sku"], r["warehouse"], r["model"], r["computed_at"], plan)
        return out
