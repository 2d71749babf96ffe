"""Why the CRM shows what it shows for one stock key (``stocksync explain``).

Gathers, from the state database only (no ERP or CRM call), a key's level and
where it comes from — opening stock plus the movements' effective quantities —,
its reserved and available figures, the CRM record it is bound to and what was
last pushed there, each movement's versions, the push log, and the open
conflicts. ``as_json`` gives the one shape every output format is made from.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sync import reservations
from sync.model import StockKey, plain
from sync.state.store import (
    LEVEL,
    BaselineRow,
    Binding,
    ConflictRow,
    OutboxRow,
    PushLogEntry,
    StateStore,
    StoredMovement,
    display_ref,
    level_ref,
)


@dataclass(frozen=True, slots=True)
class LineStory:
    """One document line that touches the key: its versions, oldest first.

    ``counts`` is what the line adds to this key's on hand now (0 when inactive, or
    when its current version was edited into another product or warehouse).
    """

    key: str
    versions: tuple[StoredMovement, ...]
    counts: Decimal

    @property
    def current(self) -> StoredMovement:
        return self.versions[-1]


@dataclass(frozen=True, slots=True)
class Explanation:
    pipeline: str
    key: StockKey
    on_hand: Decimal
    baseline: BaselineRow | None
    erp_reserved: Decimal
    static_reserved: Decimal
    binding: Binding | None
    outbox: OutboxRow | None
    #: Σ of what every line adds now (all of them, however many ``lines`` lists)
    from_movements: Decimal
    #: the lines that ever touched the key, newest business date first (at most the limit)
    lines: tuple[LineStory, ...]
    pushes: tuple[PushLogEntry, ...]
    conflicts: tuple[ConflictRow, ...]

    @property
    def reserved(self) -> Decimal:
        return self.erp_reserved + self.static_reserved

    @property
    def available(self) -> Decimal:
        return self.on_hand - self.reserved

    @property
    def recomputed(self) -> Decimal:
        """Opening + Σ movements: equal to ``on_hand`` unless the ledger is damaged."""
        opening = self.baseline.qty if self.baseline is not None else Decimal(0)
        return opening + self.from_movements


def explain(
    store: StateStore,
    pipeline: str,
    key: StockKey,
    *,
    static: Mapping[str, Decimal],
    limit: int = 50,
) -> Explanation | None:
    """The story of ``key`` in ``pipeline``; None when the state knows nothing of it.

    ``static`` is the pipeline's ``push.reservations``; ``limit`` bounds the lines
    and the push log entries listed (the totals always count every line).
    """
    ref = level_ref(key)
    versions = store.movements_of(pipeline, key)
    binding = store.binding(pipeline, LEVEL, ref)
    if not versions and binding is None and not store.has_level(pipeline, key):
        return None
    lines = _stories(versions, key)
    conflict_refs = [ref, f"opening:{key}", *(line.key for line in lines)]
    return Explanation(
        pipeline=pipeline,
        key=key,
        on_hand=store.level(pipeline, key),
        baseline=store.baseline(pipeline, key),
        erp_reserved=store.reserved(pipeline, key),
        static_reserved=reservations.static_reserved(key, static),
        binding=binding,
        outbox=store.outbox_row_of(pipeline, LEVEL, ref),
        from_movements=sum((line.counts for line in lines), Decimal(0)),
        lines=tuple(lines[:limit]) if limit else tuple(lines),
        pushes=tuple(store.push_log(pipeline, LEVEL, ref, limit=limit or 1_000_000)),
        conflicts=tuple(store.conflicts_of(pipeline, conflict_refs)),
    )


def _stories(versions: list[StoredMovement], key: StockKey) -> list[LineStory]:
    """Group versions by line; newest business date first. Totals use every line."""
    by_line: dict[str, list[StoredMovement]] = {}
    for m in versions:
        by_line.setdefault(m.key, []).append(m)
    stories = []
    for line_key, found in by_line.items():
        found.sort(key=lambda m: m.version)
        current = found[-1]
        here = (current.sku, current.warehouse) == key
        counts = current.effective_qty if here else Decimal(0)
        stories.append(LineStory(line_key, tuple(found), counts))
    return sorted(stories, key=lambda s: (s.current.occurred_at, s.key), reverse=True)


def close_keys(store: StateStore, pipeline: str, key: StockKey, n: int = 5) -> list[str]:
    """Known keys that look like ``key`` (a typo in the SKU or the warehouse)."""
    known = sorted({str(k) for k in store.nearby_keys(pipeline, key)})
    return difflib.get_close_matches(str(key), known, n=n, cutoff=0.6)


# ------------------------------------------------------------------------ output
def _q(value: Decimal | None) -> str | None:
    return None if value is None else plain(value)


def _t(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _version(m: StoredMovement) -> dict[str, Any]:
    return {
        "version": m.version,
        "sku": m.sku,
        "warehouse": m.warehouse,
        "qty": _q(m.qty),
        "kind": m.kind,
        "active": m.active,
        "business_date": _t(m.occurred_at),
        "erp_modified_at": _t(m.source_updated_at),
        "bill_no": m.doc_no,
        "reason": m.reason,
    }


def _line(line: LineStory) -> dict[str, Any]:
    now = line.current
    parts = line.key.split(":", 3)
    return {
        "key": line.key,
        "stream": now.stream,
        "bill_no": now.doc_no,
        "line": parts[3] if len(parts) > 3 else None,
        "kind": now.kind,
        "qty": _q(now.qty),
        "counts": _q(line.counts),
        "active": now.active,
        "business_date": _t(now.occurred_at),
        "erp_modified_at": _t(now.source_updated_at),
        "version": now.version,
        "edits": [_version(m) for m in reversed(line.versions[:-1])],
    }


def _push(p: PushLogEntry) -> dict[str, Any]:
    return {
        "at": _t(p.at),
        "outcome": p.outcome,
        "on_hand": _q(p.qty),
        "available": _q(p.available),
        "crm_id": p.crm_id,
        "attempts": p.attempts,
        "error": p.error,
    }


def _conflict(c: ConflictRow) -> dict[str, Any]:
    return {
        "id": c.id,
        "kind": c.kind,
        "ref": display_ref(c.ref),
        "erp": _q(c.erp_qty),
        "ledger": _q(c.ledger_qty),
        "crm": _q(c.crm_qty),
        "pushed": _q(c.pushed_qty),
        "detected_at": _t(c.detected_at),
        "occurrences": c.occurrences,
    }


def as_json(e: Explanation) -> dict[str, Any]:
    """The explanation as JSON-ready values: quantities as strings, times ISO 8601 UTC."""
    b, o = e.binding, e.outbox
    return {
        "pipeline": e.pipeline,
        "key": str(e.key),
        "level": {
            "on_hand": _q(e.on_hand),
            "opening": _q(e.baseline.qty) if e.baseline else None,
            "opening_set_at": _t(e.baseline.set_at) if e.baseline else None,
            "from_movements": _q(e.from_movements),
            "recomputed": _q(e.recomputed),
            "erp_reserved": _q(e.erp_reserved),
            "static_reserved": _q(e.static_reserved),
            "reserved": _q(e.reserved),
            "available": _q(e.available),
            "crm_id": b.crm_id if b else None,
            "last_pushed": _q(b.pushed_qty) if b else None,
            "last_pushed_at": _t(b.pushed_at) if b else None,
            "outbox": None if o is None else {"state": o.state, "attempts": o.attempts},
        },
        "movements": [_line(line) for line in e.lines],
        "pushes": [_push(p) for p in e.pushes],
        "conflicts": [_conflict(c) for c in e.conflicts],
    }
