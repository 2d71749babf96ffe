"""The Salesforce client and sink against faults an emulator does not produce on demand
(respx): login flows, a 401 in the middle of a batch, the API limit, the budget ceiling,
per-record results, paging, masking. The emulator tests cover the documented happy paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.salesforce.client import error_for, parse_usage
from connectors.salesforce.sink import SalesforceSettings, SalesforceSink
from sync.errors import (
    AuthError,
    BudgetExhaustedError,
    ConfigError,
    OutcomeUnknownError,
    PermanentError,
    RecordGoneError,
    TransientError,
    UnmappedError,
)
from sync.model import LevelValue, StockKey
from sync.ports import ConnectorContext, MemoryTokenCache, TokenCache

LOGIN = "https://acme.my.salesforce.com"
INSTANCE = "https://acme-inst.my.salesforce.com"
API = f"{INSTANCE}/services/data/v59.0"
UPSERT = f"{API}/composite/sobjects/ProductItem/ERP_Key__c"
SECRET = "cs-0123456789abcdef"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

DESCRIBE = {
    "name": "ProductItem",
    "fields": [
        {"name": "Id", "type": "id"},
        {"name": "ERP_Key__c", "type": "string", "externalId": True, "nillable": True},
        {"name": "QuantityOnHand", "type": "double", "scale": 2, "createable": True},
        {"name": "Product2Id", "type": "reference", "relationshipName": "Product2"},
        {"name": "LocationId", "type": "reference", "relationshipName": "Location"},
    ],
}


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_sink(clock: Clock, cache: TokenCache | None = None, **overrides: Any) -> SalesforceSink:
    values: dict[str, Any] = {
        "login_url": LOGIN,
        "client_id": "consumer-key",
        "client_secret": SECRET,
        **overrides,
    }
    context = ConnectorContext(
        now=clock, sleep=clock.sleep, token_cache=cache or MemoryTokenCache()
    )
    return SalesforceSink(SalesforceSettings.model_validate(values), context)


def token_answer(token: str = "00D!tok-aaaaaaaaaaaa") -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": token, "instance_url": INSTANCE, "token_type": "Bearer"}
    )


def usage(used: int, limit: int = 1000) -> dict[str, str]:
    return {"Sforce-Limit-Info": f"api-usage={used}/{limit}"}


def ok_results(n: int, created: bool = True) -> list[dict[str, Any]]:
    return [
        {"id": f"0Hn{i:015}", "success": True, "errors": [], "created": created} for i in range(n)
    ]


ITEMS = [
    (StockKey("A-100", "WH1"), LevelValue(Decimal("5"), Decimal("5"))),
    (StockKey("B-200", "WH1"), LevelValue(Decimal("139.625"), Decimal("100"))),
]


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as r:
        r.get(f"{API}/sobjects/ProductItem/describe").mock(
            return_value=httpx.Response(200, json=DESCRIBE, headers=usage(1))
        )
        yield r


def test_client_credentials_login_is_cached_and_calls_go_to_the_instance_url(
    router: respx.MockRouter, clock: Clock
) -> None:
    login = router.post(f"{LOGIN}/services/oauth2/token").mock(return_value=token_answer())
    router.patch(UPSERT).mock(return_value=httpx.Response(200, json=ok_results(2)))
    cache = MemoryTokenCache()
    outcomes = make_sink(clock, cache).upsert_levels(ITEMS)
    assert [o.created for o in outcomes] == [True, True]
    form = parse_qs(login.calls[0].request.content.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "client_id": ["consumer-key"],
        "client_secret": [SECRET],
    }
    body = json.loads(router.routes[-1].calls[0].request.content)
    assert body["allOrNone"] is False
    assert body["records"][1] == {
        "attributes": {"type": "ProductItem"},
        "ERP_Key__c": "B-200|WH1",
        "Product2": {"ERP_SKU__c": "B-200"},
        "Location": {"ERP_Code__c": "WH1"},
        "QuantityOnHand": 139.62,  # the field's scale, half-even
    }
    assert (
        router.routes[-1].calls[0].request.headers["Authorization"] == "Bearer 00D!tok-aaaaaaaaaaaa"
    )
    make_sink(clock, cache).upsert_levels(ITEMS)  # a restarted daemon: the cached session
    assert login.call_count == 1


def test_jwt_bearer_sends_an_rs256_assertion_the_app_certificate_verifies(
    router: respx.MockRouter, clock: Clock
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    login = router.post("https://login.salesforce.com/services/oauth2/token").mock(
        return_value=token_answer()
    )
    router.patch(UPSERT).mock(return_value=httpx.Response(200, json=ok_results(2)))
    sink = make_sink(
        clock,
        login_url="https://login.salesforce.com",
        auth="jwt_bearer",
        client_secret=None,
        username="integration@acme.example",
        private_key=pem,
    )
    sink.upsert_levels(ITEMS)
    form = parse_qs(login.calls[0].request.content.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = jwt.decode(
        form["assertion"][0],
        key.public_key(),
        algorithms=["RS256"],
        audience="https://login.salesforce.com",
        options={"verify_exp": False},
    )
    assert claims == {
        "iss": "consumer-key",
        "sub": "integration@acme.example",
        "aud": "https://login.salesforce.com",
        "exp": int(T0.timestamp()) + 180,
    }
    assert pem not in repr(sink.settings) and "***" in str(sink.settings.masked_dump())


def test_a_401_mid_batch_logs_in_again_and_sends_the_batch_once_more(
    router: respx.MockRouter, clock: Clock
) -> None:
    login = router.post(f"{LOGIN}/services/oauth2/token").mock(
        side_effect=[token_answer("00D!tok-first-aaaa"), token_answer("00D!tok-second-bbb")]
    )
    expired = httpx.Response(
        401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    )
    upsert = router.patch(UPSERT).mock(
        side_effect=[expired, httpx.Response(200, json=ok_results(2))]
    )
    outcomes = make_sink(clock).upsert_levels(ITEMS)
    assert all(o.error is None for o in outcomes)
    assert login.call_count == 2 and upsert.call_count == 2
    assert upsert.calls[1].request.headers["Authorization"] == "Bearer 00D!tok-second-bbb"


def test_request_limit_exceeded_pauses_without_retrying(
    router: respx.MockRouter, clock: Clock
) -> None:
    router.post(f"{LOGIN}/services/oauth2/token").mock(return_value=token_answer())
    refused = httpx.Response(
        403,
        json=[{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
    )
    upsert = router.patch(UPSERT).mock(return_value=refused)
    with pytest.raises(BudgetExhaustedError) as info:
        make_sink(clock).upsert_levels(ITEMS)
    assert upsert.call_count == 1
    assert "REQUEST_LIMIT_EXCEEDED" in str(info.value)


def test_at_the_ceiling_writes_pause_until_the_usage_read_again_is_below_it(
    router: respx.MockRouter, clock: Clock
) -> None:
    router.post(f"{LOGIN}/services/oauth2/token").mock(return_value=token_answer())
    upsert = router.patch(UPSERT).mock(
        return_value=httpx.Response(200, json=ok_results(2), headers=usage(500))
    )
    limits = router.get(f"{API}/limits").mock(
        side_effect=[
            httpx.Response(200, json={}, headers=usage(520)),
            httpx.Response(200, json={}, headers=usage(400)),
        ]
    )
    sink = make_sink(clock, budget_recheck_s=300)
    sink.upsert_levels(ITEMS)  # the answer says 500 of 1000: the 50 % ceiling
    assert sink.api_usage() is not None and sink.api_usage().ceiling == 500  # type: ignore[union-attr]
    with pytest.raises(BudgetExhaustedError, match="500 of the org's 1000"):
        sink.upsert_levels(ITEMS)
    assert (upsert.call_count, limits.call_count) == (1, 0)  # no call at all
    clock.now += timedelta(seconds=300)
    with pytest.raises(BudgetExhaustedError, match="520 of"):
        sink.upsert_levels(ITEMS)
    clock.now += timedelta(seconds=300)
    sink.upsert_levels(ITEMS)  # 400: below the ceiling again
    assert (upsert.call_count, limits.call_count) == (2, 2)


def test_per_record_results_settle_each_item_by_its_own_code(
    router: respx.MockRouter, clock: Clock
) -> None:
    router.post(f"{LOGIN}/services/oauth2/token").mock(return_value=token_answer())

    def failed(code: str, message: str) -> dict[str, Any]:
        return {
            "success": False,
            "errors": [{"statusCode": code, "message": message, "fields": []}],
        }

    results = [
        {"id": "0Hn000000000001", "success": True, "errors": [], "created": False},
        failed("DUPLICATE_VALUE", "duplicate value found: ERP_Key__c"),
        failed("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"),
        failed(
            "INVALID_FIELD",
            "Foreign key external ID: NOPE not found for field ERP_SKU__c in entity Product2",
        ),
        failed("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Quantity must be positive"),
    ]
    router.patch(UPSERT).mock(return_value=httpx.Response(200, json=results))
    skus = ["S0", "S1", "S2", "NOPE", "S3"]
    items = [(StockKey(sku, "WH1"), LevelValue(Decimal(1), Decimal(1))) for sku in skus]
    outcomes = make_sink(clock).upsert_levels(items)
    assert (outcomes[0].crm_id, outcomes[0].created) == ("0Hn000000000001", False)
    errors = [o.error for o in outcomes[1:]]
    assert [type(e) for e in errors] == [
        PermanentError,
        TransientError,
        UnmappedError,
        PermanentError,
    ]
    unmapped = errors[2]
    assert isinstance(unmapped, UnmappedError) and (unmapped.what, unmapped.code) == ("sku", "NOPE")


def test_a_code_holding_the_key_separator_is_refused_alone_without_being_sent(
    router: respx.MockRouter, clock: Clock
) -> None:
    router.post(f"{LOGIN}/services/oauth2/token").mock(return_value=token_answer())
    upsert = router.patch(UPSERT).mock(return_value=httpx.Response(200, json=ok_results(1)))
    items = [(StockKey("A|B", "WH1"), LevelValue(Decimal(1), Decimal(1))), ITEMS[0]]
    outcomes = make_sink(clock).upsert_levels(items)
    assert isinstance(outcomes[0].error, PermanentError) and outcomes[1].crm_id
    assert len(json.loads(upsert.calls[0].request.content)["records"]) == 1


def test_a_lost_answer_after_retries_is_an_unknown_outcome(
    router: respx.MockRouter, clock: Clock
) -> None:
    router.post(f"{LOGIN}/services/oauth2/token").mock(return_value=token_answer())
    upsert = router.patch(UPSERT).mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(OutcomeUnknownError):
        make_sink(clock, max_attempts=3).upsert_levels(ITEMS)
    assert upsert.call_count == 3  # an upsert by External ID may be sent again as it is


def test_queries_follow_next_records_url(router: respx.MockRouter, clock: Clock) -> None:
    router.post(f"{LOGIN}/services/oauth2/token").mock(return_value=token_answer())

    def record(i: int) -> dict[str, Any]:
        return {
            "attributes": {"type": "ProductItem"},
            "Id": f"0Hn{i:015}",
            "ERP_Key__c": f"S{i}|WH1",
            "Product2": {"attributes": {"type": "Product2"}, "ERP_SKU__c": f"S{i}"},
            "Location": None if i == 2 else {"ERP_Code__c": "WH1"},
            "QuantityOnHand": 1.5 * i,
        }

    router.get(url__startswith=f"{API}/query?q=").mock(
        return_value=httpx.Response(
            200,
            json={
                "done": False,
                "totalSize": 3,
                "nextRecordsUrl": "/services/data/v59.0/query/01g-2",
                "records": [record(0), record(1)],
            },
        )
    )
    router.get(f"{API}/query/01g-2").mock(
        return_value=httpx.Response(
            200, json={"done": True, "totalSize": 3, "records": [record(2)]}
        )
    )
    levels = list(make_sink(clock).read_levels())
    assert [(lv.sku, lv.warehouse, lv.qty) for lv in levels] == [
        ("S0", "WH1", Decimal(0)),
        ("S1", "WH1", Decimal("1.5")),
        ("S2", f"crm:{levels[2].crm_id}", Decimal(3)),
    ]


def test_a_refused_login_names_the_setting_and_never_the_secret(
    router: respx.MockRouter, clock: Clock
) -> None:
    router.post(f"{LOGIN}/services/oauth2/token").mock(
        return_value=httpx.Response(
            400,
            json={
                "error": "invalid_client",
                "error_description": f"invalid client credentials {SECRET}",
            },
        )
    )
    with pytest.raises(ConfigError) as info:
        make_sink(clock).upsert_levels(ITEMS)
    assert info.value.problems[0].path == "crm.client_secret"
    assert SECRET not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize(
    ("code", "status", "options", "expected"),
    [
        ("INVALID_SESSION_ID", 401, {}, AuthError),
        ("REQUEST_LIMIT_EXCEEDED", 403, {}, BudgetExhaustedError),
        ("UNABLE_TO_LOCK_ROW", None, {}, TransientError),
        ("SERVER_UNAVAILABLE", 503, {"write": True}, OutcomeUnknownError),
        ("SERVER_UNAVAILABLE", 503, {}, TransientError),
        ("NOT_FOUND", 404, {"by_id": True}, RecordGoneError),
        ("ENTITY_IS_DELETED", None, {"by_id": True}, RecordGoneError),
        ("NOT_FOUND", 404, {}, PermanentError),
        ("MALFORMED_QUERY", 400, {}, PermanentError),
        ("DUPLICATE_VALUE", None, {}, PermanentError),
        ("REQUIRED_FIELD_MISSING", None, {}, PermanentError),
        ("", 500, {"write": True}, OutcomeUnknownError),
    ],
)
def test_error_codes_map_to_one_decision_each(
    code: str, status: int | None, options: dict[str, bool], expected: type[Exception]
) -> None:
    error = error_for(code, "message", what="call", status=status, **options)
    assert type(error) is expected


def test_the_limit_header_is_read_in_its_documented_shapes() -> None:
    assert parse_usage("api-usage=18/5000") == (18, 5000)
    assert parse_usage("api-usage=10018/100000; api-bursts=1/750") == (10018, 100000)
    assert parse_usage("per-app-api-usage=17/250(appName=x); api-usage=5/10") == (5, 10)
    assert parse_usage(None) is None and parse_usage("api-bursts=1/750") is None
