"""Seeded object describes of the emulator (reference §7 inventory objects + the movement mirror).

Only what the connector and the emulator's validation need: field types, required,
unique, read-only, decimal places and reference targets. Real tenants have many
more fields; check() only looks for the configured ones.

Field attributes are served under the names of the describe example in Fxiaoke's
developer manual (``api_name``, ``type``, ``label``, ``is_required``, ``is_unique``,
``is_active``, ``define_type``, ``auto_adapt_places``); ``decimal_places`` and
``is_readonly`` are our names for the number precision and the write ban [I]: the
reference documents the precision (§7 "number, 2 dp") but not the key carrying it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

SYSTEM_FIELDS = (
    "_id",
    "name",
    "owner",
    "record_type",
    "life_status",
    "create_time",
    "last_modified_time",
    "is_deleted",
    "object_describe_api_name",
)
#: system fields a create may set (reference §5.2 create example, §5.3 record_type)
WRITABLE_SYSTEM_FIELDS = frozenset({"owner", "record_type"})
NUMBER_TYPES = frozenset({"number", "currency", "percentile"})
#: suffixes of the read-only companion fields a read returns (reference §5.3)
READ_ONLY_SUFFIXES = ("__r", "__l", "__o", "__v", "__relation_ids")


@dataclass(frozen=True)
class FieldDescribe:
    api_name: str
    type: str = "text"
    label: str = ""
    required: bool = False
    unique: bool = False
    target: str | None = None  # object_reference target apiName
    #: digits after the decimal point of a number field (None for other types)
    decimal_places: int | None = None
    #: quote fields (copied from a referenced record) and system fields cannot be written
    read_only: bool = False

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "api_name": self.api_name,
            "type": self.type,
            "label": self.label or self.api_name,
            "is_required": self.required,
            "is_unique": self.unique,
            "is_readonly": self.read_only,
            "is_active": True,
            "define_type": "custom" if self.api_name.endswith("__c") else "package",
            "auto_adapt_places": False,
        }
        if self.target:
            out["target_api_name"] = self.target
        if self.decimal_places is not None:
            out["decimal_places"] = self.decimal_places
        return out


@dataclass
class ObjectDescribe:
    api_name: str
    label: str
    fields: dict[str, FieldDescribe]

    def as_json(self) -> dict[str, Any]:
        return {
            "api_name": self.api_name,
            "display_name": self.label,
            "define_type": "custom" if self.api_name.endswith("__c") else "package",
            "fields": {name: f.as_json() for name, f in self.fields.items()},
        }

    def with_field(self, api_name: str, **changes: Any) -> None:
        """Change one field's attributes (tests: a tenant with other decimal places)."""
        self.fields[api_name] = replace(self.fields[api_name], **changes)


def _describe(api_name: str, label: str, *fields: FieldDescribe) -> ObjectDescribe:
    system = [
        FieldDescribe(n, "system", read_only=n not in WRITABLE_SYSTEM_FIELDS)
        for n in SYSTEM_FIELDS
        if n != "name"
    ]
    by_name = {f.api_name: f for f in (*system, *fields)}
    by_name.setdefault("name", FieldDescribe("name", "text", "name"))
    return ObjectDescribe(api_name, label, by_name)


def _number(api_name: str, label: str, places: int, *, required: bool = False) -> FieldDescribe:
    return FieldDescribe(api_name, "number", label, required=required, decimal_places=places)


def _quote(api_name: str, label: str) -> FieldDescribe:
    return FieldDescribe(api_name, "quote", label, read_only=True)


def _stock() -> ObjectDescribe:
    """StockObj (reference §7): three required 2-dp numbers, product quote fields read-only."""
    f = FieldDescribe
    return _describe(
        "StockObj",
        "库存",
        f("name", "auto_number", "库存编号"),
        f("product_id", "object_reference", "产品", required=True, target="ProductObj"),
        f("warehouse_id", "object_reference", "仓库", required=True, target="WarehouseObj"),
        _number("real_stock", "实际库存", 2, required=True),
        _number("available_stock", "可用库存", 2, required=True),
        _number("blocked_stock", "冻结库存", 2, required=True),
        _number("safety_stock", "安全库存", 2),
        _quote("product_status", "上下架"),
        _quote("is_give_away", "是否赠品"),
        _quote("specs", "规格"),
        _quote("unit", "单位"),
        _quote("category", "产品分类"),
    )


def seeded_describes() -> dict[str, ObjectDescribe]:
    """The §7 inventory objects of the reference plus the default movement mirror.

    The mirror is a tenant's own custom object; its quantity field is seeded
    with 4 decimal places (a tenant's choice; the ledger keeps up to 6).
    """
    f = FieldDescribe
    objects = [
        _describe(
            "ProductObj",
            "产品",
            f("name", "text", "产品名称", required=True),
            f("product_code", "text", "产品编码", unique=True),
            f("product_status", "select_one", "上下架"),
            f("unit", "select_one", "单位"),
            f("price", "currency", "价格", required=True, decimal_places=2),
        ),
        _describe(
            "WarehouseObj",
            "仓库",
            f("name", "text", "仓库名称", required=True, unique=True),
            f("number", "text", "仓库编号", required=True),
            f("is_enable", "select_one", "启用状态"),
            f("is_default", "true_or_false", "是否默认仓", required=True),
        ),
        _stock(),
        _describe(
            "stock_movement__c",
            "库存流水",
            f("erp_key__c", "text", "ERP key", unique=True),
            f("kind__c", "text", "kind"),
            f("sku__c", "text", "sku"),
            f("warehouse__c", "text", "warehouse"),
            _number("qty__c", "qty", 4),
            f("occurred_at__c", "date_time", "occurred at"),
            f("doc_no__c", "text", "document no"),
            f("active__c", "true_or_false", "active"),
        ),
    ]
    return {o.api_name: o for o in objects}
