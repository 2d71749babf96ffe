"""Acceptance: simple-salesforce 1.12.10, an independent client, drives the emulator over
HTTPS and gets the answers it expects (reference §10): token answers through its own
``token_login``, query_all with paging, upsert by External ID, sObject Collections
through ``restful``, describe, limits, ``api_usage`` from Sforce-Limit-Info, and its
exception classes for the errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.login import token_login
from simple_salesforce.util import Usage

from connectors.salesforce.emulator import build_emulator, start
from connectors.salesforce.emulator_schema import FieldSpec
from connectors.salesforce.emulator_serve import Running


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    """One served emulator for the module (stopping a server takes 0.5 s); tests use
    their own keys and put back what they change."""
    with start(build_emulator("demo")) as served:
        yield served


@pytest.fixture
def session(running: Running) -> requests.Session:
    """requests trusting only the emulator's self-signed certificate."""
    http = requests.Session()
    assert running.ca_cert is not None
    http.verify = str(running.ca_cert)
    http.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides verify
    return http


def _client_credentials(
    running: Running, session: requests.Session, secret: str | None = None
) -> Salesforce:
    info = running.connection_info()
    basic = base64.b64encode(
        f"{info['client_id']}:{secret or info['client_secret']}".encode()
    ).decode()
    # simple-salesforce's own client-credentials request (login.py), at the emulator's token URL
    token, instance = token_login(
        f"{running.url}/services/oauth2/token",
        {"grant_type": "client_credentials"},
        "emulator",
        info["client_id"],
        {"Authorization": f"Basic {basic}"},
        None,
        session,
    )
    return Salesforce(session_id=token, instance_url=f"https://{instance}", session=session)


@pytest.fixture
def sf(running: Running, session: requests.Session) -> Salesforce:
    return _client_credentials(running, session)


ITEM = {
    "Product2": {"ERP_SKU__c": "SKU-0001"},
    "Location": {"ERP_Code__c": "WH-MAIN"},
    "QuantityOnHand": 12.5,
}


def test_connection_info_names_the_demo_stock_object(running: Running) -> None:
    info = running.connection_info()
    assert info["url"].startswith("https://127.0.0.1:") and info["api_version"] == "59.0"
    assert (info["stock_object"], info["external_id_field"]) == ("ProductItem", "ERP_Key__c")
    assert info["ca_cert"] and info["client_id"] and info["client_secret"]


def test_upsert_by_external_id_then_read_it_back(sf: Salesforce, running: Running) -> None:
    items = sf.ProductItem
    assert items.upsert("ERP_Key__c/SKU-0001|WH-MAIN", ITEM) == 201
    assert items.upsert("ERP_Key__c/SKU-0001|WH-MAIN", {"QuantityOnHand": 13}) == 200
    got = items.get_by_custom_id("ERP_Key__c", "SKU-0001|WH-MAIN")
    assert got["QuantityOnHand"] == 13.0 and got["attributes"]["type"] == "ProductItem"
    assert running.emulator.levels()[("SKU-0001", "WH-MAIN")] == 13
    assert items.api_usage["api-usage"] == Usage(*running.emulator.api_usage)


def test_collections_upsert_through_restful(sf: Salesforce, running: Running) -> None:
    records = [
        {
            "attributes": {"type": "ProductItem"},
            "ERP_Key__c": f"SKU-000{i}|WH-EAST",
            "Product2": {"ERP_SKU__c": f"SKU-000{i}"},
            "Location": {"ERP_Code__c": "WH-EAST"},
            "QuantityOnHand": i,
        }
        for i in (1, 2, 3)
    ]
    records[1]["Product2"] = {"ERP_SKU__c": "NOPE"}
    results = sf.restful(
        "composite/sobjects/ProductItem/ERP_Key__c",
        method="PATCH",
        json={"allOrNone": False, "records": records},
    )
    assert [r["success"] for r in results] == [True, False, True]
    assert results[0]["created"] is True and results[0]["id"].startswith("0TR")
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    again = sf.restful(
        "composite/sobjects/ProductItem/ERP_Key__c",
        method="PATCH",
        json={"allOrNone": False, "records": [records[0]]},
    )
    assert again[0]["created"] is False and again[0]["id"] == results[0]["id"]
    with pytest.raises(SalesforceMalformedRequest) as too_many:
        sf.restful(
            "composite/sobjects/ProductItem/ERP_Key__c",
            method="PATCH",
            json={"records": [records[0]] * 201},
        )
    assert too_many.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_query_all_follows_next_records_url(sf: Salesforce, running: Running) -> None:
    running.emulator.query_page_size = 4
    try:
        pages = sf.query("SELECT ERP_SKU__c FROM Product2 ORDER BY ERP_SKU__c")
        assert pages["done"] is False and pages["nextRecordsUrl"].startswith(
            "/services/data/v59.0/query/"
        )
        everything = sf.query_all(
            "SELECT ERP_SKU__c, Name FROM Product2 WHERE ERP_SKU__c LIKE 'SKU-%' "
            "ORDER BY ERP_SKU__c"
        )
    finally:
        running.emulator.query_page_size = 2000
    skus = [r["ERP_SKU__c"] for r in everything["records"]]
    assert everything["totalSize"] == 20 and skus == [f"SKU-{i:04d}" for i in range(1, 21)]


