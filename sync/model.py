"""The domain: movements, stock keys and levels. Pure values, no I/O.

Quantities are ``Decimal`` end to end. A movement's ``qty`` is signed in the
product's base unit: positive adds stock to its warehouse, negative removes it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=16384)
def epoch_micros(value: datetime) -> int:
    """Aware datetime → integer microseconds since the Unix epoch (exact, no float)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}: stocksync needs aware datetimes")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


#: decimal places of the state store's integer quantities (micro-units)
STORE_PRECISION = 6


class QuantityScaleError(ValueError):
    """A quantity with more decimal places than the ledger keeps (or not a finite number).

    Never rounded away: the ledger quarantines such a line (``sync.intake.prepare``).
    """


@functools.lru_cache(maxsize=65536)
def exact_units(qty: Decimal, precision: int = STORE_PRECISION) -> int | None:
    """A quantity in integer micro-units, or None when it has more than ``precision`` decimals.

    Exact by construction: nothing is rounded. ``precision`` is at most
    ``STORE_PRECISION``. Cached: documents repeat a small set of quantities.
    """
    if not qty.is_finite():
        return None
    scaled = qty.scaleb(precision)
    if scaled != scaled.to_integral_value():
        return None
    return int(qty.scaleb(STORE_PRECISION))


def qty_units(qty: Decimal, precision: int = STORE_PRECISION) -> int:
    """A quantity in integer micro-units, exactly.

    Raises ``QuantityScaleError`` when ``qty`` has more than ``precision`` decimals:
    a quantity is never rounded on its way into the ledger (issue 13, item 6).
    """
    units = exact_units(qty, precision)
    if units is None:
        raise QuantityScaleError(
            f"quantity {qty:f} has more than {precision} decimal places; "
            "the ledger keeps quantities exactly and does not round them"
        )
    return units


def document_key(movement_key: str) -> str:
    """The document a movement key belongs to: the key up to its third ':' ("{source}:{doc_type}:{doc_id}")."""  # noqa: E501
    return ":".join(movement_key.split(":", 3)[:3])


def line_digest(
    kind: str, sku: str, warehouse: str, units: int, occurred_us: int, active: bool
) -> str:
    """Hash of the fields of a line that matter for stock (those architecture §3.1 rule 1 compares).

    The ledger compares the fields themselves (``sync.ledger.same_content``); this
    digest is the compact form for what is kept elsewhere, such as the hash of a
    movement last pushed to the CRM. ``doc_no`` and ``source_updated_at`` are left
    out on purpose: re-stamping a document without changing its lines changes nothing.
    """
    text = f"{kind}\x1f{sku}\x1f{warehouse}\x1f{units}\x1f{occurred_us}\x1f{int(active)}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class MovementKind(StrEnum):
    RECEIPT = "receipt"
    SUPPLIER_RETURN = "supplier_return"
    SHIPMENT = "shipment"
    CUSTOMER_RETURN = "customer_return"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    COUNT_GAIN = "count_gain"
    COUNT_LOSS = "count_loss"
    OTHER_IN = "other_in"
    OTHER_OUT = "other_out"
    #: a correction written by reconcile so that the ledger agrees with the ERP
    ADJUSTMENT = "adjustment"


#: kinds whose quantity is normally negative (stock leaves the warehouse)
OUTBOUND_KINDS = frozenset(
    {
        MovementKind.SUPPLIER_RETURN,
        MovementKind.SHIPMENT,
        MovementKind.TRANSFER_OUT,
        MovementKind.COUNT_LOSS,
        MovementKind.OTHER_OUT,
    }
)


class StockKey(NamedTuple):
    """One product in one warehouse, in ERP codes.

    A named tuple, not a dataclass: the ledger and reconcile build one per key per
    page or snapshot row, and a tuple is several times cheaper to make and hash.
    """

    sku: str
    warehouse: str

    def __str__(self) -> str:
        return f"{self.sku}@{self.warehouse}"


def parse_stock_key(text: str) -> StockKey:
    """``"SKU@WAREHOUSE"`` → StockKey, split at the last ``@`` (warehouse codes have none).

    Raises ValueError, saying how to write it, when the warehouse or the SKU is missing
    (a static reservation must name its warehouse, issue 15).
    """
    sku, at, warehouse = text.rpartition("@")
    if at and warehouse and not sku:
        raise ValueError(f"{text!r} names no SKU: write it as 'SKU{text}'")
    if not at or not sku or not warehouse:
        raise ValueError(
            f"{text!r} names no warehouse: a reservation holds stock in one warehouse, "
            f"so write it as '{sku or text or 'SKU'}@WAREHOUSE' (one entry per warehouse)"
        )
    return StockKey(sku, warehouse)


