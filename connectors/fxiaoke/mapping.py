"""Pure payload ↔ model functions for the Fxiaoke target (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

from connectors.fxiaoke.describes import ObjectFields
from connectors.fxiaoke.settings import FxiaokeSettings
from sync.errors import PermanentError
from sync.model import LevelValue, Movement

#: prefix of a code that could not be mapped back from a CRM id (reconcile reports orphans)
UNMAPPED_PREFIX = "crm:"


def decimal_str(value: Decimal) -> str:
    """Fxiaoke wants numbers as strings: normalised, no exponent, no negative zero."""
    if not value.is_finite():
        raise PermanentError(f"cannot send non-finite quantity {value}")
    text = format(value.normalize(), "f")
    return "0" if text == "-0" else text


def parse_decimal(value: Any) -> Decimal | None:
    """A CRM number (string, int or float in JSON) as Decimal; None when empty or garbage."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def at_places(value: Decimal, places: int | None) -> Decimal:
    """``value`` rounded half-even to ``places`` decimals; as is when ``places`` is None.

    The CRM refuses a number with more decimals than its field holds (reference §7:
    StockObj numbers hold 2), so every number is rounded here, at the boundary;
    the ledger keeps full precision. Half-even: 139.625 → 139.62, 139.635 → 139.64.
    """
    if places is None or not value.is_finite():
        return value
    # quantize refuses a result longer than the context's 28 digits (a long quantity, or a
    # field described with many places): widen the context so the CRM, not a crash of the
    # whole push, refuses that one record
    with localcontext() as ctx:
        ctx.prec = max(ctx.prec, value.adjusted() + places + 2)
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def shown_level(s: FxiaokeSettings, value: LevelValue, stock: ObjectFields) -> LevelValue:
    """The level as the StockObj fields will hold it (each at its decimal places)."""
    return LevelValue(
        real=at_places(value.real, stock.decimal_places(s.stock_real_field)),
        available=at_places(value.available, stock.decimal_places(s.stock_available_field)),
    )


def shown_blocked(s: FxiaokeSettings, shown: LevelValue, stock: ObjectFields) -> Decimal:
    """The blocked figure written for ``shown`` (from ``shown_level``): real − available
    at the blocked field's decimal places (as is when no blocked field is configured)."""
    if not s.stock_blocked_field:
        return shown.reserved
    return at_places(shown.reserved, stock.decimal_places(s.stock_blocked_field))


def level_fields(s: FxiaokeSettings, shown: LevelValue, stock: ObjectFields) -> dict[str, str]:
    """Every stock number field, as strings (§5.3). ``shown`` comes from ``shown_level``.

    The blocked (frozen) stock is the reserved part, real − available, taken from
    the rounded values so that the record adds up: real = available + blocked.
    """
    fields = {
        s.stock_real_field: decimal_str(shown.real),
        s.stock_available_field: decimal_str(shown.available),
    }
    if s.stock_blocked_field:
        fields[s.stock_blocked_field] = decimal_str(shown_blocked(s, shown, stock))
    return fields


def movement_fields(s: FxiaokeSettings, movement: Movement, mirror: ObjectFields) -> dict[str, Any]:
    qty = at_places(movement.qty, mirror.decimal_places(s.movement_qty_field))
    return {
        s.movement_key_field: movement.key,
        s.movement_kind_field: movement.kind.value,
        s.movement_sku_field: movement.sku,
        s.movement_warehouse_field: movement.warehouse,
        s.movement_qty_field: decimal_str(qty),
        s.movement_date_field: int(movement.occurred_at.timestamp() * 1000),
        s.movement_doc_no_field: movement.doc_no,
        s.movement_active_field: movement.active,
    }


def reference_id(value: Any) -> str | None:
    """An object_reference as read back: an id string (sometimes a one-element list)."""
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value else None


def code_or_orphan(codes: Mapping[str, str], crm_id: str | None) -> str:
    if crm_id is None:
        return UNMAPPED_PREFIX
    return codes.get(crm_id) or f"{UNMAPPED_PREFIX}{crm_id}"