def test_describe_reports_precision_and_keys(sf: Salesforce) -> None:
    fields = {f["name"]: f for f in sf.ProductItem.describe()["fields"]}
    assert fields["ERP_Key__c"]["externalId"] is True and fields["ERP_Key__c"]["unique"] is True
    assert (fields["QuantityOnHand"]["type"], fields["QuantityOnHand"]["nillable"]) == (
        "double",
        False,
    )
    assert fields["QuantityOnHand"]["precision"] == 18 and fields["QuantityOnHand"]["scale"] == 2
    assert (
        fields["Product2Id"]["relationshipName"] == "Product2"
        and fields["Product2Id"]["updateable"] is False
    )
    names = {o["name"] for o in sf.describe()["sobjects"]}
    assert {"Product2", "Location", "ProductItem", "Stock_Level__c", "Stock_Movement__c"} <= names
    assert sf.limits()["DailyApiRequests"]["Max"] == 100_000


def test_errors_raise_simple_salesforces_exception_classes(
    sf: Salesforce, running: Running
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query("SELECT FROM ProductItem")
    assert bad.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceResourceNotFound):
        sf.ProductItem.upsert("QuantityOnHand/1", ITEM)
    running.emulator.store.objects["Product2"].add(
        FieldSpec("Legacy__c", "string", length=9, external_id=True)
    )
    for sku in ("A", "B"):
        running.emulator.add_record("Product2", {"Name": sku, "ERP_SKU__c": sku, "Legacy__c": "L"})
    with pytest.raises(SalesforceMoreThanOneRecord):
        sf.Product2.upsert("Legacy__c/L", {"Name": "x"})
    running.emulator.set_api_usage(used=100_000)
    try:
        with pytest.raises(SalesforceRefusedRequest) as refused:
            sf.query("SELECT Id FROM ProductItem")
    finally:
        running.emulator.set_api_usage(used=0)
    assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    running.emulator.expire_tokens()
    with pytest.raises(SalesforceExpiredSession) as expired:
        sf.query("SELECT Id FROM ProductItem")
    assert expired.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_token_answers_for_both_flows_through_token_login(
    running: Running, session: requests.Session
) -> None:
    info = running.connection_info()
    assertion = jwt.encode(
        {
            "iss": info["client_id"],
            "sub": info["username"],
            "aud": "https://login.salesforce.com",
            "exp": f"{(datetime.now(UTC) + timedelta(minutes=3)).timestamp():.0f}",
        },
        Path(info["jwt_key_file"]).read_bytes(),
        algorithm="RS256",
    )
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    token, instance = token_login(
        f"{running.url}/services/oauth2/token",
        grant,
        "login",
        info["client_id"],
        None,
        None,
        session,
    )
    sf = Salesforce(session_id=token, instance_url=f"https://{instance}", session=session)
    assert sf.query("SELECT COUNT() FROM Location")["totalSize"] == 5
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid client credentials"):
        _client_credentials(running, session, secret="wrong")


def test_a_lost_answer_over_the_socket_is_a_transport_error_after_the_write(
    sf: Salesforce, running: Running
) -> None:
    running.emulator.fail_next("lost_answer", route="upsert")
    with pytest.raises(requests.exceptions.RequestException):
        sf.ProductItem.upsert(
            "ERP_Key__c/SKU-0005|WH-MAIN", {**ITEM, "Product2": {"ERP_SKU__c": "SKU-0005"}}
        )
    assert running.emulator.levels()[("SKU-0005", "WH-MAIN")] == 12.5


def test_a_timeout_before_apply_over_the_socket_writes_nothing(
    sf: Salesforce, running: Running
) -> None:
    running.emulator.fail_next("timeout_before_apply", route="upsert")
    with pytest.raises(requests.exceptions.RequestException):
        sf.ProductItem.upsert(
            "ERP_Key__c/SKU-0006|WH-MAIN", {**ITEM, "Product2": {"ERP_SKU__c": "SKU-0006"}}
        )
    assert ("SKU-0006", "WH-MAIN") not in running.emulator.levels()
