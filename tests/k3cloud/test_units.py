"""Units of measure: the emulator's units and base quantities, and the source reading
base-unit quantities with or without the form's base-qty key (stock-quantities §1.2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.source import K3CloudSource
from connectors.k3cloud.streams import STREAMS, UNIT_KEY
from connectors.k3cloud.units import UnitTable
from sync.model import Cursor, Movement, RejectedRecord
from tests.k3cloud.test_emulator import envelope_of, post

OUTBOUND = {
    "FormId": "SAL_OUTSTOCK",
    "FieldKeys": "FEntity_FEntryID,FUnitID.FNumber,FRealQty,FBaseUnitID.FNumber,FBaseUnitQty",
}


def boxes(emulator: K3CloudEmulator) -> None:
    """The issue's material: counted in Pcs, sold in Box (1 Box = 12 Pcs), 100 Pcs on hand."""
    emulator.add_material("A-100", "Pcs")
    emulator.add_conversion("A-100", "Box", 12)
    emulator.set_opening("A-100", "CK001", 100)


def ship_two_boxes(emulator: K3CloudEmulator) -> int:
    fid = emulator.create_document(
        "SAL_OUTSTOCK", [{"material": "A-100", "qty": "2", "unit": "Box", "stock": "CK001"}]
    )
    emulator.audit("SAL_OUTSTOCK", fid)
    return fid


# -- the emulator -------------------------------------------------------------------------


def test_lines_carry_unit_line_qty_and_base_qty(emulator: K3CloudEmulator) -> None:
    boxes(emulator)
    ship_two_boxes(emulator)
    ((_, unit, qty, base_unit, base_qty),) = post(emulator, "ExecuteBillQuery", {"data": OUTBOUND})
    assert (unit, qty, base_unit, base_qty) == ("Box", 2, "Pcs", 24)
    assert emulator.inventory() == {("A-100", "CK001"): Decimal(76)}


def test_inventory_base_unit_follows_the_material(emulator: K3CloudEmulator) -> None:
    emulator.add_material("FLOUR", "g")
    emulator.add_conversion("FLOUR", "kg", 1000)
    fid = emulator.create_document(
        "STK_InStock", [{"material": "FLOUR", "qty": "1.25", "unit": "kg", "stock": "CK001"}]
    )
    emulator.audit("STK_InStock", fid)
    query = {"FormId": "STK_Inventory", "FieldKeys": "FBaseUnitId.FNumber,FBaseQty"}
    assert post(emulator, "ExecuteBillQuery", {"data": query}) == [["g", 1250]]


def test_a_unit_without_conversion_cannot_be_saved(emulator: K3CloudEmulator) -> None:
    emulator.add_material("A-100", "Pcs")
    with pytest.raises(ValueError, match="no conversion from Bag"):
        emulator.create_document(
            "SAL_OUTSTOCK", [{"material": "A-100", "qty": "1", "unit": "Bag", "stock": "CK001"}]
        )


def test_base_data_forms_answer_materials_and_conversions(emulator: K3CloudEmulator) -> None:
    boxes(emulator)
    materials = {"FormId": "BD_MATERIAL", "FieldKeys": "FNumber,FBaseUnitId.FNumber"}
    assert post(emulator, "ExecuteBillQuery", {"data": materials}) == [["A-100", "Pcs"]]
    rates = {
        "FormId": "BD_UNITCONVERTRATE",
        "FieldKeys": "FMaterialId.FNumber,FCurrentUnitId.FNumber,FDestUnitId.FNumber,"
        "FConvertNumerator,FConvertDenominator",
    }
    assert post(emulator, "ExecuteBillQuery", {"data": rates}) == [["A-100", "Box", "Pcs", 12, 1]]


