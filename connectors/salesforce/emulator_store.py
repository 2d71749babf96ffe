"""The emulated org's records and its upsert-by-External-ID semantics (reference §4, §7, §8).

``Store.upsert`` takes one record of a write (a JSON object, numbers parsed as Decimal)
and either applies it or raises: ``ApiError`` when the request itself is malformed
(unknown field, wrong JSON type), ``FieldError`` when only this record is refused.
Every applied change is journalled so that an ``allOrNone`` batch can be undone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from connectors.salesforce.emulator_rules import (
    ApiError,
    DecimalsMode,
    FieldError,
    check_value,
    convert,
    entity_is_deleted,
    index_key,
    not_found,
    not_writable,
    required_missing,
    unknown_field,
)
from connectors.salesforce.emulator_schema import FieldSpec, IdMaker, ObjectSpec, demo_objects

Row = dict[str, Any]
#: Product2Id/LocationId are create-only (§8.1). Whether an update that sends the same
#: value is refused is not in the reference: "changed" refuses only a different value,
#: "any" refuses the field on every update.
CreateOnlyMode = Literal["changed", "any"]
#: (object, External ID value of the record, merged row) → a FieldError to raise, or None
RecordHook = Callable[[str, str, Row], FieldError | None]

_DEFAULTS = {"LocationType": "Warehouse"}


@dataclass
class Upserted:
    id: str
    created: bool


@dataclass
class Journal:
    """Undo log of one batch: (object, id, row before or None when created)."""

    entries: list[tuple[str, str, Row | None]] = field(default_factory=list)


class Store:
    """Objects (``emulator_schema``) and their rows, by object name then Id."""

    def __init__(
        self,
        objects: dict[str, ObjectSpec] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.objects = objects if objects is not None else demo_objects()
        self.rows: dict[str, dict[str, Row]] = {name: {} for name in self.objects}
        #: the recycle bin: deleted rows by object then Id (seen by queryAll only)
        self.deleted: dict[str, dict[str, Row]] = {name: {} for name in self.objects}
        self.clock = clock
        self.ids = IdMaker()
        self.decimals: DecimalsMode = "store"
        self.create_only: CreateOnlyMode = "changed"
        #: injected per-record refusals (validation rules, lock contention)
        self.record_hook: RecordHook | None = None
        self._numbers: dict[str, int] = {}
        self._indexes: dict[tuple[str, str], dict[Any, set[str]]] = {}

    # ------------------------------------------------------------ lookups
    def obj(self, name: str) -> ObjectSpec:
        """The object called ``name`` (case-insensitive); 404 NOT_FOUND otherwise."""
        for spec in self.objects.values():
            if spec.name.lower() == name.lower():
                return spec
        raise not_found()

    def find_object(self, name: str) -> ObjectSpec | None:
        try:
            return self.obj(name)
        except ApiError:
            return None

    def table(self, name: str) -> dict[str, Row]:
        return self.rows.setdefault(self.obj(name).name, {})

    def get(self, obj: str, record_id: str) -> Row | None:
        return self.table(obj).get(record_id)

    def matches(self, obj: ObjectSpec, spec: FieldSpec, value: Any) -> list[str]:
        """Ids of the rows whose ``spec`` equals ``value`` (as its index compares); an
        index per (object, field) is built on first use and kept by ``_put``."""
        index = self._indexes.get((obj.name, spec.name))
        if index is None:
            index = {}
            for rid, row in self.rows[obj.name].items():
                index.setdefault(index_key(spec, row.get(spec.name)), set()).add(rid)
            self._indexes[(obj.name, spec.name)] = index
        return sorted(index.get(index_key(spec, value), ()))

    def _put(self, obj: str, rid: str, row: Row | None) -> None:
        """Set (or with None remove) a row, keeping the built indexes."""
        before = self.rows[obj].get(rid)
        for (name, field_name), index in self._indexes.items():
            if name != obj:
                continue
            spec = self.objects[obj].field(field_name)
            assert spec is not None
            if before is not None:
                index.get(index_key(spec, before.get(field_name)), set()).discard(rid)
            if row is not None:
                index.setdefault(index_key(spec, row.get(field_name)), set()).add(rid)
        if row is None:
            self.rows[obj].pop(rid, None)
        else:
            self.rows[obj][rid] = row

    def key_field(self, obj: ObjectSpec, name: str) -> FieldSpec | None:
        spec = obj.field(name)
        return spec if spec is not None and spec.upsert_key and spec.type != "id" else None

    # ------------------------------------------------------------ writes
    def upsert(
        self,
        obj: ObjectSpec,
        key: FieldSpec,
        key_value: Any,
        record: Row,
        journal: Journal | None = None,
    ) -> Upserted:
        """Create or update the one row whose ``key`` is ``key_value`` (§4.1, §4.2)."""
        values = self._values(obj, record)
        if key_value in (None, ""):
            raise FieldError("MISSING_ARGUMENT", f"{key.name} not specified", [key.name])
        values[key.name] = convert(key, key_value)
        found = self.matches(obj, key, values[key.name])
        if len(found) > 1:
            raise FieldError(
                "DUPLICATE_EXTERNAL_ID",
                f"{key.name}: more than one record found for external id field: {found}",
                [key.name],
            )
        current = self.rows[obj.name].get(found[0]) if found else None
        merged = self._check(obj, values, current)
        if self.record_hook is not None:
            fault = self.record_hook(obj.name, str(key_value), merged)
            if fault is not None:
                raise fault
        return self._write(obj, merged, current, journal)

    def live(self, obj: ObjectSpec, rid: str) -> Row:
        """The row ``rid`` of ``obj``; 404 ENTITY_IS_DELETED when it is in the recycle
        bin, 404 NOT_FOUND when there is none."""
        row = self.rows[obj.name].get(rid)
        if row is not None:
            return row
        if rid in self.deleted.get(obj.name, {}):
            raise entity_is_deleted()
        raise not_found()

    def delete(self, obj: ObjectSpec, rid: str) -> None:
        """Move the row to the recycle bin: it leaves SOQL (not queryAll) and its External
        ID no longer matches, so an upsert of that value creates a new record."""
        row = self.live(obj, rid)
        self._put(obj.name, rid, None)
        self.deleted.setdefault(obj.name, {})[rid] = {**row, "IsDeleted": True}

    def update(self, obj: ObjectSpec, rid: str, record: Row) -> None:
        """Write ``record``'s fields into the live row ``rid`` (PATCH by Id, never creates)."""
        current = self.live(obj, rid)
        values = self._values(obj, record)
        merged = self._check(obj, values, current)
        if self.record_hook is not None:
            key = next((f.name for f in obj.fields.values() if f.external_id), "")
            fault = self.record_hook(obj.name, str(current.get(key) or rid), merged)
            if fault is not None:
                raise fault
        self._write(obj, merged, current, None)

    def undo(self, journal: Journal) -> None:
        for name, rid, before in reversed(journal.entries):
            self._put(name, rid, before)
        journal.entries.clear()

    def insert(self, obj: str, values: Row) -> str:
        """Seed a row as a person or an import would, skipping the API's checks."""
        spec = self.obj(obj)
        named = {}
        for key, value in values.items():
            field_spec = spec.field(key)
            named[field_spec.name if field_spec else key] = value
        row = self._defaults(spec, named)
        self._put(spec.name, row["Id"], row)
        return str(row["Id"])

    def _values(self, obj: ObjectSpec, record: Row) -> Row:
        """Field name → stored value; parent references by External ID (§4.3) resolved to Ids."""
        values: Row = {}
        by_reference: list[str] = []
        for name, raw in record.items():
            if name == "attributes":
                continue
            spec = obj.field(name)
            ref = obj.relationship(name) if spec is None else None
            if ref is not None and isinstance(raw, dict):
                values[ref.name] = self._parent(ref, raw)
                by_reference.append(ref.name)
            elif spec is None:
                raise unknown_field(obj.name, name)
            else:
                values[spec.name] = convert(spec, raw)
        both = [n for n in by_reference if sum(obj.field(k) is obj.field(n) for k in record) > 0]
        if both:
            ref = obj.fields[both[0].lower()]
            raise FieldError(
                "INVALID_FIELD",
                f"Cannot specify both an external ID reference {ref.relationship_name} and a "
                f"salesforce id, {ref.name}",
                [ref.name],
            )
        return values

    def _parent(self, ref: FieldSpec, raw: Row) -> str:
        """The Id of the parent named by ``{"ERP_SKU__c": "A-100"}`` (§4.3)."""
        target = self.obj(str(ref.reference_to))
        attributes = raw.get("attributes")
        if isinstance(attributes, dict) and attributes.get("type") not in (None, target.name):
            raise FieldError(
                "INVALID_TYPE", f"{ref.relationship_name} is not a {attributes.get('type')}"
            )
        keys = [k for k in raw if k != "attributes"]
        if len(keys) != 1:
            raise FieldError(
                "INVALID_FIELD",
                "More than 1 field provided in an external foreign key reference in entity: "
                f"{target.name}"
                if keys
                else f"No external ID in the reference {ref.relationship_name}",
                [ref.name],
            )
        spec = target.field(keys[0])
        if spec is None or not spec.upsert_key:
            raise FieldError(
                "INVALID_FIELD",
                f"Field name provided, {keys[0]} does not match an External ID, Salesforce Id, "
                f"or indexed field for {target.name}",
                [ref.name],
            )
        value = convert(spec, raw[keys[0]])
        found = self.matches(target, spec, value) if value not in (None, "") else []
        if not found:
            raise FieldError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} not found for field {spec.name} in entity "
                f"{target.name}",
                [ref.name],
            )
        if len(found) > 1:
            raise FieldError(
                "DUPLICATE_EXTERNAL_ID",
                f"Foreign key external ID: {value} matches more than one {target.name}: {found}",
                [ref.name],
            )
        return found[0]

    def _check(self, obj: ObjectSpec, values: Row, current: Row | None) -> Row:
        """The row after this write, or FieldError (writability, required, numbers, text,
        uniqueness, ProductItem's own rules)."""
        refused = [
            n for n in values if not self._writable(obj.fields[n.lower()], current, values[n])
        ]
        if refused:
            raise not_writable(refused)
        checked = {
            n: check_value(obj.fields[n.lower()], v, self.decimals) for n, v in values.items()
        }
        merged = {**(current or {}), **checked}
        missing = [
            f.name
            for f in obj.fields.values()
            if (f.required_on_create and current is None and merged.get(f.name) is None)
            or (not f.nillable and f.name in checked and checked[f.name] is None)
        ]
        if missing:
            raise required_missing(missing)
        for spec in obj.fields.values():
            if spec.unique and checked.get(spec.name) is not None:
                others = [
                    i for i in self.matches(obj, spec, checked[spec.name]) if i != merged.get("Id")
                ]
                if others:
                    raise FieldError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {spec.name} duplicates value on record with "
                        f"id: {others[0]}",
                        [],
                    )
        if obj.name == "ProductItem":
            self._product_item_rules(merged, checked)
        return merged

    def _writable(self, spec: FieldSpec, current: Row | None, value: Any) -> bool:
        if current is None:
            return spec.createable
        if spec.updateable:
            return True
        if spec.createable and self.create_only == "changed":
            return bool(current.get(spec.name) == value)
        return False

    def _product_item_rules(self, merged: Row, checked: Row) -> None:
        """§8.1: the location must be an inventory location; a serialized item holds 1 [I codes]."""
        if "LocationId" in checked:
            location = self.rows["Location"].get(checked["LocationId"])
            if location is None or not location.get("IsInventoryLocation"):
                raise FieldError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Location: product items can only be associated with an inventory location",
                    ["LocationId"],
                )
        if merged.get("SerialNumber") and merged.get("QuantityOnHand") != 1:
            raise FieldError(
                "FIELD_INTEGRITY_EXCEPTION",
                "Quantity on hand must be 1 when the product item has a serial number",
                ["QuantityOnHand"],
            )

    def _write(
        self, obj: ObjectSpec, merged: Row, current: Row | None, journal: Journal | None
    ) -> Upserted:
        now = stamp(self.clock())
        if current is None:
            row = self._defaults(obj, merged)
            created = True
        else:
            row, created = {**merged, "LastModifiedDate": now, "SystemModstamp": now}, False
        if journal is not None:
            journal.entries.append((obj.name, row["Id"], current))
        self._put(obj.name, row["Id"], row)
        return Upserted(row["Id"], created)

    def _defaults(self, obj: ObjectSpec, values: Row) -> Row:
        now = stamp(self.clock())
        rid = values.get("Id") or self.ids.new(obj.key_prefix)
        row: Row = {"Id": rid, "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now}
        for spec in obj.fields.values():
            if spec.auto_number:
                self._numbers[obj.name] = self._numbers.get(obj.name, 0) + 1
                row[spec.name] = f"{self._numbers[obj.name]:07d}"
            elif spec.type == "boolean":
                row[spec.name] = False
            elif spec.defaulted_on_create and spec.name in _DEFAULTS:
                row[spec.name] = _DEFAULTS[spec.name]
            elif spec.defaulted_on_create and spec.name == "Name":
                row[spec.name] = rid
        return {**row, **{k: v for k, v in values.items() if v is not None or k not in row}}

    def all_rows(self, obj: str) -> Iterator[Row]:
        yield from self.table(obj).values()

    def levels(self, obj: str, field: str) -> dict[tuple[str, str], Decimal]:
        """``field`` of each stock row per (product ERP_SKU__c, location ERP_Code__c);
        AssertionError on two rows for one pair."""
        product, location = (
            ("Product2Id", "LocationId") if obj == "ProductItem" else ("Product__c", "Warehouse__c")
        )
        skus = {r["Id"]: r.get("ERP_SKU__c") for r in self.all_rows("Product2")}
        codes = {r["Id"]: r.get("ERP_Code__c") for r in self.all_rows("Location")}
        out: dict[tuple[str, str], Decimal] = {}
        for r in self.all_rows(obj):
            key = (str(skus.get(r.get(product))), str(codes.get(r.get(location))))
            if key in out:
                raise AssertionError(f"duplicate {obj} for {key}")
            out[key] = Decimal(str(r.get(field) or 0))
        return out


def stamp(epoch_s: float) -> str:
    """A datetime as the REST API writes it: ``2026-03-02T01:00:00.000+0000``."""
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
