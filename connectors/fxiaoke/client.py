"""HTTP client of the Fxiaoke OpenAPI: corpAccessToken lifecycle, envelope, errors, paging.

Fxiaoke answers HTTP 200 for every error; only ``errorCode`` in the body counts,
and ``raise_for_error`` is the one place that turns codes into our error classes.
Retries (tenacity) live here and nowhere else; creates are never retried blindly
because Fxiaoke has no idempotency key — the engine looks up first instead.

What an error says about a write (architecture §5.5): codes the gateway answers
before any work (limits, auth, configuration, parameter and business errors) mean
"not applied"; -1, -2, 50009, a missing code, a 5xx and a lost answer mean
"unknown" and raise ``OutcomeUnknownError`` for a write.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from tenacity import retry_if_exception

from connectors._http import (
    RateLimiter,
    call_idempotent_with_retries,
    call_with_retries,
    make_client,
    raise_for_status,
    raise_for_transport,
    retrying,
)
from connectors.fxiaoke.settings import FxiaokeSettings
from sync.errors import (
    AuthError,
    ConfigError,
    ConfigProblem,
    OutcomeUnknownError,
    PermanentError,
    RecordGoneError,
    TransientError,
)
from sync.ports import ConnectorContext
from sync.settings import mask, register_secret

TOKEN_PATH = "/cgi/corpAccessToken/get/V2"
DESCRIBE_PATH = "/cgi/crm/v2/object/describe"
MAX_LIMIT = 100
MAX_OFFSET = 10000
#: documented: 10 token calls per minute per app
TOKEN_CALLS_PER_MIN = 10
#: a server hint longer than this (the daily quota) is left to the engine, not slept on here
MAX_CLIENT_WAIT_S = 60.0
_SHANGHAI = timezone(timedelta(hours=8))  # China has no DST: a fixed offset is exact

TRANSIENT_CODES = {
    -1: "system busy",
    -2: "system error",
    50009: "service timeout",
    14001: "call limit exceeded",
    30004: "per-path call frequency exceeded",
}
#: transient codes after which a write may have been applied: the server failed or timed
#: out somewhere behind the gateway (reference §3 does not say how far the call got)
OUTCOME_UNKNOWN_CODES = frozenset({-1, -2, 50009})
AUTH_CODES = {
    20016: "corpAccessToken missing or expired",
    20005: "appAccessToken missing or expired",
}
#: code → (settings field to fix, meaning)
CONFIG_CODES = {
    10006: ("app_secret", "appSecret missing or illegal (or the app lacks the scope)"),
    20006: ("app_secret", "appId or appSecret is wrong"),
    20015: ("permanent_code", "permanentCode is wrong"),
    20017: ("app_id", "no credentials sent or corpId not found"),
    20021: ("app_id", "the app is disabled"),
    20022: ("app_id", "the enterprise has not authorised the app"),
    30003: ("app_id", "the tenant has bought no OpenAPI call quota"),
}
QUOTA_CODE = 30002
#: the business-error code (reference §3: "parameter error", no finer code documented)
#: under which a write by ``_id`` to a record that is gone is refused
GONE_CODE = 32000
#: texts that tell such a refusal from other 32000s: the record does not exist
#: (reference §6: "库存记录不存在"; the gateway's generic "数据不存在") or was invalidated
#: (作废, reference §5); "对象不存在" (no such object type) is a configuration fault, not this
GONE_TEXTS = ("数据不存在", "记录不存在", "数据已作废")

Json = dict[str, Any]


def seconds_until_quota_reset(now: datetime) -> float:
    """Seconds until the next midnight in Asia/Shanghai, when the daily quota resets."""
    local = now.astimezone(_SHANGHAI)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - local).total_seconds()


def raise_for_error(
    body: Mapping[str, Any], *, what: str, now: datetime, write: bool = False
) -> None:
    """Map a Fxiaoke envelope to our errors; return quietly when ``errorCode`` is 0.

    ``write=True``: -1, -2, 50009 or no readable code raise ``OutcomeUnknownError``
    (the write may have been applied, reference §3/§6); every other code means the
    call was refused before it did anything. ``errorMessage`` is only carried (the
    docs warn it changes), with one exception: a write refused with 32000 whose
    message or description says the record does not exist or was invalidated raises
    ``RecordGoneError`` (the reference documents no code of its own for it, §3, §6).
    """
    try:
        code = int(body.get("errorCode", -2))
    except (TypeError, ValueError):
        code = -2
    if code == 0:
        return
    message = mask(str(body.get("errorMessage", "")))
    ctx: dict[str, Any] = {
        "error_code": code,
        "error_message": message,
        "trace_id": body.get("traceId"),
    }
    if write and code == GONE_CODE and _says_gone(body):
        raise RecordGoneError(f"{what}: Fxiaoke {code}: the record is gone: {message}", **ctx)
    if write and code in OUTCOME_UNKNOWN_CODES:
        raise OutcomeUnknownError(
            f"{what}: Fxiaoke {code} ({TRANSIENT_CODES[code]}); the write may have been applied",
            **ctx,
        )
    if code in TRANSIENT_CODES:
        raise TransientError(f"{what}: Fxiaoke {code} ({TRANSIENT_CODES[code]})", **ctx)
    if code == QUOTA_CODE:
        raise TransientError(
            f"{what}: Fxiaoke 30002 (daily call quota exhausted; resets at 00:00 Asia/Shanghai)",
            retry_after_s=seconds_until_quota_reset(now),
            **ctx,
        )
    if code in AUTH_CODES:
        raise AuthError(f"{what}: Fxiaoke {code} ({AUTH_CODES[code]})", **ctx)
    if code in CONFIG_CODES:
        field, meaning = CONFIG_CODES[code]
        exc = ConfigError([ConfigProblem(f"crm.{field}", f"Fxiaoke {code}: {meaning}")])
        exc.hint = (
            "check the app's credentials on Fxiaoke's open platform (README: Connect your "
            "own systems) and the variables the config reads them from"
        )
        exc.context.update(ctx)
        raise exc
    raise PermanentError(f"{what}: Fxiaoke {code}: {message}", **ctx)


def _says_gone(body: Mapping[str, Any]) -> bool:
    """Whether a 32000 answer's text says the record addressed by id is gone."""
    text = f"{body.get('errorMessage', '')} {body.get('errorDescription', '')}"
    return any(mark in text for mark in GONE_TEXTS)


