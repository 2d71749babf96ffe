"""An in-memory Salesforce org's REST API (the Salesforce reference), as a WSGI app.

It answers like the platform: ``POST /services/oauth2/token`` (client credentials and
JWT bearer, §2), sessions that expire when idle (401 INVALID_SESSION_ID, §2.4), the
SOQL subset of ``emulator_soql`` with ``nextRecordsUrl`` paging (§5), single-record and
sObject Collections upsert by External ID with parents referenced by their External
IDs (§4), update and delete of a record by Id (``PATCH``/``DELETE /sobjects/{object}/{id}``,
REST API "Update a Record", "Delete a Record": 204 No Content; a deleted record goes to
the recycle bin, seen only by ``queryAll``, and its External ID no longer matches, so an
upsert creates a new record; an unknown Id is 404 NOT_FOUND, one in the recycle bin
404 ENTITY_IS_DELETED [status I]), describe (§6), REST error arrays (§3) and the rolling
24 h API allocation reported in ``Sforce-Limit-Info`` on every answer (deletes and
updates by Id count like any call), 403 REQUEST_LIMIT_EXCEEDED once
used up (§9). Rules the reference leaves open are switches (``decimals``,
``create_only``, ``duplicate_keys``, ``unknown_field``, ``key_in_body``,
``query_page_size``).

Tests steer it with an injectable clock, ``expire_tokens()``, ``fail_next()`` /
``fault_hook`` (call faults, ``emulator_faults``), ``fail_record()`` and
``add_validation_rule()`` (record faults), ``set_api_usage()``, and read ``calls``,
``api_usage`` and the records. ``start()`` serves it on loopback over HTTPS (or HTTP)
for clients that need a socket (simple-salesforce); ``serve()`` is ``stocksync
emulator salesforce``.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives.asymmetric import rsa

from connectors._emulator import Emulator
from connectors.salesforce.emulator_api import RestApi, route_of
from connectors.salesforce.emulator_auth import OAuthError, Sessions
from connectors.salesforce.emulator_faults import (
    HTTP_FAULT,
    EmulatedConnectError,
    EmulatedTimeout,
    RecordFault,
    RecordFaults,
    check_kind,
    default_message,
    lost_answer,
)
from connectors.salesforce.emulator_limits import (
    DEFAULT_DAILY_LIMIT,
    ApiAllocation,
    limit_exceeded,
)
from connectors.salesforce.emulator_rules import ApiError, malformed, not_found
from connectors.salesforce.emulator_schema import (
    DEMO_LOCATIONS,
    DEMO_PRODUCTS,
    QUANTITY_ON_HAND_PRECISION,
    demo_objects,
)
from connectors.salesforce.emulator_store import Row, Store
from connectors.salesforce.emulator_tls import rsa_key

#: simple-salesforce's default version (§1); any version from 20.0 to 66.0 is served
API_VERSION = "59.0"
MIN_VERSION, MAX_VERSION = 20.0, 66.0
TOKEN_PATH = "/services/oauth2/token"
_VERSIONED = re.compile(r"/services/data/v(\d+\.\d)(?:/(.*))?")

Json = Any

if TYPE_CHECKING:
    from connectors.salesforce.emulator_serve import Running


class SalesforceEmulator(Emulator):
    """One emulated org with one connected app (client id/secret, JWT certificate, user)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        client_id: str = "3MVG9emulator.stocksync.consumer.key",
        client_secret: str = "emulator-consumer-secret",
        username: str = "integration@stocksync.example",
        daily_api_limit: int = DEFAULT_DAILY_LIMIT,
        idle_timeout_s: float = 7200.0,
        quantity_precision: tuple[int, int] = QUANTITY_ON_HAND_PRECISION,
        jwt_key: rsa.RSAPrivateKey | None = None,
    ) -> None:
        self.clock = clock
        self.store = Store(demo_objects(quantity_precision), clock)
        self.api = RestApi(self.store)
        self.jwt_key = jwt_key or _shared_jwt_key()
        self.sessions = Sessions(
            clock=clock,
            client_id=client_id,
            client_secret=client_secret,
            username=username,
            jwt_public_key=self.jwt_key.public_key(),
            idle_timeout_s=idle_timeout_s,
        )
        #: the base URL given as ``instance_url``; None: the URL the request came to
        self.instance_url: str | None = None
        #: set by ``start()``: the served certificate and the JWT key's PEM file
        self.ca_cert: Path | None = None
        self.jwt_key_file: Path | None = None
        #: every call per route (token, query, upsert, collections, describe, …)
        self.calls: Counter[str] = Counter()
        #: called with the route before each API call; may return a fault kind
        self.fault_hook: Callable[[str], str | None] | None = None
        self._faults: dict[str, deque[str]] = {}
        self.record_faults = RecordFaults()
        self.allocation = ApiAllocation(clock, daily_api_limit)
        self._lock = threading.RLock()
        self.store.record_hook = self.record_faults

    # ------------------------------------------------------------ switches
    @property
    def query_page_size(self) -> int:
        return self.api.query_page_size

    @query_page_size.setter
    def query_page_size(self, size: int) -> None:
        self.api.query_page_size = size

    def configure(self, **switches: str) -> None:
        """Set the switches where the reference is silent: ``decimals`` (store | round |
        reject), ``create_only`` (changed | any), ``duplicate_keys`` (all | repeated),
        ``unknown_field`` (request | record), ``key_in_body`` (refuse | accept)."""
        targets: dict[str, Any] = {"decimals": self.store, "create_only": self.store}
        targets |= {"duplicate_keys": self.api, "unknown_field": self.api}
        targets |= {"key_in_body": self.api}
        for name, value in switches.items():
            if name not in targets:
                raise ValueError(f"unknown switch {name!r}; known: {sorted(targets)}")
            setattr(targets[name], name, value)

    # ------------------------------------------------------------ seeding and reading
    def add_product(self, sku: str, name: str | None = None) -> str:
        return self.store.insert(
            "Product2", {"Name": name or sku, "ProductCode": sku, "ERP_SKU__c": sku}
        )

    def add_location(self, code: str, name: str | None = None, *, inventory: bool = True) -> str:
        fields = {"Name": name or code, "ERP_Code__c": code, "IsInventoryLocation": inventory}
        return self.store.insert("Location", fields)

    def add_record(self, obj: str, fields: Row) -> str:
        """A row made outside the API (by a person, an import), without the API's checks."""
        return self.store.insert(obj, fields)

    def records(self, obj: str) -> list[Row]:
        return [dict(r) for r in self.store.all_rows(obj)]

    def levels(
        self, obj: str = "ProductItem", field: str = "QuantityOnHand"
    ) -> dict[tuple[str, str], Decimal]:
        """``field`` per (Product2.ERP_SKU__c, Location.ERP_Code__c) of the stock object
        (ProductItem or Stock_Level__c). AssertionError on two records for one pair: a
        duplicate is the one thing a sync must never create."""
        return self.store.levels(obj, field)

    # ------------------------------------------------------------ faults and limits
    def expire_tokens(self) -> None:
        """Every session becomes unknown: the next call gets 401 INVALID_SESSION_ID."""
        with self._lock:
            self.sessions.expire_all()

    def fail_next(self, kind: str, times: int = 1, route: str = "*") -> None:
        """Inject ``kind`` (``emulator_faults``) into the next ``times`` calls on ``route``
        (query, upsert, update, delete, collections, describe, limits, sobjects; "*" = any
        API call)."""
        check_kind(kind)
        with self._lock:
            self._faults.setdefault(route, deque()).extend([kind] * times)

    def fail_record(
        self,
        key: str,
        code: str = "UNABLE_TO_LOCK_ROW",
        *,
        times: int | None = 1,
        obj: str | None = None,
        message: str = "",
    ) -> None:
        """Refuse the record whose External ID is ``key`` with ``code`` the next ``times``
        writes (None: always), e.g. UNABLE_TO_LOCK_ROW or FIELD_CUSTOM_VALIDATION_EXCEPTION."""
        with self._lock:
            fault = RecordFault(key, code, message or default_message(code), obj, times)
            self.record_faults.faults.append(fault)

    def add_validation_rule(self, obj: str, violated: Callable[[Row], bool], message: str) -> None:
        """A validation rule: a write leaving a row for which ``violated(row)`` is true fails
        with FIELD_CUSTOM_VALIDATION_EXCEPTION (§3)."""
        self.record_faults.rules.append((obj.lower(), violated, message))

    def set_api_usage(self, used: int | None = None, limit: int | None = None) -> None:
        """Set the org's daily allocation and/or the calls used in the last 24 h."""
        with self._lock:
            self.allocation.set(used, limit)

    @property
    def api_usage(self) -> tuple[int, int]:
        """(calls in the last 24 h, daily allocation), as in ``Sforce-Limit-Info``."""
        with self._lock:
            return self.allocation.usage()

    def _next_fault(self, route: str) -> str | None:
        for key in (route, "*"):
            queue = self._faults.get(key)
            if queue:
                return queue.popleft()
        return self.fault_hook(route) if self.fault_hook else None

    # ------------------------------------------------------------ WSGI
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        params = {k: v[0] for k, v in parse_qs(str(environ.get("QUERY_STRING", ""))).items()}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        headers = {
            k[5:].replace("_", "-").lower(): str(v)
            for k, v in environ.items()
            if k.startswith("HTTP_")
        }
        with self._lock:
            try:
                status, body, lost = self._handle(environ, path, params, headers, raw)
            except (EmulatedTimeout, EmulatedConnectError):
                if "SERVER_SOFTWARE" not in environ:  # in-process: the client sees it raised
                    raise
                status, body, lost = 200, None, True  # on a socket: a truncated answer
            usage = self.allocation.header()
        payload = b"" if body is None else json.dumps(body).encode()
        reply = [("Content-Type", "application/json;charset=UTF-8")]
        if path.startswith("/services/data/v"):
            reply.append(("Sforce-Limit-Info", usage))
        if lost:
            start_response("200 OK", [*reply, ("Content-Length", str(len(payload) or 100))])
            return lost_answer(environ)
        start_response(
            f"{status} {HTTPStatus(status).phrase}", [*reply, ("Content-Length", str(len(payload)))]
        )
        return [payload]

    def _handle(
        self,
        environ: dict[str, Any],
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
    ) -> tuple[int, Json, bool]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if path == TOKEN_PATH:
            self.calls["token"] += 1
            return (*self._token(environ, method, raw), False)
        if path.rstrip("/") == "/services/data":
            return 200, [_version_entry(v) for v in (API_VERSION, f"{MAX_VERSION:.1f}")], False
        match = _VERSIONED.fullmatch(path)
        try:
            if match is None or not MIN_VERSION <= float(match.group(1)) <= MAX_VERSION:
                raise not_found()
            version, rest = match.group(1), match.group(2) or ""
            route = route_of(method, rest)
            self.calls[route] += 1
            self.sessions.check(headers.get("authorization", ""))
            return self._api_call(method, version, rest, route, params, headers, raw)
        except ApiError as exc:
            return exc.status, exc.body(), False

    def _api_call(
        self,
        method: str,
        version: str,
        rest: str,
        route: str,
        params: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
    ) -> tuple[int, Json, bool]:
        self.allocation.admit()
        fault = self._next_fault(route) or ""
        self._before_apply(fault)
        try:
            body = json.loads(raw, parse_float=Decimal) if raw else None
        except ValueError:
            raise malformed("Unexpected character in the request body: not JSON") from None
        self.api.call_fault = fault or None
        try:
            status, answer = self.api.handle(method, version, rest, params, headers, body)
        finally:
            self.api.call_fault = None
        if route == "limits":
            answer = self._limits()
        if fault == "lost_answer":
            return status, answer, True
        http = HTTP_FAULT.fullmatch(fault)
        if http and http.group(2):
            return (
                int(http.group(1)),
                [{"message": "emulated error", "errorCode": "UNKNOWN_EXCEPTION"}],
                False,
            )
        return status, answer, False

    def _before_apply(self, fault: str) -> None:
        if fault == "session_expired":
            self.sessions.expire_all()
            self.allocation.refund()
            raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if fault == "request_limit":
            raise limit_exceeded()
        if fault == "server_unavailable":
            raise ApiError(
                503, "SERVER_UNAVAILABLE", "Server temporarily unavailable, please retry"
            )
        if fault == "timeout_before_apply":
            raise EmulatedTimeout("emulated read timeout")
        if fault == "connect_refused":
            raise EmulatedConnectError("emulated connection refused")
        http = HTTP_FAULT.fullmatch(fault)
        if http and not http.group(2):
            raise ApiError(int(http.group(1)), "UNKNOWN_EXCEPTION", "emulated error")

    def _limits(self) -> Json:
        used, limit = self.api_usage
        return {"DailyApiRequests": {"Max": limit, "Remaining": max(0, limit - used)}}

    def _token(self, environ: dict[str, Any], method: str, raw: bytes) -> tuple[int, Json]:
        if method != "POST":
            return 400, {"error": "invalid_request", "error_description": "must use HTTP POST"}
        form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
        try:
            return 200, self.sessions.grant(
                form, str(environ.get("HTTP_AUTHORIZATION", "")), self.base_url(environ)
            )
        except OAuthError as exc:
            return exc.status, exc.body()

    def base_url(self, environ: dict[str, Any]) -> str:
        if self.instance_url:
            return self.instance_url
        host = (
            environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        )
        return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"

    def connection_info(self, base_url: str) -> dict[str, Any]:
        """What ``stocksync emulator salesforce`` prints: how to connect, and the demo's
        stock object and External ID fields."""
        return {
            "url": base_url,
            "client_id": self.sessions.client_id,
            "client_secret": self.sessions.client_secret,
            "username": self.sessions.username,
            "api_version": API_VERSION,
            "ca_cert": str(self.ca_cert) if self.ca_cert else None,
            "jwt_key_file": str(self.jwt_key_file) if self.jwt_key_file else None,
            "stock_object": "ProductItem",
            "external_id_field": "ERP_Key__c",
            "product_external_id": "Product2.ERP_SKU__c",
            "location_external_id": "Location.ERP_Code__c",
            "custom_stock_object": "Stock_Level__c",
            "movement_object": "Stock_Movement__c",
        }


