"""Fxiaoke as a CrmSink: StockObj balances per product × warehouse, plus a movement mirror.

The "integration edition" target (DESIGN §5): the ERP owns the ledger, the CRM
shows balances. This module only performs single-record operations; the push
engine decides between update, look-up-and-bind and create.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from connectors.fxiaoke.client import FxiaokeClient, flt
from connectors.fxiaoke.mapping import (
    code_or_orphan,
    level_fields,
    movement_fields,
    parse_decimal,
    reference_id,
)
from connectors.fxiaoke.resolver import CodeResolver
from connectors.fxiaoke.settings import FxiaokeSettings
from sync.errors import ConfigError, ConfigProblem, PermanentError
from sync.model import CrmLevel, LevelValue, Movement, StockKey
from sync.ports import ConnectorContext

__all__ = ["FxiaokeSettings", "FxiaokeSink", "build"]

_READ_CHUNK = 100


class FxiaokeSink:
    """CrmSink over the Fxiaoke OpenAPI."""

    name = "fxiaoke"

    def __init__(self, settings: FxiaokeSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.client = FxiaokeClient(settings, context)

        def clock() -> float:
            return context.now().timestamp()

        common: dict[str, Any] = {"ttl_s": settings.lookup_ttl_s, "clock": clock}
        self.products = CodeResolver(
            self.client,
            what="sku",
            api_name=settings.product_object,
            code_field=settings.product_code_field,
            explicit=settings.product_map,
            **common,
        )
        self.warehouses = CodeResolver(
            self.client,
            what="warehouse",
            api_name=settings.warehouse_object,
            code_field=settings.warehouse_code_field,
            explicit=settings.warehouse_map,
            **common,
        )

    def __repr__(self) -> str:
        return f"FxiaokeSink(base_url={self.settings.base_url!r}, app_id={self.settings.app_id!r})"

    # ------------------------------------------------------------ levels
    def _refs(self, key: StockKey) -> dict[str, str]:
        s = self.settings
        return {
            s.stock_product_field: self.products.id_for(key.sku),
            s.stock_warehouse_field: self.warehouses.id_for(key.warehouse),
        }

    def find_level(self, key: StockKey) -> str | None:
        """The oldest live StockObj for (product, warehouse); duplicates are reconcile's
        job (design note 19), which keeps the record bound here."""
        filters = [flt(f, "EQ", v) for f, v in self._refs(key).items()]
        filters.append(flt("life_status", "EQ", "normal"))
        ids = self.client.find_ids(self.settings.stock_object, filters, limit=1)
        return ids[0] if ids else None

    def create_level(self, key: StockKey, value: LevelValue) -> str:
        fields = {**self._refs(key), **level_fields(self.settings, value)}
        crm_id = self.client.create(self.settings.stock_object, fields)
        if crm_id is None:
            crm_id = self.find_level(key)
        if crm_id is None:
            raise PermanentError(f"{self.settings.stock_object}: create answered without an id")
        return crm_id

    def update_level(self, crm_id: str, key: StockKey, value: LevelValue) -> None:
        self.client.update(self.settings.stock_object, crm_id, level_fields(self.settings, value))

    def invalidate_level(self, crm_id: str, key: StockKey) -> None:
        """Invalidate a duplicate StockObj (``data/invalid``, reference §5)."""
        self.client.invalid(self.settings.stock_object, crm_id)

    def prepare_levels(self, keys: Sequence[StockKey]) -> None:
        """Resolve the products and warehouses of ``keys`` in bulk (100 codes a query)."""
        self.products.resolve_many(key.sku for key in keys)
        self.warehouses.resolve_many(key.warehouse for key in keys)

    def read_levels(self) -> Iterator[CrmLevel]:
        """Every live StockObj, oldest first, duplicates included; ids that map to no
        ERP code come back as ``crm:<id>``."""
        s = self.settings
        fields = [
            s.stock_product_field,
            s.stock_warehouse_field,
            s.stock_real_field,
            s.stock_available_field,
        ]
        rows = self.client.iter_query(
            s.stock_object, [flt("life_status", "EQ", "normal")], fields=fields, keyset=True
        )
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= _READ_CHUNK:
                yield from self._levels(chunk)
                chunk = []
        yield from self._levels(chunk)

    def _levels(self, rows: list[dict[str, Any]]) -> Iterator[CrmLevel]:
        s = self.settings
        product_ids = [reference_id(r.get(s.stock_product_field)) for r in rows]
        warehouse_ids = [reference_id(r.get(s.stock_warehouse_field)) for r in rows]
        skus = self.products.codes_for(i for i in product_ids if i)
        whs = self.warehouses.codes_for(i for i in warehouse_ids if i)
        for row, pid, wid in zip(rows, product_ids, warehouse_ids, strict=True):
            yield CrmLevel(
                sku=code_or_orphan(skus, pid),
                warehouse=code_or_orphan(whs, wid),
                qty=parse_decimal(row.get(s.stock_real_field)) or Decimal(0),
                crm_id=str(row["_id"]),
                available=parse_decimal(row.get(s.stock_available_field)),
            )

    # ------------------------------------------------------------ movements
    def find_movement(self, movement_key: str) -> str | None:
        s = self.settings
        ids = self.client.find_ids(
            s.movement_object, [flt(s.movement_key_field, "EQ", movement_key)]
        )
        return ids[0] if ids else None

    def create_movement(self, movement: Movement) -> str:
        s = self.settings
        crm_id = self.client.create(s.movement_object, movement_fields(s, movement))
        # The documented custom-object create answer carries no dataId: find it by key.
        crm_id = crm_id or self.find_movement(movement.key)
        if crm_id is None:
            raise PermanentError(f"{s.movement_object}: create answered without an id")
        return crm_id

    def update_movement(self, crm_id: str, movement: Movement) -> None:
        s = self.settings
        self.client.update(s.movement_object, crm_id, movement_fields(s, movement))

    # ------------------------------------------------------------ lifecycle
    def _expected(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """(setting, object) → [(setting, field)] that check() verifies."""
        s = self.settings
        expected = {
            ("stock_object", s.stock_object): [
                ("stock_product_field", s.stock_product_field),
                ("stock_warehouse_field", s.stock_warehouse_field),
                ("stock_real_field", s.stock_real_field),
                ("stock_available_field", s.stock_available_field),
            ],
            ("product_object", s.product_object): [("product_code_field", s.product_code_field)],
            ("warehouse_object", s.warehouse_object): [
                ("warehouse_code_field", s.warehouse_code_field)
            ],
        }
        if s.verify_movement_object:
            expected[("movement_object", s.movement_object)] = [
                (name, getattr(s, name))
                for name in type(s).model_fields
                if name.startswith("movement_") and name.endswith("_field")
            ]
        return expected

    def check(self) -> str:
        """Get a token, then describe every configured object; list every missing piece."""
        corp_id = self.client.corp_id
        problems: list[ConfigProblem] = []
        for (obj_setting, api_name), fields in self._expected().items():
            try:
                describe = self.client.describe(api_name)
            except PermanentError as exc:
                problems.append(ConfigProblem(obj_setting, f"object {api_name!r}: {exc}"))
                continue
            have = set(describe.get("fields") or {})
            problems.extend(
                ConfigProblem(setting, f"{api_name} has no field {field!r}")
                for setting, field in fields
                if field not in have
            )
        if problems:
            raise ConfigError(problems)
        objects = ", ".join(api for _, api in self._expected())
        return f"fxiaoke {corp_id} as {self.settings.open_user_id}: {objects} verified"

    def close(self) -> None:
        self.client.close()


def build(settings: FxiaokeSettings, context: ConnectorContext) -> FxiaokeSink:
    """Registry factory (``connectors.fxiaoke.sink:build``)."""
    return FxiaokeSink(settings, context)
