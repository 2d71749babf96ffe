"""A page's movements, converted once into what the ledger stores and compares.

Quantities are kept exactly (integer micro-units): a line with more decimals
than the ledger keeps (``pipelines[].precision``) is quarantined as a
``RejectedRecord``, never rounded (architecture §3.5). So is a line whose key,
SKU or warehouse code is longer than the ledger's columns hold: written, it
would fail its page's transaction at every pull (PostgreSQL and MariaDB refuse
the value), and the stream would stop there for good.
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
from sync.state.schema import CODE, KEY

#: each kind as a plain str (``.value`` goes through the enum machinery per line)
_KIND_TEXT: dict[str, str] = {kind: kind.value for kind in MovementKind}


class CodeTooLongError(ValueError):
    """A movement's key or code is longer than the ledger's column holds."""

    def __init__(self, field: str, length: int, limit: int) -> None:
        super().__init__(f"{field} is {length} characters long; the ledger holds at most {limit}")
        self.field = field


def prepare(m: Movement, precision: int) -> IncomingLine:
    """Convert a movement once: quantity in micro-units, µs stamps.

    Everything after this compares integers and strings. The quantity is kept
    exactly; ``QuantityScaleError`` when it has more than ``precision`` decimals,
    ``CodeTooLongError`` when the key is longer than ``KEY`` or the SKU or the
    warehouse longer than ``CODE`` characters (``sync.state.schema``).
    """
    if len(m.key) > KEY or len(m.sku) > CODE or len(m.warehouse) > CODE:
        _too_long(m)
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


def _too_long(m: Movement) -> None:
    for field, value, limit in (("key", m.key, KEY), ("sku", m.sku, CODE)):
        if len(value) > limit:
            raise CodeTooLongError(field, len(value), limit)
    raise CodeTooLongError("warehouse", len(m.warehouse), CODE)


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
    return RejectedRecord(stream, reason, _raw(m), key=m.key, field="qty")


def length_reject(m: Movement, error: CodeTooLongError, stream: str) -> RejectedRecord:
    """The quarantine of a line with a key or code longer than the ledger holds.

    A key too long is left out of the record's ``key`` (the conflict's reference could not
    hold it either): the page then judges none of its documents whole, the safe side.
    """
    reason = f"{error}; quarantined (check the source's mapping of {error.field})"
    key = None if error.field == "key" else m.key
    return RejectedRecord(stream, reason, _raw(m), key=key, field=error.field)


def _raw(m: Movement) -> dict[str, object]:
    return {
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


def prepare_page(
    page: Page, precision: int, pipeline: str
) -> tuple[list[IncomingLine], list[RejectedRecord]]:
    """The page's lines converted (``prepare``), and the page's rejects plus every line
    whose quantity has more than ``precision`` decimals (quarantined, never rounded) or
    whose key or code is longer than the ledger holds."""
    movements = dedupe_page(page.movements)
    try:
        return [prepare(m, precision) for m in movements], list(page.rejects)
    except (QuantityScaleError, CodeTooLongError):
        pass  # rare: sort the page's lines one by one
    incoming: list[IncomingLine] = []
    rejects = list(page.rejects)
    for m in movements:
        try:
            incoming.append(prepare(m, precision))
        except QuantityScaleError:
            rejects.append(scale_reject(m, precision, pipeline, page.stream))
        except CodeTooLongError as exc:
            rejects.append(length_reject(m, exc, page.stream))
    return incoming, rejects
