"""K/3 Cloud rows → movements: pure functions, no I/O.

Each stream is one stock form. ExecuteBillQuery returns one row per entry line
(header fields repeated) as a list in FieldKeys order, so the field list and the
row decoder are built from the same ``StreamDef`` and cannot drift apart.

Quantities: a line's quantity is read in the material's base unit, the unit of
STK_Inventory FBaseQty (k3cloud-stock-quantities.md §1.2). A stream reads the
form's base-qty key; where the server does not know that key it reads the line
unit and line quantity instead and converts them (``units.UnitTable``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from connectors.k3cloud.streams import (
    HEADER_KEYS,
    MATERIAL_KEY,
    SOURCE,
    UNIT_KEY,
    StreamDef,
    field_keys,
)
from sync.errors import RecordError
from sync.model import Movement


def is_active(document_status: Any, cancel_status: Any) -> bool:
    """Only approved (C), not cancelled (B) lines move stock; drafts and re-reviews do not."""
    return bool(document_status == "C" and cancel_status != "B")


def parse_qty(value: Any) -> Decimal:
    """A quantity as an exact Decimal; never goes through float arithmetic.

    The client parses JSON numbers with ``parse_float=Decimal``; a float that does
    slip in is converted through ``str`` (its shortest round-trip repr).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ValueError(f"not a quantity: {value!r}") from exc
    else:
        raise ValueError(f"not a quantity: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a quantity: {value!r}")
    return result


def parse_erp_datetime(value: Any, tz: ZoneInfo) -> datetime:
    """K/3 Cloud dates are naive local times (``yyyy-MM-ddTHH:mm:ss``); attach the ERP's zone."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a date: {value!r}")
    return _parse_local(value, tz)


@lru_cache(maxsize=8192)
def _parse_local(value: str, tz: ZoneInfo) -> datetime:
    """Cached: every line of a document repeats the same header dates."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=tz)
    return parsed.astimezone(tz)


def row_as_dict(defn: StreamDef, row: Sequence[Any]) -> dict[str, Any]:
    """The raw row keyed by field, for quarantine payloads."""
    return dict(zip(field_keys(defn), row, strict=False))


#: (material, line unit, line qty) → base qty; ValueError names why a unit cannot convert
ToBase = Callable[[str, Any, Decimal], Decimal]


def decode_row(
    defn: StreamDef,
    row: Sequence[Any],
    tz: ZoneInfo,
    in_scope: Callable[[str], bool] | None = None,
    *,
    orgs: frozenset[str] | None = None,
    to_base: ToBase | None = None,
) -> list[Movement]:
    """One row in ``field_keys(defn)`` order → its movement(s); RecordError if malformed.

    A side whose warehouse is out of scope (``in_scope`` says False), or whose
    organisation is not in ``orgs`` (org-scoped streams), is kept but inactive: an
    edit that moves a line out of scope must withdraw its earlier effect. A
    converting stream needs ``to_base``; a unit it cannot convert is a RecordError.
    """
    return RowDecoder(defn, tz, in_scope, orgs=orgs, to_base=to_base).decode(row)


