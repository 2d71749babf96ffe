"""Classification of Tryton moves into warehouse-level movements (pure functions)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.tryton.mapping import (
    STOCKED_TYPES,
    LocationTree,
    Place,
    all_leg_keys,
    classify,
    counts_on,
    move_to_movements,
    stocked_types,
    withdrawn,
)
from sync.model import MovementKind as K

WH1, WH2 = 10, 20
STO1 = Place("storage", WH1, "WH")
IN1 = Place("storage", WH1, "WH")
OUT1 = Place("storage", WH1, "WH")
STO2 = Place("storage", WH2, "WH2")
SUP = Place("supplier")
CUS = Place("customer")
LOST = Place("lost_found")
TRANSIT = Place("storage")
PROD = Place("production")

Q = Decimal("5")


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [
        (SUP, IN1, [(K.RECEIPT, "WH", Q, "")]),
        (STO1, SUP, [(K.SUPPLIER_RETURN, "WH", -Q, "")]),
        (OUT1, CUS, [(K.SHIPMENT, "WH", -Q, "")]),
        (CUS, IN1, [(K.CUSTOMER_RETURN, "WH", Q, "")]),
        (LOST, STO1, [(K.COUNT_GAIN, "WH", Q, "")]),
        (STO1, LOST, [(K.COUNT_LOSS, "WH", -Q, "")]),
        (STO1, STO2, [(K.TRANSFER_OUT, "WH", -Q, ":out"), (K.TRANSFER_IN, "WH2", Q, ":in")]),
        (STO1, TRANSIT, [(K.TRANSFER_OUT, "WH", -Q, ":out")]),
        (TRANSIT, STO2, [(K.TRANSFER_IN, "WH2", Q, ":in")]),
        (STO1, PROD, [(K.OTHER_OUT, "WH", -Q, "")]),
        (PROD, STO1, [(K.OTHER_IN, "WH", Q, "")]),
        # inside one warehouse: Tryton's warehouse quantity does not change
        (IN1, STO1, []),
        (STO1, OUT1, []),
        # outside every warehouse (drop shipment): no warehouse is touched
        (SUP, CUS, []),
    ],
)
def test_classify(src: Place, dst: Place, expected: list[tuple[K, str, Decimal, str]]) -> None:
    legs = classify(src, dst, Q)
    assert [(leg.kind, leg.warehouse_code, leg.qty, leg.suffix) for leg in legs] == expected


def test_other_location_types_can_count_as_stocktake() -> None:
    legs = classify(PROD, STO1, Q, {"production": "count"})
    assert [leg.kind for leg in legs] == [K.COUNT_GAIN]


def test_location_tree_finds_the_warehouse_ancestor() -> None:
    tree = LocationTree(
        [
            {"id": 1, "code": "WH", "type": "warehouse", "parent": None},
            {"id": 2, "code": "STO", "type": "storage", "parent": 1},
            {"id": 3, "code": "BIN", "type": "storage", "parent": 2},
            {"id": 4, "code": "SUP", "type": "supplier", "parent": None},
            {"id": 5, "code": None, "type": "storage", "parent": None},
            {"id": 6, "code": None, "type": "warehouse", "parent": None},
            {"id": 7, "code": "X", "type": "storage", "parent": 6},
        ]
    )
    assert tree.place(3) == Place("storage", 1, "WH")
    assert tree.place(4) == Place("supplier")
    place5 = tree.place(5)
    assert place5 is not None and place5.is_transit
    assert tree.place(7) == Place("storage", 6, "")
    assert tree.place(99) is None
    assert tree.warehouses() == {1: "WH", 6: ""}


TREE = LocationTree(
    [
        {"id": 1, "code": "WH", "type": "warehouse", "parent": None},
        {"id": 2, "code": "IN", "type": "storage", "parent": 1},
        {"id": 3, "code": "STO", "type": "storage", "parent": 1},
        {"id": 4, "code": "SUP", "type": "supplier", "parent": None},
        {"id": 5, "code": "WH2", "type": "warehouse", "parent": None},
        {"id": 6, "code": "STO2", "type": "storage", "parent": 5},
        {"id": 7, "code": None, "type": "warehouse", "parent": None},
        {"id": 8, "code": "STO3", "type": "storage", "parent": 7},
    ]
)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 42,
        "product": 1,
        "product.": {"id": 1, "code": "SKU-1"},
        "from_location": 4,
        "to_location": 2,
        "internal_quantity": Decimal("50.0"),
        "state": "done",
        "effective_date": dt.date(2026, 3, 1),
        "planned_date": dt.date(2026, 2, 27),
        "shipment": "stock.shipment.in,7",
        "create_date": dt.datetime(2026, 3, 1, 8, 0, 0),
        "write_date": dt.datetime(2026, 3, 1, 9, 30, 0, 250),
    }
    base.update(overrides)
    return base


def test_move_to_movement_key_dates_and_state() -> None:
    (m,), rejects = move_to_movements(row(), TREE, SHANGHAI)
    assert rejects == []
    assert m.key == "tryton:stock.shipment.in:7:42"
    assert (m.kind, m.sku, m.warehouse, m.qty, m.active) == (
        K.RECEIPT,
        "SKU-1",
        "WH",
        Decimal("50.0"),
        True,
    )
    assert m.doc_no == "stock.shipment.in,7"
    # server-local naive times become aware UTC
    assert m.occurred_at == dt.datetime(2026, 2, 28, 16, 0, tzinfo=dt.UTC)
    assert m.source_updated_at == dt.datetime(2026, 3, 1, 1, 30, 0, 250, tzinfo=dt.UTC)


@pytest.mark.parametrize("state", ["draft", "assigned", "cancelled", "staging"])
def test_only_done_moves_are_active(state: str) -> None:
    (m,), _ = move_to_movements(row(state=state, effective_date=None), TREE, SHANGHAI)
    assert m.active is False
    assert m.occurred_at.date() == dt.date(2026, 2, 26)  # planned date, Shanghai midnight


def test_move_without_shipment_is_its_own_document_and_null_write_date() -> None:
    (m,), _ = move_to_movements(row(shipment=None, write_date=None), TREE, dt.UTC)
    assert m.key == "tryton:stock.move:42:42"
    assert m.doc_no == ""
    assert m.source_updated_at == dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def test_transfer_between_warehouses_yields_two_keys() -> None:
    movements, _ = move_to_movements(
        row(from_location=3, to_location=6, shipment="stock.shipment.internal,3"), TREE, dt.UTC
    )
    assert [(m.key, m.warehouse, m.qty) for m in movements] == [
        ("tryton:stock.shipment.internal:3:42:out", "WH", Decimal("-50.0")),
        ("tryton:stock.shipment.internal:3:42:in", "WH2", Decimal("50.0")),
    ]
    only_wh2, _ = move_to_movements(
        row(from_location=3, to_location=6), TREE, dt.UTC, warehouses=["WH2"]
    )
    assert [m.warehouse for m in only_wh2] == ["WH2"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"product.": {"id": 1, "code": None}}, "sku"),
        ({"to_location": 8}, "warehouse"),
        ({"to_location": 999}, "location"),
        ({"internal_quantity": "abc"}, "qty"),
        ({"internal_quantity": None}, "qty"),
    ],
)
def test_malformed_moves_are_rejected_not_raised(overrides: dict[str, Any], field: str) -> None:
    movements, rejects = move_to_movements(row(**overrides), TREE, dt.UTC)
    assert movements == []
    (reject,) = rejects
    assert reject.field == field
    assert reject.stream == "moves"
    assert isinstance(reject.raw, dict)
    assert reject.raw["id"] == 42


def test_move_inside_a_warehouse_yields_nothing() -> None:
    assert move_to_movements(row(from_location=2, to_location=3), TREE, dt.UTC) == ([], [])


def test_a_done_move_counts_from_its_effective_date() -> None:
    day = dt.date(2026, 3, 1)
    (before,), _ = move_to_movements(row(), TREE, dt.UTC, today=day - dt.timedelta(days=1))
    (on_the_day,), _ = move_to_movements(row(), TREE, dt.UTC, today=day)
    assert (before.active, on_the_day.active) == (False, True)
    # the same line otherwise: the ledger turns the flip into one delta on that day
    assert before._replace(active=True) == on_the_day
    # a move without effective date counts from its planned date (Tryton's move date)
    (planned,), _ = move_to_movements(
        row(effective_date=None), TREE, dt.UTC, today=dt.date(2026, 2, 27)
    )
    assert planned.active is True
    assert counts_on(row(state="assigned"), None) is False


def test_a_leg_at_a_warehouse_without_code_is_rejected_alone() -> None:
    # WH → the uncoded warehouse: WH's leg counts, the other leg is quarantined
    movements, rejects = move_to_movements(
        row(from_location=3, to_location=8, shipment="stock.shipment.internal,3"), TREE, dt.UTC
    )
    assert [(m.key, m.warehouse, m.qty) for m in movements] == [
        ("tryton:stock.shipment.internal:3:42:out", "WH", Decimal("-50.0"))
    ]
    assert [(r.key, r.field) for r in rejects] == [
        ("tryton:stock.shipment.internal:3:42:in", "warehouse")
    ]
    # and the other way round, into WH2
    movements, rejects = move_to_movements(row(from_location=8, to_location=6), TREE, dt.UTC)
    assert [(m.key, m.kind, m.warehouse) for m in movements] == [
        ("tryton:stock.shipment.in:7:42:in", K.TRANSFER_IN, "WH2")
    ]
    assert [r.key for r in rejects] == ["tryton:stock.shipment.in:7:42:out"]


def test_withdrawn_legs_are_inactive_with_the_moves_stamp() -> None:
    r = row(from_location=3, to_location=6, shipment="stock.shipment.internal,3")
    inside = LocationTree(
        [
            {"id": 1, "code": "WH", "type": "warehouse", "parent": None},
            {"id": 3, "code": "STO", "type": "storage", "parent": 1},
            {"id": 6, "code": "SHELF", "type": "storage", "parent": 3},
        ]
    )
    produced, _ = move_to_movements(r, inside, SHANGHAI)
    assert produced == []  # now inside one warehouse
    gone = withdrawn(r, SHANGHAI, produced, all_leg_keys(r))
    base = "tryton:stock.shipment.internal:3:42"
    assert [m.key for m in gone] == [base, base + ":out", base + ":in"]
    assert all(m.active is False for m in gone)
    (before,), _ = move_to_movements(row(), TREE, SHANGHAI)
    assert {m.source_updated_at for m in gone} == {before.source_updated_at}


def test_location_tree_subtrees() -> None:
    assert TREE.below([1]) == {1, 2, 3}
    assert TREE.below([6, 99]) == {6, 99}


def test_stocked_types_come_from_the_move_product_domain() -> None:
    # stock.move.product's domain as Tryton 8.2 gives it (fields_get)
    domain = [
        {"__class__": "If", "c": {"__class__": "Bool"}, "t": ["x", "=", 1], "e": []},
        ["type", "in", ["goods", "assets"]],
    ]
    assert stocked_types({"domain": domain}) == ("goods", "assets")
    assert stocked_types({"domain": [["type", "in", ["goods", "assets", "kit"]]]}) == (
        "goods",
        "assets",
        "kit",
    )
    assert stocked_types({}) == STOCKED_TYPES
