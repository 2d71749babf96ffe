"""The emulator's query engine and envelopes, directly and over HTTP."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
import pytest

from connectors._emulator import transport_for
from connectors.k3cloud import query as q
from connectors.k3cloud.emulator import K3CloudEmulator, build_emulator
from connectors.k3cloud.signing import signed_headers
from connectors.k3cloud.store import lookup

from .conftest import StepClock

FIELDS = lookup("STK_InStock")


def _row(fid: int, bill: str, status: str, day: int | None, qty: str) -> q.Row:
    date = datetime(2024, 5, day) if day else None
    return {"fid": fid, "fbillno": bill, "fdocumentstatus": status, "fdate": date,
            "frealqty": Decimal(qty)}  # fmt: skip


ROWS = [_row(1, "A", "C", 1, "1"), _row(2, "B", "A", 2, "2"), _row(3, "O'K", "C", 3, "3"),
        _row(4, "D", "D", None, "4")]  # fmt: skip


def ids(spec: Any) -> list[int]:
    predicate = q.compile_filter(spec, FIELDS)
    return [r["fid"] for r in ROWS if predicate is None or predicate(r)]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", [1, 2, 3, 4]),
        ("FDocumentStatus = 'C'", [1, 3]),
        ("fdocumentstatus<>'C'", [2, 4]),
        ("FDocumentStatus != 'C' AND FRealQty > 2", [4]),
        ("FDocumentStatus='C' or FID=2", [1, 2, 3]),
        ("(FID = 1 OR FID = 2) AND FDocumentStatus = 'C'", [1]),
        ("FID = 1 OR (FID = 2 AND FDocumentStatus = 'C')", [1]),
        ("FDate >= '2024-05-02'", [2, 3]),
        ("FDate < '2024-05-02 00:00:01' and FDate>='2024-05-02T00:00:00'", [2]),
        ("FBillNo = 'O''K'", [3]),
        ("FRealQty <= 2.5", [1, 2]),
        ("FID IN (1, 3)", [1, 3]),
        ("FDocumentStatus NOT IN ('C', 'A')", [4]),
    ],
)
def test_filter_string(spec: str, expected: list[int]) -> None:
    assert ids(spec) == expected


def test_json_array_filter_form() -> None:
    spec = [
        {"Left": "(", "FieldName": "FDocumentStatus", "Compare": "StatusEqualto", "Value": "C",
         "Right": "", "Logic": 1},
        {"Left": "", "FieldName": "FID", "Compare": "=", "Value": 2, "Right": ")", "Logic": "AND"},
        {"Left": "", "FieldName": "FRealQty", "Compare": ">=", "Value": "2", "Right": "",
         "Logic": 0},
    ]  # fmt: skip
    assert ids(spec) == [2, 3]
    assert ids(json.dumps(spec)) == [2, 3]


@pytest.mark.parametrize(
    ("spec", "code"),
    [("FNope = 1", 9), ("FID = ", 8), ("(FID = 1", 8), ("FID = 1 FID", 8), ("FDate > 'x'", 8)],
)
def test_filter_errors(spec: str, code: int) -> None:
    with pytest.raises(q.QueryError) as caught:
        q.compile_filter(spec, FIELDS)
    assert caught.value.msg_code == code
    if code == 9:
        assert caught.value.message == "元数据中标识为FNope的字段不存在"


def test_order_and_paging() -> None:
    order = q.parse_order("FDocumentStatus ASC, FID DESC", FIELDS)
    assert [r["fid"] for r in q.sort_rows(ROWS, order)] == [2, 3, 1, 4]
    dated = q.sort_rows(ROWS, q.parse_order("FDate", FIELDS))
    assert [r["fid"] for r in dated] == [4, 1, 2, 3]  # null first
    assert q.page_bounds(10, 2, 3, 0, 100) == range(2, 5)
    assert q.page_bounds(10, 2, 3, 4, 100) == range(2, 4)  # TopRowCount is an absolute end row
    assert q.page_bounds(10, 8, 5, 0, 100) == range(8, 10)
    assert q.page_bounds(10, 0, 0, 0, 4) == range(0, 4)  # Limit 0 → the cap
    assert q.page_bounds(10, 0, 50_000, 0, 4) == range(0, 4)
    assert q.page_bounds(10, 12, 5, 0, 100) == range(12, 12)


def post(emulator: K3CloudEmulator, service: str, body: Any, *, sign: bool = True) -> Any:
    path = f"/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.{service}.common.kdsvc"
    info = emulator.connection_info("http://k3.test")
    headers = (
        signed_headers(
            path=path, acct_id=info["acct_id"], username=info["username"], app_id=info["app_id"],
            app_secret=info["app_secret"], lcid=2052, org_num=0, timestamp=1_700_000_000_000,
        )
        if sign
        else {}
    )  # fmt: skip
    with httpx.Client(transport=transport_for(emulator), base_url="http://k3.test") as client:
        response = client.post(path, content=json.dumps(body), headers=headers)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.cookies.get("kdservice-sessionid")
    return response.json()


QUERY = {"FormId": "STK_InStock", "FieldKeys": "FBillNo,FInStockEntry_FENTRYID,FRealQty"}


@pytest.fixture
def demo() -> K3CloudEmulator:
    return build_emulator("demo")


@pytest.mark.parametrize(
    "body",
    [
        {"data": QUERY},
        {"data": json.dumps(QUERY)},
        {"formid": "STK_InStock", "data": QUERY},
        {"parameters": [json.dumps(QUERY)]},
    ],
)
def test_four_body_shapes(demo: K3CloudEmulator, body: Any) -> None:
    rows = post(demo, "ExecuteBillQuery", body)
    assert len(rows) == 5 and all(len(r) == 3 for r in rows)


def test_http_paging_and_top_row_count(demo: K3CloudEmulator) -> None:
    query = {**QUERY, "OrderString": "FInStockEntry_FEntryID DESC"}
    everything = post(demo, "ExecuteBillQuery", {"data": query})
    page = post(demo, "ExecuteBillQuery", {"data": {**query, "StartRow": 1, "Limit": 2}})
    assert page == everything[1:3]
    top = {**query, "StartRow": 1, "Limit": 10, "TopRowCount": 2}
    assert post(demo, "ExecuteBillQuery", {"data": top}) == everything[1:2]
    assert everything[0][1] > everything[-1][1]


def envelope_of(answer: Any, wrapped: bool = True) -> dict[str, Any]:
    node = answer[0][0] if wrapped else answer
    status: dict[str, Any] = node["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False
    return status


def test_error_envelopes(demo: K3CloudEmulator) -> None:
    status = envelope_of(post(demo, "ExecuteBillQuery", {"data": {**QUERY, "FormId": "NOPE"}}))
    assert status["MsgCode"] == 4
    status = envelope_of(post(demo, "ExecuteBillQuery", {"data": {**QUERY, "FieldKeys": "FX"}}))
    assert status["MsgCode"] == 9
    assert status["Errors"][0]["Message"] == "元数据中标识为FX的字段不存在"
    assert envelope_of(post(demo, "ExecuteBillQuery", {"data": {}}))["MsgCode"] == 8
    assert envelope_of(post(demo, "ExecuteBillQuery", {}))["MsgCode"] == 8
    status = envelope_of(post(demo, "ExecuteBillQuery", {"data": QUERY}, sign=False))
    assert status["MsgCode"] == 1
    assert status["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"
    info = post(demo, "QueryBusinessInfo", {"data": {"FormId": "NOPE"}})
    assert envelope_of(info, wrapped=False)["MsgCode"] == 4


def test_millisecond_timestamps_and_bill_query(demo: K3CloudEmulator) -> None:
    rows = post(demo, "BillQuery", {"data": QUERY})
    assert rows[0].keys() == {"FBillNo", "FInStockEntry_FENTRYID", "FRealQty"}


def test_session_logins(demo: K3CloudEmulator) -> None:
    base = "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.AuthService."
    with httpx.Client(transport=transport_for(demo), base_url="http://k3.test") as client:
        bad = client.post(
            base + "ValidateUser.common.kdsvc", json={"parameters": ["x", "y", "z", 2052]}
        )
        assert bad.json()["LoginResultType"] == 0
        c = demo.credentials
        ok = client.post(
            base + "LoginByAppSecret.common.kdsvc",
            json={"parameters": [c["acct_id"], c["username"], c["app_id"], c["app_secret"], 2052]},
        )
        assert ok.json()["LoginResultType"] == 1
        sid = ok.cookies["kdservice-sessionid"]
        rows = client.post(
            "/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc",
            json={"data": QUERY},
            headers={"kdservice-sessionid": sid},
        ).json()
        assert len(rows) == 5


def test_inventory_follows_document_life_cycle(emulator: K3CloudEmulator) -> None:
    emulator.set_opening("A", "W1", "10")
    emulator.set_opening("A", "W1", "1", lot="L2")
    fid = emulator.create_document("SAL_OUTSTOCK", [{"material": "A", "qty": "4", "stock": "W1"}])
    inv = {
        "FormId": "STK_Inventory",
        "FieldKeys": "FMaterialId.FNumber,FStockId.FNumber,FLot.FNumber,FBaseQty",
    }
    assert post(emulator, "ExecuteBillQuery", {"data": inv}) == [
        ["A", "W1", "", 10],
        ["A", "W1", "L2", 1],
    ]
    emulator.audit("SAL_OUTSTOCK", fid)
    assert post(emulator, "ExecuteBillQuery", {"data": inv})[0] == ["A", "W1", "", 6]
    emulator.cancel("SAL_OUTSTOCK", fid)
    assert post(emulator, "ExecuteBillQuery", {"data": inv})[0] == ["A", "W1", "", 10]


def test_paging_reuses_the_sorted_result(emulator: K3CloudEmulator) -> None:
    for i in range(30):
        emulator.create_document("STK_InStock", [{"material": f"M{i}", "qty": "1", "stock": "W"}])
    query = {**QUERY, "OrderString": "FModifyDate ASC, FID ASC", "FilterString": "FID > 0"}
    _, first = emulator.run_query({**query, "StartRow": 0, "Limit": 10})
    assert len(emulator.queries._sorted_cache) == 1
    _, second = emulator.run_query({**query, "StartRow": 10, "Limit": 10})
    _, third = emulator.run_query({**query, "StartRow": 20, "Limit": 10})
    assert len(emulator.queries._query_cache) == 1
    assert first[-1]["fid"] < second[0]["fid"] and second[-1]["fid"] < third[0]["fid"]


def test_keyset_pages_seek_on_the_first_order_field(emulator: K3CloudEmulator) -> None:
    fids = [
        emulator.create_document("STK_InStock", [{"material": f"M{i}", "qty": "1", "stock": "W"}])
        for i in range(30)
    ]
    query = {**QUERY, "OrderString": "FID ASC", "Limit": 4}
    _, rows = emulator.run_query({**query, "FilterString": f"FID > {fids[9]} OR FID = 0"})
    assert [r["fid"] for r in rows] == fids[10:14]
    _, rows = emulator.run_query({**query, "FilterString": f"FID >= {fids[28]} AND FID < 0"})
    assert rows == []


def test_filter_bounds_follow_and_or() -> None:
    bounds = q.compile_filter_bounds(
        "FRealQty > 1 AND (FID > 5 OR (FID = 5 AND FRealQty > 9))"
        " AND (FBillNo = 'x' OR FRealQty > 0)",
        FIELDS,
    )
    assert bounds is not None
    assert bounds[1] == {"frealqty": Decimal(1), "fid": Decimal(5)}


@pytest.mark.parametrize("over_cap", ["cap", "refuse"])
def test_limit_above_the_servers_cap(over_cap: Literal["cap", "refuse"]) -> None:
    """Reference §3.1: Limit may not exceed the server's cap (2000, or WebAPIMaxQueryLimit);
    whether a server cuts the answer or refuses the query is not said: both, by switch."""
    emulator = K3CloudEmulator(max_limit=3, limit_over_cap=over_cap)
    for i in range(5):
        emulator.create_document("STK_InStock", [{"material": f"M{i}", "qty": "1", "stock": "W"}])
    query = {**QUERY, "OrderString": "FID ASC"}
    assert len(emulator.run_query({**query, "Limit": 3})[1]) == 3
    assert len(emulator.run_query({**query, "Limit": 0})[1]) == 3  # 0: the cap
    if over_cap == "cap":
        assert len(emulator.run_query({**query, "Limit": 4})[1]) == 3
    else:
        with pytest.raises(q.QueryError) as caught:
            emulator.run_query({**query, "Limit": 4})
        assert caught.value.msg_code == 8


@pytest.mark.parametrize("bumps", [True, False])
def test_removing_a_line_is_an_edit_that_stamps_fmodifydate(bumps: bool) -> None:
    """k3cloud-stock-quantities.md §1.3: a saved edit stamps FModifyDate, whatever the
    status switch says; the removed line leaves the rows and on-hand at once."""
    clock = StepClock()
    emulator = K3CloudEmulator(now=clock, status_bumps_modify_date=bumps)
    lines = [{"material": "A", "qty": q, "stock": "W1"} for q in ("1", "2", "4")]
    fid = emulator.create_document("STK_StockCountGain", lines, status="C")
    first, second, third = emulator.line_ids("STK_StockCountGain", fid)
    before = emulator.store.get("STK_StockCountGain", fid).modified
    emulator.remove_line("STK_StockCountGain", fid, second)
    doc = emulator.store.get("STK_StockCountGain", fid)
    assert doc.modified > before
    assert emulator.line_ids("STK_StockCountGain", fid) == [first, third]
    assert emulator.inventory() == {("A", "W1"): Decimal(5)}
    query = {
        "FormId": "STK_StockCountGain",
        "FieldKeys": "FID,FBillEntry_FEntryID,FModifyDate",
        "FilterString": f"FModifyDate > '{before.isoformat()}'",
    }
    rows = emulator.run_query(query)[1]
    assert [r["fbillentry_fentryid"] for r in rows] == [first, third]


def test_removing_an_unknown_or_the_only_line_is_refused(emulator: K3CloudEmulator) -> None:
    fid = emulator.create_document("STK_InStock", [{"material": "A", "qty": "1", "stock": "W"}])
    (only,) = emulator.line_ids("STK_InStock", fid)
    with pytest.raises(KeyError, match="no line"):
        emulator.remove_line("STK_InStock", fid, only + 1)
    with pytest.raises(ValueError, match="at least one line"):
        emulator.remove_line("STK_InStock", fid, only)
    assert emulator.line_ids("STK_InStock", fid) == [only]
