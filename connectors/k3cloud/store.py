"""The emulator's in-memory K/3 Cloud: stock documents, their lines and the on-hand table.

Documents follow the real life-cycle (create → audit → un-audit → cancel/delete,
line edits); each change stamps FModifyDate from an injectable clock, which is
what incremental pulls depend on. STK_Inventory is derived from approved,
non-cancelled documents plus opening stock, exactly what a connector must
reproduce from the movements it pulls.

Units and orgs (k3cloud-stock-quantities.md §1.2, k3cloud.md §4): a line has its
own unit (FUnitID) and quantity, and a base quantity in the material's base unit,
computed from the catalog's conversions when the line is saved (or given, as a
floating conversion would). STK_Inventory counts base quantities. A document's
orgs come from its warehouses: FStockOrgId, plus FStockOutOrgId on transfers.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.k3cloud.catalog import CONVERSION_FORM, MATERIAL_FORM, Catalog, master_fields
from connectors.k3cloud.locks import LockBook, inventory_columns
from connectors.k3cloud.query import FieldType, Row
from connectors.k3cloud.streams import STOCK_ORG, STREAMS, UNIT_KEY, StreamDef

INVENTORY = "STK_Inventory"
HEADER_TYPES: dict[str, FieldType] = {
    "FID": "num",
    "FBillNo": "str",
    "FDate": "date",
    "FDocumentStatus": "str",
    "FCancelStatus": "str",
    "FModifyDate": "date",
    "FApproveDate": "date",
    "FCancelDate": "date",
    "FCreateDate": "date",
    "FStockOrgId.FNumber": "str",
    "FBillTypeID.FNumber": "str",
}
INVENTORY_TYPES: dict[str, FieldType] = {
    "FID": "str",
    "FMaterialId.FNumber": "str",
    "FStockId.FNumber": "str",
    "FStockOrgId.FNumber": "str",
    "FLot.FNumber": "str",
    "FStockStatusId.FNumber": "str",
    "FBaseUnitId.FNumber": "str",
    "FBaseQty": "num",
    "FQty": "num",
    # locked and available (k3cloud-stock-quantities.md §1.1; checks in ``locks``)
    "FBaseLockQty": "num",
    "FLockQty": "num",
    "FBaseAvbQty": "num",
    "FAvbQty": "num",
}
FORMS: dict[str, StreamDef] = {d.form_id: d for d in STREAMS.values()}
MASTER_FORMS = (MATERIAL_FORM, CONVERSION_FORM)
KNOWN_FORMS = frozenset((*FORMS, INVENTORY, *MASTER_FORMS))
BASE_UNIT_KEY = "FBaseUnitID.FNumber"
#: k3cloud-stock-quantities.md §1.2, transcribed: form → base-qty key (line unit: FUnitID)
BASE_QTY_KEYS = {
    "STK_InStock": "FBaseUnitQty",
    "SAL_OUTSTOCK": "FBaseUnitQty",
    "PUR_MRB": "FBASEUNITQTY",
    "SAL_RETURNSTOCK": "FBaseUnitQty",
    "STK_TransferDirect": "FBaseQty",
    "STK_MISCELLANEOUS": "FBaseQty",
    "STK_MisDelivery": "FBaseQty",
    "STK_StockCountGain": "FBaseGainQty",
    "STK_StockCountLoss": "FBaseLossQty",
}


def form_fields(form_id: str) -> dict[str, FieldType]:
    """Canonical field keys of a form with their types (the emulator's 'metadata').

    Stock bills carry the line unit, line qty, base unit and base qty of §1.2's
    table; only a transfer has FStockOutOrgId (k3cloud.md §4).
    """
    if form_id == INVENTORY:
        return dict(INVENTORY_TYPES)
    if form_id in MASTER_FORMS:
        return dict(master_fields(form_id))
    defn = FORMS[form_id]
    fields = dict(HEADER_TYPES)
    for org in defn.org_fields:
        fields[f"{org}.FNumber"] = "str"
    fields[defn.entry_id_key] = "num"
    fields["FMaterialId.FNumber"] = "str"
    fields["FLot.FNumber"] = "str"
    fields[UNIT_KEY] = "str"
    fields[BASE_UNIT_KEY] = "str"
    for wh in defn.warehouse_fields:
        fields[f"{wh}.FNumber"] = "str"
    fields[defn.qty_field] = "num"
    fields[BASE_QTY_KEYS[form_id]] = "num"
    return fields


def lookup(form_id: str) -> dict[str, FieldType]:
    """Lower-case key → type, for case-insensitive field resolution."""
    return {k.lower(): t for k, t in form_fields(form_id).items()}


def as_qty(value: Any) -> Any:
    """Numbers become exact Decimals; anything else is kept raw (to emulate bad data)."""
    if isinstance(value, bool):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return value


@dataclass
class Line:
    """``qty`` in ``unit``; ``base_qty`` in the material's base unit (what stock counts)."""

    entry_id: int
    material: str
    qty: Any
    stocks: list[str]
    lot: str = ""
    unit: str = ""
    base_qty: Any = None


@dataclass
class Document:
    form_id: str
    fid: int
    bill_no: str
    date: datetime
    created: datetime
    modified: datetime
    stock_org: str = "100"
    #: the sending org of a transfer (FStockOutOrgId); other forms: the same as stock_org
    stock_out_org: str = "100"
    status: str = "A"
    cancel: str = "A"
    approved: datetime | None = None
    cancelled: datetime | None = None
    lines: list[Line] = field(default_factory=list)


class Store:
    """Documents per form plus opening stock, with cached flat rows per form."""

    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        status_bumps_modify_date: bool = True,
        lock_beyond_stock: bool = True,
    ) -> None:
        self.now = now
        self.catalog = Catalog()
        #: stock locks (锁库); ``beyond_stock``: may a lock exceed the row's available?
        self.locks = LockBook(beyond_stock=lock_beyond_stock)
        #: per form: lower-case field keys this server's metadata lacks
        self.hidden: dict[str, set[str]] = defaultdict(set)
        #: whether audit/un-audit/cancel/un-cancel also stamp FModifyDate (undocumented)
        self.status_bumps_modify_date = status_bumps_modify_date
        self.docs: dict[str, dict[int, Document]] = {form: {} for form in FORMS}
        self.opening: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
        self.version = 0
        self._ids = itertools.count(100001)
        self._entry_ids = itertools.count(200001)
        self._rows: dict[str, tuple[int, list[Row]]] = {}

    # -- mutations -------------------------------------------------------------------

    def _now(self) -> datetime:
        """ERP stamps have whole seconds (rows serialise them as ``yyyy-MM-ddTHH:mm:ss``)."""
        return self.now().replace(microsecond=0)

    def _touch(self, doc: Document, at: datetime | None = None) -> None:
        doc.modified = at or self._now()
        self.version += 1

    def create(
        self,
        form_id: str,
        lines: Iterable[Mapping[str, Any]],
        *,
        bill_no: str | None = None,
        date: datetime | None = None,
        status: str = "A",
    ) -> int:
        defn = FORMS[form_id]
        now = self._now()
        built = [self._line(defn, spec) for spec in lines]
        stocks = built[0].stocks if built else ["", ""]
        fid = next(self._ids)
        doc = Document(
            form_id=form_id,
            fid=fid,
            bill_no=bill_no or f"{form_id.split('_')[-1].upper()}{fid:08d}",
            date=date or now.replace(hour=0, minute=0, second=0, microsecond=0),
            created=now,
            modified=now,
            stock_org=self.catalog.org_of(stocks[-1]),
            stock_out_org=self.catalog.org_of(stocks[0]),
            status=status,
            approved=now if status == "C" else None,
            lines=built,
        )
        self.docs[form_id][fid] = doc
        self.version += 1
        return fid

    def _line(self, defn: StreamDef, spec: Mapping[str, Any]) -> Line:
        if len(defn.sides) == 2:
            stocks = [str(spec["src_stock"]), str(spec["dest_stock"])]
        else:
            stocks = [str(spec["stock"])]
        material = str(spec["material"])
        line = Line(
            entry_id=next(self._entry_ids),
            material=material,
            qty=as_qty(spec["qty"]),
            stocks=stocks,
            lot=str(spec.get("lot", "")),
            unit=str(spec.get("unit") or self.catalog.base_unit(material)),
        )
        self._rebase(line, spec.get("base_qty"))
        return line

    def _rebase(self, line: Line, base_qty: Any = None) -> None:
        """The base qty as the ERP stores it on save: converted, or typed in (浮动换算)."""
        if base_qty is not None:
            line.base_qty = as_qty(base_qty)
        else:
            line.base_qty = self.catalog.to_base(line.material, line.unit, line.qty)

    def get(self, form_id: str, fid: int) -> Document:
        try:
            return self.docs[form_id][fid]
        except KeyError:
            raise KeyError(f"no {form_id} document with FID {fid}") from None

    def set_status(self, form_id: str, fid: int, status: str) -> None:
        """Audit (→ C) or un-audit (→ D): FApproveDate is stamped with the time of either
        (an un-audit changes the approval; assumed, k3cloud-stock-quantities.md §1.3)."""
        doc = self.get(form_id, fid)
        doc.status = status
        doc.approved = self._now()
        self._status_changed(doc, doc.approved)

    def cancel(self, form_id: str, fid: int, *, cancelled: bool = True) -> None:
        """Cancel (FCancelStatus B) or un-cancel (A); FCancelDate stamped either way."""
        doc = self.get(form_id, fid)
        doc.cancel = "B" if cancelled else "A"
        doc.cancelled = self._now()
        self._status_changed(doc, doc.cancelled)

    def _status_changed(self, doc: Document, at: datetime) -> None:
        if self.status_bumps_modify_date:
            self._touch(doc, at)
        else:
            self.version += 1

    def delete(self, form_id: str, fid: int) -> None:
        self.get(form_id, fid)
        del self.docs[form_id][fid]
        self.version += 1

    def edit_line(self, form_id: str, fid: int, entry_id: int, changes: Mapping[str, Any]) -> None:
        doc = self.get(form_id, fid)
        line = next((ln for ln in doc.lines if ln.entry_id == entry_id), None)
        if line is None:
            raise KeyError(f"{form_id} {fid} has no line {entry_id}")
        if changes.get("qty") is not None:
            line.qty = as_qty(changes["qty"])
        if changes.get("material") is not None:
            line.material = str(changes["material"])
        if changes.get("unit") is not None:
            line.unit = str(changes["unit"])
        self._rebase(line, changes.get("base_qty"))
        for index, name in enumerate(("src_stock", "dest_stock")):
            if changes.get(name) is not None:
                line.stocks[index] = str(changes[name])
        if changes.get("stock") is not None:
            line.stocks[0] = str(changes["stock"])
        if doc.lines and line is doc.lines[0]:
            doc.stock_org = self.catalog.org_of(line.stocks[-1])
            doc.stock_out_org = self.catalog.org_of(line.stocks[0])
        self._touch(doc)

    def remove_line(self, form_id: str, fid: int, entry_id: int) -> None:
        """A user's edit that deletes one entry line: saved like any edit, so FModifyDate
        is stamped (k3cloud-stock-quantities.md §1.3, Save (edit)). KeyError for an
        unknown line; ValueError for the bill's only line (a bill is saved with at least
        one entry line, assumed: delete the bill instead)."""
        doc = self.get(form_id, fid)
        kept = [ln for ln in doc.lines if ln.entry_id != entry_id]
        if len(kept) == len(doc.lines):
            raise KeyError(f"{form_id} {fid} has no line {entry_id}")
        if not kept:
            raise ValueError(f"{form_id} {fid}: a bill keeps at least one line; delete the bill")
        doc.lines = kept
        doc.stock_org = self.catalog.org_of(kept[0].stocks[-1])
        doc.stock_out_org = self.catalog.org_of(kept[0].stocks[0])
        self._touch(doc)

    def set_opening(
        self, material: str, stock: str, qty: Any, *, org: str | None = None, lot: str = ""
    ) -> None:
        """Opening on-hand in the material's base unit; org defaults to the warehouse's."""
        org = org or self.catalog.org_of(stock)
        self.opening[(org, material, stock, lot)] = Decimal(str(qty))
        self.version += 1

    def changed(self) -> None:
        """Base data or metadata changed: cached rows and query results are stale."""
        self.version += 1

    def known_fields(self, form_id: str) -> dict[str, FieldType]:
        """Canonical key → type as this server's metadata has the form (minus hidden keys)."""
        hidden = self.hidden.get(form_id, set())
        return {k: t for k, t in form_fields(form_id).items() if k.lower() not in hidden}

    def fields(self, form_id: str) -> dict[str, FieldType]:
        """Lower-case key → type, for case-insensitive field resolution in queries."""
        return {k.lower(): t for k, t in self.known_fields(form_id).items()}

    # -- rows ------------------------------------------------------------------------

    def rows(self, form_id: str) -> list[Row]:
        """Flat rows (one per entry line, header repeated), rebuilt only after a change."""
        cached = self._rows.get(form_id)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        if form_id == INVENTORY:
            built = self._inventory_rows()
        elif form_id in MASTER_FORMS:
            built = self.catalog.rows(form_id)
        else:
            built = self._bill_rows(form_id)
        self._rows[form_id] = (self.version, built)
        return built

    def _bill_rows(self, form_id: str) -> list[Row]:
        defn = FORMS[form_id]
        entry_key = defn.entry_id_key.lower()
        qty_key = defn.qty_field.lower()
        base_key = BASE_QTY_KEYS[form_id].lower()
        wh_keys = [f"{wh}.FNumber".lower() for wh in defn.warehouse_fields]
        rows: list[Row] = []
        for doc in self.docs[form_id].values():
            header: Row = {
                "fid": doc.fid,
                "fbillno": doc.bill_no,
                "fdate": doc.date,
                "fdocumentstatus": doc.status,
                "fcancelstatus": doc.cancel,
                "fmodifydate": doc.modified,
                "fapprovedate": doc.approved,
                "fcanceldate": doc.cancelled,
                "fcreatedate": doc.created,
                "fstockorgid.fnumber": doc.stock_org,
                "fstockoutorgid.fnumber": doc.stock_out_org,
                "fbilltypeid.fnumber": "STD",
            }
            for line in doc.lines:
                row = dict(header)
                row[entry_key] = line.entry_id
                row["fmaterialid.fnumber"] = line.material
                row["flot.fnumber"] = line.lot
                row["funitid.fnumber"] = line.unit
                row["fbaseunitid.fnumber"] = self.catalog.base_unit(line.material)
                row[qty_key] = line.qty
                row[base_key] = line.base_qty
                for key, stock in zip(wh_keys, line.stocks, strict=True):
                    row[key] = stock
                rows.append(row)
        return rows

    def inventory(self) -> dict[tuple[str, str, str, str], Decimal]:
        """(org, material, stock, lot) → base qty: opening + approved, non-cancelled lines."""
        totals: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal, self.opening)
        for form_id, docs in self.docs.items():
            sides = FORMS[form_id].sides
            for doc in docs.values():
                if doc.status != "C" or doc.cancel == "B":
                    continue
                for line in doc.lines:
                    if not isinstance(line.base_qty, Decimal):
                        continue
                    for side, stock in zip(sides, line.stocks, strict=True):
                        org = doc.stock_org if side.org_field == STOCK_ORG else doc.stock_out_org
                        totals[(org, line.material, stock, line.lot)] += line.base_qty * side.sign
        return totals

    def _inventory_rows(self) -> list[Row]:
        """One row per stock dimension with stock or a lock; FBaseAvbQty = FBaseQty − lock."""
        rows: list[Row] = []
        locked = self.locks.per_row()
        on_hand = self.inventory()
        for key in locked.keys() - on_hand.keys():
            on_hand[key] = Decimal(0)
        for (org, material, stock, lot), qty in sorted(on_hand.items()):
            rows.append(
                {
                    # one stable id per stock dimension, as T_STK_INVENTORY's FID
                    "fid": _inventory_id(org, material, stock, lot),
                    "fmaterialid.fnumber": material,
                    "fstockid.fnumber": stock,
                    "fstockorgid.fnumber": org,
                    "flot.fnumber": lot,
                    "fstockstatusid.fnumber": "KCZT01_SYS",
                    "fbaseunitid.fnumber": self.catalog.base_unit(material),
                    "fbaseqty": qty,
                    "fqty": qty,
                    **inventory_columns(qty, locked.get((org, material, stock, lot), Decimal(0))),
                }
            )
        return rows


def line_ids(doc: Document) -> Sequence[int]:
    return [line.entry_id for line in doc.lines]


def _inventory_id(org: str, material: str, stock: str, lot: str) -> str:
    text = "\x1f".join((org, material, stock, lot))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
