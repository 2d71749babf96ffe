"""Kingdee's own Python SDK talks to the emulator over a real socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from k3cloud_webapi_sdk.main import K3CloudApiSdk

from connectors._emulator import LoopbackServer
from connectors.k3cloud.emulator import build_emulator
from connectors.k3cloud.streams import STREAMS, field_keys


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, Any]]:
    emulator = build_emulator("demo")
    with LoopbackServer(emulator) as server:
        yield emulator.connection_info(server.url)


def sdk_for(info: dict[str, Any], secret: str | None = None) -> Any:
    sdk = K3CloudApiSdk(info["url"], timeout=10)
    sdk.InitConfig(
        info["acct_id"],
        info["username"],
        info["app_id"],
        secret or info["app_secret"],
        info["url"],
        info["lcid"],
        100,
    )
    return sdk


@pytest.mark.parametrize("stream", list(STREAMS))
def test_sdk_queries_every_stock_form(served: dict[str, Any], stream: str) -> None:
    defn = STREAMS[stream]
    keys = field_keys(defn)
    query = {
        "FormId": defn.form_id,
        "FieldKeys": ",".join(keys),
        "FilterString": "FDocumentStatus='C' and FApproveDate>='2000-01-01 00:00:00'",
        "OrderString": f"FModifyDate ASC, FID ASC, {defn.entry_id_key} ASC",
        "TopRowCount": 0,
        "StartRow": 0,
        "Limit": 2000,
        "SubSystemId": "",
    }
    rows = json.loads(sdk_for(served).ExecuteBillQuery(query))
    assert rows, stream
    for row in rows:
        assert len(row) == len(keys)
        assert row[1].startswith(defn.form_id.split("_")[-1].upper()[:3])  # FBillNo
        assert row[3] == "C"  # FDocumentStatus, in FieldKeys order
        assert isinstance(row[-1], int | float)


def test_sdk_reads_inventory(served: dict[str, Any]) -> None:
    sdk = sdk_for(served)
    rows = json.loads(
        sdk.ExecuteBillQuery(
            {
                "FormId": "STK_Inventory",
                "FieldKeys": "FMaterialId.FNumber,FStockId.FNumber,FBaseQty",
                "FilterString": "FBaseQty <> 0",
            }
        )
    )
    assert ["1.02.001", "CK002", 18.75] in rows


def test_sdk_keeps_the_session_cookie(served: dict[str, Any]) -> None:
    sdk = sdk_for(served)
    sdk.GetDataCenters()
    first = sdk.cookiesStore.SID
    assert first
    json.loads(sdk.ExecuteBillQuery({"FormId": "STK_InStock", "FieldKeys": "FID"}))


def test_sdk_with_wrong_secret_gets_msgcode_1(served: dict[str, Any]) -> None:
    answer = json.loads(
        sdk_for(served, secret="f" * 32).ExecuteBillQuery(
            {"FormId": "STK_InStock", "FieldKeys": "FID"}
        )
    )
    status = answer[0][0]["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False
    assert status["MsgCode"] == 1
    assert status["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"
