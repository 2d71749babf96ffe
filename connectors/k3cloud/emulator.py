"""A faithful in-memory K/3 Cloud WebAPI (reference §7), as a WSGI app.

Kingdee's own Python SDK, our connector (in-process through httpx) and the demo
all talk to the same object. Auth accepts the SDK's signed headers or a known
session id; errors are the HTTP-200 envelopes with MsgCodes a real server sends.
Faults (HTTP 500, ``response_error:`` bodies, truncated JSON, lost sessions,
throttling) can be injected on demand.
"""

from __future__ import annotations

import base64
import binascii
import json
import signal
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from connectors._emulator import Emulator, LoopbackServer
from connectors.k3cloud import query as q
from connectors.k3cloud.bill_query import BillQueries
from connectors.k3cloud.emulator_locks import LockOperations
from connectors.k3cloud.scenarios import seed
from connectors.k3cloud.services import ANONYMOUS, HANDLERS, RawJson, encode, envelope
from connectors.k3cloud.signing import api_signature, decode_app_secret, kd_signature
from connectors.k3cloud.store import INVENTORY, Store, line_ids

SESSION_COOKIE = "kdservice-sessionid"
MSG_SESSION_LOST = "会话信息已丢失，请重新登录"
MSG_THROTTLED = "调用频率超过限制，请稍后再试"
#: wording inferred: the reference documents only "HTTP non-200" for a wrong AcctID (§3.3)
MSG_UNKNOWN_DATA_CENTRE = "数据中心不存在或已停用，请检查账套ID"
FAULT_KINDS = ("http500", "response_error", "truncated", "auth", "throttle")
DEMO_CREDENTIALS = {
    "acct_id": "65f0000000000a",
    "username": "apiuser",
    "app_id": "123456_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
    "app_secret": "0123456789abcdef0123456789abcdef",
    "password": "888888",
}
JSON_TYPE = "application/json; charset=utf-8"


def _local_now(tz: ZoneInfo) -> Callable[[], datetime]:
    return lambda: datetime.now(tz).replace(tzinfo=None, microsecond=0)


