"""HTTP client of the Salesforce REST API: session, error mapping, API budget, paging.

Errors are JSON arrays of ``{"message","errorCode","fields"}`` for a whole call and
``{"statusCode","message","fields"}`` per record in a collections answer (reference §3):
``error_for`` is the one place that turns either into our error classes. Every answer
carries ``Sforce-Limit-Info: api-usage=N/M`` (reference §9), the org's daily API usage;
the client keeps the last figure and refuses to write past the configured ceiling
(``BudgetExhaustedError``) so that stocksync never starves the org's other integrations.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import retry_if_exception

from connectors._http import (
    call_idempotent_with_retries,
    call_with_retries,
    make_client,
    raise_for_transport,
    retrying,
)
from connectors.salesforce.auth import (
    Session,
    cache_name,
    load_session,
    request_session,
    store_session,
)
from connectors.salesforce.settings import SalesforceSettings
from sync.errors import (
    AuthError,
    BudgetExhaustedError,
    OutcomeUnknownError,
    PermanentError,
    RecordGoneError,
    StockSyncError,
    TransientError,
    UnmappedError,
)
from sync.ports import ApiUsage, ConnectorContext
from sync.settings import mask

Json = dict[str, Any]

_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")
#: per-record codes after which the same record can be sent again as it is (reference §3)
TRANSIENT_CODES = frozenset(
    {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"}
)
#: codes that say the record addressed by id no longer exists
GONE_CODES = frozenset({"ENTITY_IS_DELETED", "NOT_FOUND", "INVALID_CROSS_REFERENCE_KEY"})
#: "Foreign key external ID: A-100 not found for field ERP_SKU__c in entity Product2"
_FOREIGN_KEY = re.compile(r"[Ff]oreign key external ID: .* not found for field (\S+)")


def error_for(
    code: str,
    message: str,
    *,
    what: str,
    status: int | None = None,
    write: bool = False,
    by_id: bool = False,
    parents: Mapping[str, tuple[str, str]] | None = None,
) -> StockSyncError:
    """Our error for a Salesforce error code: a whole call's ``errorCode`` (``status`` is its
    HTTP status) or one record's ``statusCode`` in a collections answer (``status`` None).

    ``write``: a server failure leaves the outcome unknown. ``by_id``: the call addressed
    a record by id, so "not found" means the record is gone. ``parents``: field → (what,
    code) of the parent external ids the record named, so that a parent the org lacks
    is an ``UnmappedError`` (the row is blocked, not dead). Reference §2.4, §3, §4.3, §9.
    """
    text = mask(message)[:300]
    ctx: Json = {"error_code": code, "http_status": status}
    if code == "INVALID_SESSION_ID" or status == 401:
        return AuthError(f"{what}: session expired or invalid ({code})", **ctx)
    if code == "REQUEST_LIMIT_EXCEEDED":
        return BudgetExhaustedError(
            f"{what}: Salesforce refused the call: the org's API request limit is exceeded "
            f"(REQUEST_LIMIT_EXCEEDED: {text}); pushing resumes when the rolling 24 h usage "
            "drops or the org buys more calls",
            **ctx,
        )
    found = _FOREIGN_KEY.search(message)
    if found and parents and found.group(1) in parents:
        kind, value = parents[found.group(1)]
        return UnmappedError(
            f"{what}: the CRM has no {kind} {value!r} ({found.group(1)}): {text}",
            what=kind,
            code=value,
            **ctx,
        )
    if by_id and code in GONE_CODES:
        return RecordGoneError(f"{what}: the record is gone ({code}: {text})", **ctx)
    if code in TRANSIENT_CODES or (status is not None and status >= 500):
        cls = OutcomeUnknownError if write and status is not None else TransientError
        return cls(f"{what}: {code or f'HTTP {status}'}: {text}", **ctx)
    return PermanentError(f"{what}: {code or f'HTTP {status}'}: {text}", **ctx)


def first_error(body: Any) -> tuple[str, str]:
    """(errorCode, message) of an error answer; ("", text) when it is not the documented array."""
    if isinstance(body, list) and body and isinstance(body[0], dict):
        first = body[0]
        return str(first.get("errorCode") or first.get("statusCode") or ""), str(
            first.get("message") or ""
        )
    return "", str(body)[:300]


def parse_usage(header: str | None) -> tuple[int, int] | None:
    """(used, limit) of a ``Sforce-Limit-Info`` header (reference §9), None without one."""
    found = _USAGE.search(header or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def _retriable(exc: BaseException) -> bool:
    """Transient errors are retried here, but not a spent budget (the engine pauses) nor
    an auth error (renewed once in place)."""
    return isinstance(exc, TransientError) and not isinstance(exc, AuthError | BudgetExhaustedError)


class SalesforceClient:
    """Thread-safe client of one org for one connected app."""

    def __init__(self, settings: SalesforceSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self._context = context
        self._http = make_client(
            settings.login_url,
            timeout_s=settings.timeout_s,
            verify_tls=settings.verify_tls,
            transport=context.http_transport,
            ca_cert=settings.ca_cert,
        )
        policy = retrying(max_attempts=settings.max_attempts, sleep=context.sleep)
        self._retry = policy.copy(retry=retry_if_exception(_retriable))
        self._lock = threading.Lock()
        self._session: Session | None = None
        self._rejected: str | None = None
        self._cache_name = cache_name(settings)
        self._usage: ApiUsage | None = None
        #: whether the last answer came without ``Sforce-Limit-Info``, and when ``/limits``
        #: was last read for want of it
        self._blind = False
        self._limits_read_at: datetime | None = None
        #: token requests this instance sent, and API calls (for tests and benchmarks)
        self.token_requests = 0
        self.calls = 0

    @property
    def base(self) -> str:
        """The REST root of the configured API version: ``/services/data/v59.0``."""
        return f"/services/data/v{self.settings.api_version}"

    # ------------------------------------------------------------ session
    def session(self) -> Session:
        """A session from memory, the shared cache, or a new login."""
        with self._lock:
            now = self._context.now()
            if self._session and now < self._session.expires_at:
                return self._session
            cache = self._context.token_cache
            cached = load_session(cache, self._cache_name)
            if cached and cached.token != self._rejected and now < cached.expires_at:
                self._session = cached
                return cached
            self.token_requests += 1
            self._session = call_with_retries(
                self._retry, request_session, self._http, self.settings, now
            )
            store_session(cache, self._cache_name, self._session)
            return self._session

    def _invalidate(self, rejected: str) -> None:
        with self._lock:
            self._rejected = rejected
            if self._session and self._session.token == rejected:
                self._session = None

    # ------------------------------------------------------------ budget
    def api_usage(self) -> ApiUsage | None:
        """The org's daily API usage as the last answer said, with the pausing ceiling."""
        return self._usage

    def _note_usage(self, response: httpx.Response) -> None:
        figures = parse_usage(response.headers.get("Sforce-Limit-Info"))
        if figures is None:
            if response.status_code < 300:  # a refusal (401, say) may well come without it
                self._blind = True
            return
        self._blind = False
        used, limit = figures
        ceiling = int(limit * self.settings.api_budget_ceiling)
        self._usage = ApiUsage(used, limit, ceiling, self._context.now())

    def check_budget(self) -> None:
        """Raise BudgetExhaustedError while the org's usage is at the ceiling. Once
        ``budget_recheck_s`` has passed since the figure was seen, it is read afresh
        (``GET /limits``: one call) instead, as the rolling 24 h window frees calls.

        Answers without ``Sforce-Limit-Info`` (a proxy that drops it; reference §9 says
        every answer has it) would leave the ceiling unenforced on a figure never seen
        or seen long ago: ``/limits`` is then read instead, at most every
        ``budget_recheck_s``."""
        usage = self._usage
        now = self._context.now()
        if self._blind and self._due(self._limits_read_at, now):
            self._limits_read_at = now
            self._read_limits()
            usage = self._usage
        if usage is None or usage.used < usage.ceiling:
            return
        if self._due(usage.seen_at, now):
            self._read_limits()
            usage = self._usage
            if usage is None or usage.used < usage.ceiling:
                return
        share = 100 * self.settings.api_budget_ceiling
        raise BudgetExhaustedError(
            f"Salesforce API usage {usage.used} of the org's {usage.limit} daily calls is at "
            f"the ceiling of {usage.ceiling} (crm.api_budget_ceiling {share:g} %); "
            "pushing resumes when the rolling 24 h usage drops below it",
            retry_after_s=self.settings.budget_recheck_s,
        )

    def _due(self, since: datetime | None, now: datetime) -> bool:
        """Whether ``budget_recheck_s`` has passed since ``since`` (never: it has)."""
        return since is None or (now - since).total_seconds() >= self.settings.budget_recheck_s

    def _read_limits(self) -> None:
        """``GET /limits`` (reference §9): its ``DailyApiRequests`` where the answer has
        them, else the usage header the answer carries like any other."""
        found = self.request("GET", f"{self.base}/limits")
        daily = found.get("DailyApiRequests") if isinstance(found, dict) else None
        if isinstance(daily, dict):
            limit, remaining = daily.get("Max"), daily.get("Remaining")
            if isinstance(limit, int) and isinstance(remaining, int) and limit > 0:
                ceiling = int(limit * self.settings.api_budget_ceiling)
                self._usage = ApiUsage(limit - remaining, limit, ceiling, self._context.now())

    # ------------------------------------------------------------ calls
    def request(self, method: str, path: str, *, json: Any = None, write: bool = False) -> Any:
        """One REST call (``path`` from the instance root), retried on transient errors.

        A write is only ever an idempotent one here (upsert by external id, update or
        delete by id), so it is retried even when an attempt's outcome was unknown, and
        then still raises OutcomeUnknownError if it finally fails.
        """
        return call_idempotent_with_retries(
            self._retry, lambda: self._authenticated(method, path, json, write)
        )

    def _authenticated(self, method: str, path: str, json: Any, write: bool) -> Any:
        session = self.session()
        try:
            return self._send(session, method, path, json, write)
        except AuthError:
            # 401 INVALID_SESSION_ID: the call was refused, not applied, so one new
            # login and one more try are safe for writes too (reference §2.4)
            self._invalidate(session.token)
            return self._send(self.session(), method, path, json, write)

    def _send(self, session: Session, method: str, path: str, json: Any, write: bool) -> Any:
        url = path if path.startswith("http") else session.instance_url + path
        what = f"Salesforce {method} {path.split('?')[0]}"
        headers = {"Authorization": f"Bearer {session.token}"}
        self.calls += 1
        try:
            response = self._http.request(method, url, json=json, headers=headers)
        except httpx.HTTPError as exc:
            raise_for_transport(exc, what=what, write=write)
            raise  # pragma: no cover - raise_for_transport always raises
        self._note_usage(response)
        if response.status_code < 300:
            return _body(response)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        code, message = first_error(body)
        raise error_for(
            code,
            message,
            what=what,
            status=response.status_code,
            write=write,
            by_id=method in ("PATCH", "DELETE") and "/composite/" not in path,
        )

    # ------------------------------------------------------------ resources
    def query_all(self, soql: str) -> Iterator[Json]:
        """Every record of a SOQL query, following ``nextRecordsUrl`` (reference §5)."""
        path: str | None = f"{self.base}/query?q={quote(soql, safe='')}"
        while path:
            page = self.request("GET", path)
            if not isinstance(page, dict):
                raise TransientError("Salesforce query: answer is not a JSON object")
            yield from (r for r in page.get("records") or [] if isinstance(r, dict))
            path = None if page.get("done", True) else page.get("nextRecordsUrl")

    def describe(self, sobject: str) -> Json:
        """``GET /sobjects/{sobject}/describe`` (reference §6)."""
        found = self.request("GET", f"{self.base}/sobjects/{sobject}/describe")
        return found if isinstance(found, dict) else {}

    def upsert(self, sobject: str, key_field: str, records: Sequence[Json]) -> list[Json]:
        """sObject Collections upsert by external id, ``allOrNone`` false (reference §4.2):
        one result per record, in order. Refuses past the budget ceiling."""
        self.check_budget()
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": sobject}, **r} for r in records],
        }
        path = f"{self.base}/composite/sobjects/{sobject}/{key_field}"
        answer = self.request("PATCH", path, json=body, write=True)
        if not isinstance(answer, list) or len(answer) != len(records):
            raise OutcomeUnknownError(
                f"Salesforce upsert of {len(records)} {sobject}: the answer is not one "
                "result per record"
            )
        return [r if isinstance(r, dict) else {} for r in answer]

    def update(self, sobject: str, key_field: str, key: str, fields: Json) -> None:
        """Write ``fields`` into the record whose External ID is ``key``, never creating it
        (``PATCH /sobjects/{sobject}/{field}/{key}?updateOnly=true``, reference §4.1);
        RecordGoneError when there is none."""
        self.check_budget()
        path = f"{self.base}/sobjects/{sobject}/{key_field}/{quote(key, safe='')}?updateOnly=true"
        self.request("PATCH", path, json=fields, write=True)

    def update_by_id(self, sobject: str, record_id: str, fields: Json) -> None:
        """``PATCH /sobjects/{sobject}/{id}`` (REST API "Update a Record"): never creates;
        RecordGoneError when the record is deleted (ENTITY_IS_DELETED) or unknown."""
        self.check_budget()
        self.request(
            "PATCH", f"{self.base}/sobjects/{sobject}/{record_id}", json=fields, write=True
        )

    def delete(self, sobject: str, record_id: str) -> None:
        """``DELETE /sobjects/{sobject}/{id}``; a record already gone is no error."""
        try:
            self.request("DELETE", f"{self.base}/sobjects/{sobject}/{record_id}", write=True)
        except RecordGoneError:
            return

    def close(self) -> None:
        self._http.close()


def _body(response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise TransientError("Salesforce: answer is not JSON") from None
