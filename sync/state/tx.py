"""``Tx``: the writes that must commit together (a ledger page, a push result).

The ledger's per-page statements take the driver-level fast path
(``sync.state.fastpath``); everything else is plain SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    case,
    delete,
    insert,
    literal_column,
    select,
    update,
)

from sync.model import Cursor, Movement, StockKey
from sync.settings import mask
from sync.state import schema as s
from sync.state.fastpath import executemany
from sync.state.rows import (
    PENDING,
    UNCERTAIN,
    AlertState,
    LedgerLine,
    OutboxRow,
    opt_units,
)
from sync.state.schema import to_micros, to_units
from sync.state.upsert import upsert, upsert_statement

_LINE_COLUMNS = (
    "key",
    "stream",
    "kind",
    "sku",
    "warehouse",
    "qty",
    "occurred_at",
    "source_updated_at",
    "doc_no",
    "active",
    "content_hash",
    "version",
    "run_id",
    "reason",
)
_MOVEMENT_COLUMNS = ("pipeline", *_LINE_COLUMNS, "recorded_at")
_UPDATE_COLUMNS = (*_MOVEMENT_COLUMNS[2:], "b_pipeline", "b_key")
_VERSION_COLUMNS = (
    "pipeline",
    "key",
    "version",
    "kind",
    "sku",
    "warehouse",
    "qty",
    "occurred_at",
    "source_updated_at",
    "doc_no",
    "active",
    "recorded_at",
    "run_id",
    "reason",
)


def _select_sql(conn: Connection, n: int) -> str:
    """SELECT … WHERE pipeline = ? AND key IN (?, …) for ``n`` keys, compiled once per size."""
    cache_key = (conn.dialect.name, n)
    sql = _SELECT_CACHE.get(cache_key)
    if sql is None:
        t = s.movements
        stmt = select(*(t.c[name] for name in _LINE_COLUMNS)).where(
            t.c.pipeline == bindparam("pipeline"),
            t.c.key.in_([bindparam(f"k{i}") for i in range(n)]),
        )
        sql = _SELECT_CACHE[cache_key] = stmt.compile(dialect=conn.dialect).string
    return sql


_SELECT_CACHE: dict[tuple[str, int], str] = {}


def _line_values(
    m: Movement, stream: str, digest: str, version: int, run_id: str | None, reason: str | None
) -> tuple[Any, ...]:
    """A movement as a tuple in ``_LINE_COLUMNS`` order."""
    return (
        m.key,
        stream,
        m.kind.value,
        m.sku,
        m.warehouse,
        to_units(m.qty),
        to_micros(m.occurred_at),
        to_micros(m.source_updated_at),
        m.doc_no[:128],
        m.active,
        digest,
        version,
        run_id,
        reason,
    )


def _update_movements_stmt() -> Any:
    t = s.movements
    return (
        update(t)
        .where(t.c.pipeline == bindparam("b_pipeline"), t.c.key == bindparam("b_key"))
        .values({c: bindparam(c) for c in _MOVEMENT_COLUMNS[2:]})
    )


class Tx:
    """Writes that commit together; one instance per ``StateStore.transaction()``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- ledger (hot path: see sync/state/fastpath.py) ----------------------------
    def load_movements(self, pipeline: str, keys: Sequence[str]) -> dict[str, LedgerLine]:
        """The stored lines for ``keys`` (chunked to stay under every driver's bind limit)."""
        found: dict[str, LedgerLine] = {}
        raw = self.conn.connection.cursor()
        try:
            for start in range(0, len(keys), 900):
                chunk = list(keys[start : start + 900])
                sql = _select_sql(self.conn, len(chunk))
                params: Any = (
                    (pipeline, *chunk)
                    if self.conn.dialect.positional
                    else {"pipeline": pipeline, **{f"k{i}": k for i, k in enumerate(chunk)}}
                )
                raw.execute(sql, params)
                for row in raw.fetchall():
                    line = LedgerLine._make(row)
                    found[line.key] = line
        finally:
            raw.close()
        return found

    def insert_movements(
        self,
        pipeline: str,
        stream: str,
        items: Sequence[tuple[Movement, str]],
        now: datetime,
        *,
        run_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Insert new lines (``items`` = movement and its content hash) as version 1."""
        stamp = to_micros(now)
        rows = [
            (pipeline, *_line_values(m, stream, digest, 1, run_id, reason), stamp)
            for m, digest in items
        ]
        executemany(
            self.conn, "insert_movements", lambda: insert(s.movements), _MOVEMENT_COLUMNS, rows
        )

    def update_movements(
        self,
        pipeline: str,
        stream: str,
        changes: Sequence[tuple[Movement, str, LedgerLine]],
        now: datetime,
        *,
        run_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Replace lines by their new version, archiving the superseded one (history kept)."""
        if not changes:
            return
        stamp = to_micros(now)
        archive = [
            (
                pipeline,
                old.key,
                old.version,
                old.kind,
                old.sku,
                old.warehouse,
                old.qty_units,
                old.occurred_us,
                old.updated_us,
                old.doc_no,
                old.active,
                stamp,
                old.run_id,
                old.reason,
            )
            for _, _, old in changes
        ]
        executemany(
            self.conn,
            "insert_versions",
            lambda: insert(s.movement_versions),
            _VERSION_COLUMNS,
            archive,
        )
        rows = [
            (
                *_line_values(m, stream, digest, old.version + 1, run_id, reason)[1:],
                stamp,
                pipeline,
                m.key,
            )
            for m, digest, old in changes
        ]
        executemany(self.conn, "update_movements", _update_movements_stmt, _UPDATE_COLUMNS, rows)

    def add_level_deltas(
        self, pipeline: str, deltas: Mapping[StockKey, int], now: datetime
    ) -> None:
        """Add unit deltas to stock levels (rows created at 0 when new)."""
        stamp = to_micros(now)
        rows = [(pipeline, k.sku, k.warehouse, d, stamp) for k, d in deltas.items() if d]
        t = s.stock_levels
        executemany(
            self.conn,
            "add_level_deltas",
            lambda: upsert_statement(
                self.conn,
                t,
                ("pipeline", "sku", "warehouse"),
                lambda new: {"qty": t.c.qty + new.qty, "updated_at": new.updated_at},
            ),
            ("pipeline", "sku", "warehouse", "qty", "updated_at"),
            rows,
        )

    def enqueue(self, pipeline: str, target: str, refs: Sequence[str], now: datetime) -> None:
        """Mark refs as needing a push. An ``uncertain`` row stays uncertain (look up first)."""
        stamp = to_micros(now)
        rows = [(pipeline, target, ref, PENDING, 1, 0, stamp, stamp, stamp, None) for ref in refs]
        t = s.outbox
        executemany(
            self.conn,
            "enqueue",
            lambda: upsert_statement(
                self.conn,
                t,
                ("pipeline", "target", "ref"),
                # no bound literals: every value comes from the row (one executemany)
                lambda new: {
                    "state": case(
                        (t.c.state == literal_column(f"'{UNCERTAIN}'"), t.c.state),
                        else_=new.state,
                    ),
                    "generation": t.c.generation + literal_column("1"),
                    "attempts": new.attempts,
                    "next_attempt_at": new.next_attempt_at,
                    "updated_at": new.updated_at,
                    "last_error": new.last_error,
                },
            ),
            (
                "pipeline",
                "target",
                "ref",
                "state",
                "generation",
                "attempts",
                "next_attempt_at",
                "created_at",
                "updated_at",
                "last_error",
            ),
            rows,
        )

    def advance_cursor(self, pipeline: str, stream: str, cursor: Cursor, now: datetime) -> None:
        """Move a stream's cursor forward; never backwards (re-pulls and backfills overlap)."""
        t = s.cursors
        current = self.conn.execute(
            select(t.c.updated_at, t.c.tie_break).where(
                t.c.pipeline == pipeline, t.c.stream == stream
            )
        ).first()
        if current is not None and Cursor(current[0], current[1]) >= cursor:
            return
        upsert(
            self.conn,
            t,
            [
                {
                    "pipeline": pipeline,
                    "stream": stream,
                    "updated_at": cursor.updated_at,
                    "tie_break": cursor.tie_break,
                    "advanced_at": now,
                }
            ],
            ("pipeline", "stream"),
            lambda new: {
                "updated_at": new.updated_at,
                "tie_break": new.tie_break,
                "advanced_at": new.advanced_at,
            },
        )

    def set_baselines(
        self, pipeline: str, values: Mapping[StockKey, int], now: datetime, note: str
    ) -> None:
        t = s.baselines
        rows = [
            {
                "pipeline": pipeline,
                "sku": k.sku,
                "warehouse": k.warehouse,
                "qty": v,
                "set_at": now,
                "note": note,
            }
            for k, v in values.items()
        ]
        if rows:
            upsert(
                self.conn,
                t,
                rows,
                ("pipeline", "sku", "warehouse"),
                lambda new: {"qty": new.qty, "set_at": new.set_at, "note": new.note},
            )

    def set_meta(self, pipeline: str, name: str, value: str) -> None:
        upsert(
            self.conn,
            s.pipeline_meta,
            [{"pipeline": pipeline, "name": name, "value": value}],
            ("pipeline", "name"),
            lambda new: {"value": new.value},
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
        """Insert a conflict, or refresh the open one with the same (kind, pipeline, ref)."""
        t = s.conflicts
        values = {
            "erp_qty": opt_units(erp),
            "ledger_qty": opt_units(ledger),
            "crm_qty": opt_units(crm),
            "pushed_qty": opt_units(pushed),
            "detail": json.dumps(dict(detail or {}), default=str, ensure_ascii=False),
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
        upsert(
            self.conn,
            s.bindings,
            [
                {
                    "pipeline": pipeline,
                    "target": target,
                    "ref": ref,
                    "crm_id": crm_id,
                    "pushed_hash": pushed_hash,
                    "pushed_qty": opt_units(pushed_qty),
                    "pushed_at": now,
                }
            ],
            ("pipeline", "target", "ref"),
            lambda new: {
                "crm_id": new.crm_id,
                "pushed_hash": new.pushed_hash,
                "pushed_qty": new.pushed_qty,
                "pushed_at": new.pushed_at,
            },
        )

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
