"""The emulator's token endpoint, session expiry, daily API limit and injected faults
(reference §2, §9, §11.2–3, §11.8)."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import jwt
import pytest

from connectors.salesforce.emulator import SalesforceEmulator, build_emulator
from connectors.salesforce.emulator_tls import rsa_key
from tests.salesforce.emu_helpers import Api, FakeClock, error_of, item, record_errors

TOKEN = "/services/oauth2/token"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> SalesforceEmulator:
    return build_emulator("demo", clock=clock.time)


@pytest.fixture
def api(emulator: SalesforceEmulator) -> Api:
    return Api(emulator)


def _assertion(emulator: SalesforceEmulator, clock: FakeClock, **claims: Any) -> str:
    key = claims.pop("key", emulator.jwt_key)
    payload = {
        "iss": emulator.sessions.client_id,
        "sub": emulator.sessions.username,
        "aud": "https://login.salesforce.com",
        "exp": f"{clock.time() + 180:.0f}",  # simple-salesforce sends a numeric string (§10.1)
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256")


def _token(api: Api, data: dict[str, str], **kw: Any) -> httpx.Response:
    return api.http.post(TOKEN, data=data, **kw)


def test_client_credentials_in_a_basic_header_and_jwt_bearer_both_give_sessions(
    api: Api, emulator: SalesforceEmulator, clock: FakeClock
) -> None:
    basic = base64.b64encode(
        f"{emulator.sessions.client_id}:{emulator.sessions.client_secret}".encode()
    ).decode()
    by_header = _token(
        api, {"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    by_jwt = _token(
        api,
        {"grant_type": grant, "assertion": _assertion(emulator, clock, exp=int(clock.time()) + 60)},
    )
    for answer in (by_header, by_jwt):
        body = answer.json()
        assert answer.status_code == 200 and body["instance_url"] == "https://sf.test"
        assert (
            body["token_type"] == "Bearer"
            and "refresh_token" not in body
            and "expires_in" not in body
        )
        ok = api.http.get(
            "/services/data/v59.0/limits/",
            headers={"Authorization": f"Bearer {body['access_token']}"},
        )
        assert ok.status_code == 200


@pytest.mark.parametrize(
    ("change", "error", "description"),
    [
        ({"client_secret": "wrong"}, "invalid_client", "invalid client credentials"),
        ({"client_id": "nope"}, "invalid_client_id", "client identifier invalid"),
        ({"grant_type": "password"}, "unsupported_grant_type", "grant type not supported"),
    ],
)
def test_client_credentials_refusals(
    api: Api, emulator: SalesforceEmulator, change: dict[str, str], error: str, description: str
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.sessions.client_id,
        "client_secret": emulator.sessions.client_secret,
        **change,
    }
    answer = _token(api, form)
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": error, "error_description": description},
    )


def test_client_credentials_without_a_run_as_user(api: Api, emulator: SalesforceEmulator) -> None:
    emulator.sessions.client_credentials_enabled = False
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.sessions.client_id,
        "client_secret": emulator.sessions.client_secret,
    }
    assert _token(api, form).json()["error_description"] == "no client credentials user enabled"


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        ({"exp": 1}, "expired authorization code"),
        ({"exp": "soon"}, "expired authorization code"),
        ({"exp": 1_790_000_000 + 3600}, "expired authorization code"),
        ({"aud": "https://evil.example"}, "audience is invalid"),
        ({"sub": "someone@else.example"}, "user hasn't approved this consumer"),
        ({"key": "other"}, "invalid assertion"),
    ],
)
def test_jwt_refusals(
    api: Api,
    emulator: SalesforceEmulator,
    clock: FakeClock,
    claims: dict[str, Any],
    description: str,
) -> None:
    if claims.get("key") == "other":
        claims["key"] = rsa_key()
    grant = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": _assertion(emulator, clock, **claims),
    }
    answer = _token(api, grant)
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": description}


def test_sessions_expire_when_idle_and_each_call_resets_the_timer(
    api: Api, clock: FakeClock
) -> None:
    clock.advance(7000)
    assert api.call("GET", "/limits/").status_code == 200
    clock.advance(7000)
    assert api.call("GET", "/limits/").status_code == 200
    clock.advance(7200)
    assert error_of(api.call("GET", "/limits/")) == (401, "INVALID_SESSION_ID")


def test_expire_tokens_makes_the_next_call_401(api: Api, emulator: SalesforceEmulator) -> None:
    emulator.expire_tokens()
    assert error_of(api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN")])) == (
        401,
        "INVALID_SESSION_ID",
    )
    api.token = api.login()
    assert record_errors(api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN")])) == [None]


def test_every_api_answer_carries_the_limit_header_and_the_limit_refuses_with_403(
    api: Api, emulator: SalesforceEmulator, clock: FakeClock
) -> None:
    emulator.set_api_usage(used=8, limit=10)
    assert api.call("GET", "/limits/").json() == {"DailyApiRequests": {"Max": 10, "Remaining": 1}}
    refused = api.query("SELECT bad FROM")
    assert refused.status_code == 400 and refused.headers["Sforce-Limit-Info"] == "api-usage=10/10"
    over = api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN")])
    assert error_of(over) == (403, "REQUEST_LIMIT_EXCEEDED")
    assert (
        over.headers["Sforce-Limit-Info"] == "api-usage=10/10"
        and emulator.records("ProductItem") == []
    )
    assert emulator.api_usage == (10, 10)
    clock.advance(86_400)  # the allocation is a rolling 24 h
    api.token = api.login()
    assert api.call("GET", "/limits/").headers["Sforce-Limit-Info"] == "api-usage=1/10"


def test_call_faults(api: Api, emulator: SalesforceEmulator) -> None:
    emulator.fail_next("server_unavailable", route="collections")
    assert error_of(api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN")])) == (
        503,
        "SERVER_UNAVAILABLE",
    )
    emulator.fail_next("request_limit")
    assert error_of(api.query("SELECT Id FROM ProductItem")) == (403, "REQUEST_LIMIT_EXCEEDED")
    emulator.fail_next("session_expired")
    assert error_of(api.query("SELECT Id FROM ProductItem")) == (401, "INVALID_SESSION_ID")
    assert error_of(api.query("SELECT Id FROM ProductItem")) == (401, "INVALID_SESSION_ID"), (
        "the session is gone"
    )
    api.token = api.login()
    emulator.fail_next("unable_to_lock_row")
    locked = api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN"), item("SKU-0002", "WH-MAIN")])
    assert (
        record_errors(locked) == ["UNABLE_TO_LOCK_ROW"] * 2
        and emulator.records("ProductItem") == []
    )
    emulator.fail_next("http_500_after_apply")
    assert api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN", 4)]).status_code == 500
    assert emulator.levels() == {("SKU-0001", "WH-MAIN"): 4}, "applied before the 500"
    with pytest.raises(ValueError, match="unknown fault kind"):
        emulator.fail_next("gremlins")


def test_a_lost_answer_applied_the_write(api: Api, emulator: SalesforceEmulator) -> None:
    emulator.fail_next("lost_answer", route="collections")
    with pytest.raises(httpx.ReadTimeout):
        api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN", 7)])
    assert emulator.levels() == {("SKU-0001", "WH-MAIN"): 7}
    emulator.fail_next("timeout_before_apply", route="collections")
    with pytest.raises(httpx.ReadTimeout):
        api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN", 8)])
    assert emulator.levels() == {("SKU-0001", "WH-MAIN"): 7}


def test_record_faults_lock_once_or_validate_always(api: Api, emulator: SalesforceEmulator) -> None:
    emulator.fail_record("SKU-0002|WH-MAIN")  # UNABLE_TO_LOCK_ROW once
    emulator.fail_record("SKU-0003|WH-MAIN", "FIELD_CUSTOM_VALIDATION_EXCEPTION", times=None)
    batch = [item("SKU-0001", "WH-MAIN"), item("SKU-0002", "WH-MAIN"), item("SKU-0003", "WH-MAIN")]
    assert record_errors(api.upsert("ProductItem", batch)) == [
        None,
        "UNABLE_TO_LOCK_ROW",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    ]
    assert record_errors(api.upsert("ProductItem", batch)) == [
        None,
        None,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
    ]
    emulator.add_validation_rule(
        "ProductItem", lambda row: row["QuantityOnHand"] < 0, "no negative stock"
    )
    negative = api.upsert("ProductItem", [item("SKU-0004", "WH-MAIN", -1)]).json()[0]
    assert negative["errors"] == [
        {
            "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "no negative stock",
            "fields": [],
        }
    ]


def test_a_fault_hook_can_expire_the_session_mid_batch(
    api: Api, emulator: SalesforceEmulator
) -> None:
    seen: list[str] = []

    def hook(route: str) -> str | None:
        seen.append(route)
        return "session_expired" if len(seen) == 2 else None

    emulator.fault_hook = hook
    assert api.upsert("ProductItem", [item("SKU-0001", "WH-MAIN")]).status_code == 200
    assert error_of(api.upsert("ProductItem", [item("SKU-0002", "WH-MAIN")])) == (
        401,
        "INVALID_SESSION_ID",
    )
    assert seen == ["collections", "collections"] and emulator.calls["collections"] == 2


def test_a_real_clock_emulator_issues_working_tokens() -> None:
    api = Api(build_emulator("demo", clock=time.time))
    assert api.call("GET", "/sobjects/").json()["maxBatchSize"] == 200
