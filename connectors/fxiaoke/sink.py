"""Fxiaoke as a CrmSink: StockObj balances per product × warehouse, plus a movement mirror.

The "integration edition" target (architecture §5): the ERP owns the ledger, the CRM
shows balances. This module only performs single-record operations; the push
engine decides between update, look-up-and-bind and create.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from connectors.fxiaoke.client import FxiaokeClient, flt
from connectors.fxiaoke.describes import DescribeCache, ObjectFields
from connectors.fxiaoke.mapping import (
    code_or_orphan,
    level_fields,
    movement_fields,
    parse_decimal,
    reference_id,
    shown_blocked,
    shown_level,
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

        self.describes = DescribeCache(
            self.client,
            ttl_s=settings.describe_ttl_s,
            clock=clock,
            places=settings.decimal_places,
        )
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
        job (architecture §6.3), which keeps the record bound here."""
        filters = [flt(f, "EQ", v) for f, v in self._refs(key).items()]
        filters.append(flt("life_status", "EQ", "normal"))
        ids = self.client.find_ids(self.settings.stock_object, filters, limit=1)
        return ids[0] if ids else None

    def shown_level(self, value: LevelValue) -> LevelValue:
        """``value`` at the decimal places of the StockObj fields (describe, cached)."""
        return shown_level(self.settings, value, self.describes.get(self.settings.stock_object))

    def shown_reserved(self, value: LevelValue) -> Decimal:
        """The blocked_stock figure written for ``value`` (its own decimal places)."""
        stock = self.describes.get(self.settings.stock_object)
        return shown_blocked(self.settings, shown_level(self.settings, value, stock), stock)

    def _level_fields(self, value: LevelValue) -> dict[str, str]:
        stock = self.describes.get(self.settings.stock_object)
        return level_fields(self.settings, shown_level(self.settings, value, stock), stock)

    def create_level(self, key: StockKey, value: LevelValue) -> str:
        fields = {**self._refs(key), **self._level_fields(value)}
        crm_id = self.client.create(self.settings.stock_object, fields)
        if crm_id is None:
            crm_id = self.find_level(key)
        if crm_id is None:
            raise PermanentError(f"{self.settings.stock_object}: create answered without an id")
        return crm_id

    def update_level(self, crm_id: str, key: StockKey, value: LevelValue) -> None:
        self.client.update(self.settings.stock_object, crm_id, self._level_fields(value))

    def invalidate_level(self, crm_id: str, key: StockKey) -> None:
        """Invalidate a duplicate StockObj (``data/invalid``, reference §5)."""
        self.client.invalid(self.settings.stock_object, crm_id)

    def prepare_levels(self, keys: Sequence[StockKey]) -> None:
        """Resolve the products and warehouses of ``keys`` in bulk (100 codes a query)."""
        self.products.resolve_many(key.sku for key in keys)
        self.warehouses.resolve_many(key.warehouse for key in keys)

    def read_levels(self) -> Iterator[CrmLevel]:
        """Every live StockObj, oldest first, duplicates included; ids that map to no
        ERP code come back as ``crm:<id>``. ``reserved`` is the blocked figure when
        ``stock_blocked_field`` is configured (else None)."""
        s = self.settings
        fields = [
            s.stock_product_field,
            s.stock_warehouse_field,
            s.stock_real_field,
            s.stock_available_field,
        ]
        if s.stock_blocked_field:
            fields.append(s.stock_blocked_field)
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
        blocked = s.stock_blocked_field
        for row, pid, wid in zip(rows, product_ids, warehouse_ids, strict=True):
            yield CrmLevel(
                sku=code_or_orphan(skus, pid),
                warehouse=code_or_orphan(whs, wid),
                qty=parse_decimal(row.get(s.stock_real_field)) or Decimal(0),
                crm_id=str(row["_id"]),
                available=parse_decimal(row.get(s.stock_available_field)),
                reserved=parse_decimal(row.get(blocked)) if blocked else None,
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
        crm_id = self.client.create(s.movement_object, self._movement_fields(movement))
        # The documented custom-object create answer carries no dataId: find it by key.
        crm_id = crm_id or self.find_movement(movement.key)
        if crm_id is None:
            raise PermanentError(f"{s.movement_object}: create answered without an id")
        return crm_id

    def update_movement(self, crm_id: str, movement: Movement) -> None:
        self.client.update(self.settings.movement_object, crm_id, self._movement_fields(movement))

    def _movement_fields(self, movement: Movement) -> dict[str, Any]:
        mirror = self.describes.get(self.settings.movement_object)
        return movement_fields(self.settings, movement, mirror)

    # ------------------------------------------------------------ lifecycle
    def _written(self) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """(setting, object) → [(setting, field)] that stocksync writes (or reads by)."""
        s = self.settings
        stock = [
            ("stock_product_field", s.stock_product_field),
            ("stock_warehouse_field", s.stock_warehouse_field),
            ("stock_real_field", s.stock_real_field),
            ("stock_available_field", s.stock_available_field),
        ]
        if s.stock_blocked_field:
            stock.append(("stock_blocked_field", s.stock_blocked_field))
        expected = {
            ("stock_object", s.stock_object): stock,
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

    def _problems(self) -> list[ConfigProblem]:
        """Configured fields the tenant lacks, and required fields stocksync would leave empty."""
        s = self.settings
        problems: list[ConfigProblem] = []
        for (obj_setting, api_name), fields in self._written().items():
            try:
                describe = self.describes.get(api_name)
            except PermanentError as exc:
                problems.append(ConfigProblem(obj_setting, f"object {api_name!r}: {exc}"))
                continue
            problems.extend(
                ConfigProblem(setting, f"{api_name} has no field {field!r}")
                for setting, field in fields
                if not describe.has(field)
            )
            if api_name in (s.stock_object, s.movement_object):
                problems.extend(_unfilled(obj_setting, describe, {f for _, f in fields}))
        return problems

    def check(self) -> str:
        """Verify the configured objects and fields (describes, cached); prove the CRM answers.

        While every describe comes from the cache, reachability is proven by the
        cheapest call the reference offers: one query for one StockObj id. The token
        is only requested when due. Raises ConfigError listing every problem.
        """
        corp_id = self.client.corp_id
        fetched = self.describes.fetches
        problems = self._problems()
        if problems:
            raise ConfigError(problems)
        if self.describes.fetches == fetched:
            self.client.find_ids(self.settings.stock_object, [], limit=1)
        objects = ", ".join(api for _, api in self._written())
        return f"fxiaoke {corp_id} as {self.settings.open_user_id}: {objects} verified"

    def close(self) -> None:
        self.client.close()


def _unfilled(setting: str, describe: ObjectFields, written: set[str]) -> list[ConfigProblem]:
    """Required fields of an object stocksync writes that it does not fill: every create
    would be refused ("必填字段 … 未填写", reference §3, §7)."""
    return [
        ConfigProblem(
            setting, f"{describe.api_name} requires field {name!r}, which stocksync does not fill"
        )
        for name in describe.required()
        if name not in written
    ]


def build(settings: FxiaokeSettings, context: ConnectorContext) -> FxiaokeSink:
    """Registry factory (``connectors.fxiaoke.sink:build``)."""
    return FxiaokeSink(settings, context)