def test_a_forgotten_base_key_is_refused_with_msgcode_9(emulator: K3CloudEmulator) -> None:
    boxes(emulator)
    ship_two_boxes(emulator)
    assert len(post(emulator, "ExecuteBillQuery", {"data": OUTBOUND})) == 1
    emulator.forget_fields("SAL_OUTSTOCK", "FBaseUnitQty")
    status = envelope_of(post(emulator, "ExecuteBillQuery", {"data": OUTBOUND}))
    assert status["MsgCode"] == 9
    assert status["Errors"][0]["Message"] == "元数据中标识为FBaseUnitQty的字段不存在"
    # the same key on another form is still known; field keys are case-insensitive
    receipt = {"FormId": "STK_InStock", "FieldKeys": "FID,fbaseunitqty"}
    assert post(emulator, "ExecuteBillQuery", {"data": receipt}) == []
    info = post(emulator, "QueryBusinessInfo", {"data": {"FormId": "SAL_OUTSTOCK"}})
    keys = {f["Key"] for f in info["Result"]["NeedReturnData"]["Entrys"][0]["Fields"]}
    assert "FRealQty" in keys and "FBaseUnitQty" not in keys


def test_every_stock_form_knows_its_base_key_unit_and_line_qty(emulator: K3CloudEmulator) -> None:
    """The connector's keys against the emulator's transcription of §1.2."""
    for defn in STREAMS.values():
        keys = f"FID,{UNIT_KEY},{defn.qty_field},{defn.base_qty_field}"
        answer = post(
            emulator, "ExecuteBillQuery", {"data": {"FormId": defn.form_id, "FieldKeys": keys}}
        )
        assert answer == [], defn.form_id


# -- the source ---------------------------------------------------------------------------


def pulled(source: K3CloudSource, stream: str) -> tuple[list[Movement], list[RejectedRecord]]:
    movements: list[Movement] = []
    rejects: list[RejectedRecord] = []
    for page in source.pull(stream, None, 50):
        movements += page.movements
        rejects += page.rejects
    return movements, rejects


@pytest.mark.parametrize("knows_base_key", [True, False])
def test_two_boxes_leave_as_24_pieces(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource], knows_base_key: bool
) -> None:
    boxes(emulator)
    ship_two_boxes(emulator)
    if not knows_base_key:
        emulator.forget_fields("SAL_OUTSTOCK", "FBaseUnitQty")
    (movement,), rejects = pulled(make_source(), "sales_outbound")
    assert rejects == []
    assert (movement.sku, movement.warehouse, movement.qty) == ("A-100", "CK001", Decimal(-24))


@pytest.mark.parametrize("knows_base_key", [True, False])
def test_kilograms_received_count_in_grams_and_dozens_transferred_in_pieces(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource], knows_base_key: bool
) -> None:
    emulator.add_material("FLOUR", "g")
    emulator.add_conversion("FLOUR", "kg", 1000)
    emulator.add_material("EGG", "Pcs")
    emulator.add_conversion("EGG", "Dz", 12)
    receipt = emulator.create_document(
        "STK_InStock", [{"material": "FLOUR", "qty": "2.5", "unit": "kg", "stock": "CK001"}]
    )
    transfer = emulator.create_document(
        "STK_TransferDirect",
        [
            {
                "material": "EGG",
                "qty": "1.5",
                "unit": "Dz",
                "src_stock": "CK001",
                "dest_stock": "CK002",
            }
        ],
    )
    emulator.audit("STK_InStock", receipt)
    emulator.audit("STK_TransferDirect", transfer)
    if not knows_base_key:
        emulator.forget_fields("STK_InStock", "FBaseUnitQty")
        emulator.forget_fields("STK_TransferDirect", "FBaseQty")
    source = make_source()
    (flour,), _ = pulled(source, "purchase_receipt")
    (out, into), _ = pulled(source, "transfer")
    assert flour.qty == Decimal(2500)
    assert (out.qty, into.qty) == (Decimal(-18), Decimal(18))


