"""The movement ledger: apply a page of movements in one transaction (architecture §3).

``plan_page`` is pure: given what the ledger holds for a page's keys and what
the ERP now says, it decides which rows are new, which changed (a version and
a pair of deltas each) and which are no-ops. ``apply_page`` fetches, plans and
writes: movements, versions, level deltas (each changed level flagged for the
outbox), quarantined records and the cursor advance commit together or not at
all. Lines that a document read whole no longer has are withdrawn in the same
transaction (``sync.withdraw``, architecture §3.6); lines are converted, and those
the ledger cannot keep exactly quarantined, by ``sync.intake``.
``queue_pending_levels`` turns the flags into outbox rows.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import structlog

from sync.intake import prepare_page, scale_reason
from sync.model import (
    STORE_PRECISION,
    Cursor,
    Page,
    RejectedRecord,
    StockKey,
    document_key,
    epoch_micros,
    exact_units,
)
from sync.state.rows import IncomingLine
from sync.state.schema import from_units, to_units
from sync.state.store import MOVEMENT, LedgerLine, StateStore
from sync.state.tx import Tx
from sync.withdraw import document_stamps, plan_withdrawals

log = structlog.get_logger("stocksync.ledger")

#: the ``reason`` of a version that withdraws a line deleted from its document
LINE_REMOVED = "line_removed"


@dataclass(frozen=True, slots=True)
class LedgerOptions:
    """How a pipeline's ledger behaves (from config).

    ``precision``: decimal places the ledger keeps (at most the store's 6). A line
    with more is quarantined, never rounded (architecture §3.5).
    """

    precision: int = STORE_PRECISION
    mirror_movements: bool = False


@dataclass(slots=True)
class PagePlan:
    """What applying a page will write. Quantities in state-store units."""

    #: new lines
    inserts: list[IncomingLine] = field(default_factory=list)
    #: changed lines, each with the stored line it replaces
    updates: list[tuple[IncomingLine, LedgerLine]] = field(default_factory=list)
    #: non-zero level changes per stock key, in micro-units
    deltas: dict[StockKey, int] = field(default_factory=dict)
    #: stored lines withdrawn because their document no longer has them, each with
    #: its inactive new version (they count in ``updates`` too)
    withdrawn: list[tuple[IncomingLine, LedgerLine]] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return len(self.inserts) + len(self.updates)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    received: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    touched: frozenset[StockKey]
    #: stored lines withdrawn because their document no longer has them (in ``updated`` too)
    withdrawn: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


def same_content(line: IncomingLine, old: LedgerLine) -> bool:
    """Rule 1 of architecture §3.1 compares kind, sku, warehouse, qty, occurred_at, active.

    The fields themselves are compared rather than a stored hash of them: as exact,
    and no hash to compute for every line of a pull (architecture §3.4).
    ``doc_no`` and ``source_updated_at`` are left out on purpose: re-stamping a
    document without changing its lines must not create a version.
    """
    return (
        line.qty_units == old.qty_units
        and line.occurred_us == old.occurred_us
        and line.sku == old.sku
        and line.warehouse == old.warehouse
        and line.kind == old.kind
        and bool(line.active) == bool(old.active)
    )


def plan_page(incoming: Sequence[IncomingLine], existing: Mapping[str, LedgerLine]) -> PagePlan:
    """Decide the writes for a page (architecture §3.1 rules 1 and 2). No I/O.

    A row older than the stored version (by ``source_updated_at``) is stale and
    ignored, so pages re-delivered out of order can never roll a line back.
    """
    plan = PagePlan()
    # summed under plain (sku, warehouse) tuples: one StockKey per key, not per line
    deltas: defaultdict[tuple[str, str], int] = defaultdict(int)
    for line in incoming:
        old = existing.get(line.key)
        if old is None:
            plan.inserts.append(line)
            if line.active:
                deltas[line.sku, line.warehouse] += line.qty_units
            continue
        if same_content(line, old):
            continue
        if line.updated_us < old.updated_us:
            # a page from an older read delivered late: the ledger already holds newer data
            continue
        plan.updates.append((line, old))
        deltas[old.sku, old.warehouse] -= old.effective_units
        if line.active:
            deltas[line.sku, line.warehouse] += line.qty_units
    plan.deltas = {StockKey(sku, wh): delta for (sku, wh), delta in deltas.items() if delta}
    return plan


def reject_ref(stream: str, reject: RejectedRecord) -> str:
    """A stable conflict reference for a quarantined record (its key, or a payload hash)."""
    if reject.key:
        return reject.key
    digest = hashlib.blake2b(
        json.dumps(reject.raw, sort_keys=True, default=str).encode(), digest_size=8
    ).hexdigest()
    return f"{stream}:raw:{digest}"


def whole_documents(page: Page) -> frozenset[str]:
    """The page's complete documents whose lines the ledger may judge.

    A line the source quarantined (``page.rejects``) is still in its document: that
    document is not judged this page, or its stored line would be withdrawn as if
    removed. A reject without a key could belong to any: then none is judged.
    """
    documents = page.complete_documents
    if not documents or not page.rejects:
        return documents
    if any(r.key is None for r in page.rejects):
        return frozenset()
    return documents - {document_key(r.key) for r in page.rejects if r.key is not None}


def _load_lines(
    tx: Tx, pipeline: str, documents: frozenset[str], incoming: Sequence[IncomingLine]
) -> tuple[dict[str, LedgerLine], list[LedgerLine]]:
    """The stored lines of the page's keys, and every stored line of its complete documents.

    A complete document's lines come from one key-prefix range each, which also
    holds the page's own lines of that document: only keys of other documents are
    looked up one by one. Without complete documents this is the plain look-up.
    """
    if not documents:
        return tx.load_movements(pipeline, [line.key for line in incoming]), []
    stored = tx.load_document_lines(pipeline, sorted(documents))
    existing = {line.key: line for line in stored}
    others = [line.key for line in incoming if document_key(line.key) not in documents]
    existing.update(tx.load_movements(pipeline, others))
    return existing, stored


def _withdraw_removed_lines(
    page: Page,
    documents: frozenset[str],
    incoming: Sequence[IncomingLine],
    stored: Sequence[LedgerLine],
    plan: PagePlan,
) -> None:
    """Add to ``plan`` the withdrawal of every stored line a complete document lost."""
    cursor_us = None if page.cursor is None else epoch_micros(page.cursor.updated_at)
    stamps = document_stamps(documents, incoming, cursor_us)
    present = {m.key for m in page.movements}
    plan.withdrawn = plan_withdrawals(stored, present, stamps, page.stream)
    if not plan.withdrawn:
        return
    deltas: defaultdict[StockKey, int] = defaultdict(int, plan.deltas)
    for _, old in plan.withdrawn:
        deltas[StockKey(old.sku, old.warehouse)] -= old.qty_units
    plan.deltas = {key: delta for key, delta in deltas.items() if delta}


def _record_rejects(
    tx: Tx, pipeline: str, stream: str, rejects: Sequence[RejectedRecord], now: datetime
) -> None:
    for reject in rejects:
        tx.record_conflict(
            kind="record_error",
            pipeline=pipeline,
            ref=reject_ref(stream, reject),
            now=now,
            detail={
                "stream": stream,
                "reason": reject.reason,
                "field": reject.field,
                "raw": reject.raw,
            },
        )


class Turn(Protocol):
    """Where a page waits for the page before it inside its transaction (``sync.pipeline``)."""

    def before_levels(self, keys: frozenset[StockKey]) -> None:
        """The page's movement rows are written; next it adds to the levels of ``keys``."""

    def before_final(self) -> None:
        """Levels are written; next come outbox rows, conflicts and the cursor."""


def apply_page(
    store: StateStore,
    pipeline: str,
    page: Page,
    *,
    now: datetime,
    options: LedgerOptions = LedgerOptions(),
    cursor_limit: datetime | None = None,
    run_id: str | None = None,
    reason: str | None = None,
    turn: Turn | None = None,
) -> ApplyResult:
    """Apply one page atomically. Re-applying the same page changes nothing.

    ``cursor_limit`` caps the cursor (architecture §4: never past run start − overlap),
    so that rows committed late by the ERP are still inside the next query.
    Lines of ``page.complete_documents`` that the page no longer has are
    withdrawn (``sync.withdraw``); lines with more decimals than
    ``options.precision`` are quarantined with the page's rejects.

    ``turn``, when given, is told inside the transaction when the page's own
    movement rows are written and it is about to add to the levels of ``deltas``'
    keys (``before_levels``), then before it writes outbox rows, conflicts and the
    cursor (``before_final``): the pipelined pull (``sync.pipeline``) waits there for the
    page before, and an exception from either rolls this page back.
    """
    incoming, rejects = prepare_page(page, options.precision, pipeline)
    documents = whole_documents(page)
    with store.transaction() as tx:
        existing, stored = _load_lines(tx, pipeline, documents, incoming)
        plan = plan_page(incoming, existing)
        if documents:
            _withdraw_removed_lines(page, documents, incoming, stored, plan)
        tx.insert_movements(pipeline, page.stream, plan.inserts, now, run_id=run_id, reason=reason)
        tx.update_movements(pipeline, page.stream, plan.updates, now, run_id=run_id, reason=reason)
        if plan.withdrawn:
            tx.update_movements(
                pipeline, page.stream, plan.withdrawn, now, run_id=run_id, reason=LINE_REMOVED
            )
        deltas = plan.deltas
        if turn is not None:
            turn.before_levels(frozenset(deltas))
        tx.add_level_deltas(pipeline, deltas, now)  # flags them for queue_pending_levels
        if turn is not None:
            turn.before_final()
        if options.mirror_movements:
            changed_keys = [line.key for line in plan.inserts]
            changed_keys += [ln.key for ln, _ in (*plan.updates, *plan.withdrawn)]
            tx.enqueue(pipeline, MOVEMENT, changed_keys, now)
        _record_rejects(tx, pipeline, page.stream, rejects, now)
        if page.cursor is not None:
            cursor = page.cursor
            if cursor_limit is not None and cursor.updated_at > cursor_limit:
                cursor = Cursor(cursor_limit, "")
            tx.advance_cursor(pipeline, page.stream, cursor, now)
    _log_page(pipeline, page.stream, rejects, plan.withdrawn)
    return ApplyResult(
        received=len(page.movements),
        inserted=len(plan.inserts),
        updated=len(plan.updates) + len(plan.withdrawn),
        unchanged=len(incoming) - plan.changed,
        rejected=len(rejects),
        touched=frozenset(deltas),
        withdrawn=len(plan.withdrawn),
    )


def _log_page(
    pipeline: str,
    stream: str,
    rejects: Sequence[RejectedRecord],
    withdrawn: Sequence[tuple[IncomingLine, LedgerLine]],
) -> None:
    for reject in rejects:
        log.warning(
            "record_quarantined",
            pipeline=pipeline,
            stream=stream,
            key=reject.key,
            field=reject.field,
            reason=reject.reason,
        )
    if withdrawn:
        log.info(
            "lines_removed_from_documents",
            pipeline=pipeline,
            stream=stream,
            count=len(withdrawn),
            keys=[new.key for new, _ in withdrawn[:20]],
        )


def queue_pending_levels(
    store: StateStore, pipeline: str, *, now: datetime, chunk: int = 1000
) -> int:
    """Turn every level flagged by ``apply_page`` into an outbox row; the count queued.

    A page's transaction flags the levels it changes instead of upserting one
    outbox row each (the dearest write of a page); this runs once after a
    stream is pulled and before every push, so a flag left by a crash is
    queued by the next pusher. Keys are read a chunk at a time (a first pull
    can flag millions), and each chunk's outbox rows commit together with the
    clearing of its flags.
    """
    queued = 0
    after: StockKey | None = None
    while True:
        keys = store.pending_levels(pipeline, after=after, limit=chunk)
        if not keys:
            return queued
        with store.transaction() as tx:
            tx.queue_pending_levels(pipeline, keys, now)
        queued += len(keys)
        if len(keys) < chunk:
            return queued
        after = keys[-1]


def set_baseline(
    store: StateStore,
    pipeline: str,
    snapshot: Mapping[StockKey, Decimal],
    *,
    now: datetime,
    note: str = "opening",
    precision: int = STORE_PRECISION,
) -> dict[StockKey, Decimal]:
    """Store ``baseline = snapshot − Σ movements`` so that ledger levels equal the snapshot.

    The ERP's opening stock is not a movement (architecture §3.2); keys the
    ledger has but the snapshot lacks get the baseline that brings them to zero.
    A snapshot quantity with more than ``precision`` decimals is not rounded: its
    key keeps the baseline it had and the figure is quarantined as a
    ``record_error`` conflict (reconcile then reports the difference).
    Returns the baselines written (kind OPENING in the log).
    """
    levels = store.levels(pipeline)
    current_baselines = {k: to_units(v) for k, v in store.baselines(pipeline).items()}
    values: dict[StockKey, int] = {}
    deltas: dict[StockKey, int] = {}
    inexact: dict[StockKey, Decimal] = {}
    for key in set(snapshot) | set(levels):
        target = exact_units(snapshot.get(key, Decimal(0)), precision)
        if target is None:
            inexact[key] = snapshot[key]
            continue
        level = to_units(levels.get(key, Decimal(0)))
        if target == level and key not in current_baselines:
            continue
        old_baseline = current_baselines.get(key, 0)
        new_baseline = old_baseline + (target - level)
        values[key] = new_baseline
        deltas[key] = target - level
    with store.transaction() as tx:
        tx.set_baselines(pipeline, values, now, note)
        tx.add_level_deltas(pipeline, {k: d for k, d in deltas.items() if d}, now)
        for key, qty in sorted(inexact.items()):
            tx.record_conflict(
                kind="record_error",
                pipeline=pipeline,
                ref=f"opening:{key}",
                now=now,
                detail={"stream": "opening", "reason": scale_reason(qty, precision, pipeline)},
                erp=qty,
            )
        tx.set_meta(pipeline, "baseline_at", now.isoformat())
    queue_pending_levels(store, pipeline, now=now)
    written = {k: from_units(v) for k, v in values.items()}
    log.info("baseline_set", pipeline=pipeline, kind="opening", keys=len(written), note=note)
    for key, qty in sorted(inexact.items()):
        log.warning(
            "opening_quarantined",
            pipeline=pipeline,
            key=str(key),
            reason=scale_reason(qty, precision, pipeline),
        )
    return written


def verify(store: StateStore, pipeline: str) -> dict[StockKey, tuple[Decimal, Decimal]]:
    """Differences between maintained levels and levels recomputed from scratch.

    Empty means the incremental bookkeeping is exact (``stocksync db verify``).
    """
    maintained = store.levels(pipeline)
    recomputed = store.recomputed_levels(pipeline)
    diffs: dict[StockKey, tuple[Decimal, Decimal]] = {}
    for key in set(maintained) | set(recomputed):
        a = maintained.get(key, Decimal(0))
        b = recomputed.get(key, Decimal(0))
        if a != b:
            diffs[key] = (a, b)
    return diffs
