"""The Salesforce sink passes the shared CrmSink and batch-sink contracts against the
emulator, in both set-ups of the stock object, and its check-config finds what is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from connectors.salesforce.emulator import SalesforceEmulator
from connectors.salesforce.sink import SalesforceSink
from sync.errors import ConfigError
from sync.model import LevelValue, StockKey
from tests.contract.crm import AddDuplicate, BatchSinkContract, CrmSinkContract
from tests.salesforce.sink_rig import OBJECTS, FakeClock, demo_org, levels, make_sink


@pytest.fixture(params=["product_item", "custom_object"])
def setup(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def org(clock: FakeClock) -> SalesforceEmulator:
    return demo_org(clock)


@pytest.fixture
def sf_sink(org: SalesforceEmulator, clock: FakeClock, setup: str) -> Iterator[SalesforceSink]:
    sink = make_sink(org, clock, setup, verify_movement_object=True)
    yield sink
    sink.close()


class TestSalesforceContract(CrmSinkContract, BatchSinkContract):
    @pytest.fixture
    def contract_sink(self, sf_sink: SalesforceSink) -> SalesforceSink:
        return sf_sink

    @pytest.fixture
    def add_duplicate(self, org: SalesforceEmulator, setup: str) -> AddDuplicate:
        """A record made by hand for the same product and location, without the key."""

        def add(key: StockKey, value: LevelValue) -> str:
            obj, product, location, qty = OBJECTS[setup]
            (pid,) = [r["Id"] for r in org.records("Product2") if r["ERP_SKU__c"] == key.sku]
            (lid,) = [r["Id"] for r in org.records("Location") if r["ERP_Code__c"] == key.warehouse]
            return org.add_record(obj, {product: pid, location: lid, qty: value.real})

        return add

    @pytest.fixture
    def mapped_keys(self) -> list[StockKey]:
        return [StockKey("SKU-0001", "WH-MAIN"), StockKey("SKU-0002", "WH-EAST")]

    @pytest.fixture
    def unmapped_key(self) -> StockKey:
        return StockKey("NO-SUCH-SKU", "WH-MAIN")


def test_duplicates_made_by_hand_are_read_oldest_first(
    sf_sink: SalesforceSink, org: SalesforceEmulator, setup: str
) -> None:
    """What reconcile needs of duplicates (architecture §6.3), without retiring one."""
    key = StockKey("SKU-0003", "WH-MAIN")
    ours = sf_sink.create_level(key, LevelValue(Decimal(7), Decimal(7)))
    obj, product, location, qty = OBJECTS[setup]
    (pid,) = [r["Id"] for r in org.records("Product2") if r["ERP_SKU__c"] == key.sku]
    (lid,) = [r["Id"] for r in org.records("Location") if r["ERP_Code__c"] == key.warehouse]
    by_hand = org.add_record(obj, {product: pid, location: lid, qty: 3})
    read = [(lv.stock_key, lv.crm_id, lv.qty) for lv in sf_sink.read_levels()]
    assert read == [(key, ours, Decimal(7)), (key, by_hand, Decimal(3))]
    assert sf_sink.find_level(key) == ours  # the record holding the key


def test_an_update_never_creates(sf_sink: SalesforceSink) -> None:
    from sync.errors import RecordGoneError

    with pytest.raises(RecordGoneError):
        sf_sink.update_level(
            "0TR000000000000AAA",
            StockKey("SKU-0004", "WH-MAIN"),
            LevelValue(Decimal(1), Decimal(1)),
        )
    assert list(sf_sink.read_levels()) == []


def test_quantities_are_rounded_to_the_fields_scale_and_add_up(
    sf_sink: SalesforceSink, org: SalesforceEmulator, setup: str
) -> None:
    key = StockKey("SKU-0005", "WH-MAIN")
    value = LevelValue(Decimal("139.625"), Decimal("100.37555"))
    sf_sink.create_level(key, value)
    (level,) = list(sf_sink.read_levels())
    shown = sf_sink.shown_level(value)
    places = 2 if setup == "product_item" else 4  # QuantityOnHand 18,2; Quantity__c 16,4
    assert shown.real == value.real.quantize(Decimal(1).scaleb(-places))
    assert (level.qty, level.available) == (shown.real, shown.available)
    assert level.reserved == sf_sink.shown_reserved(value) == shown.real - shown.available
    assert levels(org, setup) == {("SKU-0005", "WH-MAIN"): shown.real}


def test_check_connects_and_reports_every_problem(
    org: SalesforceEmulator, clock: FakeClock, setup: str
) -> None:
    good = make_sink(org, clock, setup, verify_movement_object=True)
    assert "verified" in good.check() and "API usage" in good.check()
    bad = make_sink(
        org,
        clock,
        setup,
        stock_key_field="Unit__c" if setup == "custom_object" else "SerialNumber",
        stock_available_field="No_Such__c",
        product_key_field="ProductCode",
    )
    with pytest.raises(ConfigError) as info:
        bad.check()
    paths = {p.path for p in info.value.problems}
    assert {"crm.stock_available_field", "crm.stock_key_field", "crm.product_key_field"} <= paths


@pytest.mark.parametrize("create_only", ["changed", "any"])
def test_parents_are_named_only_where_a_record_may_be_created(
    org: SalesforceEmulator, clock: FakeClock, setup: str, create_only: str
) -> None:
    """Whether an update naming the same create-only parent is refused is not in the
    reference (§8.1): the emulator offers both, and the sink works with either, at one call
    per batch once it knows which records exist."""
    org.configure(create_only=create_only)
    keys = [StockKey("SKU-0006", "WH-MAIN"), StockKey("SKU-0007", "WH-EAST")]

    def push(sink: SalesforceSink, qty: int) -> list[bool]:
        items = [(k, LevelValue(Decimal(qty), Decimal(qty))) for k in keys]
        outcomes = sink.upsert_levels(items)
        assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
        return [o.created for o in outcomes]

    sink = make_sink(org, clock, setup)
    assert push(sink, 1) == [True, True]
    org.calls.clear()
    assert push(sink, 2) == [False, False]
    assert org.calls["collections"] == 1  # known to exist: no parents sent
    restarted = make_sink(org, clock, setup)  # a new process knows nothing yet
    org.calls.clear()
    assert push(restarted, 3) == [False, False]
    # only ProductItem's lookups are create-only; Stock_Level__c's may be written on update
    refused = create_only == "any" and setup == "product_item"
    assert org.calls["collections"] == (2 if refused else 1)
    obj = OBJECTS[setup][0]
    gone = next(r["Id"] for r in org.records(obj) if r["ERP_Key__c"] == "SKU-0006|WH-MAIN")
    org.store._put(obj, gone, None)  # a person deletes one in the org
    org.calls.clear()
    assert push(restarted, 4) == [True, False]  # created again: parents named on the retry
    assert org.calls["collections"] == 2
    assert levels(org, setup) == {("SKU-0006", "WH-MAIN"): 4, ("SKU-0007", "WH-EAST"): 4}


def test_retiring_a_record_made_by_hand_keeps_the_keyed_one_untouched(
    sf_sink: SalesforceSink, org: SalesforceEmulator, setup: str
) -> None:
    """Reconcile's usual case: the extra is the record without the key; deleting it
    hands nothing over (no update call), and a retry of the delete is no error."""
    key = StockKey("SKU-0008", "WH-MAIN")
    ours = sf_sink.create_level(key, LevelValue(Decimal(4), Decimal(4)))
    obj, product, location, qty = OBJECTS[setup]
    (pid,) = [r["Id"] for r in org.records("Product2") if r["ERP_SKU__c"] == key.sku]
    (lid,) = [r["Id"] for r in org.records("Location") if r["ERP_Code__c"] == key.warehouse]
    by_hand = org.add_record(obj, {product: pid, location: lid, qty: 2})
    org.calls.clear()
    sf_sink.invalidate_level(by_hand, key)
    sf_sink.invalidate_level(by_hand, key)
    assert org.calls["delete"] == 2 and org.calls["update"] == 0
    assert [lv.crm_id for lv in sf_sink.read_levels()] == [ours]
    sf_sink.update_level(ours, key, LevelValue(Decimal(5), Decimal(5)))
    assert levels(org, setup) == {("SKU-0008", "WH-MAIN"): 5}


def test_retiring_the_keyed_record_hands_its_key_to_the_one_kept(
    sf_sink: SalesforceSink, org: SalesforceEmulator, setup: str
) -> None:
    """The next push writes into the record kept, creating no new duplicate."""
    key = StockKey("SKU-0009", "WH-MAIN")
    ours = sf_sink.create_level(key, LevelValue(Decimal(4), Decimal(4)))
    obj, product, location, qty = OBJECTS[setup]
    (pid,) = [r["Id"] for r in org.records("Product2") if r["ERP_SKU__c"] == key.sku]
    (lid,) = [r["Id"] for r in org.records("Location") if r["ERP_Code__c"] == key.warehouse]
    by_hand = org.add_record(obj, {product: pid, location: lid, qty: 2})
    sf_sink.invalidate_level(ours, key)
    outcomes = sf_sink.upsert_levels([(key, LevelValue(Decimal(6), Decimal(6)))])
    assert [(o.crm_id, o.created, o.error) for o in outcomes] == [(by_hand, False, None)]
    assert levels(org, setup) == {("SKU-0009", "WH-MAIN"): 6}
