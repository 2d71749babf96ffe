"""Reserved stock in Tryton: which assigned moves Tryton holds against which warehouse. No I/O.

Tryton's own rule (trytond 8.2, ``modules/stock/move.py``
``Move.compute_quantities_query``; reference k3cloud-stock-quantities §2.1):
``product.quantity`` for a warehouse with context ``stock_assign`` counts the
incoming moves in state ``done`` only, and the outgoing moves in state ``done``
**or** ``assigned``. A move is outgoing when its ``from_location`` is in the
location set (the warehouse and every location under it); its ``to_location``
is not looked at. So an assigned move that stays inside the warehouse — the
storage → output picking move of a customer shipment, which is how a sale's
reservation shows — is held against the warehouse until it is done, when its
incoming side nets it back to zero. ``quantity`` computes as of today
(``stock_date_end`` = today, no forecast), and dates an assigned move by
``coalesce(effective_date, today)``: one with an effective date after today is
not held yet.

Hence reserved(product, warehouse) = Σ ``internal_quantity`` (the product's
default unit) of the company's assigned moves from inside the warehouse, with no
effective date or one on or before today; and Tryton's ``stock_assign`` quantity
= on hand − reserved.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from connectors.tryton.mapping import LocationTree

#: fields read from each assigned stock.move
RESERVED_FIELDS = (
    "id",
    "product",
    "product.code",
    "from_location",
    "internal_quantity",
    "effective_date",
)

Domain = list[Any]


def assigned_domain(company: int, product_types: Sequence[str]) -> Domain:
    """The ``stock.move`` domain of the moves that can hold stock: assigned, this company,
    products of a type Tryton stocks (the types ``on_hand`` reads)."""
    return [
        ["state", "=", "assigned"],
        ["company", "=", company],
        ["product.type", "in", list(product_types)],
    ]


def held_on(row: Mapping[str, Any], today: dt.date) -> bool:
    """Whether Tryton's ``quantity`` (as of ``today``, ``stock_assign``) holds this assigned
    move: its date ``coalesce(effective_date, today)`` is on or before ``today``."""
    day = row.get("effective_date")
    return not isinstance(day, dt.date) or day <= today


def reserved_by_key(
    rows: Iterable[Mapping[str, Any]],
    tree: LocationTree,
    today: dt.date,
    warehouses: Sequence[str] | None = None,
) -> dict[tuple[str, str], Decimal]:
    """Reserved stock per (product code, warehouse code) from assigned ``stock.move`` rows.

    ``rows`` carry :data:`RESERVED_FIELDS` and are in state ``assigned`` (the caller's
    domain). A move counts, in full, at the warehouse its ``from_location`` lies in,
    whatever its destination (see the module docstring); not at all when its source
    is outside every warehouse (supplier, customer, transit…), when
    :func:`held_on` says Tryton does not hold it yet, when that warehouse has no
    code or is not in ``warehouses`` (codes; None: all), or when its product has
    no code — the keys ``on_hand`` reports, no others. Quantities in the product's
    default unit; only non-zero totals are returned.
    """
    totals: dict[tuple[str, str], Decimal] = {}
    for row in rows:
        place = tree.place(int(row["from_location"]))
        if place is None or place.warehouse_id is None or not place.warehouse_code:
            continue
        if warehouses is not None and place.warehouse_code not in warehouses:
            continue
        sku = str((row.get("product.") or {}).get("code") or "")
        if not sku or not held_on(row, today):
            continue
        key = (sku, place.warehouse_code)
        totals[key] = totals.get(key, Decimal(0)) + Decimal(str(row.get("internal_quantity") or 0))
    return {key: qty for key, qty in totals.items() if qty != 0}