class K3CloudEmulator(LockOperations, Emulator):
    """In-memory K/3 Cloud. Mutate with ``create_document``/``audit``/``lock``/… ; inspect
    ``calls``."""

    def __init__(
        self,
        *,
        base_path: str = "/k3cloud/",
        now: Callable[[], datetime] | None = None,
        timezone: str = "Asia/Shanghai",
        max_limit: int = 10_000,
        limit_over_cap: Literal["cap", "refuse"] = "cap",
        status_bumps_modify_date: bool = True,
        lock_beyond_stock: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        **credentials: str,
    ) -> None:
        """``max_limit`` is the server's row cap per query (reference §3.1: 2000, or 10,000
        from patch 23.11, set by ``WebAPIMaxQueryLimit``); a larger ``Limit`` is silently
        cut to it (``limit_over_cap="cap"``) or refused with MsgCode 8 (``"refuse"``): the
        reference does not say which. ``status_bumps_modify_date``: whether audit,
        un-audit, cancel and un-cancel also stamp FModifyDate (not documented either,
        k3cloud-stock-quantities.md §1.3); they always stamp their own date.
        ``lock_beyond_stock``: may a lock exceed on hand (``LockOperations``)?
        """
        self.base_path = "/" + base_path.strip("/") + "/"
        self.credentials = {**DEMO_CREDENTIALS, **credentials}
        self.lcid = 2052
        self.store = Store(
            now or _local_now(ZoneInfo(timezone)),
            status_bumps_modify_date=status_bumps_modify_date,
            lock_beyond_stock=lock_beyond_stock,
        )
        self.queries = BillQueries(self.store, max_limit=max_limit, limit_over_cap=limit_over_cap)
        self.queries_answered = 0
        self._after_query: dict[int, list[Callable[[], None]]] = {}
        self.calls: Counter[str] = Counter()
        self._sessions: set[str] = set()
        self._faults: deque[str] = deque()
        self._rate: float | None = None
        self._recent: deque[float] = deque()
        self._monotonic = monotonic
        self._lock = threading.RLock()

    # -- document API (what tests and scenarios drive) -------------------------------

    def create_document(
        self,
        form_id: str,
        lines: Iterable[Mapping[str, Any]],
        *,
        bill_no: str | None = None,
        date: datetime | None = None,
        status: str = "A",
    ) -> int:
        """A new bill (status A = created, or Z draft / C approved); returns its FID.

        Each line is ``{"material", "qty", "stock"}`` (transfers: ``src_stock`` and
        ``dest_stock``), optional ``lot``, ``unit`` (default: the material's base
        unit; ``qty`` is in this unit) and ``base_qty`` (default: converted with
        the material's conversion; ValueError if it has none). The bill's orgs are
        its first line's warehouses' orgs (``set_warehouse_org``).
        """
        with self._lock:
            return self.store.create(form_id, lines, bill_no=bill_no, date=date, status=status)

    def line_ids(self, form_id: str, fid: int) -> Sequence[int]:
        return line_ids(self.store.get(form_id, fid))

    def audit(self, form_id: str, fid: int) -> None:
        """Approve (C): the lines now move stock."""
        with self._lock:
            self.store.set_status(form_id, fid, "C")

    def unaudit(self, form_id: str, fid: int) -> None:
        """Back to re-review (D): the lines stop moving stock until approved again."""
        with self._lock:
            self.store.set_status(form_id, fid, "D")

    def cancel(self, form_id: str, fid: int) -> None:
        """FCancelStatus B: no longer moves stock (stamps FCancelDate)."""
        with self._lock:
            self.store.cancel(form_id, fid)

    def uncancel(self, form_id: str, fid: int) -> None:
        """FCancelStatus back to A: an approved bill moves stock again."""
        with self._lock:
            self.store.cancel(form_id, fid, cancelled=False)

    def delete(self, form_id: str, fid: int) -> None:
        """Gone without trace: incremental queries cannot see it, only the window rescan."""
        with self._lock:
            self.store.delete(form_id, fid)

    def edit_line(self, form_id: str, fid: int, entry_id: int, **changes: Any) -> None:
        """Change ``qty``/``unit``/``material``/``stock`` (or ``src_stock``/``dest_stock``)
        of one line; its base qty is converted again unless ``base_qty`` is given."""
        with self._lock:
            self.store.edit_line(form_id, fid, entry_id, changes)

    def remove_line(self, form_id: str, fid: int, entry_id: int) -> None:
        """Delete one entry line of a bill (an edit: stamps FModifyDate). KeyError for an
        unknown line, ValueError for the bill's only line (delete the bill instead)."""
        with self._lock:
            self.store.remove_line(form_id, fid, entry_id)

    def set_opening(
        self, material: str, stock: str, qty: Any, *, org: str | None = None, lot: str = ""
    ) -> None:
        """Opening stock in the base unit: part of STK_Inventory, but no document."""
        with self._lock:
            self.store.set_opening(material, stock, qty, org=org, lot=lot)

    # -- base data and metadata ------------------------------------------------------

    def add_material(self, number: str, base_unit: str) -> None:
        """A material (BD_MATERIAL) counted in ``base_unit``; undeclared ones count in Pcs."""
        with self._lock:
            self.store.catalog.base_units[number] = base_unit
            self.store.changed()

    def add_conversion(
        self, material: str, unit: str, numerator: Any, denominator: Any = 1
    ) -> None:
        """1 ``unit`` = numerator / denominator base units of ``material`` (BD_UNITCONVERTRATE)."""
        with self._lock:
            rate = (Decimal(str(numerator)), Decimal(str(denominator)))
            self.store.catalog.conversions[(material, unit)] = rate
            self.store.changed()

    def set_warehouse_org(self, stock: str, org: str) -> None:
        """The stock organisation ``stock`` belongs to (undeclared warehouses: org 100).
        Set before creating documents or opening stock in that warehouse."""
        with self._lock:
            self.store.catalog.warehouse_orgs[stock] = org
            self.store.changed()

    def forget_fields(self, form_id: str, *keys: str) -> None:
        """This server's metadata lacks ``keys`` on ``form_id``: queries naming them get
        MsgCode 9 (the base-qty keys of k3cloud-stock-quantities.md §1.2 are inferred,
        so a real server may not know them)."""
        with self._lock:
            self.store.hidden[form_id].update(key.lower() for key in keys)
            self.store.changed()

    def after_query(self, n: int, action: Callable[[], None]) -> None:
        """Run ``action`` right after the ``n``-th ExecuteBillQuery from now is answered
        (before its answer reaches the client): an ERP user editing between two pages."""
        with self._lock:
            self._after_query.setdefault(self.queries_answered + n, []).append(action)

    def forget_query_actions(self) -> None:
        """Drop the ``after_query`` actions that have not run yet."""
        with self._lock:
            self._after_query.clear()

    # -- faults and throttling -------------------------------------------------------

    def inject(self, kind: str, times: int = 1) -> None:
        """The next ``times`` calls fail with ``kind`` (one of FAULT_KINDS)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._lock:
            self._faults.extend([kind] * times)

    @contextmanager
    def faults(self, kind: str, times: int = 1_000_000) -> Iterator[None]:
        """Inject ``kind`` for the duration of a ``with`` block, then clear every fault."""
        self.inject(kind, times)
        try:
            yield
        finally:
            self.clear_faults()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rate = None

    def throttle(self, calls_per_second: float | None) -> None:
        """Answer MsgCode 14 above this rate (None lifts the limit)."""
        with self._lock:
            self._rate = calls_per_second
            self._recent.clear()

    def expire_sessions(self) -> None:
        with self._lock:
            self._sessions.clear()

    def rotate_secret(self, app_secret: str) -> None:
        """The admin regenerated the app secret: old signatures and sessions stop working."""
        with self._lock:
            self.credentials["app_secret"] = app_secret
            self._sessions.clear()

    def _throttled(self) -> bool:
        if self._rate is None:
            return False
        now = self._monotonic()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        if len(self._recent) >= self._rate:
            return True
        self._recent.append(now)
        return False

    # -- WSGI ------------------------------------------------------------------------

    def inventory(self) -> dict[tuple[str, str], Decimal]:
        """STK_Inventory summed per (material, stock) over lots, non-zero only: the truth."""
        with self._lock:
            totals: dict[tuple[str, str], Decimal] = {}
            for row in self.store.rows(INVENTORY):
                key = (str(row["fmaterialid.fnumber"]), str(row["fstockid.fnumber"]))
                totals[key] = totals.get(key, Decimal(0)) + Decimal(str(row["fbaseqty"]))
        return {k: v for k, v in totals.items() if v}

    def connection_info(self, base_url: str) -> dict[str, Any]:
        c = self.credentials
        return {
            "url": base_url.rstrip("/") + self.base_path,
            "acct_id": c["acct_id"],
            "username": c["username"],
            "app_id": c["app_id"],
            "app_secret": c["app_secret"],
            "lcid": self.lcid,
        }

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        status, body, sid = self._respond(environ)
        headers = [
            (
                "Content-Type",
                JSON_TYPE
                if not body.startswith(b"response_error:")
                else "text/plain; charset=utf-8",
            ),
            ("Content-Length", str(len(body))),
            ("Set-Cookie", f"{SESSION_COOKIE}={sid}; path=/"),
        ]
        reasons = {
            200: "OK",
            404: "Not Found",
            405: "Method Not Allowed",
            500: "Internal Server Error",
        }
        start_response(f"{status} {reasons.get(status, 'Error')}", headers)
        return [body]

    def _respond(self, environ: dict[str, Any]) -> tuple[int, bytes, str]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if not path.lower().startswith(self.base_path.lower()) or not path.endswith(
            ".common.kdsvc"
        ):
            return 404, b'{"Message":"Not Found"}', uuid.uuid4().hex
        service = path[len(self.base_path) : -len(".common.kdsvc")]
        if environ.get("REQUEST_METHOD") != "POST":
            return 405, b'{"Message":"POST only"}', uuid.uuid4().hex
        name = service.rsplit(".", 1)[-1]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        with self._lock:
            self.calls[name] += 1
            fault = self._faults.popleft() if self._faults else None
            if fault == "http500":
                return 500, b'{"Message":"Internal Server Error"}', uuid.uuid4().hex
            if fault == "response_error":
                return 200, b"response_error:emulated server failure", uuid.uuid4().hex
            if fault == "auth":
                self._sessions.clear()
            wrap = name in ("ExecuteBillQuery", "BillQuery")
            sid = self._authenticate(environ, path, name)
            if sid is None and self._unknown_data_centre(environ):
                refusal = envelope(1, MSG_UNKNOWN_DATA_CENTRE)
                return 500, encode([[refusal]] if wrap else refusal).encode(), uuid.uuid4().hex
            if fault == "throttle" or (name != "GetDataCenterList" and self._throttled()):
                payload: Any = envelope(14, MSG_THROTTLED)
                payload = [[payload]] if wrap else payload
            elif fault == "auth" or (sid is None and name not in ANONYMOUS):
                payload = envelope(1, MSG_SESSION_LOST)
                payload = [[payload]] if wrap else payload
            else:
                payload, sid = self._dispatch(name, raw, wrap, sid)
                if name == "ExecuteBillQuery":
                    self._answered()
        body = (payload if isinstance(payload, RawJson) else encode(payload)).encode()
        if fault == "truncated":
            body = body[: max(1, len(body) // 2)]
        return 200, body, sid or uuid.uuid4().hex

    def _dispatch(
        self, name: str, raw: bytes, wrap: bool, sid: str | None
    ) -> tuple[Any, str | None]:
        handler = HANDLERS.get(name)
        if handler is None:
            return envelope(4, f"服务{name}不存在"), sid
        try:
            body = json.loads(raw or b"{}", parse_float=Decimal)
            if not isinstance(body, dict):
                raise q.QueryError(8, "请求参数格式错误")
            if name in ("ValidateUser", "LoginByAppSecret"):
                result, sid = handler(self, body)
                return result, sid
            return handler(self, body)[0], sid
        except ValueError:
            payload: Any = envelope(8, "请求参数不是合法的 JSON")
        except q.QueryError as exc:
            payload = envelope(exc.msg_code, exc.message, exc.field)
        return ([[payload]] if wrap else payload), sid

    def _answered(self) -> None:
        self.queries_answered += 1
        for action in self._after_query.pop(self.queries_answered, []):
            action()

    def _unknown_data_centre(self, environ: Mapping[str, Any]) -> bool:
        """Signed headers naming another data centre than ours (reference §3.3: such a
        request gets HTTP non-200; the body modelled is the MsgCode 1 envelope)."""
        parts = _appdata(environ)
        return bool(parts) and parts[0] != self.credentials["acct_id"]

    def _authenticate(self, environ: Mapping[str, Any], path: str, name: str) -> str | None:
        """A valid session id, or a new one when the signed headers check out; else None."""
        for candidate in _session_candidates(environ):
            if candidate in self._sessions:
                return candidate
        if not self._signature_ok(environ, path):
            return None
        return self.open_session()

    def open_session(self) -> str:
        sid = uuid.uuid4().hex
        self._sessions.add(sid)
        return sid

    def _signature_ok(self, environ: Mapping[str, Any], path: str) -> bool:
        c = self.credentials
        app_key = environ.get("HTTP_X_KD_APPKEY", "")
        parts = _appdata(environ)
        plain = ",".join(parts)
        if app_key != c["app_id"] or len(parts) < 2:
            return False
        if parts[0] != c["acct_id"] or parts[1] != c["username"]:
            return False
        if environ.get("HTTP_X_KD_SIGNATURE") != kd_signature(app_key, plain, c["app_secret"]):
            return False
        api_sig = environ.get("HTTP_X_API_SIGNATURE")
        if not api_sig:
            return True
        # Timestamps may be seconds or milliseconds and the nonce is free-form: no freshness check.
        client_sec = decode_app_secret(app_key.partition("_")[2])
        nonce = environ.get("HTTP_X_API_NONCE", "")
        stamp = environ.get("HTTP_X_API_TIMESTAMP", "")
        return bool(api_sig == api_signature(path, nonce, stamp, client_sec))

    # -- queries ---------------------------------------------------------------------

    def run_query(self, params: Mapping[str, Any]) -> tuple[list[str], list[q.Row]]:
        """Validate and evaluate one ExecuteBillQuery parameter object → (keys, page rows)."""
        return self.queries.run(params)


def _appdata(environ: Mapping[str, Any]) -> list[str]:
    """X-Kd-Appdata decoded: [AcctID, UserName, LCID, OrgNum], or [] when unreadable."""
    try:
        plain = base64.b64decode(environ.get("HTTP_X_KD_APPDATA", ""), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return []
    return plain.split(",") if plain else []


def _session_candidates(environ: Mapping[str, Any]) -> list[str]:
    found = [environ.get("HTTP_KDSERVICE_SESSIONID", ""), environ.get("HTTP_SID", "")]
    for part in str(environ.get("HTTP_COOKIE", "")).replace(",", ";").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() == SESSION_COOKIE:
            found.append(value.strip())
    return [f for f in found if f]


def build_emulator(scenario: str | None = None) -> K3CloudEmulator:
    """Registry entry: an emulator, seeded by ``scenario`` ("demo", "bench" or "bench:N")."""
    emulator = K3CloudEmulator()
    if scenario:
        seed(emulator, scenario)
    return emulator


def serve(host: str = "127.0.0.1", port: int = 0, scenario: str | None = "demo") -> None:
    """Serve on loopback, print the connection info as one JSON line, block until SIGTERM/SIGINT."""
    emulator = build_emulator(scenario)
    server = LoopbackServer(emulator, host=host, port=port).start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(json.dumps(emulator.connection_info(server.url)), flush=True)
    try:
        stop.wait()
    finally:
        server.stop()


if __name__ == "__main__":  # pragma: no cover - manual use
    serve(scenario=sys.argv[1] if len(sys.argv) > 1 else "demo")
