"""The stock forms K/3 Cloud streams read, and the field keys of their queries (no I/O).

Each stream is one stock form (k3cloud.md §4 table; units from
k3cloud-stock-quantities.md §1.2). ExecuteBillQuery returns one row per entry
line (header fields repeated) as a list in FieldKeys order; ``field_keys`` here
and the row decoder in ``mapping`` are built from the same ``StreamDef`` and
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sync.model import MovementKind

SOURCE = "k3cloud"

#: header keys selected for every stream, in this order, before the entry keys
HEADER_KEYS = ("FID", "FBillNo", "FDate", "FDocumentStatus", "FCancelStatus", "FModifyDate")
MATERIAL_KEY = "FMaterialId.FNumber"
#: the line's own unit (库存单位 on stock bills), read only when converting (§1.2)
UNIT_KEY = "FUnitID.FNumber"
#: the organisation a single-sided form's stock belongs to; transfers name both sides'
STOCK_ORG = "FStockOrgId"
ERP_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class Side:
    """One stock effect of a line: which warehouse field, which kind, which sign, and
    which header field names the organisation that warehouse belongs to (k3cloud.md
    §4: a transfer's FStockOutOrgId = 调出 for the out side, FStockOrgId = 调入)."""

    warehouse_field: str
    kind: MovementKind
    sign: int
    key_suffix: str = ""
    org_field: str = STOCK_ORG


@dataclass(frozen=True, slots=True)
class StreamDef:
    """A stock form as the connector reads it (k3cloud.md §4 table, units from
    k3cloud-stock-quantities.md §1.2).

    ``qty_field`` is the quantity in the line's unit (FUnitID), ``base_qty_field``
    the same quantity in the material's base unit. Rows carry the base qty, unless
    ``convert_units``: then they carry FUnitID and the line qty, and the decoder
    converts. ``org_scoped`` rows carry each side's organisation number as well.
    """

    name: str
    form_id: str
    entry_entity: str
    qty_field: str
    sides: tuple[Side, ...]
    base_qty_field: str = ""
    convert_units: bool = False
    org_scoped: bool = False

    @property
    def entry_id_key(self) -> str:
        return f"{self.entry_entity}_FEntryID"

    @property
    def warehouse_fields(self) -> tuple[str, ...]:
        return tuple(side.warehouse_field for side in self.sides)

    @property
    def org_fields(self) -> tuple[str, ...]:
        """The organisation fields of the sides, each once, in side order."""
        return tuple(dict.fromkeys(side.org_field for side in self.sides))

    @property
    def read_qty_field(self) -> str:
        """The quantity key a full pull requests: the base qty unless converting."""
        return self.qty_field if self.convert_units else self.base_qty_field


def _one(
    name: str, form: str, entity: str, qty: str, base: str, wh: str, kind: MovementKind
) -> StreamDef:
    sign = -1 if kind in _OUT else 1
    return StreamDef(name, form, entity, qty, (Side(wh, kind, sign),), base)


_OUT = {
    MovementKind.SUPPLIER_RETURN,
    MovementKind.SHIPMENT,
    MovementKind.OTHER_OUT,
    MovementKind.COUNT_LOSS,
}

STREAMS: dict[str, StreamDef] = {
    d.name: d
    for d in (
        _one(
            "purchase_receipt",
            "STK_InStock",
            "FInStockEntry",
            "FRealQty",
            "FBaseUnitQty",
            "FStockId",
            MovementKind.RECEIPT,
        ),
        _one(
            "purchase_return",
            "PUR_MRB",
            "FPURMRBENTRY",
            "FRMREALQTY",
            "FBASEUNITQTY",
            "FSTOCKID",
            MovementKind.SUPPLIER_RETURN,
        ),
        _one(
            "sales_outbound",
            "SAL_OUTSTOCK",
            "FEntity",
            "FRealQty",
            "FBaseUnitQty",
            "FStockID",
            MovementKind.SHIPMENT,
        ),
        _one(
            "sales_return",
            "SAL_RETURNSTOCK",
            "FEntity",
            "FRealQty",
            "FBaseUnitQty",
            "FStockId",
            MovementKind.CUSTOMER_RETURN,
        ),
        StreamDef(
            "transfer",
            "STK_TransferDirect",
            "FBillEntry",
            "FQty",
            (
                Side("FSrcStockId", MovementKind.TRANSFER_OUT, -1, ":out", "FStockOutOrgId"),
                Side("FDestStockId", MovementKind.TRANSFER_IN, 1, ":in", STOCK_ORG),
            ),
            "FBaseQty",
        ),
        _one(
            "misc_in",
            "STK_MISCELLANEOUS",
            "FEntity",
            "FQty",
            "FBaseQty",
            "FStockId",
            MovementKind.OTHER_IN,
        ),
        _one(
            "misc_out",
            "STK_MisDelivery",
            "FEntity",
            "FQty",
            "FBaseQty",
            "FStockId",
            MovementKind.OTHER_OUT,
        ),
        _one(
            "count_gain",
            "STK_StockCountGain",
            "FBillEntry",
            "FGainQty",
            "FBaseGainQty",
            "FStockId",
            MovementKind.COUNT_GAIN,
        ),
        _one(
            "count_loss",
            "STK_StockCountLoss",
            "FBillEntry",
            "FLossQty",
            "FBaseLossQty",
            "FStockId",
            MovementKind.COUNT_LOSS,
        ),
    )
}

STREAM_NAMES: tuple[str, ...] = tuple(STREAMS)


def configured(
    defn: StreamDef,
    *,
    qty_field: str | None = None,
    base_qty_field: str | None = None,
    org_scoped: bool = False,
) -> StreamDef:
    """The same stream with the per-stream overrides of the settings applied.

    ``base_qty_field=""`` says the server has no base-qty key for this form: the
    stream converts line quantities from the start.
    """
    changes: dict[str, Any] = {"org_scoped": org_scoped}
    if qty_field:
        changes["qty_field"] = qty_field
    if base_qty_field is not None:
        changes["base_qty_field"] = base_qty_field
        changes["convert_units"] = base_qty_field == ""
    return replace(defn, **changes)


def converting(defn: StreamDef) -> StreamDef:
    """The same stream reading FUnitID and the line qty, to convert to the base unit."""
    return replace(defn, convert_units=True)


def field_keys(defn: StreamDef) -> list[str]:
    """FieldKeys for a full pull; ``decode_row`` reads rows in exactly this order:
    header, entry id, material, one warehouse per side, [one org per side],
    [FUnitID], quantity."""
    return [
        *HEADER_KEYS,
        defn.entry_id_key,
        MATERIAL_KEY,
        *(f"{wh}.FNumber" for wh in defn.warehouse_fields),
        *(f"{side.org_field}.FNumber" for side in defn.sides if defn.org_scoped),
        *((UNIT_KEY,) if defn.convert_units else ()),
        defn.read_qty_field,
    ]


def key_field_keys(defn: StreamDef) -> list[str]:
    """FieldKeys for the window rescan: ids only, so the answer stays small."""
    return ["FID", defn.entry_id_key]


def movement_key(defn: StreamDef, fid: Any, entry_id: Any, side: Side) -> str:
    return f"{SOURCE}:{defn.form_id}:{fid}:{entry_id}{side.key_suffix}"


def keys_for(defn: StreamDef, fid: Any, entry_id: Any) -> list[str]:
    """Every movement key one entry line produces (two for a transfer)."""
    return [movement_key(defn, fid, entry_id, side) for side in defn.sides]
