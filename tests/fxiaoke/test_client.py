"""Client unit tests: token lifecycle, error mapping, trace ids and paging rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors._emulator import transport_for
from connectors.fxiaoke.client import (
    MAX_OFFSET,
    TOKEN_PATH,
    flt,
    raise_for_error,
    seconds_until_quota_reset,
    token_cache_name,
)
from connectors.fxiaoke.emulator import DEMO_PRODUCTS, FxiaokeEmulator, build_emulator
from connectors.fxiaoke.sink import build
from sync.errors import (
    AuthError,
    ConfigError,
    OutcomeUnknownError,
    PermanentError,
    RecordGoneError,
    StockSyncError,
    TransientError,
)
from sync.model import LevelValue, StockKey
from sync.ports import ConnectorContext, MemoryTokenCache
from tests.fxiaoke.conftest import FakeClock, RecordingTransport, SinkFactory, settings_for

QUERY = "/cgi/crm/v2/data/query"
KEY = StockKey("SKU-0001", "WH-MAIN")
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def test_token_is_cached_and_reused(make_sink: SinkFactory, emulator: FxiaokeEmulator) -> None:
    sink = make_sink()
    for _ in range(5):
        assert sink.find_level(KEY) is None
    assert emulator.calls[TOKEN_PATH] == 1
    assert sink.client.token_requests == 1


def test_token_is_refreshed_ahead_of_expiry(
    make_sink: SinkFactory, emulator: FxiaokeEmulator, clock: FakeClock
) -> None:
    sink = make_sink()
    first = sink.client.token()
    clock.advance(6800)  # inside the reuse window minus the 300 s margin: no refresh
    assert sink.client.token() == first
    assert emulator.calls[TOKEN_PATH] == 1
    clock.advance(200)  # 7000 s: within 300 s of expiry → refresh before it is rejected
    sink.find_level(KEY)
    assert emulator.calls[TOKEN_PATH] == 2
    assert sink.client.token() != first
    assert emulator.errors[20016] == 0


def test_expired_token_is_refreshed_once_and_the_call_retried(
    make_sink: SinkFactory, emulator: FxiaokeEmulator
) -> None:
    sink = make_sink()
    sink.find_level(KEY)
    emulator.expire_tokens()
    emulator.reset_counters()
    assert sink.find_level(KEY) is None
    assert emulator.errors[20016] == 1
    assert emulator.calls[TOKEN_PATH] == 1
    assert emulator.calls[QUERY] == 2


def test_persistent_20016_raises_auth_error_after_one_refresh(
    make_sink: SinkFactory, emulator: FxiaokeEmulator
) -> None:
    sink = make_sink()
    sink.client.token()
    emulator.reset_counters()
    emulator.fail_next(QUERY, "token_expired", times=5)
    with pytest.raises(AuthError):
        sink.find_level(KEY)
    assert emulator.calls[QUERY] == 2
    assert emulator.calls[TOKEN_PATH] == 1


def test_token_cache_survives_a_new_client(
    make_sink: SinkFactory, emulator: FxiaokeEmulator
) -> None:
    cache = MemoryTokenCache()
    make_sink(token_cache=cache).find_level(KEY)
    second = make_sink(token_cache=cache)
    second.find_level(KEY)
    assert second.client.token_requests == 0
    assert emulator.calls[TOKEN_PATH] == 1
    assert cache.get_token(token_cache_name(second.client.settings)) is not None


@pytest.mark.parametrize("differs", ["permanent_code", "base_url"])
def test_two_tenants_of_one_app_keep_their_own_tokens_in_a_shared_cache(
    differs: str, clock: FakeClock
) -> None:
    """One pipeline per CRM tenant on one state database (issue 17): an ISV app with one
    appId authorised by two companies, or the same app in a sandbox and in production.
    A shared cache name made each pipeline use the other's token: 20016, every push."""
    cache = MemoryTokenCache()
    codes = {"permanent_code": ("corp-a-code-1234", "corp-b-code-5678")}.get(differs)
    emulators = [
        build_emulator("demo", clock=clock.time, **({"permanent_code": codes[i]} if codes else {}))
        for i in range(2)
    ]
    urls = ["http://fxiaoke.test", "http://fxiaoke.test" if codes else "http://sandbox.test"]
    sinks = [
        build(
            settings_for(e, base_url=url),
            ConnectorContext(
                pipeline=f"tenant{i}",
                now=clock.now,
                sleep=clock.sleep,
                token_cache=cache,
                http_transport=transport_for(e),
            ),
        )
        for i, (e, url) in enumerate(zip(emulators, urls, strict=True))
    ]
    for _ in range(3):
        for sink in sinks:
            sink.find_level(KEY)
    for e in emulators:
        assert e.calls[TOKEN_PATH] == 1 and e.errors[20016] == 0
    names = {token_cache_name(sink.client.settings) for sink in sinks}
    assert len(names) == 2
    assert not any("code" in name for name in names)  # the secret never names a row


