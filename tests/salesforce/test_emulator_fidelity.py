"""Rules of the Salesforce emulator checked against Salesforce's public documentation where
the reference leaves them open or states them loosely: in-batch duplicate External IDs,
case sensitivity of External ID matching, numeric range at its edges, SOQL string
escapes and OFFSET, and a single-record upsert naming its key in the body."""

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


def _add_product_key(emulator: SalesforceEmulator, name: str, **kw: Any) -> None:
    spec = FieldSpec(name, "string", length=40, external_id=True, **kw)
    emulator.store.objects["Product2"].add(spec)


def test_a_key_repeated_in_another_case_is_a_duplicate_only_where_matching_ignores_case(
    api: Api, emulator: SalesforceEmulator
) -> None:
    """Apex Developer Guide "Upserting Records": a custom field matches case-insensitively
    only when Unique and not case-sensitive; a repeat in one request is DUPLICATE_VALUE."""
    _add_product_key(emulator, "Alt_Key__c", unique=True)
    folded = api.upsert(
        "Product2",
        [{"Alt_Key__c": "abc", "Name": "a"}, {"Alt_Key__c": "ABC", "Name": "b"}],
        key="Alt_Key__c",
    )
    assert record_errors(folded) == ["DUPLICATE_VALUE", "DUPLICATE_VALUE"]
    other = {**item("SKU-0001", "WH-EAST"), "ERP_Key__c": "sku-0001|WH-MAIN"}
    exact = api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN"), other])
    assert record_errors(exact) == [None, None], "ERP_Key__c is case-sensitive: two keys"


@pytest.mark.parametrize(
    ("unique", "created"),
    [(True, False), (False, True)],
    ids=["unique-case-insensitive-matches", "non-unique-matches-exactly"],
)
def test_external_id_matching_case(
    api: Api, emulator: SalesforceEmulator, unique: bool, created: bool
) -> None:
    _add_product_key(emulator, "Legacy__c", unique=unique)
    emulator.add_record("Product2", {"Name": "P", "ERP_SKU__c": "P", "Legacy__c": "ABC-1"})
    answer = api.upsert("Product2", [{"Legacy__c": "abc-1", "Name": "Q"}], key="Legacy__c")
    assert record_errors(answer) == [None] and answer.json()[0]["created"] is created
    assert len(emulator.records("Product2")) == 24 + 1 + int(created)


def _raw_upsert(api: Api, obj: str, record_json: str) -> Any:
    """A collections upsert whose number is written exactly as given (no float on the way)."""
    body = f'{{"allOrNone":false,"records":[{{"attributes":{{"type":"{obj}"}},{record_json}}}]}}'
    path = f"/composite/sobjects/{obj}/ERP_Key__c"
    headers = {"Content-Type": "application/json"}
    return api.call("PATCH", path, content=body.encode(), headers=headers)


PARENTS = '"Product2":{"ERP_SKU__c":"SKU-0001"},"Location":{"ERP_Code__c":"WH-MAIN"}'


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("9999999999999999.99", None),  # 16 integer digits = precision 18 − scale 2
        ("-9999999999999999", None),
        ("0.000000001", None),  # extra decimals are stored as sent (§7)
        ("10000000000000000", "NUMBER_OUTSIDE_VALID_RANGE"),
        ("-10000000000000000.5", "NUMBER_OUTSIDE_VALID_RANGE"),
        ("1E+16", "NUMBER_OUTSIDE_VALID_RANGE"),
    ],
)
def test_integer_digits_at_the_edge_of_precision_minus_scale(
    api: Api, emulator: SalesforceEmulator, number: str, code: str | None
) -> None:
    answer = _raw_upsert(
        api, "ProductItem", f'"ERP_Key__c":"K",{PARENTS},"QuantityOnHand":{number}'
    )
    assert record_errors(answer) == [code]
    if code is None:
        assert emulator.records("ProductItem")[0]["QuantityOnHand"] == Decimal(number)


@pytest.fixture
def keyed(api: Api, emulator: SalesforceEmulator) -> Api:
    for key in ("O'Brien|WH", "A_1", "AX1", "A%1", "back\\slash", "tab\there"):
        emulator.add_record("Stock_Movement__c", {"ERP_Key__c": key, "Quantity__c": 1})
    return api


