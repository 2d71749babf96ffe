"""Pure mapping from Tryton stock moves to warehouse-level movements. No I/O.

Stock at a warehouse is what Tryton reports as the ``quantity`` of the warehouse
location, which includes every location below it (input, storage, output…). So
a move changes a warehouse's stock only when it crosses that warehouse's
boundary: input→storage or storage→output nets to zero and yields nothing, while
a move from one warehouse into another (directly or through a transit location
outside any warehouse) yields a TRANSFER_OUT at the source and a TRANSFER_IN at
the destination. The kind of each side is chosen by the location type on the
other side of the boundary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sync.model import Movement, MovementKind, RejectedRecord

SOURCE_NAME = "tryton"
STREAM_MOVES = "moves"

#: how a location type that is not supplier/customer/lost_found/storage is classified
OtherPolicy = Literal["other", "count"]

#: fields read from stock.move for every pull
MOVE_FIELDS = (
    "id",
    "product",
    "product.code",
    "from_location",
    "to_location",
    "internal_quantity",
    "state",
    "effective_date",
    "planned_date",
    "shipment",
    "create_date",
    "write_date",
)

LOCATION_FIELDS = ("id", "code", "name", "type", "parent")

#: product types whose moves and stock Tryton 8 counts (``stock.move.get_product_types``)
STOCKED_TYPES = ("goods", "assets")

_OUT_KINDS = {
    "supplier": MovementKind.SUPPLIER_RETURN,
    "customer": MovementKind.SHIPMENT,
    "lost_found": MovementKind.COUNT_LOSS,
}
_IN_KINDS = {
    "supplier": MovementKind.RECEIPT,
    "customer": MovementKind.CUSTOMER_RETURN,
    "lost_found": MovementKind.COUNT_GAIN,
}
_OTHER = {
    "other": (MovementKind.OTHER_OUT, MovementKind.OTHER_IN),
    "count": (MovementKind.COUNT_LOSS, MovementKind.COUNT_GAIN),
}


@dataclass(frozen=True, slots=True)
class Place:
    """A location seen from warehouse level: its type and the warehouse it lies in.

    ``warehouse_id`` is None outside every warehouse (supplier, customer,
    lost-and-found, transit…); ``warehouse_code`` may be "" when the warehouse
    has no code, which the caller turns into a rejected record.
    """

    type: str
    warehouse_id: int | None = None
    warehouse_code: str = ""

    @property
    def is_transit(self) -> bool:
        """A storage location outside any warehouse holds goods between warehouses."""
        return self.warehouse_id is None and self.type == "storage"


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of a move at one warehouse."""

    kind: MovementKind
    warehouse_id: int
    warehouse_code: str
    qty: Decimal
    suffix: str = ""


def _counterpart_kind(
    other: Place, outbound: bool, policies: Mapping[str, OtherPolicy]
) -> MovementKind:
    if other.warehouse_id is not None or other.is_transit:
        return MovementKind.TRANSFER_OUT if outbound else MovementKind.TRANSFER_IN
    known = _OUT_KINDS if outbound else _IN_KINDS
    if other.type in known:
        return known[other.type]
    out_kind, in_kind = _OTHER[policies.get(other.type, "other")]
    return out_kind if outbound else in_kind


def classify(
    src: Place, dst: Place, qty: Decimal, policies: Mapping[str, OtherPolicy] | None = None
) -> list[Leg]:
    """The warehouse-level effect of moving ``qty`` (base unit, > 0) from ``src`` to ``dst``.

    Guarantees: a move inside one warehouse (or between two places outside all
    warehouses) yields nothing; otherwise one leg per warehouse whose boundary is
    crossed, −qty where goods leave and +qty where they arrive. Transfer legs
    carry the key suffix ``:out``/``:in``.
    """
    policies = policies or {}
    if src.warehouse_id == dst.warehouse_id:
        return []
    legs: list[Leg] = []
    if src.warehouse_id is not None:
        kind = _counterpart_kind(dst, True, policies)
        suffix = ":out" if kind is MovementKind.TRANSFER_OUT else ""
        legs.append(Leg(kind, src.warehouse_id, src.warehouse_code, -qty, suffix))
    if dst.warehouse_id is not None:
        kind = _counterpart_kind(src, False, policies)
        suffix = ":in" if kind is MovementKind.TRANSFER_IN else ""
        legs.append(Leg(kind, dst.warehouse_id, dst.warehouse_code, qty, suffix))
    return legs


