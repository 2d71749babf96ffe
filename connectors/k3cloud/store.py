"""The emulator's in-memory K/3 Cloud: stock documents, their lines and the on-hand table.

Documents follow the real life-cycle (create → audit → un-audit → cancel/delete,
line edits); each change stamps FModifyDate from an injectable clock, which is
what incremental pulls depend on. STK_Inventory is derived from approved,
non-cancelled documents plus opening stock, exactly what a connector must
reproduce from the movements it pulls.
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

from connectors.k3cloud.mapping import STREAMS, StreamDef
from connectors.k3cloud.query import FieldType, Row

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
}
FORMS: dict[str, StreamDef] = {d.form_id: d for d in STREAMS.values()}


def form_fields(form_id: str) -> dict[str, FieldType]:
    """Canonical field keys of a form with their types (the emulator's 'metadata')."""
    if form_id == INVENTORY:
        return dict(INVENTORY_TYPES)
    defn = FORMS[form_id]
    fields = dict(HEADER_TYPES)
    fields[defn.entry_id_key] = "num"
    fields["FMaterialId.FNumber"] = "str"
    fields["FLot.FNumber"] = "str"
    fields["FUnitID.FNumber"] = "str"
    for wh in defn.warehouse_fields:
        fields[f"{wh}.FNumber"] = "str"
    fields[defn.qty_field] = "num"
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
    entry_id: int
    material: str
    qty: Any
    stocks: list[str]
    lot: str = ""


@dataclass
class Document:
    form_id: str
    fid: int
    bill_no: str
    date: datetime
    created: datetime
    modified: datetime
    stock_org: str = "100"
    status: str = "A"
    cancel: str = "A"
    approved: datetime | None = None
    cancelled: datetime | None = None
    lines: list[Line] = field(default_factory=list)


class Store:
    """Documents per form plus opening stock, with cached flat rows per form."""

    def __init__(
        self, now: Callable[[], datetime], *, status_bumps_modify_date: bool = True
    ) -> None:
        self.now = now
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
        stock_org: str = "100",
        status: str = "A",
    ) -> int:
        defn = FORMS[form_id]
        now = self._now()
        fid = next(self._ids)
        doc = Document(
            form_id=form_id,
            fid=fid,
            bill_no=bill_no or f"{form_id.split('_')[-1].upper()}{fid:08d}",
            date=date or now.replace(hour=0, minute=0, second=0, microsecond=0),
            created=now,
            modified=now,
            stock_org=stock_org,
            status=status,
            approved=now if status == "C" else None,
        )
        for spec in lines:
            doc.lines.append(self._line(defn, spec))
        self.docs[form_id][fid] = doc
        self.version += 1
        return fid

    def _line(self, defn: StreamDef, spec: Mapping[str, Any]) -> Line:
        if len(defn.sides) == 2:
            stocks = [str(spec["src_stock"]), str(spec["dest_stock"])]
        else:
            stocks = [str(spec["stock"])]
        return Line(
            entry_id=next(self._entry_ids),
            material=str(spec["material"]),
            qty=as_qty(spec["qty"]),
            stocks=stocks,
            lot=str(spec.get("lot", "")),
        )

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
        for index, name in enumerate(("src_stock", "dest_stock")):
            if changes.get(name) is not None:
                line.stocks[index] = str(changes[name])
        if changes.get("stock") is not None:
            line.stocks[0] = str(changes["stock"])
        self._touch(doc)

    def set_opening(
        self, material: str, stock: str, qty: Any, *, org: str = "100", lot: str = ""
    ) -> None:
        self.opening[(org, material, stock, lot)] = Decimal(str(qty))
        self.version += 1

    # -- rows ------------------------------------------------------------------------

    def rows(self, form_id: str) -> list[Row]:
        """Flat rows (one per entry line, header repeated), rebuilt only after a change."""
        cached = self._rows.get(form_id)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        built = self._inventory_rows() if form_id == INVENTORY else self._bill_rows(form_id)
        self._rows[form_id] = (self.version, built)
        return built

    def _bill_rows(self, form_id: str) -> list[Row]:
        defn = FORMS[form_id]
        entry_key = defn.entry_id_key.lower()
        qty_key = defn.qty_field.lower()
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
                "fbilltypeid.fnumber": "STD",
            }
            for line in doc.lines:
                row = dict(header)
                row[entry_key] = line.entry_id
                row["fmaterialid.fnumber"] = line.material
                row["flot.fnumber"] = line.lot
                row["funitid.fnumber"] = "Pcs"
                row[qty_key] = line.qty
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
                    if not isinstance(line.qty, Decimal):
                        continue
                    for side, stock in zip(sides, line.stocks, strict=True):
                        totals[(doc.stock_org, line.material, stock, line.lot)] += (
                            line.qty * side.sign
                        )
        return totals

    def _inventory_rows(self) -> list[Row]:
        rows: list[Row] = []
        for (org, material, stock, lot), qty in sorted(self.inventory().items()):
            rows.append(
                {
                    # one stable id per stock dimension, as T_STK_INVENTORY's FID
                    "fid": _inventory_id(org, material, stock, lot),
                    "fmaterialid.fnumber": material,
                    "fstockid.fnumber": stock,
                    "fstockorgid.fnumber": org,
                    "flot.fnumber": lot,
                    "fstockstatusid.fnumber": "KCZT01_SYS",
                    "fbaseunitid.fnumber": "Pcs",
                    "fbaseqty": qty,
                    "fqty": qty,
                }
            )
        return rows


def line_ids(doc: Document) -> Sequence[int]:
    return [line.entry_id for line in doc.lines]


def _inventory_id(org: str, material: str, stock: str, lot: str) -> str:
    text = "\x1f".join((org, material, stock, lot))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
