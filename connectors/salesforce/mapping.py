"""Pure payload ↔ model functions for the Salesforce target (no I/O).

A stock record carries the stocksync key in its External ID field and names its parents
by their own External ID fields (``"Product2": {"ERP_SKU__c": "A-100"}``, reference
§4.3), so one collections call creates or updates it without any look-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

from connectors.salesforce.settings import SalesforceSettings
from sync.errors import PermanentError
from sync.model import CrmLevel, LevelValue, Movement, StockKey

Json = dict[str, Any]

#: prefix of a code the record does not give (a parent without its External ID set)
UNMAPPED_PREFIX = "crm:"
#: describe types holding a decimal number whose ``scale`` counts (reference §6)
NUMBER_TYPES = frozenset({"double", "currency", "percent"})
INTEGER_TYPES = frozenset({"int", "long"})


@dataclass(frozen=True)
class Describe:
    """What stocksync reads of an object's describe: fields by name (reference §6)."""

    name: str
    fields: Mapping[str, Json]

    @classmethod
    def of(cls, body: Json) -> Describe:
        fields = {str(f.get("name")): f for f in body.get("fields") or [] if isinstance(f, dict)}
        return cls(str(body.get("name") or ""), fields)

    def has(self, name: str) -> bool:
        return name in self.fields

    def places(self, name: str, overrides: Mapping[str, int]) -> int | None:
        """Decimal places the field holds: the setting over the describe's ``scale``
        (integers: 0); None when neither says (the number is sent as it is)."""
        if name in overrides:
            return overrides[name]
        field = self.fields.get(name) or {}
        if field.get("type") in INTEGER_TYPES:
            return 0
        scale = field.get("scale")
        if field.get("type") in NUMBER_TYPES and isinstance(scale, int):
            return scale
        return None

    def is_upsert_key(self, name: str) -> bool:
        """Whether ``name`` can key an upsert: External ID or idLookup (reference §6)."""
        field = self.fields.get(name) or {}
        return bool(field.get("externalId") or field.get("idLookup"))

    def lookup_of(self, relationship: str) -> Json | None:
        """The lookup field whose relationship name is ``relationship`` (Product2 → Product2Id)."""
        return next(
            (f for f in self.fields.values() if f.get("relationshipName") == relationship), None
        )

    def required(self) -> list[str]:
        """Fields a create must fill: createable, not nillable, not defaulted (reference §6 [I])."""
        return [
            name
            for name, f in self.fields.items()
            if f.get("createable")
            and not f.get("nillable", True)
            and not f.get("defaultedOnCreate")
            and f.get("type") != "boolean"
        ]


