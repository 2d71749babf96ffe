"""``Tx``: the writes that must commit together (a ledger page, a push result).

The ledger's per-page statements take the driver-level fast path on SQLite
(``sync.state.fastpath``) and whole-page statements on PostgreSQL and MariaDB
(``sync.state.ledger_bulk``, architecture §8.3); everything else is plain
SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    exists,
    insert,
    literal_column,
    select,
    update,
)

import sync.state.schema as s
from sync.model import Cursor, StockKey
from sync.state import bulk, ledger_bulk
from sync.state.documents import LINE_COLUMNS, document_lines
from sync.state.fastpath import executemany, fetch, insert_rows
from sync.state.rows import (
    DEAD,
    LEVEL,
    PENDING,
    IncomingLine,
    LedgerLine,
    level_ref,
)
from sync.state.schema import to_micros
from sync.state.tx_ops import OperationsWrites
from sync.state.upsert import upsert, upsert_statement

_MOVEMENT_COLUMNS = ("pipeline", *LINE_COLUMNS, "recorded_at")
_OUTBOX_COLUMNS = (
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
)
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
    """SELECT … WHERE pipeline = ? AND key IN (?, …) for ``n`` keys, compiled once per size.

    PostgreSQL gets one array parameter, each key looked up on its own: the planner
    cannot then choose badly. With an IN list it estimated the pipeline's lines
    from missing statistics (a fresh database, mid first pull) and read all of them
    through another index for every page, and the driver's prepared statement kept
    that plan: a 200k pull took 390 s, each page slower than the last. The LATERAL
    subquery with LIMIT 1 is never flattened into a join, so every key is a probe
    of the primary key whatever the statistics say.
    """
    postgres = conn.dialect.name == "postgresql"
    cache_key = (conn.dialect.name, 0 if postgres else n)
    sql = _SELECT_CACHE.get(cache_key)
    if sql is None:
        if postgres:
            sql = (
                f"SELECT {', '.join('m.' + c for c in LINE_COLUMNS)}"
                " FROM unnest(CAST(%(keys)b AS VARCHAR[])) AS k(key) CROSS JOIN LATERAL"
                f" (SELECT {', '.join(LINE_COLUMNS)} FROM movements"
                " WHERE movements.pipeline = %(pipeline)s AND movements.key = k.key"
                " LIMIT 1) AS m"
            )
        else:
            t = s.movements
            stmt = select(*(t.c[name] for name in LINE_COLUMNS)).where(
                t.c.pipeline == bindparam("pipeline"),
                t.c.key.in_([bindparam(f"k{i}") for i in range(n)]),
            )
            sql = stmt.compile(dialect=conn.dialect).string
        _SELECT_CACHE[cache_key] = sql
    return sql


_SELECT_CACHE: dict[tuple[str, int], str] = {}


def _line_values(
    line: IncomingLine, stream: str, version: int, run_id: str | None, reason: str | None
) -> tuple[Any, ...]:
    """A line as a tuple in ``LINE_COLUMNS`` order."""
    return (
        line.key,
        stream,
        line.kind,
        line.sku,
        line.warehouse,
        line.qty_units,
        line.occurred_us,
        line.updated_us,
        line.doc_no,
        line.active,
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


class Tx(OperationsWrites):
    """Writes that commit together; one instance per ``StateStore.transaction()``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        #: PostgreSQL or MariaDB: the ledger's page writes go through ``ledger_bulk``
        self.server = bulk.is_server(conn)

    # -- ledger (hot path: see sync/state/fastpath.py) ----------------------------
    def load_movements(self, pipeline: str, keys: Sequence[str]) -> dict[str, LedgerLine]:
        """The stored lines for ``keys`` (chunked to stay under every driver's bind limit)."""
        found: dict[str, LedgerLine] = {}
        raw = self.conn.connection.cursor()
        try:
            for start in range(0, len(keys), 900):
                chunk = list(keys[start : start + 900])
                sql = _select_sql(self.conn, len(chunk))
                params: Any
                if self.conn.dialect.name == "postgresql":
                    params = {"pipeline": pipeline, "keys": chunk}
                elif self.conn.dialect.positional:
                    params = (pipeline, *chunk)
                else:
                    params = {"pipeline": pipeline, **{f"k{i}": k for i, k in enumerate(chunk)}}
                raw.execute(sql, params)
                for row in raw.fetchall():
                    line = LedgerLine._make(row)
                    found[line.key] = line
        finally:
            raw.close()
        return found

    def load_document_lines(self, pipeline: str, documents: Sequence[str]) -> list[LedgerLine]:
        """Every stored line of these documents (``document_key``s), by primary-key range."""
        return document_lines(self.conn, pipeline, documents)

    def insert_movements(
        self,
        pipeline: str,
        stream: str,
        lines: Sequence[IncomingLine],
        now: datetime,
        *,
        run_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Insert new lines as version 1."""
        stamp = to_micros(now)
        if self.server:
            ledger_bulk.insert_movements(self.conn, pipeline, stream, lines, stamp, run_id, reason)
            return
        rows = [(pipeline, *_line_values(line, stream, 1, run_id, reason), stamp) for line in lines]
        insert_rows(
            self.conn, "insert_movements", lambda: insert(s.movements), _MOVEMENT_COLUMNS, rows
        )

    def update_movements(
        self,
        pipeline: str,
        stream: str,
        changes: Sequence[tuple[IncomingLine, LedgerLine]],
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
            for _, old in changes
        ]
        if self.server and ledger_bulk.update_movements(
            self.conn, pipeline, stream, changes, (_VERSION_COLUMNS, archive), stamp, run_id, reason
        ):
            return
        executemany(
            self.conn,
            "insert_versions",
            lambda: insert(s.movement_versions),
            _VERSION_COLUMNS,
            archive,
        )
        rows = [
            (
                *_line_values(line, stream, old.version + 1, run_id, reason)[1:],
                stamp,
                pipeline,
                line.key,
            )
            for line, old in changes
        ]
        executemany(self.conn, "update_movements", _update_movements_stmt, _UPDATE_COLUMNS, rows)

    def add_level_deltas(
        self, pipeline: str, deltas: Mapping[StockKey, int], now: datetime
    ) -> None:
        """Add unit deltas to stock levels (rows created at 0 when new).

        Each changed level is flagged ``push_pending`` in the same write; the
        flags become outbox rows in ``queue_pending_levels`` (architecture §5.2).
        Rows go in key order, the order in which queueing clears flags, so two
        transactions on a server lock levels in the same order and cannot deadlock.
        """
        stamp = to_micros(now)
        rows = sorted((pipeline, k.sku, k.warehouse, d, stamp, 1) for k, d in deltas.items() if d)
        t = s.stock_levels
        if self.server:
            ledger_bulk.add_level_deltas(self.conn, pipeline, [r[1:4] for r in rows], stamp)
            return
        insert_rows(  # one row per key: ``deltas`` is keyed by it
            self.conn,
            "add_level_deltas",
            lambda: upsert_statement(
                self.conn,
                t,
                ("pipeline", "sku", "warehouse"),
                lambda new: {
                    "qty": t.c.qty + new.qty,
                    "updated_at": new.updated_at,
                    "push_pending": new.push_pending,
                },
            ),
            ("pipeline", "sku", "warehouse", "qty", "updated_at", "push_pending"),
            rows,
        )

    def queue_pending_levels(self, pipeline: str, keys: Sequence[StockKey], now: datetime) -> None:
        """Give these flagged levels their outbox rows and clear their flags, atomically.

        Flags are cleared by key, never by "whatever is flagged now": a level
        flagged by a writer that committed after ``keys`` were read keeps its
        flag for the next round. A level flagged again before this commits is
        fine too: its outbox row is bumped after that change, so the pusher reads
        the newer value. Keys are taken in Python's order, the one
        ``add_level_deltas`` locks levels in (a server's collation may sort otherwise).
        """
        keys = sorted(keys)
        self.enqueue(pipeline, LEVEL, [level_ref(k) for k in keys], now)
        t = s.stock_levels
        if self.server and ledger_bulk.clear_push_pending(self.conn, pipeline, keys):
            return
        executemany(
            self.conn,
            "clear_push_pending",
            lambda: (
                update(t)
                .where(
                    t.c.pipeline == bindparam("b_pipeline"),
                    t.c.sku == bindparam("b_sku"),
                    t.c.warehouse == bindparam("b_warehouse"),
                )
                .values(push_pending=bindparam("b_flag"))
            ),
            ("b_flag", "b_pipeline", "b_sku", "b_warehouse"),
            [(0, pipeline, k.sku, k.warehouse) for k in keys],
        )

    def enqueue(self, pipeline: str, target: str, refs: Sequence[str], now: datetime) -> None:
        """Mark refs as needing a push (architecture §5: one row per ref, latest value wins).

        An existing row only gets its generation bumped, so a push in flight keeps
        it for the newer value; its state and schedule stay (an ``uncertain`` row
        must still look up first, a row in backoff keeps its backoff). A ``dead``
        row comes back to life: a new value deserves new attempts.

        The bump touches no indexed column, so it is the cheapest write SQLite can
        do per ref; dead rows are rare and are revived by a second statement that
        runs only when the pipeline has any.
        """
        stamp = to_micros(now)
        t = s.outbox
        if not (self.server and ledger_bulk.enqueue(self.conn, pipeline, target, refs, stamp)):
            rows = [
                (pipeline, target, ref, PENDING, 1, 0, stamp, stamp, stamp, None) for ref in refs
            ]
            executemany(
                self.conn,
                "enqueue",
                lambda: upsert_statement(
                    self.conn,
                    t,
                    ("pipeline", "target", "ref"),
                    # no bound literals: every value comes from the row (one executemany)
                    lambda new: {"generation": t.c.generation + literal_column("1")},
                ),
                _OUTBOX_COLUMNS,
                rows,
            )
        if refs and self._has_dead(pipeline, target):
            self._revive(pipeline, target, refs, now)

    def force_levels(self, pipeline: str, refs: Sequence[str], now: datetime) -> None:
        """Queue these levels and forget what was last pushed for them (``stocksync resync``).

        The binding keeps its CRM id and pushed quantity; only the hash that makes an
        equal value "no write" is cleared, so the next push writes even an unchanged
        value, and keeps doing so across retries until one succeeds.
        """
        t = s.bindings
        for start in range(0, len(refs), 900):
            self.conn.execute(
                update(t)
                .where(
                    t.c.pipeline == pipeline,
                    t.c.target == LEVEL,
                    t.c.ref.in_(list(refs[start : start + 900])),
                )
                .values(pushed_hash=None)
            )
        refs = sorted(refs)  # the order every writer of per-key rows keeps
        self.enqueue(pipeline, LEVEL, refs, now)
        o = s.outbox
        for start in range(0, len(refs), 900):  # due now, even a row in backoff
            self.conn.execute(
                update(o)
                .where(
                    o.c.pipeline == pipeline,
                    o.c.target == LEVEL,
                    o.c.ref.in_(refs[start : start + 900]),
                )
                .values(next_attempt_at=now)
            )

    def _has_dead(self, pipeline: str, target: str) -> bool:
        t = s.outbox
        rows = fetch(
            self.conn,
            "has_dead_outbox",
            lambda: select(
                exists().where(
                    t.c.pipeline == bindparam("pipeline"),
                    t.c.state == bindparam("state"),
                    t.c.target == bindparam("target"),
                )
            ),
            {"pipeline": pipeline, "state": DEAD, "target": target},
        )
        return bool(rows[0][0])

    def _revive(self, pipeline: str, target: str, refs: Sequence[str], now: datetime) -> None:
        t = s.outbox
        for start in range(0, len(refs), 900):
            self.conn.execute(
                update(t)
                .where(
                    t.c.pipeline == pipeline,
                    t.c.state == DEAD,
                    t.c.target == target,
                    t.c.ref.in_(list(refs[start : start + 900])),
                )
                .values(state=PENDING, attempts=0, next_attempt_at=now, last_error=None)
            )

    def advance_cursor(self, pipeline: str, stream: str, cursor: Cursor, now: datetime) -> None:
        """Move a stream's cursor forward; never backwards (re-pulls and backfills overlap)."""
        t = s.cursors
        current = fetch(
            self.conn,
            "read_cursor",
            lambda: select(t.c.updated_at, t.c.tie_break).where(
                t.c.pipeline == bindparam("pipeline"), t.c.stream == bindparam("stream")
            ),
            {"pipeline": pipeline, "stream": stream},
        )
        target = (to_micros(cursor.updated_at), cursor.tie_break)
        if current and (int(current[0][0]), current[0][1]) >= target:
            return
        executemany(
            self.conn,
            "advance_cursor",
            lambda: upsert_statement(
                self.conn,
                t,
                ("pipeline", "stream"),
                lambda new: {
                    "updated_at": new.updated_at,
                    "tie_break": new.tie_break,
                    "advanced_at": new.advanced_at,
                },
            ),
            ("pipeline", "stream", "updated_at", "tie_break", "advanced_at"),
            [(pipeline, stream, *target, to_micros(now))],
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
