"""Bindings (ERP key → CRM id and the digest of the value last pushed), made in bulk.

A first push of a big ledger binds every existing CRM stock record from one paged
read instead of looking each key up; a batch's unbound keys are resolved by the
sink in bulk (``CrmSink.prepare_levels``). The per-row flow (binding → update;
lookup → bind; create → bind) is ``sync.push`` (architecture §5).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from decimal import Decimal

import structlog

from sync.errors import StockSyncError
from sync.model import LevelValue, Movement
from sync.ports import CrmSink
from sync.settings import mask
from sync.state.store import LEVEL, OutboxRow, StateStore, level_ref, parse_level_ref

log = structlog.get_logger("stocksync.push")


def value_hash(*parts: object) -> str:
    """A 32-hex-digit digest of ``parts`` (Decimals in plain notation): a binding's
    "last pushed" value, compared instead of the CRM record."""
    text = "\x1f".join(format(p, "f") if isinstance(p, Decimal) else str(p) for p in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _canonical(qty: Decimal) -> Decimal:
    """``qty`` normalised, a zero of either sign as 0: -0.001 shown at 2 dp is -0.00,
    the same 0 the CRM holds, and must hash as it (else a write that changes nothing)."""
    return qty.normalize() if qty else Decimal(0)


def level_hash(value: LevelValue) -> str:
    """The last-pushed digest of a level: on hand and available as the CRM shows them."""
    return value_hash(_canonical(value.real), _canonical(value.available))


def movement_hash(m: Movement) -> str:
    """The last-pushed digest of a mirrored movement."""
    return value_hash(m.content_hash(), m.doc_no)


def prepare_levels(
    store: StateStore, sink: CrmSink, pipeline: str, rows: Sequence[OutboxRow]
) -> None:
    """Let the sink resolve in bulk what this batch's unbound level rows will need."""
    refs = list(dict.fromkeys(row.ref for row in rows if row.target == LEVEL))
    if not refs:
        return
    bound = store.bound_refs(pipeline, LEVEL, refs)
    unbound = [parse_level_ref(ref) for ref in refs if ref not in bound]
    if not unbound:
        return
    try:
        sink.prepare_levels(unbound)
    except StockSyncError as exc:
        # each row meets the cause again in its own calls and is handled there
        log.warning("prepare_levels_failed", pipeline=pipeline, error=mask(str(exc)))


def bind_from_crm(store: StateStore, sink: CrmSink, pipeline: str) -> int:
    """Bind every existing CRM stock record in one paged read (first push of a big ledger).

    The CRM's current value becomes the "last pushed" value: equal levels then
    cost no write at all, different ones one update. With duplicates for a key
    the oldest record wins (as ``find_level`` picks it), and a key already bound
    keeps its record: reconcile reports the others (architecture §6.3).
    """
    bound = 0
    chunk: dict[str, tuple[str, str, str | None, Decimal | None]] = {}
    # HTTP paging happens outside any transaction; each chunk is bound in one statement
    for lvl in sink.read_levels():
        value = LevelValue(lvl.qty, lvl.available if lvl.available is not None else lvl.qty)
        ref = level_ref(lvl.stock_key)
        chunk.setdefault(ref, (ref, lvl.crm_id, level_hash(value), lvl.qty))
        if len(chunk) >= 1000:
            bound += _bind_chunk(store, pipeline, chunk)
    return bound + _bind_chunk(store, pipeline, chunk)


def _bind_chunk(
    store: StateStore, pipeline: str, chunk: dict[str, tuple[str, str, str | None, Decimal | None]]
) -> int:
    """Bind the chunk's refs that have no binding yet (earlier chunks included)."""
    taken = store.bound_refs(pipeline, LEVEL, list(chunk)) if chunk else set()
    rows = [row for ref, row in chunk.items() if ref not in taken]
    if rows:
        with store.transaction() as tx:
            tx.bind_many(pipeline, LEVEL, rows, None)
    chunk.clear()
    return len(rows)
