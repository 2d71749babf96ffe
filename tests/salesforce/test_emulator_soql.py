"""SOQL as the emulator answers it: the subset a sink reads with, nextRecordsUrl paging
(reference §5)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.salesforce.emulator import SalesforceEmulator, build_emulator
from tests.salesforce.emu_helpers import Api, FakeClock, item, record_errors


@pytest.fixture
def emulator() -> SalesforceEmulator:
    return build_emulator("demo", clock=FakeClock().time)


@pytest.fixture
def api(emulator: SalesforceEmulator) -> Api:
    api = Api(emulator)
    rows = [
        item(f"SKU-{i:04d}", wh, i * 10 + j)
        for i in range(1, 7)
        for j, wh in enumerate(("WH-MAIN", "WH-EAST"))
    ]
    assert record_errors(api.upsert("ProductItem", rows)) == [None] * 12
    return api


def _records(api: Api, soql: str) -> list[dict[str, Any]]:
    answer = api.query(soql)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["done"] is True and body["totalSize"] == len(body["records"])
    return list(body["records"])


def test_levels_read_back_keyed_by_external_ids(api: Api) -> None:
    rows = _records(
        api,
        "select ERP_Key__c, QuantityOnHand, Product2.ERP_SKU__c, Location.ERP_Code__c "
        "from productitem where Product2.ERP_SKU__c in ('SKU-0002', 'sku-0003') "
        "and Location.ERP_Code__c = 'WH-EAST' order by ERP_Key__c desc",
    )
    assert [
        (r["Product2"]["ERP_SKU__c"], r["Location"]["ERP_Code__c"], r["QuantityOnHand"])
        for r in rows
    ] == [("SKU-0003", "WH-EAST", 31.0), ("SKU-0002", "WH-EAST", 21.0)]
    first = rows[0]
    assert list(first) == ["attributes", "ERP_Key__c", "QuantityOnHand", "Product2", "Location"]
    assert first["attributes"]["type"] == "ProductItem"
    assert first["attributes"]["url"].startswith("/services/data/v59.0/sobjects/ProductItem/0TR")
    assert first["Product2"]["attributes"]["type"] == "Product2"


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("QuantityOnHand >= 50 AND QuantityOnHand < 61", [50.0, 51.0, 60.0]),
        ("QuantityOnHand <= 11 OR ERP_Key__c = 'SKU-0006|WH-EAST'", [10.0, 11.0, 61.0]),
        ("NOT (QuantityOnHand > 11)", [10.0, 11.0]),
        ("ERP_Key__c NOT IN ('SKU-0001|WH-MAIN') AND QuantityOnHand < 21", [11.0, 20.0]),
        ("ERP_Key__c LIKE 'SKU-0004%' AND SerialNumber = null", [40.0, 41.0]),
        ("QuantityOnHand != 10 AND QuantityOnHand <> 11 AND QuantityOnHand < 30", [20.0, 21.0]),
        ("LastModifiedDate > 2020-01-01T00:00:00Z AND QuantityOnHand < 12", [10.0, 11.0]),
    ],
)
def test_where_clauses(api: Api, where: str, expected: list[float]) -> None:
    rows = _records(
        api, f"SELECT QuantityOnHand FROM ProductItem WHERE {where} ORDER BY QuantityOnHand"
    )
    assert [r["QuantityOnHand"] for r in rows] == expected


def test_order_limit_offset_and_count(api: Api, emulator: SalesforceEmulator) -> None:
    rows = _records(
        api, "SELECT QuantityOnHand FROM ProductItem ORDER BY QuantityOnHand DESC LIMIT 3 OFFSET 1"
    )
    assert [r["QuantityOnHand"] for r in rows] == [60.0, 51.0, 50.0]
    count = api.query(
        "SELECT COUNT() FROM ProductItem WHERE Location.ERP_Code__c = 'WH-MAIN'"
    ).json()
    assert count == {"totalSize": 6, "done": True, "records": []}
    emulator.add_record("ProductItem", {"ERP_Key__c": "orphan", "QuantityOnHand": 0})
    orphan = _records(
        api, "SELECT Product2.ERP_SKU__c FROM ProductItem WHERE ERP_Key__c = 'orphan'"
    )
    assert orphan[0]["Product2"] is None


def test_paging_by_next_records_url(api: Api, emulator: SalesforceEmulator) -> None:
    emulator.query_page_size = 5
    first = api.query("SELECT ERP_Key__c FROM ProductItem ORDER BY ERP_Key__c").json()
    pages, body = [first], first
    while not body["done"]:
        url = body["nextRecordsUrl"]
        assert url.startswith("/services/data/v59.0/query/01g")
        body = api.http.get(url, headers={"Authorization": f"Bearer {api.token}"}).json()
        pages.append(body)
    assert [len(p["records"]) for p in pages] == [5, 5, 2]
    assert {p["totalSize"] for p in pages} == {12} and "nextRecordsUrl" not in pages[-1]
    keys = [r["ERP_Key__c"] for p in pages for r in p["records"]]
    assert keys == sorted(keys) and len(set(keys)) == 12


def test_batch_size_header_is_honoured_within_200_to_2000(
    api: Api, emulator: SalesforceEmulator
) -> None:
    for i in range(250):
        emulator.add_record("Stock_Movement__c", {"ERP_Key__c": f"M{i:03d}", "Quantity__c": 1})
    soql = "SELECT ERP_Key__c FROM Stock_Movement__c"
    for asked, first_page in (("batchSize=200", 200), ("batchSize=10", 200), (None, 250)):
        headers = {"Sforce-Query-Options": asked} if asked else {}
        body = api.query(soql, headers=headers).json()
        assert len(body["records"]) == first_page and body["totalSize"] == 250


def test_the_custom_stock_and_movement_objects_take_parents_through_custom_lookups(
    api: Api, emulator: SalesforceEmulator
) -> None:
    level = {
        "ERP_Key__c": "SKU-0001|WH-MAIN",
        "Product__r": {"ERP_SKU__c": "SKU-0001"},
        "Warehouse__r": {"ERP_Code__c": "WH-MAIN"},
        "Quantity__c": 3.25,
        "Reserved_Quantity__c": 1,
        "Available_Quantity__c": 2.25,
    }
    assert record_errors(api.upsert("Stock_Level__c", [level])) == [None]
    rows = _records(
        api,
        "SELECT Quantity__c, Product__r.ERP_SKU__c, Warehouse__r.ERP_Code__c "
        "FROM Stock_Level__c WHERE Product__r.ERP_SKU__c = 'SKU-0001'",
    )
    assert rows[0]["Product__r"]["ERP_SKU__c"] == "SKU-0001" and rows[0]["Quantity__c"] == 3.25
    assert emulator.levels("Stock_Level__c", "Available_Quantity__c") == {
        ("SKU-0001", "WH-MAIN"): 2.25
    }
    move = {
        "ERP_Key__c": "m:doc:1:1",
        "Kind__c": "receipt",
        "SKU__c": "SKU-0001",
        "Warehouse__c": "WH-MAIN",
        "Quantity__c": 5,
        "Occurred_At__c": "2026-03-02T01:00:00.000+0000",
        "Active__c": True,
    }
    assert record_errors(
        api.upsert("Stock_Movement__c", [move, {**move, "ERP_Key__c": "m:doc:1:2"}])
    ) == [None, None]
    moved = _records(
        api,
        "SELECT ERP_Key__c FROM Stock_Movement__c "
        "WHERE Occurred_At__c >= 2026-03-02T00:00:00Z AND Active__c = TRUE",
    )
    assert len(moved) == 2


def test_order_by_id_keeps_the_case_of_ids(api: Api, emulator: SalesforceEmulator) -> None:
    """Ids are case-sensitive (``...0ZGAQ`` and ``...0aGAA`` are two records, base 62):
    ORDER BY Id sorts them as they are, which is the order they were made in; only text
    sorts case-insensitively. The sink reads duplicates oldest (lowest Id) first by it."""
    made = [r["Id"] for r in emulator.records("ProductItem")]
    assert any(i[-4].islower() for i in made) and any(i[-4].isupper() for i in made)
    rows = _records(api, "SELECT Id FROM ProductItem ORDER BY Id")
    assert [r["Id"] for r in rows] == sorted(made) == made
    names = _records(
        api, "SELECT ProductCode FROM Product2 WHERE ProductCode != null ORDER BY ProductCode"
    )
    codes = [r["ProductCode"] for r in names]
    assert codes == sorted(codes, key=str.lower)
