"""Which assigned Tryton moves hold stock at which warehouse (pure; the tree as data).

Tryton's rule (``Move.compute_quantities_query``, trytond 8.2): with
``stock_assign`` an assigned move is subtracted from every location set its
source lies in, whatever its destination; an assigned move is never added at
its destination. The live check against Tryton's own figure is in
``test_reserved``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from connectors.tryton.mapping import LocationTree
from connectors.tryton.reserved import assigned_domain, held_on, reserved_by_key

TODAY = dt.date(2025, 3, 10)

#: id, code, type, parent — two warehouses as Tryton lays them out, a shelf below
#: WH's storage, a warehouse without a code, and places outside every warehouse
LOCATIONS = [
    (1, "WH", "warehouse", None),
    (2, "IN", "storage", 1),
    (3, "STO", "storage", 1),
    (4, "OUT", "storage", 1),
    (5, "SHELF", "storage", 3),
    (11, "WH2", "warehouse", None),
    (12, "IN2", "storage", 11),
    (13, "STO2", "storage", 11),
    (14, "OUT2", "storage", 11),
    (21, None, "warehouse", None),
    (22, "NOCODE-STO", "storage", 21),
    (30, "SUP", "supplier", None),
    (31, "CUS", "customer", None),
    (32, "TRANSIT", "storage", None),
    (33, "LOST", "lost_found", None),
]
TREE = LocationTree(
    {"id": i, "code": code, "name": code, "type": kind, "parent": parent}
    for i, code, kind, parent in LOCATIONS
)


def move(
    src: int, dst: int, qty: str = "5", sku: str | None = "A", effective: dt.date | None = None
) -> dict[str, Any]:
    return {
        "id": src * 100 + dst,
        "product": 7,
        "product.": {"id": 7, "code": sku},
        "from_location": src,
        "to_location": dst,
        "internal_quantity": float(qty),
        "effective_date": effective,
    }


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        # a customer shipment, assigned: its storage → output move holds the goods at WH
        (move(3, 4), {("A", "WH"): Decimal(5)}),
        # packed: the output → customer move holds them
        (move(4, 31), {("A", "WH"): Decimal(5)}),
        # a move that stays inside the warehouse counts too (Tryton ignores the
        # destination of an assigned move), from any depth of the tree
        (move(3, 5), {("A", "WH"): Decimal(5)}),
        (move(5, 3), {("A", "WH"): Decimal(5)}),
        # a supplier return and a transfer: held at the warehouse they leave, and
        # never counted at the one they enter
        (move(3, 30), {("A", "WH"): Decimal(5)}),
        (move(3, 13), {("A", "WH"): Decimal(5)}),
        (move(13, 32), {("A", "WH2"): Decimal(5)}),
        # from outside every warehouse: no warehouse holds anything
        (move(30, 2), {}),
        (move(32, 13), {}),
        (move(30, 31), {}),
        # a warehouse without a code, a product without a code: no key (as on hand)
        (move(22, 31), {}),
        (move(3, 31, sku=None), {}),
        # dated: an assigned move with an effective date after today is not held yet
        (move(3, 4, effective=TODAY + dt.timedelta(days=1)), {}),
        (move(3, 4, effective=TODAY), {("A", "WH"): Decimal(5)}),
        (move(3, 4, effective=TODAY - dt.timedelta(days=3)), {("A", "WH"): Decimal(5)}),
        # an unknown source location (not in the tree) holds nothing
        (move(99, 31), {}),
    ],
)
def test_one_assigned_move(row: dict[str, Any], expected: dict[tuple[str, str], Decimal]) -> None:
    assert reserved_by_key([row], TREE, TODAY) == expected


def test_moves_of_one_key_add_up_and_keys_stay_apart() -> None:
    rows = [
        move(3, 4, "3"),
        move(4, 31, "2.5"),
        move(5, 4, "0.25"),
        move(13, 14, "4", sku="A"),
        move(3, 4, "1", sku="B"),
        move(2, 31, "0", sku="C"),  # nothing held: no key
    ]
    assert reserved_by_key(rows, TREE, TODAY) == {
        ("A", "WH"): Decimal("5.75"),
        ("A", "WH2"): Decimal(4),
        ("B", "WH"): Decimal(1),
    }


def test_warehouse_scope_keeps_only_the_named_codes() -> None:
    rows = [move(3, 4, "3"), move(13, 14, "4")]
    assert reserved_by_key(rows, TREE, TODAY, ["WH2"]) == {("A", "WH2"): Decimal(4)}
    assert reserved_by_key(rows, TREE, TODAY, []) == {}


def test_held_on_and_domain() -> None:
    assert held_on({"effective_date": None}, TODAY)
    assert not held_on({"effective_date": TODAY + dt.timedelta(days=1)}, TODAY)
    assert assigned_domain(3, ("goods", "assets")) == [
        ["state", "=", "assigned"],
        ["company", "=", 3],
        ["product.type", "in", ["goods", "assets"]],
    ]