def _retriable(exc: BaseException) -> bool:
    """Retry transient errors here, except: unknown write outcomes (the engine looks up
    first), auth errors (refreshed once in place, never in a loop that burns the token
    limit) and hints longer than a minute (the daily quota)."""
    if isinstance(exc, OutcomeUnknownError):
        return False
    return _retriable_idempotent(exc)


def _retriable_idempotent(exc: BaseException) -> bool:
    """``_retriable`` for writes that can be repeated (update, invalid): an unknown
    outcome is retried too, since applying them twice is applying them once."""
    if not isinstance(exc, TransientError) or isinstance(exc, AuthError):
        return False
    return exc.retry_after_s is None or exc.retry_after_s <= MAX_CLIENT_WAIT_S


def data_path(api_name: str, action: str) -> str:
    """Preset objects live under /cgi/crm/v2/data, ``__c`` objects under /cgi/crm/custom/v2/data."""
    prefix = "/cgi/crm/custom/v2/data/" if api_name.endswith("__c") else "/cgi/crm/v2/data/"
    return prefix + action


def flt(field: str, operator: str, *values: Any) -> Json:
    """One query filter (snake_case keys, values always a list)."""
    return {"field_name": field, "operator": operator, "field_values": list(values)}


@dataclass(frozen=True)
class _Token:
    value: str
    corp_id: str
    expires_at: datetime


def token_cache_name(settings: FxiaokeSettings) -> str:
    """The state database's name for this tenant's token: ``fxiaoke:<app_id>:<tenant>``.

    A corpAccessToken belongs to an app *in one tenant*: an ISV app (one appId) that
    several companies authorised has one permanentCode, and so one token, per company
    (Fxiaoke open platform, 获取corpAccessToken). Pipelines to different tenants share
    the state database, so the name carries a digest of the base URL and the permanent
    code — never the code itself, which is a secret.
    """
    tenant = f"{settings.base_url}\n{settings.permanent_code.get_secret_value()}"
    digest = hashlib.blake2b(tenant.encode(), digest_size=8).hexdigest()
    return f"fxiaoke:{settings.app_id}:{digest}"


