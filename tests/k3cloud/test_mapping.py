"""Pure mapping rules: signs, kinds, transfer sides, status, Decimal exactness."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors.k3cloud.mapping import decode_row, is_active, parse_qty
from connectors.k3cloud.streams import STREAMS, field_keys
from sync.errors import RecordError
from sync.model import MovementKind

TZ = ZoneInfo("Asia/Shanghai")
EXPECTED = {
    "purchase_receipt": ("STK_InStock", MovementKind.RECEIPT, 1),
    "purchase_return": ("PUR_MRB", MovementKind.SUPPLIER_RETURN, -1),
    "sales_outbound": ("SAL_OUTSTOCK", MovementKind.SHIPMENT, -1),
    "sales_return": ("SAL_RETURNSTOCK", MovementKind.CUSTOMER_RETURN, 1),
    "misc_in": ("STK_MISCELLANEOUS", MovementKind.OTHER_IN, 1),
    "misc_out": ("STK_MisDelivery", MovementKind.OTHER_OUT, -1),
    "count_gain": ("STK_StockCountGain", MovementKind.COUNT_GAIN, 1),
    "count_loss": ("STK_StockCountLoss", MovementKind.COUNT_LOSS, -1),
}


def row(
    stream: str, qty: Any = Decimal("2.5"), status: str = "C", cancel: str = "A", **kw: Any
) -> list[Any]:
    warehouses = kw.get("warehouses", ["CK001"] * len(STREAMS[stream].sides))
    return [
        kw.get("fid", 100001),
        "BILL001",
        "2024-05-01T00:00:00",
        status,
        cancel,
        kw.get("modified", "2024-05-02T10:20:30"),
        kw.get("entry", 7),
        kw.get("material", "1.01.001"),
        *warehouses,
        qty,
    ]


@pytest.mark.parametrize("stream", list(EXPECTED))
def test_each_stream_has_its_form_kind_and_sign(stream: str) -> None:
    form, kind, sign = EXPECTED[stream]
    defn = STREAMS[stream]
    assert defn.form_id == form
    (movement,) = decode_row(defn, row(stream), TZ)
    assert movement.kind == kind
    assert movement.qty == Decimal("2.5") * sign
    assert movement.key == f"k3cloud:{form}:100001:7"
    assert movement.doc_no == "BILL001"
    assert movement.occurred_at == datetime(2024, 5, 1, tzinfo=TZ)
    assert movement.source_updated_at == datetime(2024, 5, 2, 10, 20, 30, tzinfo=TZ)
    assert len(field_keys(defn)) == len(row(stream))


def test_transfer_yields_two_sides() -> None:
    defn = STREAMS["transfer"]
    assert defn.form_id == "STK_TransferDirect"
    out, into = decode_row(defn, row("transfer", warehouses=["SRC", "DST"]), TZ)
    assert (out.kind, out.warehouse, out.qty) == (MovementKind.TRANSFER_OUT, "SRC", Decimal("-2.5"))
    assert (into.kind, into.warehouse, into.qty) == (
        MovementKind.TRANSFER_IN,
        "DST",
        Decimal("2.5"),
    )
    assert out.key.endswith(":100001:7:out") and into.key.endswith(":100001:7:in")
    assert "FSrcStockId.FNumber" in field_keys(defn) and "FDestStockId.FNumber" in field_keys(defn)


@pytest.mark.parametrize(
    ("status", "cancel", "active"),
    [("C", "A", True), ("C", "B", False), ("A", "A", False), ("B", "A", False),
     ("D", "A", False), ("Z", "A", False), ("C", None, True)],
)  # fmt: skip
def test_only_approved_uncancelled_lines_are_active(status: str, cancel: Any, active: bool) -> None:
    assert is_active(status, cancel) is active
    (movement,) = decode_row(STREAMS["misc_in"], row("misc_in", status=status, cancel=cancel), TZ)
    assert movement.active is active


def test_out_of_scope_warehouse_is_inactive_not_dropped() -> None:
    out, into = decode_row(
        STREAMS["transfer"], row("transfer", warehouses=["A", "B"]), TZ, lambda wh: wh != "B"
    )
    assert out.active and not into.active


def test_decimal_exactness() -> None:
    assert parse_qty(Decimal("0.1")) + parse_qty(Decimal("0.2")) == Decimal("0.3")
    assert parse_qty(0.1) + parse_qty(0.2) == Decimal("0.3")  # via str, not float sums
    assert parse_qty("1234567890.123456789") == Decimal("1234567890.123456789")
    assert parse_qty(3) == Decimal(3)
    (movement,) = decode_row(STREAMS["sales_outbound"], row("sales_outbound", qty=0.3), TZ)
    assert movement.qty == Decimal("-0.3")


@pytest.mark.parametrize("bad", ["abc", None, True, "NaN", "Infinity", [], ""])
def test_non_numeric_qty_is_a_record_error(bad: Any) -> None:
    with pytest.raises(RecordError) as caught:
        decode_row(STREAMS["purchase_receipt"], row("purchase_receipt", qty=bad), TZ)
    assert caught.value.field == "FBaseUnitQty"
    assert caught.value.key == "k3cloud:STK_InStock:100001:7"


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"material": ""}, "FMaterialId.FNumber"), ({"warehouses": [None]}, "FStockId.FNumber")],
)
def test_missing_material_or_warehouse_is_a_record_error(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordError) as caught:
        decode_row(STREAMS["purchase_receipt"], row("purchase_receipt", **kw), TZ)
    assert caught.value.field == field


def test_configured_timezone_is_applied() -> None:
    (movement,) = decode_row(STREAMS["misc_in"], row("misc_in"), ZoneInfo("Europe/Berlin"))
    assert movement.occurred_at.utcoffset() is not None
    assert movement.occurred_at.tzinfo == ZoneInfo("Europe/Berlin")