class LocationTree:
    """Tryton's location hierarchy reduced to "which warehouse is this location in"."""

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._rows = {int(r["id"]): r for r in rows}
        self._places: dict[int, Place] = {}
        for loc_id in self._rows:
            self._places[loc_id] = self._resolve(loc_id)

    def _resolve(self, loc_id: int) -> Place:
        row = self._rows[loc_id]
        seen: set[int] = set()
        current: Mapping[str, Any] | None = row
        while current is not None and int(current["id"]) not in seen:
            seen.add(int(current["id"]))
            if current.get("type") == "warehouse":
                return Place(str(row.get("type")), int(current["id"]), current.get("code") or "")
            parent = current.get("parent")
            current = self._rows.get(int(parent)) if parent else None
        return Place(str(row.get("type")))

    def place(self, loc_id: int) -> Place | None:
        return self._places.get(loc_id)

    def warehouses(self) -> dict[int, str]:
        """Warehouse location id → code ("" when the warehouse has no code)."""
        rows = self._rows.items()
        return {i: str(r.get("code") or "") for i, r in rows if r.get("type") == "warehouse"}

    def __contains__(self, loc_id: object) -> bool:
        return loc_id in self._places

    def below(self, loc_ids: Iterable[int]) -> set[int]:
        """``loc_ids`` and every location under one of them (their whole subtrees)."""
        roots = set(loc_ids)
        found: set[int] = set()
        for loc_id in self._rows:
            current: int | None = loc_id
            seen: set[int] = set()
            while current is not None and current not in seen:
                if current in roots:
                    found.add(loc_id)
                    break
                seen.add(current)
                parent = self._rows.get(current, {}).get("parent")
                current = int(parent) if parent else None
        return found | (roots - set(self._rows))


def aware(value: dt.datetime | dt.date, tz: dt.tzinfo) -> dt.datetime:
    """A server-local naive timestamp (or a date, at midnight) as an aware UTC datetime."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return value.replace(tzinfo=tz).astimezone(dt.UTC)


def naive(value: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """An aware datetime as the server-local naive timestamp Tryton stores and compares."""
    if value.tzinfo is None:
        return value
    return value.astimezone(tz).replace(tzinfo=None)


def updated_at(row: Mapping[str, Any]) -> dt.datetime:
    """The row's change time: ``write_date``, or ``create_date`` before the first write."""
    value = row.get("write_date") or row.get("create_date")
    if not isinstance(value, dt.datetime):
        raise ValueError(f"stock.move {row.get('id')} has neither write_date nor create_date")
    return value


def tie_break(move_id: int) -> str:
    """Zero-padded so that string order equals numeric order inside ``Cursor``."""
    return f"{move_id:012d}"


def document(row: Mapping[str, Any]) -> tuple[str, str]:
    """(doc_type, doc_id): the shipment when the move has one, else the move itself."""
    shipment = row.get("shipment")
    if isinstance(shipment, str) and "," in shipment:
        model, _, doc_id = shipment.partition(",")
        if doc_id and doc_id != "-1":
            return model, doc_id
    return "stock.move", str(row["id"])


def _reject(row: Mapping[str, Any], reason: str, field: str, key: str | None) -> RejectedRecord:
    return RejectedRecord(stream=STREAM_MOVES, reason=reason, raw=dict(row), key=key, field=field)


def _legs_for(
    row: Mapping[str, Any], tree: LocationTree, policies: Mapping[str, OtherPolicy]
) -> list[Leg] | RejectedRecord:
    src = tree.place(int(row["from_location"]))
    dst = tree.place(int(row["to_location"]))
    if src is None or dst is None:
        return _reject(row, "unknown location", "location", None)
    try:
        qty = Decimal(str(row.get("internal_quantity")))
    except InvalidOperation:
        return _reject(row, "internal_quantity is not a number", "qty", None)
    if not qty.is_finite():
        return _reject(row, "internal_quantity is not a number", "qty", None)
    return classify(src, dst, qty, policies)


def counts_on(row: Mapping[str, Any], today: dt.date | None) -> bool:
    """Whether Tryton's ``quantity`` counts this move on ``today`` (None: any day).

    Tryton counts a move in state ``done`` whose date (the effective date, else
    the planned one) is on or before the day of the computation, so a move done
    with a future effective date counts only from that date (reference
    k3cloud-stock-quantities §2.1, ``Move.compute_quantities_query``).
    """
    if row.get("state") != "done":
        return False
    if today is None:
        return True
    day = row.get("effective_date") or row.get("planned_date")
    return not isinstance(day, dt.date) or day <= today


