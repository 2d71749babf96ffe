"""StateStore: the only code that touches the state database.

Typed rows (dataclasses) cross this boundary, never SQLAlchemy rows. Writes
that must be atomic together (a ledger page, a push result) go through
``transaction()``, which yields a ``Tx`` bound to one connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from sync.errors import ConfigError, ConfigProblem, TransientError
from sync.model import Cursor, Movement, StockKey
from sync.settings import mask
from sync.state import schema as s
from sync.state.fastpath import executemany
from sync.state.schema import from_units, to_micros, to_units
from sync.state.upsert import upsert, upsert_statement

MIGRATIONS = Path(__file__).parent / "migrations"

#: outbox targets
LEVEL = "level"
MOVEMENT = "movement"

#: outbox states
PENDING = "pending"
UNCERTAIN = "uncertain"
BLOCKED = "blocked"
DEAD = "dead"
OUTBOX_STATES = (PENDING, UNCERTAIN, BLOCKED, DEAD)

_SEP = "\x1f"


def level_ref(key: StockKey) -> str:
    """The outbox/binding reference of a stock key (unit separator never occurs in codes)."""
    return f"{key.sku}{_SEP}{key.warehouse}"


def parse_level_ref(ref: str) -> StockKey:
    sku, _, warehouse = ref.partition(_SEP)
    return StockKey(sku, warehouse)


def display_ref(ref: str) -> str:
    return ref.replace(_SEP, "@")


@dataclass(frozen=True, slots=True)
class StoredMovement:
    key: str
    stream: str
    kind: str
    sku: str
    warehouse: str
    qty: Decimal
    occurred_at: datetime
    source_updated_at: datetime
    doc_no: str
    active: bool
    content_hash: str
    version: int
    #: why this version was written (e.g. "reconcile", "vanished"); None for plain pulls
    reason: str | None = None
    run_id: str | None = None

    @property
    def effective_qty(self) -> Decimal:
        return self.qty if self.active else Decimal(0)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    pipeline: str
    target: str
    ref: str
    state: str
    generation: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Binding:
    crm_id: str
    pushed_hash: str | None
    pushed_qty: Decimal | None
    pushed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ConflictRow:
    id: int
    kind: str
    pipeline: str
    ref: str
    erp_qty: Decimal | None
    ledger_qty: Decimal | None
    crm_qty: Decimal | None
    pushed_qty: Decimal | None
    detail: dict[str, Any]
    detected_at: datetime
    last_seen_at: datetime
    occurrences: int
    resolution: str | None
    resolved_at: datetime | None
    note: str | None


@dataclass(frozen=True, slots=True)
class AlertState:
    """Whether a stock key was below its safety stock when last checked (alert de-duplication)."""

    low: bool
    threshold: Decimal | None
    qty: Decimal
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class RunRow:
    id: int
    run_id: str
    pipeline: str
    job: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    pulled: int
    applied: int
    pushed: int
    failed: int
    error: str | None


@dataclass(frozen=True, slots=True)
class CursorRow:
    pipeline: str
    stream: str
    cursor: Cursor
    advanced_at: datetime


def _opt_units(value: Decimal | None) -> int | None:
    return None if value is None else to_units(value)


def _opt_qty(units: int | None) -> Decimal | None:
    return None if units is None else from_units(units)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def create_state_engine(url: str) -> Engine:
    """An engine for ``url`` with our defaults (SQLite WAL, psycopg 3, PyMySQL)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            [ConfigProblem("state.url", f"not a database URL: {mask(url)!r}")]
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend in ("mysql", "mariadb") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+pymysql")
    kwargs: dict[str, Any] = {"future": True}
    if backend == "sqlite":
        database = parsed.database or ""
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if database in ("", ":memory:"):
            kwargs["poolclass"] = StaticPool
        else:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    elif backend not in ("postgresql", "mysql", "mariadb"):
        raise ConfigError(
            [
                ConfigProblem(
                    "state.url",
                    f"unsupported database {backend!r}; use sqlite, postgresql or mysql/mariadb",
                )
            ]
        )
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(parsed, **kwargs)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


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


class LedgerLine(NamedTuple):
    """A stored movement as the ledger's hot path sees it: raw units and microseconds."""

    key: str
    stream: str
    kind: str
    sku: str
    warehouse: str
    qty_units: int
    occurred_us: int
    updated_us: int
    doc_no: str
    active: bool
    content_hash: str
    version: int
    run_id: str | None
    reason: str | None

    @property
    def effective_units(self) -> int:
        return self.qty_units if self.active else 0


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
            "erp_qty": _opt_units(erp),
            "ledger_qty": _opt_units(ledger),
            "crm_qty": _opt_units(crm),
            "pushed_qty": _opt_units(pushed),
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
                "threshold": _opt_units(v.threshold),
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
                    "pushed_qty": _opt_units(pushed_qty),
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
                    "pushed_qty": _opt_units(qty),
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


