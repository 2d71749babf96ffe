"""Shared HTTP plumbing for connectors: client factory, status mapping, rate limiting, retries.

Only the client layer of a connector is wrapped in retries; the engine never
imports httpx. Every failure leaves here as one of our typed errors.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from sync.backoff import backoff_s, retry_after_s
from sync.errors import OutcomeUnknownError, PermanentError, TransientError
from sync.settings import mask

T = TypeVar("T")

USER_AGENT = "stocksync/0.1 (+https://github.com/stocksync/stocksync)"


def make_client(
    base_url: str,
    *,
    timeout_s: float = 30.0,
    verify_tls: bool = True,
    transport: httpx.BaseTransport | None = None,
    headers: dict[str, str] | None = None,
    ca_cert: str | None = None,
) -> httpx.Client:
    """An httpx client with our defaults: TLS verified, finite timeouts, our User-Agent.

    ``ca_cert``: a PEM file of the CA to trust instead of the system's (an emulator's
    self-signed certificate); ignored when ``verify_tls`` is off.
    """
    verify: bool | ssl.SSLContext = verify_tls
    if verify_tls and ca_cert:
        verify = ssl.create_default_context(cafile=ca_cert)
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        verify=verify,
        transport=transport,
        headers={"User-Agent": USER_AGENT, **(headers or {})},
    )


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Parse Retry-After (seconds or HTTP date); None when absent or unparseable."""
    return retry_after_s(response.headers.get("Retry-After"))


#: transport failures that prove the request never reached the server
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.LocalProtocolError)


def raise_for_transport(exc: httpx.HTTPError, *, what: str, write: bool = False) -> None:
    """Map an httpx transport failure to our errors.

    A write whose request may have reached the server is ``OutcomeUnknownError``:
    it might have been applied. Only a failure to connect (or to build the
    request) proves it was not; a read or write timeout, a dropped connection or
    an unreadable answer do not.
    """
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        raise PermanentError(f"{what}: {mask(str(exc))}", hint="check the configured URL") from exc
    if write and not isinstance(exc, NOT_SENT):
        raise OutcomeUnknownError(
            f"{what}: no answer after sending ({type(exc).__name__})"
        ) from exc
    raise TransientError(f"{what}: {type(exc).__name__}: {mask(str(exc))}") from exc


def raise_for_status(response: httpx.Response, *, what: str, write: bool = False) -> None:
    """Map HTTP status to our errors (used before any vendor-specific envelope check).

    For a write, every 5xx (503 included: a proxy may say it after the upstream
    applied the call) leaves the outcome unknown; 429 and 408 mean the request was
    refused or never read; any other 4xx is permanent and was not applied.
    """
    code = response.status_code
    if code < 400:
        return
    body = mask(response.text[:300])
    if code == 429 or (code == 503 and not write):
        raise TransientError(
            f"{what}: HTTP {code} (throttled)", retry_after_s=retry_after_seconds(response)
        )
    if code >= 500:
        cls = OutcomeUnknownError if write else TransientError
        raise cls(f"{what}: HTTP {code}: {body}", retry_after_s=retry_after_seconds(response))
    if code == 408:
        raise TransientError(f"{what}: HTTP 408 request timeout")
    raise PermanentError(f"{what}: HTTP {code}: {body}")


class RateLimiter:
    """Sliding-window limiter: at most ``max_calls`` per ``period_s`` per path.

    Keeping below the CRM's documented limit makes its limit errors rare instead
    of routine. The clock and sleep are injectable so tests can compress time.
    """

    def __init__(
        self,
        max_calls: int,
        period_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1 or period_s <= 0:
            raise ValueError("rate limit needs max_calls >= 1 and period_s > 0")
        self.max_calls = max_calls
        self.period_s = period_s
        self._clock = clock
        self._sleep = sleep
        #: per path, the stamps of the calls in the window (one-element lists, see ``slot``)
        self._calls: dict[str, deque[list[float]]] = {}
        self._lock = threading.Lock()

    def acquire(self, path: str) -> float:
        """Block until a call on ``path`` is allowed; return the seconds waited."""
        return self._admit(path)[0]

    @contextmanager
    def slot(self, path: str) -> Iterator[float]:
        """``acquire``, then re-stamp the call when its answer is in (yields the seconds waited).

        The server counts a call when it receives it, some time after we stamped it;
        if that delay varies, "period since our stamp" can be a little less than
        "period since the server's", and the call is refused (Fxiaoke 30004). The
        answer cannot come before the server counted the call, so a window measured
        from it is never shorter than the server's.
        """
        waited, stamp = self._admit(path)
        try:
            yield waited
        finally:
            with self._lock:
                stamp[0] = max(stamp[0], self._clock())

    def _admit(self, path: str) -> tuple[float, list[float]]:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                calls = self._calls.setdefault(path, deque())
                while calls and now - calls[0][0] >= self.period_s:
                    calls.popleft()
                if len(calls) < self.max_calls:
                    stamp = [now]
                    calls.append(stamp)
                    return waited, stamp
                # stamps are re-set on answer, so the oldest call is not always first
                delay = self.period_s - (now - min(c[0] for c in calls)) + 1e-3
            self._sleep(delay)
            waited += delay


def backoff_wait(
    *, initial_s: float = 0.5, max_s: float = 60.0, jitter: float = 0.5
) -> Callable[[RetryCallState], float]:
    """Exponential backoff with jitter that honours a server's ``retry_after_s`` hint."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = getattr(exc, "retry_after_s", None)
        return backoff_s(
            state.attempt_number, initial_s=initial_s, max_s=max_s, hint_s=hinted, jitter=jitter
        )

    return wait


def retrying(
    *,
    max_attempts: int,
    initial_s: float = 0.5,
    max_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    retry_on: tuple[type[BaseException], ...] = (TransientError,),
) -> Retrying:
    """A tenacity policy: retry our transient errors, give up after ``max_attempts``."""
    return Retrying(
        retry=retry_if_exception_type(retry_on),
        wait=backoff_wait(initial_s=initial_s, max_s=max_s),
        stop=stop_after_attempt(max_attempts),
        sleep=sleep,
        reraise=True,
    )


def call_with_retries(policy: Retrying, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` under ``policy`` (a small shim so call sites stay one line)."""
    result: T = policy(fn, *args, **kwargs)
    return result


def call_idempotent_with_retries(policy: Retrying, attempt: Callable[[], T]) -> T:
    """Run the idempotent write ``attempt`` under ``policy``, retrying even an attempt whose
    outcome is unknown (sending it again changes nothing more).

    Raises the last error; a TransientError after any attempt with an unknown outcome
    becomes OutcomeUnknownError, so the engine never trusts the value the CRM held before.
    """
    unknown: list[OutcomeUnknownError] = []

    def tracked() -> T:
        try:
            return attempt()
        except OutcomeUnknownError as exc:
            unknown.append(exc)
            raise

    try:
        return call_with_retries(policy, tracked)
    except TransientError as exc:
        if unknown and not isinstance(exc, OutcomeUnknownError):
            raise OutcomeUnknownError(
                f"{exc}; an earlier attempt may have been applied ({unknown[-1]})",
                retry_after_s=exc.retry_after_s,
            ) from exc
        raise
