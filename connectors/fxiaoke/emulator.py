"""An in-memory Fxiaoke OpenAPI (reference §10), as a WSGI app.

It answers like the real gateway: HTTP 200 for everything, success or failure
decided by ``errorCode``; both token flows with the 6600 s reuse / 7200 s expiry
rule and the 10-per-minute token limit; per-path rate limits (30004) and a daily
quota (30002); paging limits (10013); preset vs ``__c`` routing; required,
unique, reference, read-only, number-as-string and decimal-places checks from
seeded describes (``emulator_describes``), served by ``/cgi/crm/v2/object/describe``.

Tests steer it with an injectable clock, ``expire_tokens()``, ``fail_next()``
(or a ``fault_hook``) and read ``calls`` / ``errors`` counters. Besides the named
faults, ``error:<code>`` answers errorCode <code> without doing the call,
``error_after_apply:<code>`` does it and then answers <code> (a server that failed
after the write), and ``http_<status>[_after_apply]`` does the same with an HTTP status.
"""

from __future__ import annotations

import functools
import json
import secrets
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from connectors._catalogue import K3CLOUD_DEMO_MATERIALS, K3CLOUD_DEMO_WAREHOUSES
from connectors._emulator import Emulator, LoopbackServer
from connectors.fxiaoke.emulator_faults import (
    FAULT_KINDS,
    EmulatedConnectError,
    EmulatedTimeout,
    fault_parts,
    valid_parametric,
)
from connectors.fxiaoke.emulator_rules import (
    ERR_BUSINESS,
    ERR_PARAM,
    ApiError,
    Window,
    describe_request,
    search_info,
)
from connectors.fxiaoke.emulator_store import Store

TOKEN_PATH = "/cgi/corpAccessToken/get/V2"
OAUTH_PATH = "/oauth2.0/token"
PRESET_DATA = "/cgi/crm/v2/data/"
CUSTOM_DATA = "/cgi/crm/custom/v2/data/"
DESCRIBE_PATH = "/cgi/crm/v2/object/describe"
LIST_PATH = "/cgi/crm/v2/object/list"
DATA_ACTIONS = ("query", "get", "create", "update", "invalid", "delete", "recover", "findOne")

TOKEN_LIFETIME_S = 7200.0
TOKEN_REUSE_S = 6600.0
_SHANGHAI = timezone(timedelta(hours=8))

Json = dict[str, Any]