@pytest.mark.parametrize(
    ("where", "keys"),
    [
        ("ERP_Key__c = 'O\\'Brien|WH'", ["O'Brien|WH"]),
        ("ERP_Key__c = 'back\\\\slash'", ["back\\slash"]),
        ("ERP_Key__c = 'tab\\there'", ["tab\there"]),
        ("ERP_Key__c = '\\u0041X1'", ["AX1"]),
        ("ERP_Key__c LIKE 'A_1'", ["A%1", "AX1", "A_1"]),
        ("ERP_Key__c LIKE 'A\\_1'", ["A_1"]),
        ("ERP_Key__c LIKE 'A\\%%'", ["A%1"]),
        ("ERP_Key__c = 'A_1'", ["A_1"]),
    ],
)
def test_soql_string_escapes(keyed: Api, where: str, keys: list[str]) -> None:
    """SOQL and SOSL Reference, "Quoted String Escape Sequences"."""
    answer = keyed.query(f"SELECT ERP_Key__c FROM Stock_Movement__c WHERE {where}")
    assert answer.status_code == 200, answer.text
    assert sorted(r["ERP_Key__c"] for r in answer.json()["records"]) == keys


@pytest.mark.parametrize(
    "where",
    ["ERP_Key__c = 'a\\d'", "ERP_Key__c = 'A\\_1'", "ERP_Key__c = 'x\\u00'", 'ERP_Key__c = "A"'],
    ids=["undefined-escape", "like-escape-outside-like", "short-unicode", "double-quotes"],
)
def test_soql_refuses_what_it_does_not_define(keyed: Api, where: str) -> None:
    answer = keyed.query(f"SELECT ERP_Key__c FROM Stock_Movement__c WHERE {where}")
    assert error_of(answer) == (400, "MALFORMED_QUERY")


def test_soql_offset_beyond_2000_is_refused(api: Api) -> None:
    assert error_of(api.query("SELECT Id FROM ProductItem LIMIT 10 OFFSET 2001")) == (
        400,
        "NUMBER_OUTSIDE_VALID_RANGE",
    )
    assert api.query("SELECT Id FROM ProductItem LIMIT 10 OFFSET 2000").status_code == 200


@pytest.mark.parametrize("mode", ["refuse", "accept"])
def test_single_record_upsert_with_its_key_in_the_body(
    api: Api, emulator: SalesforceEmulator, mode: str
) -> None:
    """§4.1 / REST API guide v53–v55: the External ID goes in the URL, not in the body."""
    emulator.configure(key_in_body=mode)
    body = {
        "ERP_Key__c": "K1",
        "Product2": {"ERP_SKU__c": "SKU-0001"},
        "Location": {"ERP_Code__c": "WH-MAIN"},
        "QuantityOnHand": 3,
    }
    answer = api.call("PATCH", "/sobjects/ProductItem/ERP_Key__c/K1", json=body)
    if mode == "refuse":
        assert error_of(answer) == (400, "INVALID_FIELD")
        assert answer.json()[0]["fields"] == ["ERP_Key__c"]
        assert emulator.records("ProductItem") == []
    else:
        assert answer.status_code == 201
        assert emulator.levels() == {("SKU-0001", "WH-MAIN"): 3}


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ("LastModifiedDate > 2020-01-01", "INVALID_FIELD"),  # a date for a datetime field
        ("LastModifiedDate > 2020-13-01T00:00:00Z", "MALFORMED_QUERY"),
        ("LastModifiedDate > '2020-01-01T00:00:00Z'", "INVALID_FIELD"),  # quoted
    ],
)
def test_soql_datetime_filters_take_datetime_literals_only(api: Api, where: str, code: str) -> None:
    """SOQL reference "Date Formats and Date Literals"; salesforce.stackexchange.com q/8896."""
    answer = api.query(f"SELECT Id FROM ProductItem WHERE {where}")
    assert error_of(answer) == (400, code)


def test_rounding_org_checks_the_range_after_rounding(
    api: Api, emulator: SalesforceEmulator
) -> None:
    emulator.configure(decimals="round")
    answer = _raw_upsert(
        api, "ProductItem", f'"ERP_Key__c":"K",{PARENTS},"QuantityOnHand":9999999999999999.995'
    )
    assert record_errors(answer) == ["NUMBER_OUTSIDE_VALID_RANGE"]


def test_a_parent_reference_with_a_null_key_links_to_nothing(
    api: Api, emulator: SalesforceEmulator
) -> None:
    emulator.add_record("Product2", {"Name": "no key"})  # a product without ERP_SKU__c
    record = {**item("SKU-0001", "WH-MAIN"), "Product2": {"ERP_SKU__c": None}}
    assert record_errors(api.upsert("ProductItem", [record])) == ["INVALID_FIELD"]
    assert emulator.records("ProductItem") == []
