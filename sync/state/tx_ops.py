"""The transactional writes beside the ledger: conflicts, alert states, outbox, bindings."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    insert,
    select,
    update,
)

import sync.state.schema as s
from sync.model import StockKey, exact_units
from sync.settings import mask
from sync.state.fastpath import executemany
from sync.state.rows import (
    AlertEventRow,
    AlertState,
    OutboxRow,
    PushLogEntry,
    StoredPlan,
    opt_units,
)
from sync.state.schema import to_micros, to_units
from sync.state.upsert import upsert


class OperationsWrites:
    """Mixed into ``Tx``: writes on the connection of the current transaction."""

    conn: Connection

    # -- reserved stock -------------------------------------------------------
    def set_reserved(self, pipeline: str, changes: Mapping[StockKey, int], now: datetime) -> None:
        """Store the ERP's reserved stock of these keys (micro-units); 0 deletes the row.

        Rows go in key order, like every writer of per-key rows (no deadlock on a server).
        """
        t = s.reserved_stock
        gone = sorted(k for k, units in changes.items() if not units)
        kept = sorted((k, units) for k, units in changes.items() if units)
        if gone:
            self.conn.execute(
                delete(t).where(
                    t.c.pipeline == bindparam("b_pipeline"),
                    t.c.sku == bindparam("b_sku"),
                    t.c.warehouse == bindparam("b_warehouse"),
                ),
                [
                    {"b_pipeline": pipeline, "b_sku": k.sku, "b_warehouse": k.warehouse}
                    for k in gone
                ],
            )
        if kept:
            upsert(
                self.conn,
                t,
                [
                    {
                        "pipeline": pipeline,
                        "sku": k.sku,
                        "warehouse": k.warehouse,
                        "qty": units,
                        "updated_at": now,
                    }
                    for k, units in kept
                ],
                ("pipeline", "sku", "warehouse"),
                lambda new: {"qty": new.qty, "updated_at": new.updated_at},
            )

    # -- conflicts ----------------------------------------------------------
    def record_conflict(
        self,
        *,
        kind: str,
        pipeline: str,
        ref: str,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
        erp: Decimal | None = None,
        ledger: Decimal | None = None,
        crm: Decimal | None = None,
        pushed: Decimal | None = None,
        resolution: str | None = None,
    ) -> int:
        """Insert a conflict, or refresh the open one with the same (kind, pipeline, ref).

        A quantity the store's micro-units cannot hold exactly is not rounded: its
        column stays empty and the exact figure goes into ``detail["exact_qty"]``.
        """
        t = s.conflicts
        figures = {"erp": erp, "ledger": ledger, "crm": crm, "pushed": pushed}
        units = {name: None if q is None else exact_units(q) for name, q in figures.items()}
        inexact = {
            name: str(q) for name, q in figures.items() if q is not None and units[name] is None
        }
        detail = {**(detail or {}), "exact_qty": inexact} if inexact else dict(detail or {})
        values = {
            "erp_qty": units["erp"],
            "ledger_qty": units["ledger"],
            "crm_qty": units["crm"],
            "pushed_qty": units["pushed"],
            "detail": json.dumps(detail, default=str, ensure_ascii=False),
            "last_seen_at": now,
        }
        existing = self.conn.execute(
            select(t.c.id).where(
                t.c.pipeline == pipeline,
                t.c.kind == kind,
                t.c.ref == ref,
                t.c.resolved_at.is_(None),
            )
        ).first()
        resolved = {"resolution": resolution, "resolved_at": now} if resolution else {}
        if existing is not None:
            self.conn.execute(
                update(t)
                .where(t.c.id == existing[0])
                .values(**values, **resolved, occurrences=t.c.occurrences + 1)
            )
            return int(existing[0])
        result = self.conn.execute(
            insert(t).values(
                kind=kind,
                pipeline=pipeline,
                ref=ref,
                detected_at=now,
                occurrences=1,
                **values,
                **resolved,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def resolve_conflicts(
        self, pipeline: str, kind: str, ref: str, now: datetime, resolution: str, note: str
    ) -> None:
        t = s.conflicts
        self.conn.execute(
            update(t)
            .where(
                t.c.pipeline == pipeline,
                t.c.kind == kind,
                t.c.ref == ref,
                t.c.resolved_at.is_(None),
            )
            .values(resolution=resolution, resolved_at=now, note=note)
        )

    # -- alerts -------------------------------------------------------------
    def put_alert_states(self, pipeline: str, states: Mapping[StockKey, AlertState]) -> None:
        rows = [
            {
                "pipeline": pipeline,
                "sku": k.sku,
                "warehouse": k.warehouse,
                "low": v.low,
                "threshold": opt_units(v.threshold),
                "qty": to_units(v.qty),
                "changed_at": v.changed_at,
            }
            for k, v in states.items()
        ]
        if rows:
            t = s.alert_states
            upsert(
                self.conn,
                t,
                rows,
                ("pipeline", "sku", "warehouse"),
                lambda new: {
                    "low": new.low,
                    "threshold": new.threshold,
                    "qty": new.qty,
                    "changed_at": new.changed_at,
                },
            )

    def add_alert_events(self, events: Sequence[AlertEventRow]) -> None:
        """Store crossings owed to the webhook (their outbox rows are enqueued beside)."""
        if events:
            self.conn.execute(
                insert(s.alert_events),
                [
                    {
                        "alert_id": e.alert_id,
                        "pipeline": e.pipeline,
                        "event": e.event,
                        "sku": e.sku,
                        "warehouse": e.warehouse,
                        "payload": json.dumps(e.payload, sort_keys=True),
                        "created_at": e.created_at,
                        "delivered_at": e.delivered_at,
                    }
                    for e in events
                ],
            )

    def mark_alert_delivered(self, alert_id: str, now: datetime) -> None:
        """Record that the webhook answered 2xx for ``alert_id``."""
        t = s.alert_events
        self.conn.execute(update(t).where(t.c.alert_id == alert_id).values(delivered_at=now))

    # -- outbox / bindings --------------------------------------------------
    def finish_outbox(self, row: OutboxRow) -> bool:
        """Delete a pushed row unless it was re-enqueued meanwhile (latest value wins)."""
        t = s.outbox
        result = self.conn.execute(
            delete(t).where(t.c.id == row.id, t.c.generation == row.generation)
        )
        return bool(result.rowcount)

    def reschedule_outbox(
        self,
        row: OutboxRow,
        *,
        state: str,
        attempts: int,
        next_attempt_at: datetime,
        error: str | None,
        now: datetime,
    ) -> None:
        t = s.outbox
        # A row re-enqueued meanwhile keeps 'uncertain' if we learnt the outcome is unknown.
        self.conn.execute(
            update(t)
            .where(t.c.id == row.id)
            .values(
                state=state,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_error=mask(error) if error else None,
                updated_at=now,
            )
        )

    def bind(
        self,
        pipeline: str,
        target: str,
        ref: str,
        crm_id: str,
        *,
        pushed_hash: str | None,
        pushed_qty: Decimal | None,
        now: datetime | None,
    ) -> None:
        self.bind_many(pipeline, target, [(ref, crm_id, pushed_hash, pushed_qty)], now)

    def bind_many(
        self,
        pipeline: str,
        target: str,
        rows: Sequence[tuple[str, str, str | None, Decimal | None]],
        now: datetime | None,
    ) -> None:
        """``bind`` for many (ref, crm_id, pushed_hash, pushed_qty) rows in one executemany."""
        upsert(
            self.conn,
            s.bindings,
            [
                {
                    "pipeline": pipeline,
                    "target": target,
                    "ref": ref,
                    "crm_id": crm_id,
                    "pushed_hash": digest,
                    "pushed_qty": opt_units(qty),
                    "pushed_at": now,
                }
                for ref, crm_id, digest, qty in rows
            ],
            ("pipeline", "target", "ref"),
            lambda new: {
                "crm_id": new.crm_id,
                "pushed_hash": new.pushed_hash,
                "pushed_qty": new.pushed_qty,
                "pushed_at": new.pushed_at,
            },
        )

    def unbind(self, pipeline: str, target: str, ref: str) -> None:
        t = s.bindings
        self.conn.execute(
            delete(t).where(t.c.pipeline == pipeline, t.c.target == target, t.c.ref == ref)
        )

    # -- push log -----------------------------------------------------------
    def log_push(self, pipeline: str, entry: PushLogEntry) -> None:
        """Record one push outcome, in the transaction that records the outcome itself.

        One precompiled INSERT handed to the driver: it runs once per pushed row.
        """
        row = (
            pipeline,
            entry.target,
            entry.ref,
            to_micros(entry.at),
            entry.outcome,
            entry.crm_id,
            # None rather than a rounded figure (a CRM may keep more places)
            None if entry.qty is None else exact_units(entry.qty),
            None if entry.available is None else exact_units(entry.available),
            entry.attempts,
            mask(entry.error) if entry.error else None,
        )
        executemany(self.conn, "log_push", lambda: insert(s.push_log), _PUSH_LOG_COLUMNS, [row])

    # -- reorder plans (sync.forecast.nightly) ------------------------------------
    def replace_reorder_plans(self, pipeline: str, plans: Sequence[StoredPlan]) -> None:
        """The pipeline's plans become exactly ``plans`` (a key no longer forecast goes)."""
        t = s.reorder_plans
        self.conn.execute(delete(t).where(t.c.pipeline == pipeline))
        rows = [
            {"pipeline": pipeline, "sku": p.sku, "warehouse": p.warehouse, **p.columns()}
            for p in sorted(plans, key=lambda p: (p.sku, p.warehouse))
        ]
        if rows:
            self.conn.execute(insert(t), rows)


_PUSH_LOG_COLUMNS = (
    "pipeline",
    "target",
    "ref",
    "at",
    "outcome",
    "crm_id",
    "qty",
    "available",
    "attempts",
    "error",
)