class FxiaokeEmulator(Emulator):
    """One emulated tenant with one authorised app."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        app_id: str = "FSAID_emulator",
        app_secret: str = "emulator-app-secret",
        permanent_code: str = "emulator-permanent-code",
        corp_id: str = "FSCID_emulator",
        open_user_id: str = "FSUID_" + "0" * 31 + "1",
        rate_limit_calls: int = 100,
        rate_limit_period_s: float = 20.0,
        daily_quota: int | None = None,
        token_limit_per_min: int = 10,
    ) -> None:
        self.clock = clock
        self.store = Store(clock)
        self.app_id, self.app_secret, self.permanent_code = app_id, app_secret, permanent_code
        self.corp_id, self.open_user_id, self.ea = corp_id, open_user_id, "emu001"
        self.rate_limit_calls, self.rate_limit_period_s = rate_limit_calls, rate_limit_period_s
        self.daily_quota = daily_quota
        self.token_limit_per_min = token_limit_per_min
        #: every call per path (including rejected ones) and every errorCode answered
        self.calls: Counter[str] = Counter()
        self.errors: Counter[int] = Counter()
        self.trace_ids: deque[str | None] = deque(maxlen=1000)
        #: called with the path before each data call; may return a fault kind
        self.fault_hook: Callable[[str], str | None] | None = None
        #: the reference (§5.2) shows no dataId in a custom-object create answer, and S4
        #: shows one for preset objects: False answers custom creates without it
        self.custom_create_returns_id = True
        self._faults: dict[str, deque[str]] = {}
        self._tokens: dict[str, float] = {}  # token → expires_at
        self._current: dict[str, tuple[str, float]] = {}  # flow → (token, issued_at)
        self._token_window = Window(token_limit_per_min, 60.0)
        self._windows: dict[str, Window] = {}
        self._day: tuple[str, int] = ("", 0)
        self._lock = threading.RLock()

    # ------------------------------------------------------------ test helpers
    def add_product(self, code: str, name: str | None = None) -> str:
        fields = {"name": name or code, "product_code": code, "price": "0"}
        rec = self.store.create("ProductObj", fields)
        return str(rec["_id"])

    def add_warehouse(self, number: str, name: str | None = None) -> str:
        fields = {"name": name or number, "number": number, "is_default": False}
        rec = self.store.create("WarehouseObj", fields)
        return str(rec["_id"])

    def add_stock(self, product_id: str, warehouse_id: str, real: str, available: str = "") -> str:
        """A StockObj with every required field (blocked = real − available), e.g. made
        by a person or an import before stocksync ran."""
        available = available or real
        blocked = Decimal(real) - Decimal(available)
        fields = {
            "product_id": product_id,
            "warehouse_id": warehouse_id,
            "real_stock": real,
            "available_stock": available,
            "blocked_stock": format(blocked, "f"),
        }
        return str(self.store.create("StockObj", fields)["_id"])

    def records(self, api_name: str, *, include_invalid: bool = False) -> list[Json]:
        rows = self.store.table(api_name).records.values()
        return [dict(r) for r in rows if include_invalid or r.get("life_status") == "normal"]

    def stock_records(self) -> list[Json]:
        return self.records("StockObj")

    def movement_records(self) -> list[Json]:
        return self.records("stock_movement__c")

    def expire_tokens(self) -> None:
        """Make every issued token unknown, as if 7200 s had passed."""
        with self._lock:
            self._tokens.clear()
            self._current.clear()

    def fail_next(self, path: str, kind: str, times: int = 1) -> None:
        """Inject ``kind`` into the next ``times`` calls on ``path`` ("*" = any data path)."""
        if kind not in FAULT_KINDS and not valid_parametric(kind):
            known = [
                *sorted(FAULT_KINDS),
                "error[_after_apply]:<code>",
                "http_<status>[_after_apply]",
            ]
            raise ValueError(f"unknown fault kind {kind!r}; known: {known}")
        with self._lock:
            self._faults.setdefault(path, deque()).extend([kind] * times)

    def reset_counters(self) -> None:
        with self._lock:
            self.calls.clear()
            self.errors.clear()
            self.trace_ids.clear()

    def stock_by_code(self, field: str = "real_stock") -> dict[tuple[str, str], Decimal]:
        """StockObj ``field`` (real_stock, available_stock, blocked_stock) per (product_code,
        warehouse number); a record without the field reads 0.

        Raises AssertionError on two records for one pair: a duplicate is the one
        thing a sync must never create, so every reader of this view checks it.
        """
        products = {r["_id"]: r["product_code"] for r in self.records("ProductObj")}
        warehouses = {r["_id"]: r["number"] for r in self.records("WarehouseObj")}
        out: dict[tuple[str, str], Decimal] = {}
        for r in self.stock_records():
            key = (
                str(products.get(r["product_id"], r["product_id"])),
                str(warehouses.get(r["warehouse_id"], r["warehouse_id"])),
            )
            if key in out:
                raise AssertionError(f"duplicate StockObj for {key}")
            out[key] = Decimal(str(r.get(field) or 0))
        return out

    def connection_info(self, base_url: str) -> dict[str, Any]:
        return {
            "url": base_url,
            "app_id": self.app_id,
            "app_secret": self.app_secret,
            "permanent_code": self.permanent_code,
            "open_user_id": self.open_user_id,
        }

    def crm_settings(self, base_url: str) -> dict[str, Any]:
        """The ``crm:`` section of a config that points at this emulator at ``base_url``."""
        info = self.connection_info(base_url)
        return {
            "type": "fxiaoke",
            "base_url": info["url"],
            **{k: info[k] for k in ("app_id", "app_secret", "permanent_code", "open_user_id")},
        }

    # ------------------------------------------------------------ WSGI
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        query = parse_qs(str(environ.get("QUERY_STRING", "")))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        with self._lock:
            self.calls[path] += 1
            trace = query.get("thirdTraceId")
            self.trace_ids.append(trace[0] if trace else None)
            status, body = self._handle(path, raw, environ)
            self.errors[int(body.get("errorCode", 0))] += 1
        payload = json.dumps(body, ensure_ascii=False).encode()
        start_response(status, [("Content-Type", "application/json;charset=UTF-8")])
        return [payload]

    def _handle(self, path: str, raw: bytes, environ: dict[str, Any]) -> tuple[str, Json]:
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError:
            return "200 OK", self._error(
                ApiError(ERR_PARAM, "request body is not JSON", "参数错误")
            )
        try:
            if path == TOKEN_PATH:
                return "200 OK", self._ok(self._issue(body, "corp"))
            if path == OAUTH_PATH:
                return "200 OK", self._ok(self._issue(body, "oauth"))
            return self._data_call(path, body, environ)
        except ApiError as exc:
            return "200 OK", self._error(exc)

    def _data_call(self, path: str, body: Json, environ: dict[str, Any]) -> tuple[str, Json]:
        handler = self._route(path)
        self._authenticate(body, environ)
        fault = self._next_fault(path)
        if fault == "timeout_before_apply":
            raise EmulatedTimeout("emulated read timeout")
        if fault == "connect_refused":
            raise EmulatedConnectError("emulated connection refused")
        if fault in {"busy", "rate", "token_expired"}:
            return self._fault_answer(fault)
        answer, after_apply = fault_parts(fault) if fault else ("", False)
        if answer.startswith(("error:", "http_")) and not after_apply:
            return self._fault_answer(answer)
        self._throttle(path)
        result = handler(body)
        if fault == "timeout_after_apply":
            raise EmulatedTimeout("emulated read timeout after the write was applied")
        if after_apply:
            return self._fault_answer(answer)
        return "200 OK", self._ok(result)

    def _fault_answer(self, fault: str) -> tuple[str, Json]:
        if fault.startswith("http_"):
            status = HTTPStatus(int(fault.removeprefix("http_")))
            return f"{status.value} {status.phrase}", {"errorCode": -2, "errorMessage": "error"}
        if fault.startswith("error:"):
            code = int(fault.removeprefix("error:"))
            raise ApiError(code, f"emulated error {code}", "emulated")
        if fault == "token_expired":
            self.expire_tokens()
            raise ApiError(20016, "the cropId,cropAccessToken or authorization is error")
        code = -1 if fault == "busy" else 30004
        raise ApiError(code, "system busy" if code == -1 else "frequency exceeded", "请稍后重试")

    def _next_fault(self, path: str) -> str | None:
        for key in (path, "*"):
            queue = self._faults.get(key)
            if queue:
                return queue.popleft()
        return self.fault_hook(path) if self.fault_hook else None

    def _ok(self, result: Json) -> Json:
        return {
            "errorCode": 0,
            "errorMessage": "OK",
            "errorDescription": "success",
            "traceId": f"E-O.emu.{secrets.token_hex(6)}",
            **result,
        }

    def _error(self, exc: ApiError) -> Json:
        return {
            "errorCode": exc.code,
            "errorMessage": exc.message,
            "errorDescription": exc.description,
            "traceId": f"E-O.emu.{secrets.token_hex(6)}",
        }

    # ------------------------------------------------------------ auth
    def _issue(self, body: Json, flow: str) -> Json:
        now = self.clock()
        if not self._token_window.admit(now):
            raise ApiError(30004, "token endpoint frequency exceeded", "获取token过于频繁")
        if body.get("appId") != self.app_id or body.get("appSecret") != self.app_secret:
            raise ApiError(
                10006, "the parameter appSecret is missing or illegal", "缺少参数或参数不合法"
            )
        if body.get("permanentCode") != self.permanent_code:
            raise ApiError(20015, "permanentCode is wrong", "永久授权码错误")
        current = self._current.get(flow)
        if current is None or now - current[1] >= TOKEN_REUSE_S or current[0] not in self._tokens:
            token = secrets.token_hex(16)
            self._tokens[token] = now + TOKEN_LIFETIME_S
            current = (token, now)
            self._current[flow] = current
        token, issued = current
        expires_in = int(issued + TOKEN_LIFETIME_S - now)
        if flow == "corp":
            return {"corpAccessToken": token, "corpId": self.corp_id, "expiresIn": expires_in}
        return {
            "accessToken": token,
            "expiresIn": expires_in,
            "ea": self.ea,
            "appId": self.app_id,
            "openUserId": self.corp_id,
        }

    def _authenticate(self, body: Json, environ: dict[str, Any]) -> None:
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        token: Any = body.get("corpAccessToken")
        if header.startswith("Bearer "):
            token = header[len("Bearer ") :]
            if environ.get("HTTP_X_FS_EA") != self.ea:
                raise ApiError(20016, "the cropId,cropAccessToken or authorization is error")
        elif token and body.get("corpId") != self.corp_id:
            raise ApiError(20016, "the cropId,cropAccessToken or authorization is error")
        if not token:
            raise ApiError(20017, "corpAccessToken为必填项，不能为空")
        expires_at = self._tokens.get(str(token))
        if expires_at is None or self.clock() >= expires_at:
            self._tokens.pop(str(token), None)
            raise ApiError(20016, "the cropId,cropAccessToken or authorization is error")

    def _throttle(self, path: str) -> None:
        now = self.clock()
        if self.daily_quota is not None:
            today = datetime.fromtimestamp(now, UTC).astimezone(_SHANGHAI).date().isoformat()
            day, used = self._day if self._day[0] == today else (today, 0)
            if used >= self.daily_quota:
                raise ApiError(30002, "daily call quota exhausted", "今日调用次数已用完")
            self._day = (day, used + 1)
        window = self._windows.get(path)
        if window is None:
            window = self._windows[path] = Window(self.rate_limit_calls, self.rate_limit_period_s)
        if not window.admit(now):
            raise ApiError(30004, "frequency exceeded", "接口调用频率超限")

    # ------------------------------------------------------------ routing
    def _route(self, path: str) -> Callable[[Json], Json]:
        if path == DESCRIBE_PATH:
            return self._describe
        if path == LIST_PATH:
            return self._list
        for prefix, custom in ((PRESET_DATA, False), (CUSTOM_DATA, True)):
            action = path[len(prefix) :] if path.startswith(prefix) else ""
            if action in DATA_ACTIONS and (custom or action != "findOne"):
                return functools.partial(self._data, action, custom)
        raise ApiError(10006, f"the request uri=[{path}] is not exists", "请求的接口不存在")

    def _describe(self, body: Json) -> Json:
        """``data.describe`` with ``fields`` keyed by api name (Fxiaoke's manual). The
        seeded objects have no detail objects, so ``includeDetail`` adds nothing."""
        describe = self.store.table(describe_request(body)).describe
        return {"data": {"describe": describe.as_json()}}

    def _list(self, body: Json) -> Json:
        objects = [
            {"describeApiName": n, "displayName": t.describe.label}
            for n, t in self.store.tables.items()
        ]
        return {"data": {"objects": objects}}

    def _data(self, action: str, custom: bool, body: Json) -> Json:
        data = body.get("data")
        if not isinstance(data, dict):
            raise ApiError(ERR_PARAM, "data is required", "参数错误")
        object_data = data.get("object_data") if action in {"create", "update"} else None
        if action in {"create", "update"} and not isinstance(object_data, dict):
            raise ApiError(ERR_PARAM, "data.object_data is required", "参数错误")
        api_name = str((object_data or data).get("dataObjectApiName", ""))
        if api_name.endswith("__c") != custom:
            where = "custom" if custom else "preset"
            raise ApiError(ERR_BUSINESS, f"{api_name} is not served by the {where} object API")
        store = self.store
        if action == "query":
            flags = ("find_explicit_total_num", "returnTotalNum", "need_return_count_num")
            sources = (data, body, search_info(data))
            want_total = any(src.get(flag) for src in sources for flag in flags)
            return {"data": store.query(api_name, search_info(data), want_total=want_total)}
        if action == "findOne":
            found = store.query(api_name, {**search_info(data), "limit": 1, "offset": 0})
            return {"data": {"objectData": (found["dataList"] or [None])[0]}}
        if action == "get":
            return {"data": dict(store.get(api_name, data.get("objectDataId")))}
        if action == "create":
            assert object_data is not None
            rec = store.create(api_name, object_data)
            if custom and not self.custom_create_returns_id:
                return {}
            return {"dataId": rec["_id"], "data": {"_id": rec["_id"]}}
        if action == "update":
            assert object_data is not None
            store.update(api_name, object_data)
            return {}
        if action == "invalid":
            store.set_status(api_name, [data.get("object_data_id")], "invalid")
            return {}
        ids = data.get("idList") or []
        if action == "delete":
            store.delete(api_name, ids)
        else:
            store.set_status(api_name, ids, "normal")
        return {}


#: the demo's own codes, then the K/3 Cloud emulator's demo scenario's (one definition,
#: connectors/_catalogue.py), so that `stocksync emulator k3cloud --scenario demo` and
#: `stocksync emulator fxiaoke --scenario demo` sync without blocked rows
DEMO_PRODUCTS = [
    *((f"SKU-{i:04d}", f"Demo product {i}") for i in range(1, 21)),
    *K3CLOUD_DEMO_MATERIALS.items(),
]
DEMO_WAREHOUSES = [
    ("WH-MAIN", "Main warehouse"),
    ("WH-EAST", "East warehouse"),
    *K3CLOUD_DEMO_WAREHOUSES.items(),
]


def build_emulator(scenario: str | None = None, **options: Any) -> FxiaokeEmulator:
    """An emulator, empty or seeded: scenario "demo" adds 24 products and 5 warehouses (20
    and 2 of its own, and the codes of the K/3 Cloud emulator's demo scenario)."""
    emulator = FxiaokeEmulator(**options)
    if scenario == "demo":
        for code, name in DEMO_PRODUCTS:
            emulator.add_product(code, name)
        for number, name in DEMO_WAREHOUSES:
            emulator.add_warehouse(number, name)
    elif scenario not in (None, "", "empty"):
        raise ValueError(f"unknown fxiaoke emulator scenario {scenario!r}; known: demo, empty")
    return emulator


def serve(host: str = "127.0.0.1", port: int = 0, scenario: str | None = "demo") -> None:
    """Serve on loopback, print the connection info as one JSON line, block until SIGTERM."""
    emulator = build_emulator(scenario)
    stop = threading.Event()
    with LoopbackServer(emulator, host, port) as server:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        print(json.dumps(emulator.connection_info(server.url)), flush=True)
        stop.wait()
