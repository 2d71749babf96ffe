"""Faults the emulator sits behind, injected with respx around its handler."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import httpx
import pytest
import respx

from connectors._emulator import handler_for
from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.sink import FxiaokeSink
from sync.errors import OutcomeUnknownError
from sync.model import LevelValue, StockKey
from tests.fxiaoke.conftest import BASE_URL, FakeClock, SinkFactory

CREATE = "/cgi/crm/v2/data/create"
UPDATE = "/cgi/crm/v2/data/update"
QUERY = "/cgi/crm/v2/data/query"
TOKEN = "/cgi/corpAccessToken/get/V2"
KEY = StockKey("SKU-0001", "WH-MAIN")


class Faults:
    """A respx side effect: the emulator's handler with queued faults per path."""

    def __init__(self, emulator: FxiaokeEmulator) -> None:
        self.emulator = emulator
        self.handler = handler_for(emulator)
        self.queued: dict[str, list[str]] = {}
        #: runs first; may raise, or return the answer to give instead of the emulator's
        self.before: Callable[[httpx.Request], httpx.Response | None] | None = None

    def add(self, path: str, kind: str, times: int = 1) -> None:
        self.queued.setdefault(path, []).extend([kind] * times)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.before:
            answer = self.before(request)
            if answer is not None:
                return answer
        queue = self.queued.get(request.url.path) or []
        kind = queue.pop(0) if queue else None
        if kind == "timeout_after_apply":
            self.handler(request)
            raise httpx.ReadTimeout("injected timeout", request=request)
        if kind == "http_502":
            return httpx.Response(502, text="bad gateway")
        if kind == "http_500_after_apply":
            self.handler(request)
            return httpx.Response(500, text="oops")
        if kind == "rate":
            return httpx.Response(200, json={"errorCode": 30004, "errorMessage": "limit"})
        return self.handler(request)


@pytest.fixture
def faults(emulator: FxiaokeEmulator) -> Iterator[Faults]:
    faults = Faults(emulator)
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        router.route().mock(side_effect=faults)
        yield faults


@pytest.fixture
def rsink(make_sink: SinkFactory, faults: Faults) -> FxiaokeSink:
    return make_sink(transport=None)  # httpx's default transport, which respx patches


def test_create_timeout_after_apply_is_outcome_unknown(
    rsink: FxiaokeSink, faults: Faults, emulator: FxiaokeEmulator
) -> None:
    faults.add(CREATE, "timeout_after_apply")
    with pytest.raises(OutcomeUnknownError):
        rsink.create_level(KEY, LevelValue(Decimal(5), Decimal(5)))
    assert emulator.calls[CREATE] == 1  # not retried blindly
    (record,) = emulator.stock_records()
    assert rsink.find_level(KEY) == record["_id"]


def test_create_5xx_after_apply_is_outcome_unknown(
    rsink: FxiaokeSink, faults: Faults, emulator: FxiaokeEmulator
) -> None:
    faults.add(CREATE, "http_500_after_apply")
    with pytest.raises(OutcomeUnknownError):
        rsink.create_level(KEY, LevelValue(Decimal(5), Decimal(5)))
    assert rsink.find_level(KEY) == emulator.stock_records()[0]["_id"]


def test_5xx_on_reads_and_updates_is_retried(
    rsink: FxiaokeSink, faults: Faults, emulator: FxiaokeEmulator
) -> None:
    crm_id = rsink.create_level(KEY, LevelValue(Decimal(1), Decimal(1)))
    faults.add(QUERY, "http_502", times=2)
    faults.add(UPDATE, "http_502", times=2)
    assert rsink.find_level(KEY) == crm_id
    rsink.update_level(crm_id, KEY, LevelValue(Decimal(7), Decimal(6)))
    assert emulator.stock_records()[0]["real_stock"] == "7"


def test_update_timeout_is_retried_because_update_is_idempotent(
    rsink: FxiaokeSink, faults: Faults, emulator: FxiaokeEmulator
) -> None:
    crm_id = rsink.create_level(KEY, LevelValue(Decimal(1), Decimal(1)))
    faults.add(UPDATE, "timeout_after_apply")
    rsink.update_level(crm_id, KEY, LevelValue(Decimal(9), Decimal(9)))
    assert emulator.calls[UPDATE] == 2
    assert emulator.stock_records()[0]["real_stock"] == "9"


