"""A page's movements, converted once into what the ledger stores and compares.

Quantities are kept exactly (integer micro-units): a line with more decimals
than the ledger keeps (``pipelines[].precision``) is quarantined as a
``RejectedRecord``, never rounded (architecture §3.5).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from sync.model import (
    STORE_PRECISION,
    Movement,
    MovementKind,
    Page,
    QuantityScaleError,
    RejectedRecord,
    epoch_micros,
    qty_units,
)
from sync.state.rows import IncomingLine

#: each kind as a plain str (``.value`` goes through the enum machinery per line)
_KIND_TEXT: dict[str, str] = {kind: kind.value for kind in MovementKind}


def prepare(m: Movement, precision: int) -> IncomingLine:
    """Convert a movement once: quantity in micro-units, µs stamps.

    Everything after this compares integers and strings. The quantity is kept
    exactly; ``QuantityScaleError`` when it has more than ``precision`` decimals.
    """
    return IncomingLine(
        m.key,
        _KIND_TEXT[m.kind],  # the plain str: some drivers adapt by exact type
        m.sku,
        m.warehouse,
        qty_units(m.qty, precision),  # QuantityScaleError past ``precision``; never rounds
        epoch_micros(m.occurred_at),
        epoch_micros(m.source_updated_at),
        m.doc_no[:128],
        m.active,
    )


def dedupe_page(movements: Iterable[Movement]) -> list[Movement]:
    """Keep the last occurrence of each key: sources order pages oldest → newest."""
    by_key: dict[str, Movement] = {}
    for m in movements:
        by_key.pop(m.key, None)
        by_key[m.key] = m
    return list(by_key.values())


def scale_reason(qty: Decimal, precision: int, pipeline: str) -> str:
    return (
        f"quantity {qty:f} has more decimal places than the ledger keeps ({precision}, "
        f"setting pipelines[].precision of pipeline {pipeline!r}, at most {STORE_PRECISION}); "
        "quarantined, not rounded"
    )


def scale_reject(m: Movement, precision: int, pipeline: str, stream: str) -> RejectedRecord:
    """The quarantine of a line whose quantity the ledger cannot keep exactly (item 6).

    The message names the setting that decides how many decimals the ledger keeps.
    """
    reason = scale_reason(m.qty, precision, pipeline)
    raw = {
        "key": m.key,
        "kind": str(m.kind),
        "sku": m.sku,
        "warehouse": m.warehouse,
        "qty": f"{m.qty:f}",
        "occurred_at": m.occurred_at.isoformat(),
        "source_updated_at": m.source_updated_at.isoformat(),
        "doc_no": m.doc_no,
        "active": m.active,
    }
    return RejectedRecord(stream, reason, raw, key=m.key, field="qty")


def prepare_page(
    page: Page, precision: int, pipeline: str
) -> tuple[list[IncomingLine], list[RejectedRecord]]:
    """The page's lines converted (``prepare``), and the page's rejects plus every line
    whose quantity has more than ``precision`` decimals (quarantined, never rounded)."""
    movements = dedupe_page(page.movements)
    try:
        return [prepare(m, precision) for m in movements], list(page.rejects)
    except QuantityScaleError:
        pass  # rare: sort the page's lines one by one
    incoming: list[IncomingLine] = []
    rejects = list(page.rejects)
    for m in movements:
        try:
            incoming.append(prepare(m, precision))
        except QuantityScaleError:
            rejects.append(scale_reject(m, precision, pipeline, page.stream))
    return incoming, rejects