def move_key(row: Mapping[str, Any]) -> str:
    """The key of a move's single leg; its transfer legs add ``:out`` / ``:in``."""
    doc_type, doc_id = document(row)
    return f"{SOURCE_NAME}:{doc_type}:{doc_id}:{row['id']}"


def move_to_movements(
    row: Mapping[str, Any],
    tree: LocationTree,
    tz: dt.tzinfo,
    policies: Mapping[str, OtherPolicy] | None = None,
    warehouses: Sequence[str] | None = None,
    *,
    today: dt.date | None = None,
) -> tuple[list[Movement], list[RejectedRecord]]:
    """Turn one stock.move row into movements; active only while Tryton counts it.

    Active means ``counts_on(row, today)``. ``warehouses`` (codes) keeps only legs
    at those warehouses. A move whose product has no code is rejected whole; a leg
    at a warehouse without a code is rejected alone (key = that leg's key), and
    the move's other leg still counts.
    """
    legs = _legs_for(row, tree, policies or {})
    if isinstance(legs, RejectedRecord):
        return [], [legs]
    if warehouses is not None:
        legs = [leg for leg in legs if leg.warehouse_code in warehouses]
    if not legs:
        return [], []
    doc_type, doc_id = document(row)
    base_key = move_key(row)
    sku = str((row.get("product.") or {}).get("code") or "")
    if not sku:
        return [], [_reject(row, "product has no code", "sku", base_key)]
    rejects = [
        _reject(row, "warehouse has no code", "warehouse", base_key + leg.suffix)
        for leg in legs
        if not leg.warehouse_code
    ]
    business_date = row.get("effective_date") or row.get("planned_date") or updated_at(row).date()
    occurred_at = aware(business_date, tz)
    changed_at = aware(updated_at(row), tz)
    doc_no = f"{doc_type},{doc_id}" if doc_type != "stock.move" else ""
    active = counts_on(row, today)
    movements = [
        Movement(
            key=base_key + leg.suffix,
            kind=leg.kind,
            sku=sku,
            warehouse=leg.warehouse_code,
            qty=leg.qty,
            occurred_at=occurred_at,
            source_updated_at=changed_at,
            doc_no=doc_no,
            active=active,
        )
        for leg in legs
        if leg.warehouse_code
    ]
    return movements, rejects


def withdrawn(
    row: Mapping[str, Any], tz: dt.tzinfo, produced: Sequence[Movement], keys: Iterable[str]
) -> list[Movement]:
    """Inactive lines for the ``keys`` of this move that the current mapping no longer yields.

    Used when the location tree changed under already-pulled moves: a move that
    was a transfer may now stay inside one warehouse (no leg), or a leg may now
    be at a warehouse without a code. Its content other than ``active`` is
    irrelevant to stock; it names the move's product and no warehouse.
    """
    present = {m.key for m in produced}
    sku = str((row.get("product.") or {}).get("code") or "")
    stamp = aware(updated_at(row), tz)
    day = row.get("effective_date") or row.get("planned_date") or updated_at(row).date()
    occurred_at = aware(day, tz)
    return [
        Movement(key, MovementKind.OTHER_IN, sku, "", Decimal(0), occurred_at, stamp, active=False)
        for key in dict.fromkeys(keys)
        if key not in present
    ]


def all_leg_keys(row: Mapping[str, Any]) -> tuple[str, ...]:
    """Every key a move can have whatever the location tree: its leg and transfer legs."""
    base = move_key(row)
    return base, base + ":out", base + ":in"


def stocked_types(product_field: Mapping[str, Any]) -> tuple[str, ...]:
    """The product types Tryton lets a stock move carry, read from ``stock.move.product``.

    ``fields_get`` gives the field's domain, which holds ``["type", "in", [...]]``
    (Tryton 8: ``Move.get_product_types()`` = goods and assets). Those are the
    types whose stock Tryton counts; :data:`STOCKED_TYPES` when the domain does
    not say.
    """
    found = _type_clause(product_field.get("domain"))
    return tuple(found) if found else STOCKED_TYPES


def _type_clause(domain: Any) -> list[str] | None:
    if not isinstance(domain, list):
        return None
    if len(domain) == 3 and domain[:2] == ["type", "in"] and isinstance(domain[2], list):
        return [str(t) for t in domain[2]]
    for part in domain:
        found = _type_clause(part)
        if found:
            return found
    return None