class FxiaokeClient:
    """Thread-safe client for one app in one tenant (legacy body-token style)."""

    def __init__(self, settings: FxiaokeSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self._context = context
        self._http = make_client(
            settings.base_url,
            timeout_s=settings.timeout_s,
            verify_tls=settings.verify_tls,
            transport=context.http_transport,
        )
        clock = self._clock
        self._limiter = RateLimiter(
            settings.rate_limit_calls,
            settings.rate_limit_period_s,
            clock=clock,
            sleep=context.sleep,
        )
        self._token_limiter = RateLimiter(
            TOKEN_CALLS_PER_MIN, 60.0, clock=clock, sleep=context.sleep
        )
        policy = retrying(max_attempts=settings.max_attempts, sleep=context.sleep)
        self._retry = policy.copy(retry=retry_if_exception(_retriable))
        self._retry_idempotent = policy.copy(retry=retry_if_exception(_retriable_idempotent))
        self._token_lock = threading.Lock()
        self._token: _Token | None = None
        self._rejected: str | None = None
        self._cache_name = token_cache_name(settings)
        #: token requests this instance sent (for tests and metrics)
        self.token_requests = 0

    def _clock(self) -> float:
        return self._context.now().timestamp()

    # ------------------------------------------------------------ token
    def token(self) -> str:
        """A valid corpAccessToken, from memory, the shared cache, or a new request."""
        return self._ensure_token().value

    @property
    def corp_id(self) -> str:
        return self._ensure_token().corp_id

    def _ensure_token(self) -> _Token:
        margin = timedelta(seconds=self.settings.token_refresh_margin_s)
        with self._token_lock:
            now = self._context.now()
            if self._token and now < self._token.expires_at - margin:
                return self._token
            cached = self._load_cached()
            if cached and cached.value != self._rejected and now < cached.expires_at - margin:
                self._token = cached
                return cached
            self._token = call_with_retries(self._retry, self._fetch_token)
            cache = self._context.token_cache
            cache.put_token(self._cache_name, self._token.value, self._token.expires_at)
            cache.put_token(
                self._cache_name + ":corp_id", self._token.corp_id, self._token.expires_at
            )
            return self._token

    def _load_cached(self) -> _Token | None:
        cache = self._context.token_cache
        token, corp = (
            cache.get_token(self._cache_name),
            cache.get_token(self._cache_name + ":corp_id"),
        )
        if not token or not corp:
            return None
        register_secret(token[0])
        return _Token(token[0], corp[0], token[1])

    def _fetch_token(self) -> _Token:
        self._token_limiter.acquire(TOKEN_PATH)
        self.token_requests += 1
        body = {
            "appId": self.settings.app_id,
            "appSecret": self.settings.app_secret.get_secret_value(),
            "permanentCode": self.settings.permanent_code.get_secret_value(),
        }
        payload = self._send(TOKEN_PATH, body, what="corpAccessToken", write=False)
        value, corp_id = payload.get("corpAccessToken"), payload.get("corpId")
        if not isinstance(value, str) or not value or not isinstance(corp_id, str):
            raise PermanentError("corpAccessToken: answer without corpAccessToken/corpId")
        register_secret(value)
        expires_in = float(payload.get("expiresIn") or 7200)
        return _Token(value, corp_id, self._context.now() + timedelta(seconds=expires_in))

    def _invalidate(self, rejected: str) -> None:
        with self._token_lock:
            self._rejected = rejected
            if self._token and self._token.value == rejected:
                self._token = None

    # ------------------------------------------------------------ calls
    def call(
        self,
        path: str,
        data: Json | None,
        *,
        extra: Json | None = None,
        write: bool = False,
        idempotent: bool = True,
    ) -> Json:
        """POST one API call with the token envelope; retried on transient errors.

        ``write=True``: an answer that leaves the outcome unknown (lost, 5xx, -1, -2,
        50009) raises OutcomeUnknownError. A write that is not ``idempotent`` (a
        create) is then not retried here: only the engine can look up first. An
        idempotent write (update, invalid) is retried, and still raises
        OutcomeUnknownError if it finally fails after any attempt with an unknown
        outcome, so the engine never trusts the old value.
        """
        if not write or not idempotent:
            return call_with_retries(
                self._retry, self._call_authenticated, path, data, extra, write
            )
        return call_idempotent_with_retries(
            self._retry_idempotent, lambda: self._call_authenticated(path, data, extra, True)
        )

    def _call_authenticated(
        self, path: str, data: Json | None, extra: Json | None, write: bool
    ) -> Json:
        token = self._ensure_token()
        try:
            return self._send(path, self._envelope(token, data, extra), what=path, write=write)
        except AuthError:
            # 20016: the token expired or was replaced; a rejected call was not applied,
            # so one refresh and one retry are safe even for creates.
            self._invalidate(token.value)
            token = self._ensure_token()
            return self._send(path, self._envelope(token, data, extra), what=path, write=write)

    def _envelope(self, token: _Token, data: Json | None, extra: Json | None) -> Json:
        body: Json = {
            "corpAccessToken": token.value,
            "corpId": token.corp_id,
            "currentOpenUserId": self.settings.open_user_id,
            **(extra or {}),
        }
        if data is not None:
            body["data"] = data
        return body

    def _send(self, path: str, body: Json, *, what: str, write: bool) -> Json:
        limited = self._limiter.slot(path) if path != TOKEN_PATH else nullcontext(0.0)
        try:
            with limited:
                response = self._http.post(
                    path, params={"thirdTraceId": str(uuid.uuid4())}, json=body
                )
        except httpx.HTTPError as exc:
            raise_for_transport(exc, what=what, write=write)
            raise  # pragma: no cover - raise_for_transport always raises
        raise_for_status(response, what=what, write=write)
        cls = OutcomeUnknownError if write else TransientError
        try:
            payload = response.json()
        except ValueError:
            raise cls(f"{what}: answer is not JSON") from None
        if not isinstance(payload, dict):
            raise cls(f"{what}: answer is not a JSON object")
        raise_for_error(payload, what=what, now=self._context.now(), write=write)
        return payload

    # ------------------------------------------------------------ objects
    def describe(self, api_name: str) -> Json:
        """The object's describe (``fields`` keyed by api name, with their attributes).

        ``apiName`` and ``includeDetail`` go both at the top level and in ``data``:
        the sources differ on where (reference §5); Fxiaoke's manual marks both
        required. ``includeDetail`` would add the detail objects, which we never need.
        """
        ask = {"apiName": api_name, "includeDetail": False}
        body = self.call(DESCRIBE_PATH, ask, extra=ask)
        data = body.get("data") or {}
        describe = data.get("describe", data)
        return describe if isinstance(describe, dict) else {}

    def query_page(self, api_name: str, info: Json) -> list[Json]:
        path = data_path(api_name, "query")
        body = self.call(path, {"dataObjectApiName": api_name, "search_query_info": info})
        rows = (body.get("data") or {}).get("dataList") or []
        return [r for r in rows if isinstance(r, dict)]

    def iter_query(
        self,
        api_name: str,
        filters: Sequence[Json] = (),
        *,
        fields: Sequence[str] = (),
        page_size: int = MAX_LIMIT,
        keyset: bool = False,
    ) -> Iterator[Json]:
        """Every record matching ``filters``, ordered by ``_id``.

        Offset paging while the offset stays within 10000 (the documented cap), then
        ``_id GT last`` keyset paging; ``keyset=True`` uses keyset paging from the start
        (stable while records are being created).
        """
        if not 1 <= page_size <= MAX_LIMIT:
            raise ValueError(f"page_size must be within 1..{MAX_LIMIT}")
        offset, last_id = 0, None
        while True:
            page_filters = list(filters)
            if last_id is not None:
                page_filters.append(flt("_id", "GT", last_id))
            info: Json = {
                "limit": page_size,
                "offset": offset,
                "filters": page_filters,
                "orders": [{"fieldName": "_id", "isAsc": True}],
            }
            if fields:
                info["fieldProjection"] = list(dict.fromkeys(["_id", *fields]))
            rows = self.query_page(api_name, info)
            yield from rows
            if len(rows) < page_size:
                return
            if keyset or last_id is not None or offset + page_size > MAX_OFFSET:
                last_id, offset = rows[-1]["_id"], 0
            else:
                offset += page_size

    def find_ids(self, api_name: str, filters: Sequence[Json], limit: int = 2) -> list[str]:
        info = {"limit": limit, "offset": 0, "filters": list(filters), "fieldProjection": ["_id"]}
        info["orders"] = [{"fieldName": "_id", "isAsc": True}]
        return [str(r["_id"]) for r in self.query_page(api_name, info) if r.get("_id")]

    def create(self, api_name: str, object_data: Json) -> str | None:
        """Create one record; its id, or None when the answer carries none (custom objects)."""
        body = self.call(
            data_path(api_name, "create"),
            {"object_data": {"dataObjectApiName": api_name, **object_data}},
            extra={"triggerApprovalFlow": False, "triggerWorkFlow": False},
            write=True,
            idempotent=False,
        )
        data = body.get("data")
        data = data if isinstance(data, dict) else {}
        found = body.get("dataId") or data.get("_id") or data.get("dataId")
        return str(found) if found else None

    def update(self, api_name: str, record_id: str, fields: Json) -> None:
        """Merge ``fields`` into the record (idempotent, so retried even when unknown)."""
        self.call(
            data_path(api_name, "update"),
            {"object_data": {"dataObjectApiName": api_name, "_id": record_id, **fields}},
            extra={"triggerApprovalFlow": False, "triggerWorkFlow": False},
            write=True,
        )

    def invalid(self, api_name: str, record_id: str) -> None:
        """Invalidate (soft-delete) one record, reference §5 ``data/invalid``; idempotent."""
        self.call(
            data_path(api_name, "invalid"),
            {"dataObjectApiName": api_name, "object_data_id": record_id},
            extra={"triggerApprovalFlow": False, "triggerWorkFlow": False},
            write=True,
        )

    def close(self) -> None:
        self._http.close()
