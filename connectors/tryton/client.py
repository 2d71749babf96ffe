"""Tryton JSON-RPC client: login, session header, tagged types, error mapping, retries.

Tryton (8.x) serves JSON-RPC at ``POST {url}/{database}/rpc/`` with a body of
exactly ``{"id", "method", "params"}``: adding ``"jsonrpc": "2.0"`` switches the
envelope off. Params are positional and the context dict is always the last one
(the server answers HTTP 422 without it). Dates, datetimes and Decimals travel as
tagged objects (``{"__class__": "date", ...}``); floats are parsed as ``Decimal``
so that no quantity ever passes through binary floating point.

Only this module talks HTTP and only it retries; every failure leaves as one of
the typed errors of :mod:`sync.errors`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import itertools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx

from connectors._http import call_with_retries, make_client, raise_for_transport, retrying
from sync.errors import AuthError, PermanentError, TransientError
from sync.settings import mask

#: Tryton exception names that mean "try again" rather than "this will never work"
_TRANSIENT_RPC_ERRORS = frozenset({"ConcurrencyException", "RateLimitException"})


def encode(value: Any) -> Any:
    """Turn Python values into Tryton's JSON shapes (tagged objects for non-JSON types)."""
    if isinstance(value, dt.datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.time):
        return {
            "__class__": "time",
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, bytes):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def _decode_object(obj: dict[str, Any]) -> Any:
    """``json.loads`` object hook for Tryton's tagged types; other dicts pass through."""
    kind = obj.get("__class__")
    if kind is None:
        return obj
    if kind == "datetime":
        return dt.datetime(
            int(obj["year"]),
            int(obj["month"]),
            int(obj["day"]),
            int(obj.get("hour", 0)),
            int(obj.get("minute", 0)),
            int(obj.get("second", 0)),
            int(obj.get("microsecond", 0)),
        )
    if kind == "date":
        return dt.date(int(obj["year"]), int(obj["month"]), int(obj["day"]))
    if kind == "time":
        return dt.time(
            int(obj.get("hour", 0)),
            int(obj.get("minute", 0)),
            int(obj.get("second", 0)),
            int(obj.get("microsecond", 0)),
        )
    if kind == "timedelta":
        return dt.timedelta(seconds=float(obj["seconds"]))
    if kind == "Decimal":
        return Decimal(str(obj["decimal"]))
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    return obj


def decode(text: str | bytes) -> Any:
    """Parse a Tryton JSON body: tagged objects become Python values, floats become Decimal."""
    return json.loads(text, object_hook=_decode_object, parse_float=Decimal)


