"""The Salesforce sink against the emulator in-process: one fake clock for both, the two
stock-object set-ups (ProductItem with a custom External ID; the custom Stock_Level__c)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connectors._emulator import transport_for
from connectors.salesforce.emulator import SalesforceEmulator, build_emulator
from connectors.salesforce.sink import SalesforceSettings, SalesforceSink
from sync.ports import ConnectorContext, MemoryTokenCache, TokenCache

BASE_URL = "https://sf.test"

#: the two set-ups of README "Pushing to Salesforce", as crm settings over the defaults
SETUPS: dict[str, dict[str, Any]] = {
    "product_item": {
        "stock_available_field": "Available_Quantity__c",
        "stock_reserved_field": "Reserved_Quantity__c",
    },
    "custom_object": {
        "stock_object": "Stock_Level__c",
        "stock_product_relationship": "Product__r",
        "stock_location_relationship": "Warehouse__r",
        "stock_quantity_field": "Quantity__c",
        "stock_available_field": "Available_Quantity__c",
        "stock_reserved_field": "Reserved_Quantity__c",
    },
}
#: (stock object, its lookups to Product2 and Location, quantity field) per set-up
OBJECTS = {
    "product_item": ("ProductItem", "Product2Id", "LocationId", "QuantityOnHand"),
    "custom_object": ("Stock_Level__c", "Product__c", "Warehouse__c", "Quantity__c"),
}


class FakeClock:
    """Wall clock of the emulator and the connector; ``sleep`` moves it instead of waiting."""

    def __init__(self, start: datetime = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)) -> None:
        self.t = start.timestamp()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds


def crm_settings(
    emulator: SalesforceEmulator, setup: str = "product_item", **extra: Any
) -> dict[str, Any]:
    """The ``crm:`` section for the emulator (served at ``BASE_URL`` or a loopback URL)."""
    info = emulator.connection_info(BASE_URL)
    return {
        "type": "salesforce",
        "login_url": BASE_URL,
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "max_attempts": 3,
        **SETUPS[setup],
        **extra,
    }


def make_sink(
    emulator: SalesforceEmulator,
    clock: FakeClock,
    setup: str = "product_item",
    token_cache: TokenCache | None = None,
    pipeline: str = "default",
    **extra: Any,
) -> SalesforceSink:
    context = ConnectorContext(
        pipeline=pipeline,
        now=clock.now,
        sleep=clock.sleep,
        token_cache=token_cache or MemoryTokenCache(),
        http_transport=transport_for(emulator),
    )
    settings = SalesforceSettings.model_validate(crm_settings(emulator, setup, **extra))
    return SalesforceSink(settings, context)


def demo_org(clock: FakeClock, **options: Any) -> SalesforceEmulator:
    return build_emulator("demo", clock=clock.time, **options)


def levels(emulator: SalesforceEmulator, setup: str) -> dict[tuple[str, str], Decimal]:
    """Quantity per (sku, warehouse) in the org; AssertionError on a duplicate record."""
    obj, _, _, qty = OBJECTS[setup]
    return emulator.levels(obj, qty)


def stock_rows(emulator: SalesforceEmulator, setup: str) -> Iterator[dict[str, Any]]:
    yield from emulator.records(OBJECTS[setup][0])
