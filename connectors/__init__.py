"""Connector registry: built-in names plus the entry-point group ``stocksync.connectors``.

Each connector is described by a ``ConnectorSpec`` whose settings model, factory
and emulator are imported lazily, so loading the registry costs nothing and an
unused connector's dependencies never load. An unknown name fails loudly with
the list of known ones (dlt's paginator map is the model).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

from sync.errors import ConfigError, ConfigProblem

Role = Literal["erp", "crm"]
ENTRY_POINT_GROUP = "stocksync.connectors"


def _load(ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module_name), attr)


@dataclass(frozen=True)
class ConnectorSpec:
    """Where a connector's pieces live, as ``module:attribute`` references."""

    name: str
    role: Role
    settings: str
    factory: str
    emulator: str | None = None
    description: str = ""
    extras: dict[str, str] = field(default_factory=dict)

    def settings_model(self) -> type[Any]:
        model: type[Any] = _load(self.settings)
        return model

    def build(self, settings: Any, context: Any) -> Any:
        factory: Callable[[Any, Any], Any] = _load(self.factory)
        return factory(settings, context)

    def emulator_factory(self) -> Callable[..., Any] | None:
        return _load(self.emulator) if self.emulator else None


BUILTIN: dict[str, ConnectorSpec] = {
    spec.name: spec
    for spec in (
        ConnectorSpec(
            name="memory",
            role="erp",
            settings="connectors.memory.source:MemoryErpSettings",
            factory="connectors.memory.source:build",
            description="in-memory ERP for tests and experiments",
        ),
        ConnectorSpec(
            name="memory-crm",
            role="crm",
            settings="connectors.memory.sink:MemoryCrmSettings",
            factory="connectors.memory.sink:build",
            description="in-memory CRM for tests and experiments",
        ),
        ConnectorSpec(
            name="k3cloud",
            role="erp",
            settings="connectors.k3cloud.settings:K3CloudSettings",
            factory="connectors.k3cloud.source:build",
            emulator="connectors.k3cloud.emulator:build_emulator",
            description="Kingdee K/3 Cloud (金蝶云星空) WebAPI",
        ),
        ConnectorSpec(
            name="fxiaoke",
            role="crm",
            settings="connectors.fxiaoke.sink:FxiaokeSettings",
            factory="connectors.fxiaoke.sink:build",
            emulator="connectors.fxiaoke.emulator:build_emulator",
            description="Fxiaoke / ShareCRM (纷享销客) OpenAPI, StockObj balances",
        ),
        ConnectorSpec(
            name="salesforce",
            role="crm",
            settings="connectors.salesforce.sink:SalesforceSettings",
            factory="connectors.salesforce.sink:build",
            emulator="connectors.salesforce.emulator:build_emulator",
            description="Salesforce REST API: ProductItem or a custom object, 200 upserts a call",
        ),
        ConnectorSpec(
            name="tryton",
            role="erp",
            settings="connectors.tryton.source:TrytonSettings",
            factory="connectors.tryton.source:build",
            description="Tryton ERP over JSON-RPC (done stock moves)",
        ),
        ConnectorSpec(
            name="sql",
            role="erp",
            settings="connectors.sql.settings:SqlSettings",
            factory="connectors.sql.source:build",
            description="any ERP database read over SQL (SAP Business One, Yonyou U8, …)",
        ),
    )
}


def _from_entry_points() -> dict[str, ConnectorSpec]:
    found: dict[str, ConnectorSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        spec = ep.load()
        if isinstance(spec, ConnectorSpec):
            found[spec.name] = spec
    return found


def available(role: Role | None = None) -> dict[str, ConnectorSpec]:
    """Every known connector (built-in first, plug-ins may add but not replace)."""
    specs = {**_from_entry_points(), **BUILTIN}
    return {n: s for n, s in sorted(specs.items()) if role is None or s.role == role}


def get(name: str, role: Role | None = None, *, path: str = "type") -> ConnectorSpec:
    """The connector called ``name``; a ConfigError listing the known names otherwise."""
    specs = available(role)
    if name not in specs:
        known = ", ".join(specs) or "none"
        kind = f"{role} connector" if role else "connector"
        raise ConfigError([ConfigProblem(path, f"unknown {kind} {name!r}; known: {known}")])
    return specs[name]
