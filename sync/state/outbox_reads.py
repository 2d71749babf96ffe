"""Reads (and small updates) of the outbox and the bindings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    and_,
    func,
    or_,
    select,
    update,
)

import sync.state.schema as s
from sync.model import StockKey
from sync.state.base import StoreBase
from sync.state.rows import (
    BLOCKED,
    DEAD,
    LEVEL,
    PENDING,
    UNCERTAIN,
    Binding,
    OutboxRow,
    opt_qty,
    outbox_row,
    parse_level_ref,
)


class OutboxReads(StoreBase):
    def levels_in_outbox(self, pipeline: str) -> set[StockKey]:
        """The keys whose level has an outbox row in any state: a write stocksync still owes
        the CRM (pending, retrying, uncertain, blocked or dead)."""
        t = s.outbox
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.ref).where(t.c.pipeline == pipeline, t.c.target == LEVEL)
            )
            return {parse_level_ref(r[0]) for r in rows}

    def outbox_due(
        self, pipeline: str, now: datetime, limit: int, *, after_id: int = 0
    ) -> list[OutboxRow]:
        t = s.outbox
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t)
                .where(
                    t.c.pipeline == pipeline,
                    t.c.id > after_id,
                    t.c.state.in_((PENDING, UNCERTAIN, BLOCKED)),
                    or_(t.c.next_attempt_at <= now, t.c.state == BLOCKED),
                )
                .order_by(t.c.id)
                .limit(limit)
            ).mappings()
            return [outbox_row(r) for r in rows]

    def outbox_rows(
        self, pipeline: str | None = None, state: str | None = None, limit: int = 1000
    ) -> list[OutboxRow]:
        t = s.outbox
        q = select(t).order_by(t.c.id).limit(limit)
        if pipeline:
            q = q.where(t.c.pipeline == pipeline)
        if state:
            q = q.where(t.c.state == state)
        with self.engine.connect() as conn:
            return [outbox_row(r) for r in conn.execute(q).mappings()]

    def outbox_stuck(self, pipeline: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Rows that need a person: ``dead`` (replay with ``stocksync retry``) and ``blocked``
        (the CRM does not know the SKU or warehouse yet), by pipeline then id."""
        t = s.outbox
        q = select(t).where(t.c.state.in_((DEAD, BLOCKED))).order_by(t.c.pipeline, t.c.id)
        if pipeline:
            q = q.where(t.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [outbox_row(r) for r in conn.execute(q.limit(limit)).mappings()]

    def outbox_states(self, pipeline: str, target: str, refs: Sequence[str]) -> dict[str, str]:
        """ref → state of the rows of ``refs`` still in the outbox (a pushed row is gone)."""
        t = s.outbox
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(refs), 900):
                chunk = list(refs[start : start + 900])
                rows = conn.execute(
                    select(t.c.ref, t.c.state).where(
                        t.c.pipeline == pipeline, t.c.target == target, t.c.ref.in_(chunk)
                    )
                )
                found.update((r[0], r[1]) for r in rows)
        return found

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        t = s.outbox
        with self.engine.connect() as conn:
            return {
                (r[0], r[1]): int(r[2])
                for r in conn.execute(
                    select(t.c.pipeline, t.c.state, func.count()).group_by(t.c.pipeline, t.c.state)
                )
            }

    def unbound_count(self, pipeline: str, target: str) -> int:
        o, b = s.outbox, s.bindings
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(
                        o.outerjoin(
                            b,
                            and_(
                                b.c.pipeline == o.c.pipeline,
                                b.c.target == o.c.target,
                                b.c.ref == o.c.ref,
                            ),
                        )
                    )
                    .where(o.c.pipeline == pipeline, o.c.target == target, b.c.crm_id.is_(None))
                ).scalar_one()
            )

    def dead_ids(self, ids: Sequence[int]) -> set[int]:
        """Those of ``ids`` that are dead outbox rows (what ``retry ID…`` can requeue)."""
        t = s.outbox
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.id).where(t.c.state == DEAD, t.c.id.in_(list(ids))))
            return {int(r[0]) for r in rows}

    def requeue_dead(self, ids: Sequence[int] | None, now: datetime) -> int:
        t = s.outbox
        q = update(t).where(t.c.state == DEAD)
        if ids is not None:
            q = q.where(t.c.id.in_(list(ids)))
        with self.transaction() as tx:
            result = tx.conn.execute(
                q.values(state=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
            )
        return int(result.rowcount)

    def binding(self, pipeline: str, target: str, ref: str) -> Binding | None:
        t = s.bindings
        with self.engine.connect() as conn:
            r = (
                conn.execute(
                    select(t).where(t.c.pipeline == pipeline, t.c.target == target, t.c.ref == ref)
                )
                .mappings()
                .first()
            )
        if r is None:
            return None
        return Binding(r["crm_id"], r["pushed_hash"], opt_qty(r["pushed_qty"]), r["pushed_at"])

    def bound_refs(self, pipeline: str, target: str, refs: Sequence[str]) -> set[str]:
        """Which of ``refs`` have a CRM binding (chunked under every driver's bind limit)."""
        t = s.bindings
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(refs), 900):
                chunk = list(refs[start : start + 900])
                found.update(
                    conn.execute(
                        select(t.c.ref).where(
                            t.c.pipeline == pipeline, t.c.target == target, t.c.ref.in_(chunk)
                        )
                    ).scalars()
                )
        return found

    def bindings(self, pipeline: str, target: str) -> dict[str, Binding]:
        t = s.bindings
        with self.engine.connect() as conn:
            return {
                r["ref"]: Binding(
                    r["crm_id"], r["pushed_hash"], opt_qty(r["pushed_qty"]), r["pushed_at"]
                )
                for r in conn.execute(
                    select(t).where(t.c.pipeline == pipeline, t.c.target == target)
                ).mappings()
            }
