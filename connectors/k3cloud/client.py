"""HTTP client for the K/3 Cloud WebAPI: signing, session cookie, envelope decoding, retries.

Every request carries the signed headers Kingdee's Python SDK sends, so no login
call is needed; the ``kdservice-sessionid`` the server hands back is replayed
like the SDK does. All failures leave ``_decode`` as typed errors, and only this
layer retries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors._http import call_with_retries, make_client, raise_for_status, raise_for_transport
from connectors._http import retrying as retry_policy
from connectors.k3cloud.signing import signed_headers
from sync.errors import AuthError, ConfigError, ConfigProblem, PermanentError, TransientError
from sync.settings import mask

SERVICE_PREFIX = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService."
EXECUTE_BILL_QUERY = SERVICE_PREFIX + "ExecuteBillQuery"
QUERY_BUSINESS_INFO = SERVICE_PREFIX + "QueryBusinessInfo"
SESSION_COOKIE = "kdservice-sessionid"
MAX_LIMIT = 10_000
SIGNATURE_HINT = (
    "check erp.username, erp.app_id and erp.app_secret against 第三方系统登录授权 in K/3 Cloud "
    "(the app must be enabled for this user); erp.acct_id was accepted"
)
ACCT_HINT = (
    "check erp.acct_id: it is the data centre id (数据中心ID / 账套ID) shown by "
    "GetDataCenterList or the K/3 Cloud login page, not its name or number"
)
_MISSING_FIELD = re.compile(r"元数据中标识为(.+?)的字段不存在")
_LIMIT_REFUSED = re.compile(r"Limit", re.IGNORECASE)
_CONFIG_CODES = {4, 5, 8, 9}
_TRANSIENT_CODES = {6, 14}


class MissingFieldError(ConfigError):
    """MsgCode 9: the server's metadata has no field with this key (k3cloud.md §7).

    A ConfigError like every MsgCode 9, with the key on ``field`` so that a caller
    holding an inferred key (k3cloud-stock-quantities.md §1.2) can fall back.
    """

    def __init__(self, problems: list[ConfigProblem], *, field: str) -> None:
        super().__init__(problems)
        self.field = field


class K3CloudClient:
    """One WebAPI endpoint with one identity. Not thread-safe (one session, like the SDK)."""

    def __init__(
        self,
        *,
        server_url: str,
        acct_id: str,
        username: str,
        app_id: str,
        app_secret: str,
        lcid: int = 2052,
        org_num: int = 0,
        timeout_s: float = 60.0,
        verify_tls: bool = True,
        max_attempts: int = 5,
        transport: httpx.BaseTransport | None = None,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.server_url = server_url if server_url.endswith("/") else server_url + "/"
        self._base_path = urlsplit(self.server_url).path or "/"
        self._identity = {
            "acct_id": acct_id,
            "username": username,
            "app_id": app_id,
            "app_secret": app_secret,
        }
        self._lcid = lcid
        self._org_num = org_num
        self._max_attempts = max_attempts
        self._now = now or datetime.now
        self._sleep = sleep
        self._session_id: str | None = None
        self._http = make_client(
            self.server_url, timeout_s=timeout_s, verify_tls=verify_tls, transport=transport
        )

    # -- public calls -----------------------------------------------------------------

    def execute_bill_query(self, query: dict[str, Any], *, where: str) -> list[list[Any]]:
        """Rows (lists in FieldKeys order). ``where`` is the config path errors point at."""
        result = self.call(EXECUTE_BILL_QUERY, {"data": query}, where=where)
        if not isinstance(result, list) or not all(isinstance(r, list) for r in result):
            raise TransientError(f"ExecuteBillQuery {query.get('FormId')}: unexpected answer shape")
        return result

    def iter_bill_query(
        self, query: dict[str, Any], *, page_size: int, where: str
    ) -> Iterator[list[list[Any]]]:
        """Page with StartRow/Limit until an empty answer, for result sets that do not change
        while they are read. A short answer is not the end: a server may cap Limit below
        what we ask (reference §3.1, ``WebAPIMaxQueryLimit``) without saying so."""
        limit = max(1, min(page_size, MAX_LIMIT))
        start = 0
        while True:
            rows = self.execute_bill_query(
                {**query, "StartRow": start, "Limit": limit, "TopRowCount": 0}, where=where
            )
            if not rows:
                return
            yield rows
            start += len(rows)

    def iter_keyset(
        self, query: dict[str, Any], keys: Sequence[KeyField], *, page_size: int, where: str
    ) -> Iterator[list[list[Any]]]:
        """Page in the order of ``keys`` (unique together), each page asking for rows after
        the last one read, until an empty answer.

        Unlike StartRow, a position given by key values does not move when rows before it
        change, appear or vanish between two pages: every row present from the first page
        to the last whose keys lie ahead of the position is read (architecture §4.1).
        ``keys`` are (field key, position in the row, "num" or "str"); the query's own
        FilterString is kept and AND-ed with the position.
        """
        limit = max(1, min(page_size, MAX_LIMIT))
        order = ", ".join(f"{field} ASC" for field, _, _ in keys)
        base = query.get("FilterString") or ""
        after: list[Any] | None = None
        while True:
            position = "" if after is None else keyset_after(keys, after)
            filters = " AND ".join(f"({f})" for f in (base, position) if f)
            rows = self.execute_bill_query(
                {
                    **query,
                    "FilterString": filters,
                    "OrderString": order,
                    "StartRow": 0,
                    "Limit": limit,
                    "TopRowCount": 0,
                },
                where=where,
            )
            if not rows:
                return
            yield rows
            after = [rows[-1][index] for _, index, _ in keys]

    def query_business_info(self, form_id: str, *, where: str) -> Any:
        return self.call(QUERY_BUSINESS_INFO, {"data": {"FormId": form_id}}, where=where)

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------

    def call(self, service: str, body: dict[str, Any], *, where: str) -> Any:
        """POST one service call with retries on transient failures (backoff, injected sleep)."""
        kwargs: dict[str, Any] = {"max_attempts": self._max_attempts}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        policy = retry_policy(**kwargs)
        return call_with_retries(policy, self._call_with_reauth, service, body, where)

    def _call_with_reauth(self, service: str, body: dict[str, Any], where: str) -> Any:
        """A lost session: drop it and re-sign once. A refused fresh signature: stop at once
        (signing again with the same credentials cannot succeed)."""
        if self._session_id is not None:
            try:
                return self._post(service, body, where)
            except AuthError:
                self._drop_session()
        try:
            return self._post(service, body, where)
        except AuthError as exc:
            self._drop_session()
            raise PermanentError(
                f"K/3 Cloud refused the signed request of user {self._identity['username']!r} "
                f"(erp.username, erp.app_id, erp.app_secret): {exc.message}",
                hint=SIGNATURE_HINT,
            ) from exc

    def _drop_session(self) -> None:
        self._session_id = None
        self._http.cookies.clear()

    def _post(self, service: str, body: dict[str, Any], where: str) -> Any:
        relative = service + ".common.kdsvc"
        path = self._base_path + relative
        headers = signed_headers(
            path=path,
            lcid=self._lcid,
            org_num=self._org_num,
            timestamp=int(self._now().timestamp()),
            **self._identity,
        )
        headers["Accept-Charset"] = "utf-8"
        headers["Content-Type"] = "application/json"
        if self._session_id:
            headers[SESSION_COOKIE] = self._session_id
        what = f"K/3 Cloud {service.rsplit('.', 1)[-1]}"
        try:
            response = self._http.post(relative, content=json.dumps(body), headers=headers)
        except httpx.HTTPError as exc:
            raise_for_transport(exc, what=what)
            raise  # pragma: no cover - raise_for_transport always raises
        sid = response.cookies.get(SESSION_COOKIE)
        if sid:
            self._session_id = sid
        return _decode(response, what=what, where=where)


def _response_status(payload: Any) -> dict[str, Any] | None:
    """The ResponseStatus of an error envelope (bare or wrapped in ``[[…]]``), else None."""
    node = payload
    while isinstance(node, list) and len(node) == 1:
        node = node[0]
    if not isinstance(node, dict):
        return None
    result = node.get("Result")
    status = result.get("ResponseStatus") if isinstance(result, dict) else None
    if isinstance(status, dict) and status.get("IsSuccess") is False:
        return status
    return None


def _decode(response: httpx.Response, *, what: str, where: str) -> Any:
    """THE error mapping for K/3 Cloud: envelopes first, then HTTP status, text errors,
    bad JSON and MsgCodes.

    K/3 Cloud answers business errors with HTTP 200 and an envelope whose MsgCode
    says what happened; the SDKs never look at it, so we must. The envelope is read
    before the status: a wrong AcctID gets HTTP 500 with a MsgCode 1 envelope
    (reference §3.3), which is a wrong setting, not a server failure to retry.
    """
    if response.status_code == 404:
        raise PermanentError(
            f"{what}: HTTP 404 at {response.request.url}",
            hint="check server_url: it is the K/3 Cloud site root, e.g. http://host/k3cloud/",
        )
    text = response.text
    payload = _json_or_none(text)
    status = _response_status(payload)
    if status is not None and response.status_code != 200:
        _raise_refused_status(status, response.status_code, what=what)
    raise_for_status(response, what=what)
    if text.startswith("response_error:"):
        raise TransientError(f"{what}: {mask(text[:300])}")
    if payload is None:
        raise TransientError(f"{what}: malformed or truncated JSON ({len(text)} bytes)")
    if status is None:
        return payload
    _raise_for_msg_code(status, what=what, where=where)


def _json_or_none(text: str) -> Any:
    """The body as JSON (floats as Decimal), or None when it is not JSON."""
    if not text or text[0] not in "[{":
        return None
    try:
        return json.loads(text, parse_float=Decimal)
    except ValueError:
        return None


def _message(status: dict[str, Any]) -> str:
    errors = status.get("Errors") or []
    message = "; ".join(str(e.get("Message")) for e in errors if isinstance(e, dict)) or "error"
    return mask(message)


def _raise_refused_status(status: dict[str, Any], http_status: int, *, what: str) -> None:
    """An error envelope at a non-200 status. MsgCode 1 there is the data centre (AcctID)
    the server does not know; any other code is a server failure, retried."""
    code = status.get("MsgCode")
    message = _message(status)
    if code == 1:
        raise PermanentError(
            f"{what}: K/3 Cloud does not know the data centre in erp.acct_id: "
            f"{message} (HTTP {http_status}, MsgCode 1)",
            hint=ACCT_HINT,
        )
    raise TransientError(f"{what}: HTTP {http_status}: {message} (MsgCode {code})")


def _raise_for_msg_code(status: dict[str, Any], *, what: str, where: str) -> None:
    code = status.get("MsgCode")
    message = _message(status)
    if code == 1:
        raise AuthError(f"{what}: {message} (MsgCode 1)")
    if code in _TRANSIENT_CODES:
        raise TransientError(f"{what}: {message} (MsgCode {code})")
    if code in _CONFIG_CODES:
        missing = _MISSING_FIELD.search(message)
        detail = f"field {missing.group(1)} does not exist: " if missing else ""
        path = "pull.page_size" if _LIMIT_REFUSED.search(message) else where
        problems = [ConfigProblem(path, f"{what}: {detail}{message} (MsgCode {code})")]
        if missing:
            raise MissingFieldError(problems, field=missing.group(1))
        raise ConfigError(problems)
    if code == 2:
        raise PermanentError(
            f"{what}: {message} (MsgCode 2)", hint="grant the API user query rights on the form"
        )
    raise PermanentError(f"{what}: {message} (MsgCode {code})")


KeyField = tuple[str, int, str]


def keyset_after(keys: Sequence[KeyField], values: Sequence[Any]) -> str:
    """``k1 > v1 OR (k1 = v1 AND k2 > v2) OR …``: rows strictly after ``values``."""
    literals = [_literal(value, kind) for (_, _, kind), value in zip(keys, values, strict=True)]
    branches = []
    for depth, (field, _, _) in enumerate(keys):
        equal = [f"{keys[i][0]} = {literals[i]}" for i in range(depth)]
        branches.append(" AND ".join([*equal, f"{field} > {literals[depth]}"]))
    return " OR ".join(f"({b})" for b in branches)


def _literal(value: Any, kind: str) -> str:
    if kind == "num":
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite():
            raise PermanentError(
                f"K/3 Cloud ExecuteBillQuery: key value {value!r} is not a number",
                hint="the form's FID and entry ids are numbers on every server we know; "
                "report this answer",
            )
        return format(number, "f")
    return sql_quote(str(value))


def sql_quote(value: str) -> str:
    """A FilterString text literal: single quotes, an inner quote doubled."""
    return "'" + value.replace("'", "''") + "'"