def _stored(r: RowMapping) -> StoredMovement:
    return StoredMovement(
        key=r["key"],
        stream=r["stream"],
        kind=r["kind"],
        sku=r["sku"],
        warehouse=r["warehouse"],
        qty=from_units(r["qty"]),
        occurred_at=r["occurred_at"],
        source_updated_at=r["source_updated_at"],
        doc_no=r["doc_no"],
        active=bool(r["active"]),
        content_hash=r["content_hash"],
        version=r["version"],
        reason=r["reason"],
        run_id=r["run_id"],
    )


def _conflict(r: RowMapping) -> ConflictRow:
    return ConflictRow(
        id=r["id"],
        kind=r["kind"],
        pipeline=r["pipeline"],
        ref=r["ref"],
        erp_qty=_opt_qty(r["erp_qty"]),
        ledger_qty=_opt_qty(r["ledger_qty"]),
        crm_qty=_opt_qty(r["crm_qty"]),
        pushed_qty=_opt_qty(r["pushed_qty"]),
        detail=json.loads(r["detail"] or "{}"),
        detected_at=r["detected_at"],
        last_seen_at=r["last_seen_at"],
        occurrences=r["occurrences"],
        resolution=r["resolution"],
        resolved_at=r["resolved_at"],
        note=r["note"],
    )


