"""Delete and update of one record by Id in the Salesforce emulator (REST API Developer
Guide "Delete a Record" / "Update a Record"; StatusCode ENTITY_IS_DELETED), one test per
rule, each with the request the emulator refuses."""

from __future__ import annotations

import httpx
import pytest

from connectors.salesforce.emulator import SalesforceEmulator, build_emulator
from tests.salesforce.emu_helpers import Api, FakeClock, error_of, item, record_errors

KEY = "SKU-0001|WH-MAIN"


@pytest.fixture
def emulator() -> SalesforceEmulator:
    return build_emulator("demo", clock=FakeClock().time)


@pytest.fixture
def api(emulator: SalesforceEmulator) -> Api:
    return Api(emulator)


def _created(api: Api, qty: int = 5) -> str:
    answer = api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN", qty)])
    assert record_errors(answer) == [None]
    return str(answer.json()[0]["id"])


def _ids(api: Api, resource: str = "/query/") -> list[str]:
    soql = "SELECT Id FROM ProductItem ORDER BY Id"
    answer = api.call("GET", resource, params={"q": soql})
    assert answer.status_code == 200, answer.text
    return [r["Id"] for r in answer.json()["records"]]


def _delete(api: Api, rid: str) -> httpx.Response:
    return api.call("DELETE", f"/sobjects/ProductItem/{rid}")


def test_a_delete_answers_204_and_moves_the_record_to_the_recycle_bin(api: Api) -> None:
    rid = _created(api)
    answer = _delete(api, rid)
    assert (answer.status_code, answer.content) == (204, b"")
    assert _ids(api) == []  # SOQL no longer sees it
    assert _ids(api, "/queryAll/") == [rid]  # queryAll does (recycle bin)
    assert error_of(api.call("GET", f"/sobjects/ProductItem/{rid}")) == (404, "NOT_FOUND")


def test_a_second_delete_is_entity_is_deleted_and_an_unknown_id_not_found(api: Api) -> None:
    rid = _created(api)
    assert _delete(api, rid).status_code == 204
    assert error_of(_delete(api, rid)) == (404, "ENTITY_IS_DELETED")
    assert error_of(_delete(api, "0TR000000000000AAA")) == (404, "NOT_FOUND")
    assert error_of(api.call("DELETE", "/sobjects/No_Such__c/0TR000000000000AAA")) == (
        404,
        "NOT_FOUND",
    )


def test_an_upsert_of_a_deleted_records_key_creates_a_new_record(
    api: Api, emulator: SalesforceEmulator
) -> None:
    """The External ID of a record in the recycle bin matches nothing: "If the external
    ID isn't matched, then a new record is created"; ``updateOnly`` refuses instead."""
    rid = _created(api)
    assert _delete(api, rid).status_code == 204
    only_update = api.call(
        "PATCH",
        f"/sobjects/ProductItem/ERP_Key__c/{KEY}",
        params={"updateOnly": "true"},
        json={"QuantityOnHand": 6},
    )
    assert error_of(only_update) == (404, "NOT_FOUND")
    again = api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN", 7)])
    assert record_errors(again) == [None]
    assert again.json()[0]["created"] is True and again.json()[0]["id"] != rid
    assert emulator.levels() == {("SKU-0001", "WH-MAIN"): 7}


def test_an_update_by_id_answers_204_and_never_revives_a_deleted_record(
    api: Api, emulator: SalesforceEmulator
) -> None:
    rid = _created(api)
    updated = api.call("PATCH", f"/sobjects/ProductItem/{rid}", json={"QuantityOnHand": 9})
    assert (updated.status_code, updated.content) == (204, b"")
    assert emulator.levels() == {("SKU-0001", "WH-MAIN"): 9}
    refused = api.call("PATCH", f"/sobjects/ProductItem/{rid}", json={"Id": rid})
    assert error_of(refused) == (400, "INVALID_FIELD")
    assert _delete(api, rid).status_code == 204
    gone = api.call("PATCH", f"/sobjects/ProductItem/{rid}", json={"QuantityOnHand": 1})
    assert error_of(gone) == (404, "ENTITY_IS_DELETED")
    unknown = api.call(
        "PATCH", "/sobjects/ProductItem/0TR000000000000AAA", json={"QuantityOnHand": 1}
    )
    assert error_of(unknown) == (404, "NOT_FOUND")
    assert _ids(api) == [] and emulator.levels() == {}


def test_a_delete_counts_against_the_allocation_and_takes_call_faults(
    api: Api, emulator: SalesforceEmulator
) -> None:
    rid = _created(api)
    used = emulator.api_usage[0]
    emulator.fail_next("unable_to_lock_row", route="delete")
    locked = _delete(api, rid)
    assert error_of(locked) == (400, "UNABLE_TO_LOCK_ROW")
    assert locked.headers["Sforce-Limit-Info"] == f"api-usage={used + 1}/{emulator.api_usage[1]}"
    assert _ids(api) == [rid]  # refused: still there
    emulator.fail_next("http_500_after_apply", route="delete")
    assert error_of(_delete(api, rid)) == (500, "UNKNOWN_EXCEPTION")
    assert _ids(api) == []  # applied before the error answer
    assert emulator.calls["delete"] == 2 and emulator.api_usage[0] == used + 4
    emulator.set_api_usage(used=emulator.api_usage[1])
    assert error_of(_delete(api, rid)) == (403, "REQUEST_LIMIT_EXCEEDED")