def test_cached_token_near_expiry_is_not_used(
    make_sink: SinkFactory, emulator: FxiaokeEmulator, clock: FakeClock
) -> None:
    cache = MemoryTokenCache()
    make_sink(token_cache=cache).find_level(KEY)
    clock.advance(7000)
    second = make_sink(token_cache=cache)
    second.find_level(KEY)
    assert second.client.token_requests == 1
    assert emulator.errors[20016] == 0


def _body(code: int, message: str = "msg") -> dict[str, Any]:
    return {"errorCode": code, "errorMessage": message, "traceId": "E-O.t"}


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (-1, TransientError),
        (-2, TransientError),
        (50009, TransientError),
        (14001, TransientError),
        (30004, TransientError),
        (30002, TransientError),
        (20016, AuthError),
        (20005, AuthError),
        (10006, ConfigError),
        (20006, ConfigError),
        (20015, ConfigError),
        (20017, ConfigError),
        (20021, ConfigError),
        (20022, ConfigError),
        (30003, ConfigError),
        (15002, PermanentError),
        (32000, PermanentError),
        (123456, PermanentError),
    ],
)
def test_error_codes_map_to_their_class(code: int, cls: type[Exception]) -> None:
    with pytest.raises(cls) as info:
        raise_for_error(_body(code, "无此操作的数据权限"), what="op", now=NOW)
    assert type(info.value) is cls
    if cls is PermanentError:
        assert str(code) in str(info.value)
        assert "无此操作的数据权限" in str(info.value)
        assert info.value.context["error_code"] == code


@pytest.mark.parametrize(
    ("code", "message", "description", "write", "gone"),
    [
        (32000, "StockObj 65f0 does not exist", "数据不存在", True, True),
        (32000, "库存记录不存在", "", True, True),  # reference §6
        (32000, "StockObj 65f0 is invalid", "数据已作废", True, True),
        (32000, "object StockObj does not exist", "对象不存在", True, False),  # no such object
        (32000, "field product_id: ProductObj 65f0 not found", "", True, False),
        (32000, "无此操作的数据权限", "", True, False),
        (15002, "参数错误", "数据不存在", True, False),  # gone is a 32000 only
        (32000, "StockObj 65f0 does not exist", "数据不存在", False, False),  # a read
    ],
)
def test_a_write_to_a_record_that_is_gone_is_told_from_other_refusals(
    code: int, message: str, description: str, write: bool, gone: bool
) -> None:
    body = {**_body(code, message), "errorDescription": description}
    with pytest.raises(PermanentError) as info:
        raise_for_error(body, what="/cgi/crm/v2/data/update", now=NOW, write=write)
    assert isinstance(info.value, RecordGoneError) is gone
    assert info.value.context["error_code"] == code


#: for a write: the codes that leave the outcome unknown (architecture §5.5)
UNKNOWN_FOR_A_WRITE = {-1, -2, 50009}


@pytest.mark.parametrize(
    "code",
    [-1, -2, 50009, 14001, 30004, 30002, 20016, 20005, 10006, 20017, 30003, 15002, 32000, 10013],
)
def test_a_write_knows_which_codes_leave_its_outcome_unknown(code: int) -> None:
    with pytest.raises(StockSyncError) as info:
        raise_for_error(_body(code), what="create", now=NOW, write=True)
    assert isinstance(info.value, OutcomeUnknownError) is (code in UNKNOWN_FOR_A_WRITE)
    if code in UNKNOWN_FOR_A_WRITE:
        assert info.value.context["error_code"] == code
        assert "may have been applied" in str(info.value)


def test_a_write_answered_without_a_code_is_outcome_unknown() -> None:
    with pytest.raises(OutcomeUnknownError):
        raise_for_error({"errorMessage": "?"}, what="create", now=NOW, write=True)
    with pytest.raises(TransientError) as info:
        raise_for_error({"errorMessage": "?"}, what="query", now=NOW)
    assert not isinstance(info.value, OutcomeUnknownError)


def test_success_raises_nothing() -> None:
    raise_for_error(_body(0), what="op", now=NOW)


def test_config_errors_carry_the_meaning_of_the_code() -> None:
    with pytest.raises(ConfigError) as info:
        raise_for_error(_body(20015), what="token", now=NOW)
    assert info.value.problems[0].path == "crm.permanent_code"
    assert "permanentCode is wrong" in str(info.value)


def test_daily_quota_waits_until_shanghai_midnight() -> None:
    assert seconds_until_quota_reset(NOW) == 15 * 3600
    with pytest.raises(TransientError) as info:
        raise_for_error(_body(30002), what="op", now=NOW)
    assert info.value.retry_after_s == 15 * 3600


def test_daily_quota_is_not_slept_on_by_the_client(
    clock: FakeClock, make_sink: SinkFactory, emulator: FxiaokeEmulator
) -> None:
    emulator.daily_quota = 3
    sink = make_sink()
    sink.find_level(StockKey("SKU-0001", "WH-MAIN"))  # product, warehouse, stock: 3 calls
    with pytest.raises(TransientError) as info:
        sink.find_level(StockKey("SKU-0002", "WH-MAIN"))
    assert info.value.retry_after_s is not None and info.value.retry_after_s > 3600
    assert clock.slept == []


