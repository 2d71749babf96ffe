"""The emulated org's objects and fields, and their describe answers (reference §6, §8).

Field properties are the describe keys a connector reads (name, type, precision,
scale, length, nillable, externalId, unique, idLookup, createable, updateable,
referenceTo, relationshipName, defaultedOnCreate). Objects of the demo scenario:

- ``Product2`` and ``Location`` with External ID fields ``ERP_SKU__c`` / ``ERP_Code__c``
  (the names of reference §4.2's example); ``Location.IsInventoryLocation`` (§8.1).
- ``ProductItem`` (Field Service, §8.1): ``Product2Id``/``LocationId`` required and
  create-only, ``QuantityOnHand`` double, plus the custom External ID ``ERP_Key__c``
  and ``Reserved_Quantity__c``/``Available_Quantity__c``.
- ``Stock_Level__c``, the custom-object alternative of §8.2, same custom fields.
- ``Stock_Movement__c``, a movement mirror keyed by ``ERP_Key__c``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from connectors._catalogue import K3CLOUD_DEMO_MATERIALS, K3CLOUD_DEMO_WAREHOUSES

NUMBER_TYPES = frozenset({"double", "currency", "percent"})
TEXT_TYPES = frozenset({"string", "picklist", "textarea", "email", "phone", "url"})
#: the SOAP type describe reports per field type
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "boolean": "xsd:boolean",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
}
#: [I] QuantityOnHand's describe precision/scale is not in the reference (§8.1 gives the
#: type only); 18/2 is what standard double fields report. A constructor option changes it.
QUANTITY_ON_HAND_PRECISION = (18, 2)


@dataclass(frozen=True)
class FieldSpec:
    """One field of an object, as describe reports it."""

    name: str
    type: str
    label: str = ""
    precision: int = 0
    scale: int = 0
    length: int = 0
    nillable: bool = True
    external_id: bool = False
    unique: bool = False
    id_lookup: bool = False
    createable: bool = True
    updateable: bool = True
    reference_to: str | None = None
    relationship_name: str | None = None
    defaulted_on_create: bool = False
    auto_number: bool = False
    case_sensitive: bool = False

    @property
    def required_on_create(self) -> bool:
        """Not nillable, writable and not given a value by the platform: REQUIRED_FIELD_MISSING
        when a create leaves it out (§3)."""
        return not self.nillable and self.createable and not self.defaulted_on_create

    @property
    def upsert_key(self) -> bool:
        """May name the record in an upsert URL (§6: externalId or idLookup) [I]."""
        return self.external_id or self.id_lookup

    def describe(self) -> dict[str, Any]:
        custom = self.name.endswith("__c")
        return {
            "name": self.name,
            "label": self.label or self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "precision": self.precision,
            "scale": self.scale,
            "length": self.length,
            "digits": 0,
            "nillable": self.nillable,
            "externalId": self.external_id,
            "unique": self.unique,
            "idLookup": self.id_lookup,
            "createable": self.createable,
            "updateable": self.updateable,
            "referenceTo": [self.reference_to] if self.reference_to else [],
            "relationshipName": self.relationship_name,
            "calculated": False,
            "defaultedOnCreate": self.defaulted_on_create,
            "autoNumber": self.auto_number,
            "caseSensitive": self.case_sensitive,
            "custom": custom,
            "filterable": True,
            "sortable": self.type != "textarea",
            "groupable": self.type not in NUMBER_TYPES,
        }


@dataclass
class ObjectSpec:
    """An sObject type: its key prefix and fields (looked up case-insensitively, as SOQL does)."""

    name: str
    key_prefix: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    label: str = ""

    def add(self, spec: FieldSpec) -> None:
        self.fields[spec.name.lower()] = spec

    def field(self, name: str) -> FieldSpec | None:
        return self.fields.get(name.lower())

    def relationship(self, name: str) -> FieldSpec | None:
        """The reference field whose relationshipName is ``name`` (``Product2``, ``Product__r``)."""
        lower = name.lower()
        for spec in self.fields.values():
            if spec.relationship_name and spec.relationship_name.lower() == lower:
                return spec
        return None

    def describe(self, version: str) -> dict[str, Any]:
        custom = self.name.endswith("__c")
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label or self.name,
            "labelPlural": (self.label or self.name) + "s",
            "keyPrefix": self.key_prefix,
            "custom": custom,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "searchable": True,
            "fields": [f.describe() for f in self.fields.values()],
            "childRelationships": [],
            "recordTypeInfos": [],
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def summary(self, version: str) -> dict[str, Any]:
        """The object's entry in ``GET /sobjects`` (global describe)."""
        full = self.describe(version)
        keys = ("name", "label", "labelPlural", "keyPrefix", "custom", "createable")
        return {**{k: full[k] for k in keys}, "queryable": True, "urls": full["urls"]}


def _system_fields() -> list[FieldSpec]:
    ro: dict[str, Any] = {"nillable": False, "createable": False, "updateable": False}
    return [
        FieldSpec(
            "Id", "id", "Record ID", length=18, id_lookup=True, defaulted_on_create=True, **ro
        ),
        FieldSpec("CreatedDate", "datetime", defaulted_on_create=True, **ro),
        FieldSpec("LastModifiedDate", "datetime", defaulted_on_create=True, **ro),
        FieldSpec("SystemModstamp", "datetime", defaulted_on_create=True, **ro),
    ]