class RowDecoder:
    """``decode_row`` for one stream, with everything that does not depend on the row
    worked out once: a full pull decodes every line the ERP holds, so the per-row
    path does only the checks and conversions each row needs."""

    __slots__ = (
        "_dates",
        "_defn",
        "_in_scope",
        "_no_orgs",
        "_org_at",
        "_orgs",
        "_prefix",
        "_sides",
        "_to_base",
        "_tz",
        "_width",
    )

    def __init__(
        self,
        defn: StreamDef,
        tz: ZoneInfo,
        in_scope: Callable[[str], bool] | None = None,
        *,
        orgs: frozenset[str] | None = None,
        to_base: ToBase | None = None,
    ) -> None:
        if defn.convert_units and to_base is None:
            raise ValueError(f"{defn.name} converts units but no unit table was given")
        self._defn = defn
        self._tz = tz
        self._in_scope = in_scope
        #: parsed dates by their text: every line of a document repeats its header dates
        self._dates: dict[str, datetime] = {}
        sides = len(defn.sides)
        self._org_at = len(HEADER_KEYS) + 2 + sides
        self._orgs = (orgs or frozenset()) if defn.org_scoped else None
        self._no_orgs: tuple[None, ...] = (None,) * sides
        self._to_base = to_base if defn.convert_units else None
        self._width = len(field_keys(defn))
        self._prefix = f"{SOURCE}:{defn.form_id}:"
        self._sides = tuple(
            (side.kind, side.sign, side.key_suffix, f"{side.warehouse_field}.FNumber")
            for side in defn.sides
        )

    def decode(self, row: Sequence[Any]) -> list[Movement]:
        defn = self._defn
        if len(row) != self._width:
            raise RecordError(
                f"expected {self._width} fields, got {len(row)}", raw=row_as_dict(defn, row)
            )
        fid, bill_no, date, status, cancel, modified, entry_id, material = row[:8]
        base_key = f"{self._prefix}{fid}:{entry_id}"
        if fid is None or fid == "" or entry_id is None or entry_id == "":
            raise _reject(defn, row, "missing FID or entry id", base_key, "FID")
        if not material:
            raise _reject(defn, row, "missing material", base_key, MATERIAL_KEY)
        sku = material if type(material) is str else str(material)
        qty = row[-1]
        if type(qty) is not Decimal or not qty.is_finite() or self._to_base is not None:
            qty = self._quantity(row, sku, base_key)
        dates = self._dates
        try:
            occurred_at = dates.get(date) or self._date(date)
            updated_at = dates.get(modified) or self._date(modified)
        except (ValueError, TypeError) as exc:
            raise _reject(defn, row, str(exc), base_key, "FDate") from exc
        active = is_active(status, cancel)
        doc_no = bill_no if type(bill_no) is str else str(bill_no or "")
        in_scope = self._in_scope
        orgs = self._orgs
        org_at = self._org_at
        # the width check above guarantees one warehouse (and one org) per side
        side_orgs = self._no_orgs if orgs is None else row[org_at : org_at + len(self._sides)]
        movements = []
        for (kind, sign, suffix, field), warehouse, org in zip(
            self._sides, row[8:org_at], side_orgs, strict=False
        ):
            if not warehouse:
                raise _reject(defn, row, "missing warehouse", base_key, field)
            code = warehouse if type(warehouse) is str else str(warehouse)
            counts = active and (in_scope is None or in_scope(code))
            counts = counts and (orgs is None or str(org) in orgs)
            movements.append(
                Movement(
                    base_key + suffix,
                    kind,
                    sku,
                    code,
                    qty if sign == 1 else qty * sign,
                    occurred_at,
                    updated_at,
                    doc_no,
                    counts,
                )
            )
        return movements

    def _quantity(self, row: Sequence[Any], sku: str, key: str) -> Decimal:
        """The slow path: a quantity that is not a plain Decimal, or one to convert."""
        defn = self._defn
        try:
            qty = parse_qty(row[-1])
        except ValueError as exc:
            raise _reject(defn, row, str(exc), key, defn.read_qty_field) from exc
        if self._to_base is None:
            return qty
        try:
            return self._to_base(sku, row[-2], qty)
        except ValueError as exc:
            raise _reject(defn, row, str(exc), key, UNIT_KEY) from exc

    def _date(self, value: Any) -> datetime:
        parsed = parse_erp_datetime(value, self._tz)
        if len(self._dates) >= 4096:
            self._dates.clear()
        self._dates[value] = parsed
        return parsed


def _reject(defn: StreamDef, row: Sequence[Any], reason: str, key: str, field: str) -> RecordError:
    return RecordError(reason, key=key, field=field, raw=row_as_dict(defn, row))
