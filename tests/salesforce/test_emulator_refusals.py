"""Each rule of the Salesforce emulator refuses a non-conforming request with the reference's
status and errorCode (reference §3, §4, §5, §7; one row per rule)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from connectors.salesforce.emulator import SalesforceEmulator, build_emulator
from connectors.salesforce.emulator_schema import FieldSpec
from tests.salesforce.emu_helpers import Api, FakeClock, error_of, item, record_errors


@pytest.fixture
def emulator() -> SalesforceEmulator:
    return build_emulator("demo", clock=FakeClock().time)


@pytest.fixture
def api(emulator: SalesforceEmulator) -> Api:
    return Api(emulator)


def _records(n: int) -> dict[str, Any]:
    rows = [
        {"attributes": {"type": "ProductItem"}, **item("SKU-0001", "WH-MAIN")} for _ in range(n)
    ]
    return {"allOrNone": False, "records": rows}


COLLECTIONS = "/composite/sobjects/ProductItem/ERP_Key__c"
REQUEST_RULES = [
    # (what, method, path, kwargs, status, errorCode)
    (
        "more than 200 records",
        "PATCH",
        COLLECTIONS,
        {"json": _records(201)},
        400,
        "EXCEEDED_ID_LIMIT",
    ),
    (
        "unknown field",
        "PATCH",
        COLLECTIONS,
        {
            "json": {
                "records": [
                    {
                        "attributes": {"type": "ProductItem"},
                        **item("SKU-0001", "WH-MAIN"),
                        "Nope__c": 1,
                    }
                ]
            }
        },
        400,
        "INVALID_FIELD",
    ),
    (
        "number sent as text",
        "PATCH",
        COLLECTIONS,
        {
            "json": {
                "records": [
                    {"attributes": {"type": "ProductItem"}, **item("SKU-0001", "WH-MAIN", "many")}
                ]
            }
        },
        400,
        "JSON_PARSER_ERROR",
    ),
    (
        "body not JSON",
        "PATCH",
        COLLECTIONS,
        {"content": b"{records", "headers": {"Content-Type": "application/json"}},
        400,
        "JSON_PARSER_ERROR",
    ),
    (
        "no attributes.type",
        "PATCH",
        COLLECTIONS,
        {"json": {"records": [item("SKU-0001", "WH-MAIN")]}},
        400,
        "INVALID_FIELD",
    ),
    (
        "type other than the URI's",
        "PATCH",
        COLLECTIONS,
        {
            "json": {
                "records": [{"attributes": {"type": "Product2"}, **item("SKU-0001", "WH-MAIN")}]
            }
        },
        400,
        "INVALID_FIELD",
    ),
    (
        "Id in an upsert record",
        "PATCH",
        COLLECTIONS,
        {
            "json": {
                "records": [
                    {
                        "attributes": {"type": "ProductItem"},
                        "Id": "0TR000000000001AAA",
                        **item("SKU-0001", "WH-MAIN"),
                    }
                ]
            }
        },
        400,
        "INVALID_FIELD",
    ),
    (
        "upsert key not an External ID",
        "PATCH",
        "/composite/sobjects/ProductItem/QuantityOnHand",
        {"json": _records(1)},
        400,
        "INVALID_FIELD",
    ),
    (
        "collections upsert before v46.0",
        "PATCH",
        "/../v45.0" + COLLECTIONS,
        {"json": _records(1)},
        404,
        "NOT_FOUND",
    ),
    ("collections upsert by GET", "GET", COLLECTIONS, {}, 405, "METHOD_NOT_ALLOWED"),
    ("unknown object", "GET", "/sobjects/Nope__c/describe", {}, 404, "NOT_FOUND"),
    (
        "single upsert by a field that is no External ID",
        "PATCH",
        "/sobjects/ProductItem/QuantityOnHand/1",
        {"json": {}},
        404,
        "NOT_FOUND",
    ),
    (
        "bad SOQL",
        "GET",
        "/query/",
        {"params": {"q": "SELECT FROM ProductItem"}},
        400,
        "MALFORMED_QUERY",
    ),
    (
        "SOQL trailing garbage",
        "GET",
        "/query/",
        {"params": {"q": "SELECT Id FROM ProductItem LIMIT 5 x"}},
        400,
        "MALFORMED_QUERY",
    ),
    (
        "SOQL unknown field",
        "GET",
        "/query/",
        {"params": {"q": "SELECT Nope__c FROM ProductItem"}},
        400,
        "INVALID_FIELD",
    ),
    (
        "SOQL unknown parent field",
        "GET",
        "/query/",
        {"params": {"q": "SELECT Product2.Nope FROM ProductItem"}},
        400,
        "INVALID_FIELD",
    ),
    (
        "SOQL quoted number",
        "GET",
        "/query/",
        {"params": {"q": "SELECT Id FROM ProductItem WHERE QuantityOnHand = '1'"}},
        400,
        "INVALID_FIELD",
    ),
    (
        "SOQL unknown object",
        "GET",
        "/query/",
        {"params": {"q": "SELECT Id FROM Nope__c"}},
        400,
        "INVALID_TYPE",
    ),
    (
        "expired query locator",
        "GET",
        "/query/01g5g00000EMU99999-2000",
        {},
        400,
        "INVALID_QUERY_LOCATOR",
    ),
]


@pytest.mark.parametrize(
    ("what", "method", "path", "kwargs", "status", "code"),
    REQUEST_RULES,
    ids=[r[0] for r in REQUEST_RULES],
)
def test_a_malformed_request_is_refused_whole(
    api: Api,
    emulator: SalesforceEmulator,
    what: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    assert error_of(api.call(method, path, **kwargs)) == (status, code)
    assert emulator.records("ProductItem") == [], "a refused request changes nothing"


def test_an_unknown_api_version_is_not_found(api: Api) -> None:
    answer = api.http.get(
        "/services/data/v99.0/limits/", headers={"Authorization": f"Bearer {api.token}"}
    )
    assert error_of(answer) == (404, "NOT_FOUND")


@pytest.mark.parametrize("authorization", ["Bearer not-a-session", "", "Basic abc"])
def test_a_bad_session_is_401_with_the_reference_body(api: Api, authorization: str) -> None:
    answer = api.http.get("/services/data/v59.0/limits/", headers={"Authorization": authorization})
    assert answer.status_code == 401
    assert answer.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


RECORD_RULES = [
    # (what, record, statusCode, fields)
    (
        "required field missing",
        {"ERP_Key__c": "K1", "Product2": {"ERP_SKU__c": "SKU-0001"}, "QuantityOnHand": 1},
        "REQUIRED_FIELD_MISSING",
        ["LocationId"],
    ),
    (
        "integer digits beyond precision − scale",
        item("SKU-0001", "WH-MAIN", Decimal("1e16")),
        "NUMBER_OUTSIDE_VALID_RANGE",
        ["QuantityOnHand"],
    ),
    ("parent External ID not found", item("NOPE", "WH-MAIN"), "INVALID_FIELD", ["Product2Id"]),
    (
        "two fields in a parent reference",
        {**item("SKU-0001", "WH-MAIN"), "Product2": {"ERP_SKU__c": "SKU-0001", "Name": "x"}},
        "INVALID_FIELD",
        ["Product2Id"],
    ),
    (
        "parent by a field that is no External ID",
        {**item("SKU-0001", "WH-MAIN"), "Product2": {"ProductCode": "SKU-0001"}},
        "INVALID_FIELD",
        ["Product2Id"],
    ),
    (
        "both a parent reference and its Id",
        {**item("SKU-0001", "WH-MAIN"), "Product2Id": "01t5g0000000001AAA"},
        "INVALID_FIELD",
        ["Product2Id"],
    ),
    (
        "text longer than its length",
        item("SKU-0001", "WH-MAIN", SerialNumber="S" * 256),
        "STRING_TOO_LONG",
        ["SerialNumber"],
    ),
    (
        "read-only field",
        item("SKU-0001", "WH-MAIN", ProductItemNumber="X"),
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        ["ProductItemNumber"],
    ),
    (
        "no External ID value",
        {**item("SKU-0001", "WH-MAIN"), "ERP_Key__c": None},
        "MISSING_ARGUMENT",
        ["ERP_Key__c"],
    ),
    (
        "serialized item holding 2",
        item("SKU-0001", "WH-MAIN", 2, SerialNumber="SN1"),
        "FIELD_INTEGRITY_EXCEPTION",
        ["QuantityOnHand"],
    ),
]


@pytest.mark.parametrize(
    ("what", "record", "code", "fields"), RECORD_RULES, ids=[r[0] for r in RECORD_RULES]
)
def test_a_bad_record_fails_alone(
    api: Api,
    emulator: SalesforceEmulator,
    what: str,
    record: dict[str, Any],
    code: str,
    fields: list[str],
) -> None:
    answer = api.upsert(
        "ProductItem", [item("SKU-0002", "WH-MAIN", 5), record, item("SKU-0003", "WH-MAIN", 7)]
    )
    assert record_errors(answer) == [None, code, None]
    assert answer.json()[1]["errors"][0]["fields"] == fields
    assert "id" not in answer.json()[1]
    assert emulator.levels() == {("SKU-0002", "WH-MAIN"): 5, ("SKU-0003", "WH-MAIN"): 7}


def test_a_location_that_is_no_inventory_location_refuses_items(
    api: Api, emulator: SalesforceEmulator
) -> None:
    emulator.add_location("WH-SITE", inventory=False)
    assert record_errors(api.upsert("ProductItem", [item("SKU-0001", "WH-SITE")])) == [
        "FIELD_INTEGRITY_EXCEPTION"
    ]


def test_all_or_none_rolls_every_record_back(api: Api, emulator: SalesforceEmulator) -> None:
    api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN", 1)])
    answer = api.upsert(
        "ProductItem",
        [item("SKU-0001", "WH-MAIN", 9), item("NOPE", "WH-MAIN"), item("SKU-0002", "WH-MAIN")],
        all_or_none=True,
    )
    assert record_errors(answer) == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "INVALID_FIELD",
        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    ]
    assert emulator.levels() == {("SKU-0001", "WH-MAIN"): 1}
    again = api.upsert(
        "ProductItem", [item("SKU-0002", "WH-MAIN", 2), item("SKU-0001", "WH-MAIN", 3)]
    )
    assert [r["created"] for r in again.json()] == [True, False], "the rollback left no trace"
    assert emulator.levels() == {("SKU-0001", "WH-MAIN"): 3, ("SKU-0002", "WH-MAIN"): 2}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("all", ["DUPLICATE_EXTERNAL_ID", None, "DUPLICATE_EXTERNAL_ID"]),
        ("repeated", [None, None, "DUPLICATE_EXTERNAL_ID"]),
    ],
)
def test_the_same_external_id_twice_in_a_batch(
    api: Api, emulator: SalesforceEmulator, mode: str, expected: list[str | None]
) -> None:
    emulator.configure(duplicate_keys=mode)
    answer = api.upsert(
        "ProductItem",
        [
            item("SKU-0001", "WH-MAIN", 1),
            item("SKU-0002", "WH-MAIN", 2),
            item("SKU-0001", "WH-MAIN", 3),
        ],
    )
    assert record_errors(answer) == expected
    assert len(emulator.records("ProductItem")) == 3 - expected.count("DUPLICATE_EXTERNAL_ID")


def test_a_unique_field_refuses_a_second_record_with_its_value(
    api: Api, emulator: SalesforceEmulator
) -> None:
    emulator.store.objects["Product2"].add(FieldSpec("GTIN__c", "string", length=14, unique=True))
    answer = api.upsert(
        "Product2",
        [
            {"ERP_SKU__c": "N1", "Name": "n1", "GTIN__c": "4006381333931"},
            {"ERP_SKU__c": "N2", "Name": "n2", "GTIN__c": "4006381333931"},
        ],
        key="ERP_SKU__c",
    )
    assert record_errors(answer) == [None, "DUPLICATE_VALUE"]


def test_a_non_unique_external_id_matching_two_records(
    api: Api, emulator: SalesforceEmulator
) -> None:
    emulator.store.objects["Product2"].add(
        FieldSpec("Legacy__c", "string", length=20, external_id=True)
    )
    for sku in ("A", "B"):
        emulator.add_record("Product2", {"Name": sku, "ERP_SKU__c": sku, "Legacy__c": "L1"})
    answer = api.upsert("Product2", [{"Legacy__c": "L1", "Name": "x"}], key="Legacy__c")
    assert record_errors(answer) == ["DUPLICATE_EXTERNAL_ID"]
    single = api.call("PATCH", "/sobjects/Product2/Legacy__c/L1", json={"Name": "x"})
    assert single.status_code == 300 and len(single.json()) == 2


@pytest.mark.parametrize(
    ("mode", "outcome"), [("store", "12.34567"), ("round", "12.35"), ("reject", None)]
)
def test_decimals_beyond_scale(
    api: Api, emulator: SalesforceEmulator, mode: str, outcome: str | None
) -> None:
    """§7: the API stores extra decimals as sent; stricter orgs are a switch."""
    emulator.configure(decimals=mode)
    answer = api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN", Decimal("12.34567"))])
    if outcome is None:
        assert record_errors(answer) == ["NUMBER_OUTSIDE_VALID_RANGE"]
    else:
        assert emulator.levels() == {("SKU-0001", "WH-MAIN"): Decimal(outcome)}


@pytest.mark.parametrize(("mode", "same_parent_ok"), [("changed", True), ("any", False)])
def test_create_only_parents_on_update(
    api: Api, emulator: SalesforceEmulator, mode: str, same_parent_ok: bool
) -> None:
    emulator.configure(create_only=mode)
    api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN", 1)])
    moved = {**item("SKU-0001", "WH-MAIN", 2), "Location": {"ERP_Code__c": "WH-EAST"}}
    again = api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN", 3)])
    assert record_errors(again) == [None if same_parent_ok else "INVALID_FIELD_FOR_INSERT_UPDATE"]
    assert record_errors(api.upsert("ProductItem", [moved])) == ["INVALID_FIELD_FOR_INSERT_UPDATE"]
    bare = api.upsert("ProductItem", [{"ERP_Key__c": "SKU-0001|WH-MAIN", "QuantityOnHand": 4}])
    assert record_errors(bare) == [None] and bare.json()[0]["created"] is False


def test_unknown_field_per_record_switch(api: Api, emulator: SalesforceEmulator) -> None:
    emulator.configure(unknown_field="record")
    answer = api.upsert(
        "ProductItem", [item("SKU-0001", "WH-MAIN"), item("SKU-0002", "WH-MAIN", Nope__c=1)]
    )
    assert record_errors(answer) == [None, "INVALID_FIELD"]


def test_null_in_a_required_field_on_update(api: Api) -> None:
    api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN")])
    answer = api.upsert("ProductItem", [{"ERP_Key__c": "SKU-0001|WH-MAIN", "QuantityOnHand": None}])
    assert record_errors(answer) == ["REQUIRED_FIELD_MISSING"]


def test_single_record_upsert_answers(api: Api) -> None:
    """§4.1: 201 created, then 200 created:false (v46+), 204 before v46; a refused record
    is a 400."""
    body = {
        "Product2": {"ERP_SKU__c": "SKU-0001"},
        "Location": {"ERP_Code__c": "WH-MAIN"},
        "QuantityOnHand": 3,
    }
    path = "/sobjects/ProductItem/ERP_Key__c/SKU-0001%7CWH-MAIN"
    first = api.call("PATCH", path, json=body)
    assert (
        first.status_code == 201
        and first.json()["created"] is True
        and first.json()["success"] is True
    )
    second = api.call("PATCH", path, json={"QuantityOnHand": 4})
    assert second.status_code == 200 and second.json() == {**first.json(), "created": False}
    old = api.http.patch(
        "/services/data/v45.0" + path[0:],
        json={"QuantityOnHand": 5},
        headers={"Authorization": f"Bearer {api.token}"},
    )
    assert old.status_code == 204 and old.content == b""
    assert error_of(
        api.call("PATCH", "/sobjects/ProductItem/ERP_Key__c/NEW", json={"QuantityOnHand": 1})
    ) == (400, "REQUIRED_FIELD_MISSING")
    assert error_of(api.call("PATCH", path, json={"QuantityOnHand": 1e19})) == (
        400,
        "NUMBER_OUTSIDE_VALID_RANGE",
    )
    got = api.call("GET", "/sobjects/ProductItem/ERP_Key__c/SKU-0001|WH-MAIN").json()
    assert got["QuantityOnHand"] == 5.0 and got["ERP_Key__c"] == "SKU-0001|WH-MAIN"