def test_30004_storm_is_ridden_out(
    rsink: FxiaokeSink, faults: Faults, emulator: FxiaokeEmulator, clock: FakeClock
) -> None:
    crm_id = rsink.create_level(KEY, LevelValue(Decimal(1), Decimal(1)))
    faults.add(UPDATE, "rate", times=4)
    rsink.update_level(crm_id, KEY, LevelValue(Decimal(2), Decimal(2)))
    assert len(clock.slept) >= 4
    assert emulator.stock_records()[0]["real_stock"] == "2"


def test_30004_on_create_is_retried(
    rsink: FxiaokeSink, faults: Faults, emulator: FxiaokeEmulator
) -> None:
    faults.add(CREATE, "rate", times=2)
    crm_id = rsink.create_level(KEY, LevelValue(Decimal(1), Decimal(1)))
    assert [r["_id"] for r in emulator.stock_records()] == [crm_id]


def test_token_expiry_mid_run(
    rsink: FxiaokeSink, faults: Faults, emulator: FxiaokeEmulator
) -> None:
    crm_id = rsink.create_level(KEY, LevelValue(Decimal(0), Decimal(0)))
    seen = {"n": 0}

    def expire_on_25th(request: httpx.Request) -> None:
        if request.url.path == UPDATE:
            seen["n"] += 1
            if seen["n"] == 25:
                emulator.expire_tokens()

    faults.before = expire_on_25th
    for i in range(1, 51):
        rsink.update_level(crm_id, KEY, LevelValue(Decimal(i), Decimal(i)))
    assert emulator.calls[TOKEN] == 2
    assert emulator.errors[20016] == 1
    assert emulator.stock_records()[0]["real_stock"] == "50"


# -- the HTTP layer: which transport failures leave a create's outcome unknown ----------
NOT_SENT = [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout]
MAYBE_SENT = [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError]


@pytest.mark.parametrize("exc", NOT_SENT, ids=lambda e: e.__name__)
def test_create_that_never_left_is_retried_by_the_client(
    rsink: FxiaokeSink, faults: Faults, emulator: FxiaokeEmulator, exc: type[Exception]
) -> None:
    raised = {"n": 0}

    def refuse_first_create(request: httpx.Request) -> None:
        if request.url.path == CREATE and not raised["n"]:
            raised["n"] += 1
            raise exc("injected", request=request)

    faults.before = refuse_first_create
    crm_id = rsink.create_level(KEY, LevelValue(Decimal(4), Decimal(4)))
    assert [r["_id"] for r in emulator.stock_records()] == [crm_id]
    assert emulator.calls[CREATE] == 1


@pytest.mark.parametrize("applied", [True, False], ids=["after-apply", "before-apply"])
@pytest.mark.parametrize("exc", [*MAYBE_SENT, httpx.RemoteProtocolError], ids=lambda e: e.__name__)
def test_create_that_may_have_left_is_outcome_unknown(
    rsink: FxiaokeSink,
    faults: Faults,
    emulator: FxiaokeEmulator,
    exc: type[Exception],
    applied: bool,
) -> None:
    def fail(request: httpx.Request) -> None:
        if request.url.path == CREATE:
            if applied:
                faults.handler(request)
            raise exc("injected", request=request)

    faults.before = fail
    with pytest.raises(OutcomeUnknownError):
        rsink.create_level(KEY, LevelValue(Decimal(4), Decimal(4)))
    assert len(emulator.stock_records()) == (1 if applied else 0)
    assert emulator.calls[CREATE] == (1 if applied else 0)  # sent once, never blindly again


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, text="<html>gateway</html>"),
        httpx.Response(200, json=["not", "an", "object"]),
        httpx.Response(200, json={"errorMessage": "no code"}),
    ],
    ids=["not-json", "not-an-object", "no-errorCode"],
)
def test_create_answered_unreadably_is_outcome_unknown(
    rsink: FxiaokeSink, faults: Faults, emulator: FxiaokeEmulator, answer: httpx.Response
) -> None:
    def garble(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != CREATE:
            return None
        faults.handler(request)
        return answer

    faults.before = garble
    with pytest.raises(OutcomeUnknownError):
        rsink.create_level(KEY, LevelValue(Decimal(4), Decimal(4)))
    assert emulator.calls[CREATE] == 1
    assert len(emulator.stock_records()) == 1
