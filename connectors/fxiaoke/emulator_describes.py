"""Seeded object describes of the emulator (reference §7 inventory objects + the movement mirror).

Only what the connector and the emulator's validation need: field types, required,
unique and reference targets. Real tenants have many more fields; check() only
looks for the configured ones.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class FieldDescribe:
    api_name: str
    type: str = "text"
    label: str = ""
    required: bool = False
    unique: bool = False
    target: str | None = None  # object_reference target apiName

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "api_name": self.api_name,
            "type": self.type,
            "label": self.label or self.api_name,
            "is_required": self.required,
            "is_unique": self.unique,
            "is_active": True,
        }
        if self.target:
            out["target_api_name"] = self.target
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


def _describe(api_name: str, label: str, *fields: FieldDescribe) -> ObjectDescribe:
    system = [FieldDescribe(n, "system") for n in SYSTEM_FIELDS if n != "name"]
    by_name = {f.api_name: f for f in (*system, *fields)}
    by_name.setdefault("name", FieldDescribe("name", "text", "name"))
    return ObjectDescribe(api_name, label, by_name)


def seeded_describes() -> dict[str, ObjectDescribe]:
    """The §7 inventory objects of the reference plus the default movement mirror."""
    f = FieldDescribe
    objects = [
        _describe(
            "ProductObj",
            "产品",
            f("name", "text", "产品名称", required=True),
            f("product_code", "text", "产品编码", unique=True),
            f("product_status", "select_one", "上下架"),
            f("unit", "select_one", "单位"),
            f("price", "currency", "价格"),
        ),
        _describe(
            "WarehouseObj",
            "仓库",
            f("name", "text", "仓库名称", required=True, unique=True),
            f("number", "text", "仓库编号"),
            f("is_enable", "select_one", "启用状态"),
            f("is_default", "true_or_false", "是否默认仓"),
        ),
        _describe(
            "StockObj",
            "库存",
            f("name", "auto_number", "库存编号"),
            f("product_id", "object_reference", "产品", required=True, target="ProductObj"),
            f("warehouse_id", "object_reference", "仓库", required=True, target="WarehouseObj"),
            f("real_stock", "number", "实际库存"),
            f("available_stock", "number", "可用库存"),
            f("blocked_stock", "number", "冻结库存"),
            f("safety_stock", "number", "安全库存"),
        ),
        _describe(
            "stock_movement__c",
            "库存流水",
            f("erp_key__c", "text", "ERP key", unique=True),
            f("kind__c", "text", "kind"),
            f("sku__c", "text", "sku"),
            f("warehouse__c", "text", "warehouse"),
            f("qty__c", "number", "qty"),
            f("occurred_at__c", "date_time", "occurred at"),
            f("doc_no__c", "text", "document no"),
            f("active__c", "true_or_false", "active"),
        ),
    ]
    return {o.api_name: o for o in objects}