def raise_for_rpc(response: httpx.Response, *, what: str) -> Any:
    """Map one Tryton HTTP answer to its result or to a typed error (the only such mapping).

    | answer | error |
    |---|---|
    | 401 (bad/expired session, wrong password) | AuthError: log in again |
    | 403 (method not RPC-exposed) | PermanentError |
    | 408, 429, 5xx, ConcurrencyException | TransientError |
    | other 4xx (e.g. 422 missing context) | PermanentError |
    | 200 ``["UserError", [msg, …]]`` / ``UserWarning`` | PermanentError with the message |
    | 200 any other error (unknown model/field…) | PermanentError |
    """
    code = response.status_code
    if code == 401:
        raise AuthError(f"{what}: session rejected (HTTP 401)")
    if code == 403:
        raise PermanentError(
            f"{what}: method not exposed over RPC (HTTP 403)",
            hint="the method does not exist or is not RPC-callable in this Tryton version",
        )
    if code in (408, 429) or code >= 500:
        retry_after = response.headers.get("Retry-After")
        raise TransientError(
            f"{what}: HTTP {code}",
            retry_after_s=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    if code >= 400:
        raise PermanentError(f"{what}: HTTP {code}: {mask(response.text[:200])}", status=code)
    try:
        body = decode(response.content)
    except ValueError as exc:
        raise TransientError(f"{what}: answer is not JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise PermanentError(f"{what}: unexpected answer {mask(str(body)[:200])}")
    error = body.get("error")
    if error is None:
        return body.get("result")
    raise _rpc_error(error, what=what)


def _rpc_error(error: Any, *, what: str) -> Exception:
    name = str(error[0]) if isinstance(error, list) and error else str(error)
    detail = error[1] if isinstance(error, list) and len(error) > 1 else ""
    if name in _TRANSIENT_RPC_ERRORS:
        return TransientError(f"{what}: {name}: {mask(str(detail))}", tryton_error=name)
    if name == "UserError" and isinstance(detail, list) and detail:
        return PermanentError(f"{what}: {mask(str(detail[0]))}", tryton_error=name)
    if name == "UserWarning" and isinstance(detail, list) and len(detail) > 1:
        return PermanentError(
            f"{what}: warning needs confirmation: {mask(str(detail[1]))}",
            tryton_error=name,
            warning=detail[0],
        )
    return PermanentError(
        f"{what}: Tryton error {mask(name)}",
        hint="an unknown model or field usually means a module is not activated",
        tryton_error=name,
    )


def safe_url(url: str) -> str:
    """``url`` without user info or query, fit for a message."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path.rstrip('/')}"


class TrytonClient:
    """A logged-in JSON-RPC session on one Tryton database.

    Logs in lazily, sends ``Authorization: Session base64(login:uid:token)`` and
    logs in again once when the session expires (HTTP 401). Transient failures
    are retried with backoff up to ``max_attempts``; a rejected password is a
    PermanentError because retrying it only burns Tryton's login rate limit.
    """

    def __init__(
        self,
        url: str,
        database: str,
        username: str,
        password: str,
        *,
        context: Mapping[str, Any] | None = None,
        timeout_s: float = 30.0,
        verify_tls: bool = True,
        max_attempts: int = 5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        settings_path: str = "erp",
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self._username = username
        self._password = password
        self.context: dict[str, Any] = dict(context or {})
        # never send Accept-Encoding: identity — Tryton then labels plain bodies as gzip
        self._http = make_client(
            self.url, timeout_s=timeout_s, verify_tls=verify_tls, transport=transport
        )
        self._retrying = retrying(max_attempts=max_attempts, sleep=sleep)
        self._ids = itertools.count(1)
        self._auth: str | None = None
        self.user_id: int | None = None
        #: where these settings live in the configuration, for error messages
        self.settings_path = settings_path

    # -- public API -------------------------------------------------------------------

    def call(self, method: str, *params: Any, context: Mapping[str, Any] | None = None) -> Any:
        """Call ``method`` on the database with ``params`` and the context appended last."""
        ctx = {**self.context, **(context or {})}
        return call_with_retries(self._retrying, self._call_authenticated, method, [*params, ctx])

    def server_version(self) -> str:
        """Tryton's version string (server-level method, no session needed)."""
        result = call_with_retries(
            self._retrying, self._post, "/rpc/", "common.server.version", [], None
        )
        return str(result)

    def login(self) -> int:
        """Open a session now (it is otherwise opened on the first call); returns the user id."""
        call_with_retries(self._retrying, self._login)
        assert self.user_id is not None
        return self.user_id

    def search_read(
        self,
        model: str,
        domain: Sequence[Any],
        *,
        fields: Sequence[str],
        offset: int = 0,
        limit: int | None = None,
        order: Sequence[Sequence[str]] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """``model.<model>.search_read``: rows as dicts (dotted fields nested under ``"x."``)."""
        rows = self.call(
            f"model.{model}.search_read",
            list(domain),
            offset,
            limit,
            [list(o) for o in order] if order is not None else None,
            list(fields),
            context=context,
        )
        if not isinstance(rows, list):
            raise PermanentError(f"{model}.search_read: unexpected answer type {type(rows)}")
        return rows

    def close(self) -> None:
        """End the session (best effort) and release the HTTP connection pool."""
        if self._auth is not None:
            with contextlib.suppress(TransientError, PermanentError):
                self._post(f"/{self.database}/rpc/", "common.db.logout", [], self._auth)
            self._auth = None
        self._http.close()

    # -- internals --------------------------------------------------------------------

    def _call_authenticated(self, method: str, params: list[Any]) -> Any:
        path = f"/{self.database}/rpc/"
        if self._auth is None:
            self._login()
        try:
            return self._post(path, method, params, self._auth)
        except AuthError:
            # the session expired or the server restarted: log in again, once
            self._auth = None
            self._login()
            return self._post(path, method, params, self._auth)

    def _login(self) -> None:
        params = [self._username, {"password": self._password}, "en"]
        try:
            result = self._post(f"/{self.database}/rpc/", "common.db.login", params, None)
        except AuthError as exc:
            raise PermanentError(
                f"login as {self._username!r} on Tryton database {self.database!r} rejected "
                f"(HTTP 401): wrong {self._setting('username')} or {self._setting('password')}",
                hint=f"check {self._setting('username')} and {self._setting('password')}",
                setting=self._setting("password"),
            ) from exc
        except PermanentError as exc:
            if exc.context.get("status") not in (404, 405):
                raise
            raise self._not_found(int(exc.context["status"])) from exc
        if not isinstance(result, list) or len(result) < 2:
            raise PermanentError(f"common.db.login: unexpected answer {mask(str(result))[:100]}")
        user_id, token = int(result[0]), str(result[1])
        raw = f"{self._username}:{user_id}:{token}".encode()
        self._auth = "Session " + base64.b64encode(raw).decode("ascii")
        self.user_id = user_id

    def _setting(self, name: str) -> str:
        return f"{self.settings_path}.{name}"

    def _not_found(self, status: int) -> PermanentError:
        """Login found no database endpoint: tell a wrong database from a wrong URL.

        Tryton answers 404 (HTML) on ``/{db}/rpc/`` for a database it does not
        serve, while its server-level ``/rpc/`` still answers ``common.server.version``;
        when that fails too, the URL does not lead to trytond's RPC root.
        """
        where = safe_url(self.url)
        try:
            version = self._post("/rpc/", "common.server.version", [], None)
        except (TransientError, PermanentError):
            path = self._setting("url")
            return PermanentError(
                f"no Tryton JSON-RPC at {where} (HTTP {status} on /{self.database}/rpc/ "
                f"and on /rpc/): wrong {path}",
                hint=f"check {path}: trytond's base URL, e.g. https://erp.example.com:8000, "
                "without the database name or /rpc",
                setting=path,
            )
        path = self._setting("database")
        return PermanentError(
            f"the Tryton {version} server at {where} does not serve a database named "
            f"{self.database!r} (HTTP {status}): wrong {path}",
            hint=f"check {path}; trytond serves only the databases it was started with (-d)",
            setting=path,
        )

    def _post(self, path: str, method: str, params: list[Any], auth: str | None) -> Any:
        body = {"id": next(self._ids), "method": method, "params": encode(params)}
        headers = {"Content-Type": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        try:
            response = self._http.post(path, content=json.dumps(body), headers=headers)
        except httpx.HTTPError as exc:
            raise_for_transport(exc, what=method)
            raise  # unreachable: raise_for_transport always raises
        return raise_for_rpc(response, what=method)
