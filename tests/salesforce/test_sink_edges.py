"""Edges of the Salesforce sink against the emulator: answers without the usage header,
quantities too long for a decimal context, the session's token kept out of reprs."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from connectors._emulator import transport_for
from connectors.salesforce.mapping import at_places
from connectors.salesforce.sink import SalesforceSettings, SalesforceSink
from sync.errors import BudgetExhaustedError, PermanentError
from sync.model import LevelValue, StockKey
from sync.ports import ConnectorContext, MemoryTokenCache
from sync.push import Pusher, PushOptions
from sync.state import StateStore
from tests.salesforce.sink_rig import FakeClock, crm_settings, demo_org, levels, make_sink
from tests.salesforce.test_push_properties import SKUS, WAREHOUSES, Pipeline

A, B, C = (StockKey(sku, "WH-MAIN") for sku in ("SKU-0001", "SKU-0002", "SKU-0003"))


class WithoutUsageHeader(httpx.BaseTransport):
    """The emulator behind a proxy that drops ``Sforce-Limit-Info`` from every answer."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.headers.pop("Sforce-Limit-Info", None)
        return response


def test_without_the_usage_header_the_ceiling_holds_through_limits() -> None:
    clock = FakeClock()
    emulator = demo_org(clock)
    context = ConnectorContext(
        now=clock.now,
        sleep=clock.sleep,
        token_cache=MemoryTokenCache(),
        http_transport=WithoutUsageHeader(transport_for(emulator)),
    )
    settings = SalesforceSettings.model_validate(crm_settings(emulator, budget_recheck_s=300))
    sink = SalesforceSink(settings, context)
    value = LevelValue(Decimal(4), Decimal(4))
    sink.upsert_levels([(A, value)])  # no figure anywhere yet: /limits is read, 0 used
    emulator.set_api_usage(used=4000, limit=5000)  # other integrations use 80 %
    sink.upsert_levels([(B, value)])  # /limits was read 0 s ago: not again yet
    clock.advance(300)
    with pytest.raises(BudgetExhaustedError, match="of the org's 5000"):
        sink.upsert_levels([(C, value)])
    assert (C.sku, C.warehouse) not in levels(emulator, "product_item")
    usage = sink.api_usage()
    assert usage is not None and (usage.limit, usage.ceiling) == (5000, 2500)
    clock.advance(60)
    calls = dict(emulator.calls)
    with pytest.raises(BudgetExhaustedError):  # paused: no call until the recheck
        sink.upsert_levels([(C, value)])
    assert dict(emulator.calls) == calls
    emulator.set_api_usage(used=1000)
    clock.advance(300)
    sink.upsert_levels([(C, value)])
    assert levels(emulator, "product_item")[(C.sku, C.warehouse)] == 4


@pytest.mark.parametrize("places", [2, 30])
def test_a_quantity_longer_than_a_decimal_context_is_that_records_error(places: int) -> None:
    clock = FakeClock()
    emulator = demo_org(clock)
    sink = make_sink(emulator, clock, decimal_places={"QuantityOnHand": places})
    huge = Decimal("1e30") if places == 2 else Decimal(5)
    fine = LevelValue(Decimal(1), Decimal(1))
    outcomes = sink.upsert_levels([(A, fine), (B, LevelValue(huge, huge)), (C, fine)])
    assert outcomes[0].error is None and outcomes[2].error is None
    if places == 2:  # beyond QuantityOnHand's 16 integer digits: refused by the org
        assert isinstance(outcomes[1].error, PermanentError)
        assert "NUMBER_OUTSIDE_VALID_RANGE" in str(outcomes[1].error)
    else:
        assert outcomes[1].error is None
    assert at_places(Decimal("1e30"), 2) == Decimal("1e30")


def test_the_sessions_repr_holds_no_token() -> None:
    clock = FakeClock()
    sink = make_sink(demo_org(clock), clock)
    session = sink.client.session()
    assert session.token and session.token not in repr(session)


def test_duplicates_read_oldest_first_across_ids_differing_in_case() -> None:
    """The keyed record made before one added by hand is read first, also where their
    Ids differ in case only at the last place that changed (``...0ZGAQ``, ``...0aGAA``)."""
    clock = FakeClock()
    emulator = demo_org(clock)
    sink = make_sink(emulator, clock)
    skus = [r["ERP_SKU__c"] for r in emulator.records("Product2")]
    one = LevelValue(Decimal(1), Decimal(1))
    keys = [StockKey(sku, "WH-MAIN") for sku in skus[:8]]
    made = [o.crm_id for o in sink.upsert_levels([(k, one) for k in keys])]
    older, key = next((i, k) for i, k in zip(made, keys, strict=True) if i and i[-4] == "Z")
    product = next(r["Id"] for r in emulator.records("Product2") if r["ERP_SKU__c"] == key.sku)
    location = next(r["Id"] for r in emulator.records("Location") if r["ERP_Code__c"] == "WH-MAIN")
    newer = emulator.add_record(
        "ProductItem", {"Product2Id": product, "LocationId": location, "QuantityOnHand": 3}
    )
    assert newer[-4].islower()
    assert [lv.crm_id for lv in sink.read_levels_of(key)] == [older, newer]
    assert [lv.crm_id for lv in sink.read_levels() if lv.stock_key == key] == [older, newer]


def test_a_describe_outage_costs_one_describe_per_push_not_one_per_row(
    store: StateStore,
) -> None:
    """The scale comes from the describe (cached); while the org cannot give it, the
    first level row's failure (after the client's 3 attempts) settles the other rows of
    the outbox step: each pending, one attempt more, no describe per row (8 × 3 calls)."""
    p = Pipeline(store)
    options = PushOptions(retry_initial_s=1, retry_max_s=60, batch_size=200)
    p.pusher = Pusher(store, p.sink, p.name, now=p.clock.now, options=options)
    for sku in SKUS:
        for wh in WAREHOUSES:
            p.put(sku, wh, 2)
    outage = [True]
    p.org.fault_hook = lambda route: (
        "server_unavailable" if route == "describe" and outage[0] else None
    )
    p.sync()
    # ProductItem once, Stock_Movement__c once per batch of 3 movements: 3 attempts each
    assert p.org.calls["describe"] == 3 + 3 * 3
    levels_rows = [r for r in store.outbox_rows(p.name) if r.target == "level"]
    assert len(levels_rows) == 8 and {(r.state, r.attempts) for r in levels_rows} == {
        ("pending", 1)
    }
    outage[0] = False
    p.clock.advance(3600)
    p.pusher.run()
    assert not store.outbox_rows(p.name)
    ledger = {(k.sku, k.warehouse): v for k, v in store.levels(p.name).items()}
    assert levels(p.org, "product_item") == ledger