def _obj(name: str, prefix: str, *fields: FieldSpec) -> ObjectSpec:
    spec = ObjectSpec(name, prefix)
    for f in (*_system_fields(), *fields):
        spec.add(f)
    return spec


def text(name: str, length: int = 255, **kw: Any) -> FieldSpec:
    return FieldSpec(name, kw.pop("type", "string"), length=length, **kw)


def number(name: str, precision: int, scale: int, **kw: Any) -> FieldSpec:
    return FieldSpec(name, kw.pop("type", "double"), precision=precision, scale=scale, **kw)


def ext_key(name: str, length: int = 255) -> FieldSpec:
    """A custom External ID, unique and case-sensitive (§8.1's ``ERP_Key__c``)."""
    return text(name, length, external_id=True, unique=True, case_sensitive=True)


def lookup(name: str, target: str, relationship: str, **kw: Any) -> FieldSpec:
    return FieldSpec(
        name, "reference", length=18, reference_to=target, relationship_name=relationship, **kw
    )


def demo_objects(qoh: tuple[int, int] = QUANTITY_ON_HAND_PRECISION) -> dict[str, ObjectSpec]:
    """The demo scenario's objects (module docstring), by name."""
    create_only: dict[str, Any] = {"nillable": False, "updateable": False}
    objects = [
        _obj(
            "Product2",
            "01t",
            text("Name", nillable=False, id_lookup=True),
            text("ProductCode"),
            FieldSpec("IsActive", "boolean", nillable=False, defaulted_on_create=True),
            text("QuantityUnitOfMeasure", type="picklist"),
            ext_key("ERP_SKU__c", 80),
        ),
        _obj(
            "Location",
            "131",
            text("Name", nillable=False, id_lookup=True),
            text("LocationType", type="picklist", nillable=False, defaulted_on_create=True),
            FieldSpec("IsInventoryLocation", "boolean", nillable=False, defaulted_on_create=True),
            ext_key("ERP_Code__c", 80),
        ),
        _obj(
            "ProductItem",
            "0TR",
            lookup("Product2Id", "Product2", "Product2", **create_only),
            lookup("LocationId", "Location", "Location", **create_only),
            number("QuantityOnHand", *qoh, nillable=False),
            text("QuantityUnitOfMeasure", type="picklist"),
            text("SerialNumber"),
            text(
                "ProductItemNumber",
                nillable=False,
                id_lookup=True,
                auto_number=True,
                createable=False,
                updateable=False,
                defaulted_on_create=True,
            ),
            ext_key("ERP_Key__c"),
            number("Reserved_Quantity__c", 16, 4),
            number("Available_Quantity__c", 16, 4),
        ),
        _obj(
            "Stock_Level__c",
            "a0S",
            text("Name", 80, nillable=False, defaulted_on_create=True, id_lookup=True),
            lookup("Product__c", "Product2", "Product__r", nillable=False),
            lookup("Warehouse__c", "Location", "Warehouse__r", nillable=False),
            number("Quantity__c", 16, 4, nillable=False),
            number("Reserved_Quantity__c", 16, 4),
            number("Available_Quantity__c", 16, 4),
            text("Unit__c", 20),
            ext_key("ERP_Key__c"),
            FieldSpec("Synced_At__c", "datetime"),
        ),
        _obj(
            "Stock_Movement__c",
            "a0M",
            text("Name", 80, nillable=False, defaulted_on_create=True, id_lookup=True),
            ext_key("ERP_Key__c"),
            text("Kind__c", 40),
            text("SKU__c", 80),
            text("Warehouse__c", 80),
            number("Quantity__c", 16, 4, nillable=False),
            FieldSpec("Occurred_At__c", "datetime"),
            text("Document_No__c", 80),
            FieldSpec("Active__c", "boolean", nillable=False, defaulted_on_create=True),
        ),
    ]
    return {o.name: o for o in objects}


#: the demo's own codes, then the K/3 Cloud emulator's demo scenario's (connectors/_catalogue.py)
DEMO_PRODUCTS = [
    *((f"SKU-{i:04d}", f"Demo product {i}") for i in range(1, 21)),
    *K3CLOUD_DEMO_MATERIALS.items(),
]
DEMO_LOCATIONS = [
    ("WH-MAIN", "Main warehouse"),
    ("WH-EAST", "East warehouse"),
    *K3CLOUD_DEMO_WAREHOUSES.items(),
]


def with_field(obj: ObjectSpec, spec: FieldSpec) -> ObjectSpec:
    """A copy of ``obj`` with ``spec`` added (or replaced)."""
    copy = replace(obj, fields=dict(obj.fields))
    copy.add(spec)
    return copy


_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def id18(id15: str) -> str:
    """The 18-character, case-insensitive form of a 15-character record Id (Salesforce's
    checksum: one character per 5, from the positions of its upper-case letters)."""
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, c in enumerate(id15[chunk * 5 : chunk * 5 + 5]) if c.isupper())
        suffix += _SUFFIX[bits]
    return id15 + suffix


class IdMaker:
    """Record Ids: key prefix, org pod ``5g000``, a base-62 counter; 18 characters."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new(self, prefix: str) -> str:
        n, digits = next(self._counter), ""
        for _ in range(7):
            n, r = divmod(n, 62)
            digits = _BASE62[r] + digits
        return id18(prefix + "5g000" + digits)
