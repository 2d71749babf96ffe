"""Helpers for the emulator's own tests: an authenticated in-process client (no conftest.py,
so these tests and the sink's share the folder without sharing fixtures)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from connectors._emulator import transport_for
from connectors.salesforce.emulator import SalesforceEmulator

V = "/services/data/v59.0"


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.t = start

    def time(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Api:
    """An httpx client on the emulator (in-process) holding a client-credentials session."""

    def __init__(self, emulator: SalesforceEmulator) -> None:
        self.emulator = emulator
        self.http = httpx.Client(transport=transport_for(emulator), base_url="https://sf.test")
        self.token = self.login()

    def login(self) -> str:
        answer = self.http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.emulator.sessions.client_id,
                "client_secret": self.emulator.sessions.client_secret,
            },
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.http.request(method, V + path, headers=headers, **kw)

    def query(self, soql: str, **kw: Any) -> httpx.Response:
        return self.call("GET", "/query/", params={"q": soql}, **kw)

    def upsert(
        self,
        obj: str,
        records: list[dict[str, Any]],
        *,
        all_or_none: bool = False,
        key: str = "ERP_Key__c",
    ) -> httpx.Response:
        body = {
            "allOrNone": all_or_none,
            "records": [{"attributes": {"type": obj}, **r} for r in records],
        }
        # Decimals as JSON numbers (their float repr reads back as the same decimal)
        content = json.dumps(body, default=float).encode()
        headers = {"Content-Type": "application/json"}
        return self.call(
            "PATCH", f"/composite/sobjects/{obj}/{key}", content=content, headers=headers
        )


def item(sku: str, wh: str, qty: Any = 1, **extra: Any) -> dict[str, Any]:
    """A ProductItem record of the demo scenario, parents by External ID (§4.3)."""
    return {
        "ERP_Key__c": f"{sku}|{wh}",
        "Product2": {"ERP_SKU__c": sku},
        "Location": {"ERP_Code__c": wh},
        "QuantityOnHand": qty,
        **extra,
    }


def error_of(answer: httpx.Response) -> tuple[int, str]:
    """(HTTP status, errorCode) of a REST error answer, which is always a JSON array (§3)."""
    body = answer.json()
    assert isinstance(body, list) and set(body[0]) >= {"message", "errorCode"}, body
    return answer.status_code, str(body[0]["errorCode"])


def record_errors(answer: httpx.Response) -> list[str | None]:
    """Per record of a collections answer: its statusCode, or None when it succeeded."""
    assert answer.status_code == 200, answer.text
    return [None if r["success"] else r["errors"][0]["statusCode"] for r in answer.json()]
