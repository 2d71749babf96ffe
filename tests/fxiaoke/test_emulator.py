"""The emulator behaves like the reference's §10 checklist."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from connectors._emulator import LoopbackServer, transport_for
from connectors.fxiaoke.emulator import FxiaokeEmulator, build_emulator
from tests.fxiaoke.conftest import FakeClock

TOKEN = "/cgi/corpAccessToken/get/V2"
PRESET = "/cgi/crm/v2/data/"
CUSTOM = "/cgi/crm/custom/v2/data/"

K3_DEMO_CODES = ["1.01.001", "1.01.002", "1.02.001", "2.01.001"]


class Api:
    def __init__(self, emulator: FxiaokeEmulator) -> None:
        self.emulator = emulator
        self.http = httpx.Client(transport=transport_for(emulator), base_url="http://emu")
        self.env: dict[str, Any] = {}

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        assert response.status_code == 200
        result: dict[str, Any] = response.json()
        assert {"errorCode", "errorMessage", "traceId"} <= set(result)
        return result

    def token(self, **override: str) -> dict[str, Any]:
        e = self.emulator
        creds = {"appId": e.app_id, "appSecret": e.app_secret, "permanentCode": e.permanent_code}
        return self.post(TOKEN, {**creds, **override})

    def login(self) -> None:
        answer = self.token()
        self.env = {
            "corpAccessToken": answer["corpAccessToken"],
            "corpId": answer["corpId"],
            "currentOpenUserId": self.emulator.open_user_id,
        }

    def data(self, action: str, data: dict[str, Any], prefix: str = PRESET) -> dict[str, Any]:
        return self.post(prefix + action, {**self.env, "data": data})

    def query(self, api: str, **info: Any) -> dict[str, Any]:
        info.setdefault("limit", 100)
        info.setdefault("offset", 0)
        prefix = CUSTOM if api.endswith("__c") else PRESET
        return self.data("query", {"dataObjectApiName": api, "search_query_info": info}, prefix)

    def create(self, api: str, **fields: Any) -> dict[str, Any]:
        prefix = CUSTOM if api.endswith("__c") else PRESET
        return self.data("create", {"object_data": {"dataObjectApiName": api, **fields}}, prefix)


@pytest.fixture
def api(emulator: FxiaokeEmulator) -> Api:
    client = Api(emulator)
    client.login()
    return client


def test_token_reuse_window_and_expiry(emulator: FxiaokeEmulator, clock: FakeClock) -> None:
    api = Api(emulator)
    first = api.token()
    assert first["expiresIn"] == 7200
    clock.advance(6000)
    assert api.token()["corpAccessToken"] == first["corpAccessToken"]
    clock.advance(700)  # 6700 s: a new token, the old one still valid until 7200 s
    second = api.token()["corpAccessToken"]
    assert second != first["corpAccessToken"]
    api.env = {"corpAccessToken": first["corpAccessToken"], "corpId": emulator.corp_id}
    assert api.query("ProductObj")["errorCode"] == 0
    clock.advance(600)
    assert api.query("ProductObj")["errorCode"] == 20016


def test_token_endpoint_allows_ten_per_minute(emulator: FxiaokeEmulator) -> None:
    api = Api(emulator)
    codes = [api.token()["errorCode"] for _ in range(11)]
    assert codes == [0] * 10 + [30004]


@pytest.mark.parametrize(
    ("override", "code"),
    [({"appSecret": "x"}, 10006), ({"appId": "x"}, 10006), ({"permanentCode": "x"}, 20015)],
)
def test_bad_credentials(emulator: FxiaokeEmulator, override: dict[str, str], code: int) -> None:
    assert Api(emulator).token(**override)["errorCode"] == code


def test_oauth_flow_and_header_auth(emulator: FxiaokeEmulator) -> None:
    api = Api(emulator)
    body = {
        "appId": emulator.app_id,
        "appSecret": emulator.app_secret,
        "permanentCode": emulator.permanent_code,
        "grantType": "app_secret",
    }
    answer = api.post("/oauth2.0/token", body)
    headers = {
        "authorization": f"Bearer {answer['accessToken']}",
        "x-fs-ea": answer["ea"],
        "x-fs-userid": "1000",
    }
    data = {"dataObjectApiName": "ProductObj", "search_query_info": {"limit": 5, "offset": 0}}
    result = api.http.post(PRESET + "query", json={"data": data}, headers=headers).json()
    assert result["errorCode"] == 0 and len(result["data"]["dataList"]) == 5


def test_missing_and_unknown_credentials(emulator: FxiaokeEmulator) -> None:
    api = Api(emulator)
    assert api.query("ProductObj")["errorCode"] == 20017
    api.env = {"corpAccessToken": "nope", "corpId": emulator.corp_id}
    assert api.query("ProductObj")["errorCode"] == 20016


def test_unknown_path_is_10006_with_http_200(api: Api) -> None:
    answer = api.post("/cgi/crm/v2/data/frobnicate", api.env)
    assert answer["errorCode"] == 10006 and "is not exists" in answer["errorMessage"]


STOCK = {"real_stock": "3.5", "available_stock": "3", "blocked_stock": "0.5"}


def test_create_stamps_and_validates(api: Api, emulator: FxiaokeEmulator) -> None:
    pid = emulator.add_product("P-1")
    wid = emulator.add_warehouse("W-1")
    created = api.create("StockObj", product_id=pid, warehouse_id=wid, **STOCK)
    assert created["errorCode"] == 0
    rec = api.data("get", {"dataObjectApiName": "StockObj", "objectDataId": created["dataId"]})
    rec = rec["data"]
    assert len(rec["_id"]) == 24 and int(rec["_id"], 16) >= 0
    assert rec["life_status"] == "normal" and rec["create_time"] == rec["last_modified_time"]
    assert rec["name"].startswith("SK")
    assert api.create("StockObj", product_id="x" * 24, warehouse_id=wid, **STOCK)["errorCode"]
    assert api.create("ProductObj", name="dup", product_code="P-1", price="1")["errorCode"] == 32000


@pytest.mark.parametrize(
    ("api_name", "missing"),
    [
        ("StockObj", "blocked_stock"),  # the case: every create lacked it
        ("StockObj", "available_stock"),
        ("StockObj", "real_stock"),
        ("StockObj", "warehouse_id"),
        ("ProductObj", "price"),  # §7: price (currency) is required on ProductObj
        ("WarehouseObj", "number"),
    ],
)
def test_create_without_a_required_field_is_refused(
    api: Api, emulator: FxiaokeEmulator, api_name: str, missing: str
) -> None:
    pid = emulator.add_product("P-1")
    wid = emulator.add_warehouse("W-1")
    complete = {
        "StockObj": {"product_id": pid, "warehouse_id": wid, **STOCK},
        "ProductObj": {"name": "P-2", "product_code": "P-2", "price": "1.20"},
        "WarehouseObj": {"name": "W-2", "number": "W-2", "is_default": False},
    }[api_name]
    assert api.create(api_name, **complete)["errorCode"] == 0
    unique = {"ProductObj": {"product_code": "P-3"}, "WarehouseObj": {"name": "W-3"}}
    fields = {**complete, **unique.get(api_name, {})}
    del fields[missing]
    answer = api.create(api_name, **fields)
    # a business error, code undocumented (reference §3): the emulator's inferred 32000
    assert answer["errorCode"] == 32000
    assert answer["errorMessage"] == f"必填字段 {missing} 未填写"


def test_update_that_empties_a_required_field_is_refused(
    api: Api, emulator: FxiaokeEmulator
) -> None:
    rid = emulator.add_stock(emulator.add_product("P-1"), emulator.add_warehouse("W-1"), "4")
    upd = {"object_data": {"dataObjectApiName": "StockObj", "_id": rid, "blocked_stock": ""}}
    assert api.data("update", upd)["errorCode"] == 32000


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("real_stock", 3, 15002),  # §5.3: a number is a JSON string, not a JSON number
        ("available_stock", 2.5, 15002),
        ("real_stock", "3.125", 32000),  # §7: StockObj numbers hold 2 decimals
        ("blocked_stock", "0.001", 32000),
        ("real_stock", "abc", 15002),
    ],
)
def test_number_fields_want_strings_within_their_decimal_places(
    api: Api, emulator: FxiaokeEmulator, field: str, value: object, code: int
) -> None:
    pid, wid = emulator.add_product("P-1"), emulator.add_warehouse("W-1")
    fields = {**STOCK, "real_stock": "3.5", field: value}
    answer = api.create("StockObj", product_id=pid, warehouse_id=wid, **fields)
    assert answer["errorCode"] == code, answer
    assert not emulator.stock_records()
    rid = emulator.add_stock(pid, wid, "4")
    upd = {"object_data": {"dataObjectApiName": "StockObj", "_id": rid, field: value}}
    assert api.data("update", upd)["errorCode"] == code


def test_trailing_zeros_are_not_extra_decimals(api: Api, emulator: FxiaokeEmulator) -> None:
    pid, wid = emulator.add_product("P-1"), emulator.add_warehouse("W-1")
    fields = {"real_stock": "3.500", "available_stock": "3", "blocked_stock": "0.50"}
    assert api.create("StockObj", product_id=pid, warehouse_id=wid, **fields)["errorCode"] == 0


def test_decimal_places_follow_the_describe(api: Api, emulator: FxiaokeEmulator) -> None:
    mirror = emulator.store.tables["stock_movement__c"].describe
    assert api.create("stock_movement__c", erp_key__c="k1", qty__c="1.2345")["errorCode"] == 0
    mirror.with_field("qty__c", decimal_places=0)
    assert api.create("stock_movement__c", erp_key__c="k2", qty__c="1.5")["errorCode"] == 32000
    assert api.create("stock_movement__c", erp_key__c="k3", qty__c="2")["errorCode"] == 0


@pytest.mark.parametrize(
    "field",
    [
        "product_id__r",  # §5.3 companion fields of a read
        "warehouse_id__l",
        "product_status__o",
        "__v",
        "owner__relation_ids",
        "unit",  # §7: quote fields copied from the product
        "specs",
        "product_status",
        "create_time",  # system stamps
        "life_status",
    ],
)
def test_read_only_fields_are_refused(api: Api, emulator: FxiaokeEmulator, field: str) -> None:
    pid, wid = emulator.add_product("P-1"), emulator.add_warehouse("W-1")
    fields = {"product_id": pid, "warehouse_id": wid, **STOCK, field: "1"}
    answer = api.create("StockObj", **fields)
    assert answer["errorCode"] == 32000 and field in answer["errorMessage"]
    rid = emulator.add_stock(pid, wid, "4")
    upd = {"object_data": {"dataObjectApiName": "StockObj", "_id": rid, field: "1"}}
    assert api.data("update", upd)["errorCode"] == 32000
    upd["object_data"] = {"dataObjectApiName": "StockObj", "_id": rid, "safety_stock": "1"}
    assert api.data("update", upd)["errorCode"] == 0  # a writable field passes


def test_update_merges_and_invalid_delete_recover(api: Api, emulator: FxiaokeEmulator) -> None:
    pid = emulator.add_product("P-1")
    upd = {"object_data": {"dataObjectApiName": "ProductObj", "_id": pid, "price": "9.90"}}
    assert api.data("update", upd)["errorCode"] == 0
    (rec,) = [r for r in emulator.records("ProductObj") if r["_id"] == pid]
    assert rec["price"] == "9.90" and rec["product_code"] == "P-1"
    ids = {"dataObjectApiName": "ProductObj", "idList": [pid]}
    assert api.data("delete", ids)["errorCode"] != 0  # only invalid records can be deleted
    api.data("invalid", {"dataObjectApiName": "ProductObj", "object_data_id": pid})
    flt = [{"field_name": "product_code", "operator": "EQ", "field_values": ["P-1"]}]
    assert api.query("ProductObj", filters=flt)["data"]["dataList"] == []
    api.data("recover", ids)
    assert len(api.query("ProductObj", filters=flt)["data"]["dataList"]) == 1
    api.data("invalid", {"dataObjectApiName": "ProductObj", "object_data_id": pid})
    assert api.data("delete", ids)["errorCode"] == 0
    assert pid not in emulator.store.tables["ProductObj"].records


def test_an_update_of_a_record_that_is_gone_is_refused(api: Api, emulator: FxiaokeEmulator) -> None:
    """Deleted (or never made): 32000 "数据不存在"; invalidated (作废): 32000 "数据已作废";
    an unknown object type is another text ("对象不存在"). Nothing is written."""
    pid, wid = emulator.add_product("P-1"), emulator.add_warehouse("W-1")
    rid = emulator.add_stock(pid, wid, "4")

    def update(record_id: str, api_name: str = "StockObj") -> dict[str, Any]:
        fields = {"dataObjectApiName": api_name, "_id": record_id, "real_stock": "5"}
        return api.data("update", {"object_data": fields})

    unknown = update("0123456789abcdef01234567")
    assert (unknown["errorCode"], unknown["errorDescription"]) == (32000, "数据不存在")
    api.data("invalid", {"dataObjectApiName": "StockObj", "object_data_id": rid})
    voided = update(rid)
    assert (voided["errorCode"], voided["errorDescription"]) == (32000, "数据已作废")
    ids = {"dataObjectApiName": "StockObj", "idList": [rid]}
    assert api.data("delete", ids)["errorCode"] == 0
    deleted = update(rid)
    assert (deleted["errorCode"], deleted["errorDescription"]) == (32000, "数据不存在")
    assert update(rid, "NoSuchObj")["errorDescription"] == "对象不存在"
    assert emulator.stock_records() == []


@pytest.mark.parametrize(
    ("operator", "values", "expected"),
    [
        ("EQ", ["SKU-0003"], ["SKU-0003"]),
        ("IN", ["SKU-0003", "SKU-0005"], ["SKU-0003", "SKU-0005"]),
        ("STARTWITH", ["SKU-001"], [f"SKU-{i:04d}" for i in range(10, 20)]),
        ("LIKE", ["-002"], ["SKU-0020"]),
        ("GT", ["SKU-0018"], ["SKU-0019", "SKU-0020"]),
        # text order: the K/3 Cloud demo's codes ("1.01.001"…) sort before "SKU-"
        ("LTE", ["SKU-0002"], [*K3_DEMO_CODES, "SKU-0001", "SKU-0002"]),
        ("BETWEEN", ["SKU-0004", "SKU-0006"], ["SKU-0004", "SKU-0005", "SKU-0006"]),
    ],
)
def test_filter_operators(api: Api, operator: str, values: list[str], expected: list[str]) -> None:
    flt = [{"field_name": "product_code", "operator": operator, "field_values": values}]
    rows = api.query("ProductObj", filters=flt, fieldProjection=["product_code"])["data"]
    assert sorted(r["product_code"] for r in rows["dataList"]) == expected
    assert all(set(r) == {"_id", "product_code"} for r in rows["dataList"])


def test_numeric_filters_orders_and_total(api: Api, emulator: FxiaokeEmulator) -> None:
    wid = emulator.add_warehouse("W-1")
    for i, qty in enumerate(["5", "12.5", "100", "7"]):
        emulator.add_stock(emulator.add_product(f"N-{i}"), wid, qty)
    flt = [{"field_name": "real_stock", "operator": "GTE", "field_values": ["7"]}]
    orders = [{"fieldName": "real_stock", "isAsc": False}]
    data = api.query("StockObj", filters=flt, orders=orders, find_explicit_total_num=True)["data"]
    assert [r["real_stock"] for r in data["dataList"]] == ["100", "12.5", "7"]
    result = api.data(
        "query",
        {
            "dataObjectApiName": "StockObj",
            "find_explicit_total_num": True,
            "search_query_info": {"limit": 2, "offset": 0, "filters": flt},
        },
    )
    assert result["data"]["total"] == 3 and len(result["data"]["dataList"]) == 2


def test_preset_and_custom_routing(api: Api) -> None:
    wrong = api.data(
        "query",
        {"dataObjectApiName": "stock_movement__c", "search_query_info": {"limit": 10, "offset": 0}},
    )
    assert wrong["errorCode"] != 0
    wrong = api.data(
        "query",
        {"dataObjectApiName": "StockObj", "search_query_info": {"limit": 10, "offset": 0}},
        CUSTOM,
    )
    assert wrong["errorCode"] != 0
    assert api.create("stock_movement__c", erp_key__c="k1", qty__c="1")["errorCode"] == 0
    assert api.create("stock_movement__c", erp_key__c="k1", qty__c="1")["errorCode"] == 32000


DESCRIBE = "/cgi/crm/v2/object/describe"


@pytest.mark.parametrize("where", ["top", "data"])
def test_describe_serves_seeded_objects(api: Api, where: str) -> None:
    ask = {"apiName": "StockObj", "includeDetail": True}
    body = {**api.env, **ask} if where == "top" else {**api.env, "data": ask}
    fields = api.post(DESCRIBE, body)["data"]["describe"]["fields"]
    for name in ("real_stock", "available_stock", "blocked_stock"):
        assert fields[name]["is_required"] and fields[name]["decimal_places"] == 2
    assert fields["product_id"]["is_required"] and not fields["safety_stock"]["is_required"]
    assert fields["unit"]["type"] == "quote" and fields["unit"]["is_readonly"]


def test_describe_refuses_what_the_reference_does_not_allow(api: Api) -> None:
    unknown = {**api.env, "data": {"apiName": "NopeObj", "includeDetail": False}}
    assert api.post(DESCRIBE, unknown)["errorCode"] != 0
    assert api.post(DESCRIBE, {**api.env, "data": {"includeDetail": True}})["errorCode"] == 15002
    # includeDetail is required and a boolean (Fxiaoke's manual)
    assert api.post(DESCRIBE, {**api.env, "data": {"apiName": "StockObj"}})["errorCode"] == 15002
    bad = {**api.env, "data": {"apiName": "StockObj", "includeDetail": "yes"}}
    assert api.post(DESCRIBE, bad)["errorCode"] == 15002


def test_rate_limit_daily_quota_and_faults(
    api: Api, emulator: FxiaokeEmulator, clock: FakeClock
) -> None:
    emulator.rate_limit_calls = 3
    codes = [api.query("ProductObj")["errorCode"] for _ in range(4)]
    assert codes == [0, 0, 0, 30004]
    clock.advance(20)
    assert api.query("ProductObj")["errorCode"] == 0
    emulator.fail_next(PRESET + "query", "busy")
    emulator.fail_next(PRESET + "query", "rate")
    assert [api.query("ProductObj")["errorCode"] for _ in range(2)] == [-1, 30004]
    emulator.fail_next("*", "http_500")
    assert api.http.post(PRESET + "query", json={**api.env, "data": {}}).status_code == 500
    emulator.daily_quota = 0
    clock.advance(20)
    assert api.query("ProductObj")["errorCode"] == 30002
    assert emulator.calls[PRESET + "query"] == 9
    emulator.reset_counters()
    assert not emulator.calls and not emulator.errors
    with pytest.raises(ValueError):
        emulator.fail_next("*", "bogus")


def test_demo_scenario_and_loopback_serving() -> None:
    emulator = build_emulator("demo")
    assert len(emulator.records("ProductObj")) == 24
    assert len(emulator.records("WarehouseObj")) == 5
    with LoopbackServer(emulator) as server:
        info = emulator.connection_info(server.url)
        assert set(info) == {"url", "app_id", "app_secret", "permanent_code", "open_user_id"}
        answer = httpx.post(
            server.url + TOKEN,
            json={
                "appId": info["app_id"],
                "appSecret": info["app_secret"],
                "permanentCode": info["permanent_code"],
            },
        ).json()
        assert answer["errorCode"] == 0
    with pytest.raises(ValueError):
        build_emulator("nope")


@pytest.mark.parametrize("code", [-1, -2, 50009, 30004])
def test_error_after_apply_writes_then_answers_the_code(api: Api, code: int) -> None:
    api.emulator.fail_next(PRESET + "create", f"error_after_apply:{code}")
    api.emulator.fail_next(PRESET + "create", f"error:{code}")
    names = [f"after-{code}", f"refused-{code}"]
    answers = [
        api.create("WarehouseObj", name=n, number=n, is_default=False)["errorCode"] for n in names
    ]
    assert answers == [code, code]
    assert _warehouses(api, names) == [names[0]]


def test_http_status_faults_before_and_after_apply(api: Api) -> None:
    api.emulator.fail_next(PRESET + "create", "http_504_after_apply")
    api.emulator.fail_next(PRESET + "create", "http_502")
    body = {**api.env, "data": {"object_data": {"dataObjectApiName": "WarehouseObj"}}}
    for status, name in ((504, "applied"), (502, "refused")):
        body["data"]["object_data"].update(name=name, number=name, is_default=False)
        assert api.http.post(PRESET + "create", json=body).status_code == status
    assert _warehouses(api, ["applied", "refused"]) == ["applied"]
    with pytest.raises(ValueError):
        api.emulator.fail_next("*", "error_after_apply:busy")


def test_connect_refused_reaches_nothing(api: Api) -> None:
    api.emulator.fail_next(PRESET + "create", "connect_refused")
    with pytest.raises(httpx.ConnectError):
        api.create("WarehouseObj", name="x", number="x", is_default=False)
    assert _warehouses(api, ["x"]) == []


def _warehouses(api: Api, names: list[str]) -> list[str]:
    return [r["name"] for r in api.emulator.records("WarehouseObj") if r["name"] in names]


def test_custom_create_answer_with_or_without_data_id(api: Api) -> None:
    """Reference §5.2: the custom-object example answers without dataId; both behaviours."""
    with_id = api.create("stock_movement__c", erp_key__c="k1")
    assert with_id["errorCode"] == 0 and with_id["dataId"]
    api.emulator.custom_create_returns_id = False
    without = api.create("stock_movement__c", erp_key__c="k2")
    assert without["errorCode"] == 0 and "dataId" not in without and "data" not in without
    assert {r["erp_key__c"] for r in api.emulator.movement_records()} == {"k1", "k2"}
    preset = api.create("WarehouseObj", name="w-preset", number="w-preset", is_default=False)
    assert preset["dataId"]  # preset objects keep answering with their id
    with pytest.raises(ValueError):
        api.emulator.fail_next("*", "http_599")