@functools.cache
def _shared_jwt_key() -> rsa.RSAPrivateKey:
    """The connected app's JWT key pair (one per process: making one takes ~0.1 s)."""
    return rsa_key()


def _version_entry(version: str) -> dict[str, str]:
    return {"label": "Emulated", "url": f"/services/data/v{version}", "version": version}


def build_emulator(scenario: str | None = None, **options: Any) -> SalesforceEmulator:
    """An emulator, empty or seeded: "demo" adds 24 Product2 and 5 inventory Locations
    (the K/3 Cloud emulator's demo codes among them) keyed by ERP_SKU__c / ERP_Code__c."""
    emulator = SalesforceEmulator(**options)
    if scenario == "demo":
        for sku, name in DEMO_PRODUCTS:
            emulator.add_product(sku, name)
        for code, name in DEMO_LOCATIONS:
            emulator.add_location(code, name)
    elif scenario not in (None, "", "empty"):
        raise ValueError(f"unknown salesforce emulator scenario {scenario!r}; known: demo, empty")
    return emulator


def start(
    emulator: SalesforceEmulator | None = None,
    *,
    https: bool = True,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Running:
    """Serve ``emulator`` (a new demo one by default) on loopback from a thread, over
    HTTPS with a fresh self-signed certificate (or plain HTTP); ``emulator_serve``."""
    from connectors.salesforce.emulator_serve import Running

    return Running(emulator or build_emulator("demo"), https=https, host=host, port=port)


def serve(host: str = "127.0.0.1", port: int = 0, scenario: str | None = "demo") -> None:
    """``stocksync emulator salesforce``: serve over HTTPS on loopback, print the
    connection info as one JSON line, block until SIGTERM."""
    from connectors.salesforce.emulator_serve import serve_forever

    serve_forever(host, port, scenario or "demo")