def _outbox(r: RowMapping) -> OutboxRow:
    return OutboxRow(
        id=r["id"],
        pipeline=r["pipeline"],
        target=r["target"],
        ref=r["ref"],
        state=r["state"],
        generation=r["generation"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        last_error=r["last_error"],
    )


def _run(r: RowMapping) -> RunRow:
    return RunRow(**{k: r[k] for k in RunRow.__slots__})


class StateStore:
    """The state database: ledger, levels, cursors, outbox, bindings, conflicts, runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_state_engine(url)
        self.dialect = self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        try:
            with self.engine.begin() as conn:
                yield Tx(conn)
        except OperationalError as exc:
            raise TransientError(f"state database: {mask(str(exc.orig))}") from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- schema ---------------------------------------------------------------
    def upgrade(self) -> str | None:
        """Create or upgrade the schema to the newest migration; return its revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(781221)")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise TransientError(
                f"cannot open the state database {mask(self.url)!r}: {mask(str(exc.orig))}",
                hint="check state.url (or STOCKSYNC_STATE_URL) and that the server is up",
            ) from exc
        return self.revision()

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # -- reads: ledger --------------------------------------------------------
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
        t = s.stock_levels
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
        ref = t.c.sku + literal(_SEP) + t.c.warehouse
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
                yield StockKey(r[0], r[1]), from_units(r[2]), _opt_qty(r[3])

    def alert_states(self, pipeline: str) -> dict[StockKey, AlertState]:
        t = s.alert_states
        with self.engine.connect() as conn:
            return {
                StockKey(r["sku"], r["warehouse"]): AlertState(
                    low=bool(r["low"]),
                    threshold=_opt_qty(r["threshold"]),
                    qty=from_units(r["qty"]),
                    changed_at=r["changed_at"],
                )
                for r in conn.execute(select(t).where(t.c.pipeline == pipeline)).mappings()
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
                yield _stored(r)

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
        return _stored(r) if r else None

    def movement_versions(self, pipeline: str, key: str) -> list[StoredMovement]:
        """Every version of a line, oldest first: the archived ones, then the current one."""
        t = s.movement_versions
        with self.engine.connect() as conn:
            archived = [
                StoredMovement(
                    key=r["key"],
                    stream="",
                    kind=r["kind"],
                    sku=r["sku"],
                    warehouse=r["warehouse"],
                    qty=from_units(r["qty"]),
                    occurred_at=r["occurred_at"],
                    source_updated_at=r["source_updated_at"],
                    doc_no=r["doc_no"],
                    active=bool(r["active"]),
                    content_hash="",
                    version=r["version"],
                    reason=r["reason"],
                    run_id=r["run_id"],
                )
                for r in conn.execute(
                    select(t).where(t.c.pipeline == pipeline, t.c.key == key).order_by(t.c.version)
                ).mappings()
            ]
        current = self.movement(pipeline, key)
        return archived + ([current] if current else [])

    def outbound_totals(
        self, pipeline: str, since: datetime, kinds: Sequence[str]
    ) -> dict[StockKey, Decimal]:
        """Σ |qty| of active outbound movements since ``since`` per stock key (stock cover)."""
        t = s.movements
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.sku, t.c.warehouse, func.sum(t.c.qty))
                .where(
                    t.c.pipeline == pipeline,
                    t.c.occurred_at >= since,
                    t.c.active.is_(True),
                    t.c.kind.in_(list(kinds)),
                )
                .group_by(t.c.sku, t.c.warehouse)
            )
            return {StockKey(r[0], r[1]): abs(from_units(int(r[2]))) for r in rows}

    def meta(self, pipeline: str, name: str) -> str | None:
        t = s.pipeline_meta
        with self.engine.connect() as conn:
            value = conn.execute(
                select(t.c.value).where(t.c.pipeline == pipeline, t.c.name == name)
            ).scalar()
        return str(value) if value is not None else None

    def set_meta(self, pipeline: str, name: str, value: str) -> None:
        with self.transaction() as tx:
            tx.set_meta(pipeline, name, value)

    # -- reads: outbox and bindings ---------------------------------------------
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
            return [_outbox(r) for r in rows]

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
            return [_outbox(r) for r in conn.execute(q).mappings()]

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
        return Binding(r["crm_id"], r["pushed_hash"], _opt_qty(r["pushed_qty"]), r["pushed_at"])

    def bindings(self, pipeline: str, target: str) -> dict[str, Binding]:
        t = s.bindings
        with self.engine.connect() as conn:
            return {
                r["ref"]: Binding(
                    r["crm_id"], r["pushed_hash"], _opt_qty(r["pushed_qty"]), r["pushed_at"]
                )
                for r in conn.execute(
                    select(t).where(t.c.pipeline == pipeline, t.c.target == target)
                ).mappings()
            }

    # -- conflicts --------------------------------------------------------------
    def conflicts(
        self,
        *,
        pipeline: str | None = None,
        kind: str | None = None,
        open_only: bool = False,
        limit: int = 1000,
    ) -> list[ConflictRow]:
        t = s.conflicts
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if pipeline:
            q = q.where(t.c.pipeline == pipeline)
        if kind:
            q = q.where(t.c.kind == kind)
        if open_only:
            q = q.where(t.c.resolved_at.is_(None))
        with self.engine.connect() as conn:
            return [_conflict(r) for r in conn.execute(q).mappings()]

    def conflict(self, conflict_id: int) -> ConflictRow | None:
        t = s.conflicts
        with self.engine.connect() as conn:
            r = conn.execute(select(t).where(t.c.id == conflict_id)).mappings().first()
        return _conflict(r) if r else None

    def open_conflict_counts(self) -> dict[tuple[str, str], int]:
        t = s.conflicts
        with self.engine.connect() as conn:
            return {
                (r[0], r[1]): int(r[2])
                for r in conn.execute(
                    select(t.c.pipeline, t.c.kind, func.count())
                    .where(t.c.resolved_at.is_(None))
                    .group_by(t.c.pipeline, t.c.kind)
                )
            }

    def resolve_conflict(self, conflict_id: int, note: str, now: datetime) -> bool:
        t = s.conflicts
        with self.transaction() as tx:
            result = tx.conn.execute(
                update(t)
                .where(t.c.id == conflict_id, t.c.resolved_at.is_(None))
                .values(resolution="manual", resolved_at=now, note=note)
            )
        return bool(result.rowcount)

    # -- runs -----------------------------------------------------------------------
    def start_run(self, run_id: str, pipeline: str, job: str, now: datetime) -> int:
        with self.transaction() as tx:
            result = tx.conn.execute(
                insert(s.runs).values(
                    run_id=run_id,
                    pipeline=pipeline,
                    job=job,
                    started_at=now,
                    status="running",
                    pulled=0,
                    applied=0,
                    pushed=0,
                    failed=0,
                )
            )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def finish_run(
        self,
        row_id: int,
        now: datetime,
        *,
        status: str,
        pulled: int = 0,
        applied: int = 0,
        pushed: int = 0,
        failed: int = 0,
        error: str | None = None,
    ) -> None:
        with self.transaction() as tx:
            tx.conn.execute(
                update(s.runs)
                .where(s.runs.c.id == row_id)
                .values(
                    finished_at=now,
                    status=status,
                    pulled=pulled,
                    applied=applied,
                    pushed=pushed,
                    failed=failed,
                    error=mask(error) if error else None,
                )
            )

    def runs(self, pipeline: str | None = None, limit: int = 20) -> list[RunRow]:
        t = s.runs
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if pipeline:
            q = q.where(t.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [_run(r) for r in conn.execute(q).mappings()]

    def last_success(self, pipeline: str, job: str) -> datetime | None:
        t = s.runs
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.max(t.c.finished_at)).where(
                    t.c.pipeline == pipeline, t.c.job == job, t.c.status == "ok"
                )
            ).scalar()
        # max() keeps the column's type, so SQLAlchemy has already made it a datetime
        return value if value is None or isinstance(value, datetime) else s.from_micros(value)

    # -- tokens (TokenCache) ------------------------------------------------------
    def get_token(self, name: str) -> tuple[str, datetime] | None:
        t = s.tokens
        with self.engine.connect() as conn:
            r = conn.execute(select(t.c.value, t.c.expires_at).where(t.c.name == name)).first()
        return (r[0], r[1]) if r else None

    def put_token(self, name: str, value: str, expires_at: datetime) -> None:
        with self.transaction() as tx:
            upsert(
                tx.conn,
                s.tokens,
                [{"name": name, "value": value, "expires_at": expires_at}],
                ("name",),
                lambda new: {"value": new.value, "expires_at": new.expires_at},
            )