def test_bad_credentials_are_a_config_error(
    make_sink: SinkFactory, emulator: FxiaokeEmulator
) -> None:
    sink = make_sink(app_secret="wrong-secret-value")
    with pytest.raises(ConfigError) as info:
        sink.check()
    assert info.value.problems[0].path == "crm.app_secret"
    assert "10006" in str(info.value)
    assert emulator.calls[TOKEN_PATH] == 1  # config errors are not retried


def test_every_call_carries_a_fresh_third_trace_id(sink: Any, emulator: FxiaokeEmulator) -> None:
    sink.create_level(KEY, LevelValue(Decimal(1), Decimal(1)))
    sink.read_levels()
    list(sink.read_levels())
    ids = list(emulator.trace_ids)
    assert len(ids) >= 4 and None not in ids
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(str(i)).version == 4 for i in ids)


def test_envelope_puts_credentials_next_to_data(make_sink: SinkFactory, emulator: Any) -> None:
    transport = RecordingTransport(emulator)
    sink = make_sink(transport=transport)
    sink.create_level(KEY, LevelValue(Decimal("10.50"), Decimal("1E+1")))
    (body,) = transport.bodies("/cgi/crm/v2/data/create")
    assert body["corpId"] == emulator.corp_id
    assert body["currentOpenUserId"] == emulator.open_user_id
    assert body["corpAccessToken"]
    assert body["triggerApprovalFlow"] is False and body["triggerWorkFlow"] is False
    data = body["data"]["object_data"]
    assert data["dataObjectApiName"] == "StockObj"
    # every required number (reference §7), blocked = real − available
    assert (data["real_stock"], data["available_stock"], data["blocked_stock"]) == (
        "10.5",
        "10",
        "0.5",
    )
    (describe,) = transport.bodies("/cgi/crm/v2/object/describe")
    assert describe["apiName"] == describe["data"]["apiName"] == "StockObj"
    assert describe["includeDetail"] is describe["data"]["includeDetail"] is False


def _seed_products(emulator: FxiaokeEmulator, count: int) -> None:
    for i in range(count):
        emulator.add_product(f"BULK-{i:05d}", f"P{i}")


def test_offset_paging_switches_to_id_keyset_beyond_10000(
    make_sink: SinkFactory, emulator: FxiaokeEmulator
) -> None:
    _seed_products(emulator, 10_230)
    transport = RecordingTransport(emulator)
    client = make_sink(transport=transport).client
    rows = list(client.iter_query("ProductObj", [flt("product_code", "STARTWITH", "BULK-")]))
    codes = [r["product_code"] for r in rows]
    assert len(codes) == 10_230 and len(set(codes)) == 10_230
    infos = [b["data"]["search_query_info"] for b in transport.bodies(QUERY)]
    assert all(i["limit"] <= 100 and i["offset"] % i["limit"] == 0 for i in infos)
    assert max(i["offset"] for i in infos) == MAX_OFFSET
    keyset = [i for i in infos if any(f["field_name"] == "_id" for f in i["filters"])]
    assert keyset and all(i["offset"] == 0 for i in keyset)
    assert all(i["orders"] == [{"fieldName": "_id", "isAsc": True}] for i in infos)
    assert emulator.errors[10013] == 0


def test_keyset_paging_from_the_start(make_sink: SinkFactory, emulator: FxiaokeEmulator) -> None:
    _seed_products(emulator, 250)
    transport = RecordingTransport(emulator)
    client = make_sink(transport=transport).client
    rows = list(client.iter_query("ProductObj", [], keyset=True, page_size=100))
    assert len(rows) == 250 + len(DEMO_PRODUCTS)
    infos = [b["data"]["search_query_info"] for b in transport.bodies(QUERY)]
    assert [i["offset"] for i in infos] == [0, 0, 0]


def test_page_size_above_100_is_refused(sink: Any) -> None:
    with pytest.raises(ValueError):
        list(sink.client.iter_query("ProductObj", page_size=200))


@pytest.mark.parametrize(
    "info",
    [
        {"limit": 101, "offset": 0},
        {"limit": 100, "offset": 50},
        {"limit": 100, "offset": 10100},
    ],
)
def test_emulator_enforces_paging_limits(sink: Any, info: dict[str, int]) -> None:
    with pytest.raises(PermanentError) as info_exc:
        sink.client.query_page("ProductObj", info)
    assert info_exc.value.context["error_code"] == 10013


def test_create_timeout_is_outcome_unknown_and_not_retried(
    sink: Any, emulator: FxiaokeEmulator
) -> None:
    emulator.fail_next("/cgi/crm/v2/data/create", "timeout_after_apply")
    with pytest.raises(OutcomeUnknownError):
        sink.create_level(KEY, LevelValue(Decimal(3), Decimal(3)))
    assert emulator.calls["/cgi/crm/v2/data/create"] == 1
    (record,) = emulator.stock_records()
    assert sink.find_level(KEY) == record["_id"]
