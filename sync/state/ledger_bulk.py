"""A ledger page's writes on PostgreSQL and MariaDB: ``Tx``'s hot path as ``bulk`` statements.

The same rows as SQLite's path in ``sync.state.tx`` (architecture §8.3), laid out
for whole-page statements: the values a page shares are bound once, the rest go
column by column (PostgreSQL arrays, COPY) or row by row (MariaDB VALUES).
Quantities are integer micro-units throughout. Each function returns False when
it cannot take the rows (keys repeated within the call, which one statement may
not write twice), and the caller then takes the per-row path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

import sync.state.schema as s
from sync.model import StockKey
from sync.state import bulk
from sync.state.rows import PENDING, IncomingLine, LedgerLine

#: the movement columns of an ``IncomingLine``'s fields, in their order
INCOMING_COLUMNS = (
    "key",
    "kind",
    "sku",
    "warehouse",
    "qty",
    "occurred_at",
    "source_updated_at",
    "doc_no",
    "active",
)
#: the columns an update of a line writes (``LedgerLine`` order, then the stamp)
_UPDATED = (*INCOMING_COLUMNS[1:], "stream", "version", "run_id", "reason", "recorded_at")
_LEVEL_KEY = ("pipeline", "sku", "warehouse")


def insert_movements(
    conn: Connection,
    pipeline: str,
    stream: str,
    lines: Sequence[IncomingLine],
    stamp: int,
    run_id: str | None,
    reason: str | None,
) -> None:
    """New lines as version 1 (``stamp``: epoch microseconds)."""
    shared = {
        "pipeline": pipeline,
        "stream": stream,
        "version": 1,
        "run_id": run_id,
        "reason": reason,
        "recorded_at": stamp,
    }
    bulk.insert(conn, s.movements, INCOMING_COLUMNS, lines, shared)


def update_movements(
    conn: Connection,
    pipeline: str,
    stream: str,
    changes: Sequence[tuple[IncomingLine, LedgerLine]],
    archive: tuple[Sequence[str], Sequence[Sequence[Any]]],
    stamp: int,
    run_id: str | None,
    reason: str | None,
) -> bool:
    """Archive the superseded versions (``archive``: columns, rows) and write the new ones."""
    if len({old.key for _, old in changes}) < len(changes):
        return False
    bulk.insert(conn, s.movement_versions, *archive)
    rows = [
        (pipeline, line.key, *line[1:], stream, old.version + 1, run_id, reason, stamp)
        for line, old in changes
    ]
    bulk.update(conn, s.movements, ("pipeline", "key"), _UPDATED, rows)
    return True


def add_level_deltas(
    conn: Connection, pipeline: str, deltas: Sequence[tuple[str, str, int]], stamp: int
) -> None:
    """Add ``(sku, warehouse, units)`` deltas (distinct keys, in lock order) and flag them."""
    bulk.upsert(
        conn,
        s.stock_levels,
        _LEVEL_KEY,
        ("sku", "warehouse", "qty"),
        deltas,
        (("qty", bulk.ADD), ("updated_at", bulk.NEW), ("push_pending", bulk.NEW)),
        {"pipeline": pipeline, "updated_at": stamp, "push_pending": 1},
    )


def clear_push_pending(conn: Connection, pipeline: str, keys: Sequence[StockKey]) -> bool:
    """Clear these levels' flags, locking them in ``keys`` order (levels without a row: none)."""
    if len(set(keys)) < len(keys):
        return False
    rows = [(pipeline, k.sku, k.warehouse, 0) for k in keys]
    bulk.update(conn, s.stock_levels, _LEVEL_KEY, ("push_pending",), rows)
    return True


def enqueue(conn: Connection, pipeline: str, target: str, refs: Sequence[str], stamp: int) -> bool:
    """New outbox rows as ``pending``; an existing row only gets its generation bumped."""
    if len(set(refs)) < len(refs):
        return False
    shared = {
        "pipeline": pipeline,
        "target": target,
        "state": PENDING,
        "generation": 1,
        "attempts": 0,
        "next_attempt_at": stamp,
        "created_at": stamp,
        "updated_at": stamp,
        "last_error": None,
    }
    rows = [(ref,) for ref in refs]
    assignments = (("generation", bulk.BUMP),)
    bulk.upsert(conn, s.outbox, ("pipeline", "target", "ref"), ("ref",), rows, assignments, shared)
    return True