def test_the_fallback_reads_units_only_where_the_key_is_missing(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    boxes(emulator)
    ship_two_boxes(emulator)
    emulator.forget_fields("SAL_OUTSTOCK", "FBaseUnitQty")
    source = make_source()
    pulled(source, "sales_outbound")
    pulled(source, "sales_outbound")
    pulled(source, "purchase_receipt")
    # one key check per form and one read of the base data (materials and conversions)
    # for the source's life, by the converting form only. Every read goes on to an empty
    # answer: a pull of rows is 2 answers, materials and conversions 2 each; the empty
    # purchase_receipt pull is its one empty answer
    assert emulator.calls["ExecuteBillQuery"] == 2 + (2 + 2 * 2) + 2 + 1
    # an incremental pull that finds nothing reads no base data
    list(source.pull("sales_outbound", Cursor(datetime(2030, 1, 1, tzinfo=UTC), ""), 50))
    assert emulator.calls["ExecuteBillQuery"] == 2 + (2 + 2 * 2) + 2 + 1 + 1


def test_a_conversion_added_after_the_base_data_was_read_is_read_again(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    """The source keeps the base data; a line it cannot convert makes the pull read them
    again once, so a unit set up in the ERP since is converted, not quarantined."""
    boxes(emulator)
    ship_two_boxes(emulator)
    emulator.forget_fields("SAL_OUTSTOCK", "FBaseUnitQty")
    source = make_source()
    (movement,), _ = pulled(source, "sales_outbound")
    assert movement.qty == Decimal(-24)
    emulator.add_conversion("A-100", "Crate", 48)
    crate = emulator.create_document(
        "SAL_OUTSTOCK", [{"material": "A-100", "qty": "1", "unit": "Crate", "stock": "CK001"}]
    )
    emulator.audit("SAL_OUTSTOCK", crate)
    movements, rejects = pulled(source, "sales_outbound")
    assert rejects == []
    assert sorted(m.qty for m in movements) == [Decimal(-48), Decimal(-24)]


def test_a_unit_without_conversion_is_quarantined_not_counted(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    boxes(emulator)
    ship_two_boxes(emulator)
    # a floating conversion (浮动换算): the base qty is typed on the line, no rate exists
    bag = emulator.create_document(
        "SAL_OUTSTOCK",
        [{"material": "A-100", "qty": "1", "unit": "Bag", "base_qty": "30", "stock": "CK001"}],
    )
    emulator.audit("SAL_OUTSTOCK", bag)
    emulator.forget_fields("SAL_OUTSTOCK", "FBaseUnitQty")
    (movement,), (reject,) = pulled(make_source(), "sales_outbound")
    assert movement.qty == Decimal(-24)
    assert reject.field == UNIT_KEY
    assert reject.key is not None and reject.key.startswith(f"k3cloud:SAL_OUTSTOCK:{bag}:")
    assert "no conversion from unit Bag to base unit Pcs of material A-100" in reject.reason
    assert reject.raw[UNIT_KEY] == "Bag" and reject.raw["FRealQty"] == 1


def test_configured_empty_base_key_converts_without_asking(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    boxes(emulator)
    ship_two_boxes(emulator)
    source = make_source(base_qty_fields={"sales_outbound": ""})
    (movement,), _ = pulled(source, "sales_outbound")
    assert movement.qty == Decimal(-24)
    # materials, conversions and the page, each read on to its empty answer
    assert emulator.calls["ExecuteBillQuery"] == 2 + 2 + 2


@pytest.mark.parametrize(
    ("material", "unit", "qty", "expected"),
    [
        ("A", "Pcs", "3", "3"),  # already the base unit
        ("A", "Box", "0.5", "6"),  # material rate
        ("B", "kg", "0.001", "1"),  # a rate for every material
        ("A", "Pk", "7", "1.75"),  # a reverse row: 1 Pcs = 4 Pk
    ],
)
def test_unit_table_converts_exactly(material: str, unit: str, qty: str, expected: str) -> None:
    table = UnitTable.from_rows(
        [["A", "Pcs"], ["B", "g"]],
        [["A", "Box", "Pcs", 12, 1], ["", "kg", "g", 1000, 1], ["A", "Pcs", "Pk", 4, 1]],
    )
    assert table.to_base(material, unit, Decimal(qty)) == Decimal(expected)


@pytest.mark.parametrize(
    ("material", "unit", "message"),
    [
        ("Z", "Pcs", "material Z has no base unit in BD_MATERIAL"),
        ("A", "", "has no unit (FUnitID)"),
        ("A", "Bag", "no conversion from unit Bag"),
        ("A", "Third", "no exact quantity of Pcs"),
    ],
)
def test_unit_table_refuses_what_it_cannot_convert(material: str, unit: str, message: str) -> None:
    table = UnitTable.from_rows([["A", "Pcs"]], [["A", "Third", "Pcs", 1, 3]])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        table.to_base(material, unit, Decimal(1))