def at_places(value: Decimal, places: int | None) -> Decimal:
    """``value`` rounded half-even to ``places`` decimals; as is when ``places`` is None.

    Salesforce stores more decimals than a field's scale when the API sends them and
    only its pages round (reference §7): stocksync rounds itself, at the boundary, so the
    CRM holds what a person sees and what reconcile compares. Half-even as Fxiaoke's.
    """
    if places is None or not value.is_finite():
        return value
    # quantize refuses a result longer than the context's 28 digits (a quantity beyond any
    # field's precision, or many places): count them, so such a value reaches the org,
    # which refuses that record alone (NUMBER_OUTSIDE_VALID_RANGE, reference §7)
    with localcontext() as ctx:
        ctx.prec = max(ctx.prec, value.adjusted() + places + 2)
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def number(value: Decimal) -> float | int:
    """A quantity as a JSON number (the REST API takes no strings for doubles): an int
    when whole, else a float of the already rounded value."""
    if not value.is_finite():
        raise PermanentError(f"cannot send non-finite quantity {value}")
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def parse_decimal(value: Any) -> Decimal | None:
    """A JSON number read back as Decimal (via its shortest text, so 139.62 stays 139.62)."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        found = Decimal(str(value))
    except InvalidOperation:
        return None
    return found if found.is_finite() else None


def stock_key_value(s: SalesforceSettings, key: StockKey) -> str:
    """The External ID value of ``key``'s record: ``<sku>|<warehouse>``.

    Raises PermanentError for a code holding the separator: two keys could then share
    one value (``A|B`` + ``C`` and ``A`` + ``B|C``), so such a row is stopped, not written.
    """
    for code in (key.sku, key.warehouse):
        if s.key_separator in code:
            raise PermanentError(
                f"code {code!r} holds crm.key_separator {s.key_separator!r}; choose another "
                "separator (the External ID value must name one key)",
                key=str(key),
            )
    return f"{key.sku}{s.key_separator}{key.warehouse}"


def parents(s: SalesforceSettings, key: StockKey) -> dict[str, tuple[str, str]]:
    """External ID field of each parent → (what, code), to name a parent the org lacks."""
    return {
        s.product_key_field: ("sku", key.sku),
        s.location_key_field: ("warehouse", key.warehouse),
    }


def level_record(
    s: SalesforceSettings, key: StockKey, shown: LevelValue, reserved: Decimal
) -> Json:
    """One stock record for a collections upsert; ``shown`` from ``shown_level``."""
    record: Json = {
        s.stock_key_field: stock_key_value(s, key),
        s.stock_product_relationship: {s.product_key_field: key.sku},
        s.stock_location_relationship: {s.location_key_field: key.warehouse},
        s.stock_quantity_field: number(shown.real),
    }
    if s.stock_available_field:
        record[s.stock_available_field] = number(shown.available)
    if s.stock_reserved_field:
        record[s.stock_reserved_field] = number(reserved)
    return record


def level_fields(s: SalesforceSettings, shown: LevelValue, reserved: Decimal) -> Json:
    """The number fields alone, for an update by id (parents are create-only, §8.1)."""
    record = level_record(s, StockKey("x", "x"), shown, reserved)
    for name in (s.stock_key_field, s.stock_product_relationship, s.stock_location_relationship):
        record.pop(name)
    return record


def level_soql(s: SalesforceSettings, where: str = "", limit: int | None = None) -> str:
    """The SOQL reading stock records with their parents' codes, oldest (lowest Id) first."""
    fields = [
        "Id",
        s.stock_key_field,
        f"{s.stock_product_relationship}.{s.product_key_field}",
        f"{s.stock_location_relationship}.{s.location_key_field}",
        s.stock_quantity_field,
    ]
    fields += [f for f in (s.stock_available_field, s.stock_reserved_field) if f]
    soql = f"SELECT {', '.join(dict.fromkeys(fields))} FROM {s.stock_object}"
    if where:
        soql += f" WHERE {where}"
    soql += " ORDER BY Id"
    return soql + (f" LIMIT {limit}" if limit else "")


def soql_string(value: str) -> str:
    """A SOQL string literal: quoted, with backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _parent_code(record: Json, relationship: str, field: str) -> str | None:
    parent = record.get(relationship)
    code = parent.get(field) if isinstance(parent, dict) else None
    return str(code) if code not in (None, "") else None


def parse_level(s: SalesforceSettings, record: Json) -> CrmLevel:
    """A stock record as read by ``level_soql``; a parent without its code reads as
    ``crm:<record id>`` (reconcile then reports the record as an orphan)."""
    crm_id = str(record.get("Id") or "")
    sku = _parent_code(record, s.stock_product_relationship, s.product_key_field)
    warehouse = _parent_code(record, s.stock_location_relationship, s.location_key_field)
    available = (
        parse_decimal(record.get(s.stock_available_field)) if s.stock_available_field else None
    )
    reserved = parse_decimal(record.get(s.stock_reserved_field)) if s.stock_reserved_field else None
    return CrmLevel(
        sku=sku or f"{UNMAPPED_PREFIX}{crm_id}",
        warehouse=warehouse or f"{UNMAPPED_PREFIX}{crm_id}",
        qty=parse_decimal(record.get(s.stock_quantity_field)) or Decimal(0),
        crm_id=crm_id,
        available=available,
        reserved=reserved,
    )


def movement_record(s: SalesforceSettings, movement: Movement, places: int | None) -> Json:
    """One movement mirror record, keyed by the movement key (its External ID)."""
    return {
        s.movement_key_field: movement.key,
        s.movement_kind_field: movement.kind.value,
        s.movement_sku_field: movement.sku,
        s.movement_warehouse_field: movement.warehouse,
        s.movement_qty_field: number(at_places(movement.qty, places)),
        s.movement_date_field: movement.occurred_at.isoformat(timespec="seconds"),
        s.movement_doc_no_field: movement.doc_no,
        s.movement_active_field: movement.active,
    }