class Movement(NamedTuple):
    """One ERP document line's effect on one warehouse.

    ``key`` is stable across edits of the line (``source:doc_type:doc_id:line_id``,
    plus ``:out``/``:in`` for the two sides of a transfer); everything else may
    change between pulls, and the ledger turns each change into a version and a delta.

    A named tuple, like ``StockKey``: immutable, and a source makes one for every
    line the ERP holds on a full pull, where a frozen dataclass cost three times as
    much to build (a fifth of decoding a K/3 Cloud row). ``_replace`` makes a copy
    with other values.
    """

    key: str
    kind: MovementKind
    sku: str
    warehouse: str
    qty: Decimal
    occurred_at: datetime
    source_updated_at: datetime
    doc_no: str = ""
    active: bool = True

    @property
    def stock_key(self) -> StockKey:
        return StockKey(self.sku, self.warehouse)

    @property
    def effective_qty(self) -> Decimal:
        """What this line contributes to stock now: nothing once cancelled or deleted."""
        return self.qty if self.active else Decimal(0)

    def content_hash(self) -> str:
        """The digest of the fields that matter for stock (see ``line_digest``)."""
        return line_digest(
            self.kind,
            self.sku,
            self.warehouse,
            qty_units(self.qty),
            epoch_micros(self.occurred_at),
            self.active,
        )


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Position in a stream: the last (source_updated_at, tie-break id) applied."""

    updated_at: datetime
    tie_break: str = ""


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """An ERP record that could not become a movement (architecture §4: quarantine, continue)."""

    stream: str
    reason: str
    raw: Mapping[str, Any] | Sequence[Any]
    key: str | None = None
    field: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a stream, applied by the ledger in one transaction.

    ``cursor`` is the position *after* this page (None when the page is empty and
    the stream had no position yet, or when the source moves the position only
    on the last page of a pull). ``rejects`` ride along so that quarantine and
    the cursor advance commit together with the good rows.

    ``complete_documents`` names documents (``document_key``) whose every current
    line, within the source's scope, is among this page's movements: the ledger
    withdraws each stored line of such a document that the page no longer has
    (a line deleted from the document in the ERP). A document left with no line
    at all may be named with no movements.
    """

    stream: str
    movements: Sequence[Movement]
    cursor: Cursor | None
    rejects: Sequence[RejectedRecord] = field(default_factory=tuple)
    complete_documents: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class OnHand:
    """The ERP's own on-hand figure for one stock key, at snapshot time."""

    sku: str
    warehouse: str
    qty: Decimal

    @property
    def stock_key(self) -> StockKey:
        return StockKey(self.sku, self.warehouse)


@dataclass(frozen=True, slots=True)
class Reserved:
    """The ERP's reserved quantity for one stock key at snapshot time, in the base unit.

    Stock on hand that an order has claimed but not yet shipped (K/3 Cloud's lock
    quantity ``FBaseLockQty``; Tryton's assigned outgoing moves). Available is on
    hand − reserved, and may be below zero when the ERP lets reservations exceed stock.
    """

    sku: str
    warehouse: str
    qty: Decimal

    @property
    def stock_key(self) -> StockKey:
        return StockKey(self.sku, self.warehouse)


@dataclass(frozen=True, slots=True)
class StockLevel:
    """The ledger's level for one stock key (baseline + Σ effective quantities)."""

    sku: str
    warehouse: str
    qty: Decimal

    @property
    def stock_key(self) -> StockKey:
        return StockKey(self.sku, self.warehouse)


@dataclass(frozen=True, slots=True)
class LevelValue:
    """What is written to the CRM for one stock key.

    ``real`` is the ledger level (on hand), ``available`` what is free to sell;
    the difference is the reserved part (Fxiaoke ``blocked_stock``).
    """

    real: Decimal
    available: Decimal

    @property
    def reserved(self) -> Decimal:
        """On hand but not available: ``real − available`` (the one place it is derived)."""
        return self.real - self.available


@dataclass(frozen=True, slots=True)
class CrmLevel:
    """A stock record as read back from the CRM."""

    sku: str
    warehouse: str
    qty: Decimal
    crm_id: str
    available: Decimal | None = None
    #: the record's blocked (reserved) figure, when the CRM keeps one (Fxiaoke ``blocked_stock``)
    reserved: Decimal | None = None

    @property
    def stock_key(self) -> StockKey:
        return StockKey(self.sku, self.warehouse)


def plain(qty: Decimal) -> str:
    """A quantity as people write it, the same for every figure of a table: no exponent and
    no trailing zeros (``15.0`` → ``15``, ``0.00`` → ``0``, ``1.50`` → ``1.5``, ``1E+2`` →
    ``100``). For display only: the ledger and the CRM keep their own precision."""
    return format(qty.normalize(), "f") if qty else "0"
