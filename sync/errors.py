"""Typed errors, one class per decision the engine has to make.

- ``TransientError``: try again later (with backoff); nothing is wrong with the data.
- ``PermanentError``: this item will never succeed as it is; mark it dead and move on.
  ``RecordGoneError`` (the CRM record a binding names is gone) is the one the pusher
  recovers from itself, by binding or creating a record again.
- ``RecordError``: one input record is malformed; quarantine it, keep the rest.
- ``ConfigError``: refuse to start; every problem is listed at once.
- ``ConflictError``: two views of the stock disagree; recorded, resolved by policy.

Context travels on attributes (``key``, ``field``, ``raw``…), never baked into
f-strings only, so structured logs can print them as fields and masking can run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class StockSyncError(Exception):
    """Root of every error stocksync raises on purpose."""

    #: one sentence telling a person how to fix the cause, shown by the CLI
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint
        self.context: dict[str, Any] = context

    def __str__(self) -> str:
        return self.message


class TransientError(StockSyncError):
    """A failure that may go away by itself: timeouts, 5xx, throttling, lost sessions."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        #: the server's own hint of when to come back (Retry-After, quota reset)
        self.retry_after_s = retry_after_s


class OutcomeUnknownError(TransientError):
    """A write was sent but no answer came back: it may or may not have been applied.

    The pusher marks the outbox row ``uncertain`` so the next attempt looks up by
    business key before creating anything: that is what prevents duplicates.
    """


class BudgetExhaustedError(TransientError):
    """The CRM's call budget is spent, or at the ceiling stocksync keeps below: every
    write would be refused (Salesforce: 403 ``REQUEST_LIMIT_EXCEEDED``, or the daily API
    usage of ``Sforce-Limit-Info`` at ``crm.api_budget_ceiling``).

    Nothing is wrong with any row: the pusher pauses, that is it ends its run at once,
    leaves every row pending with its attempts unchanged, and says why (``status``,
    the cycle's ``degraded`` reason). ``retry_after_s`` is the sink's guess of when the
    budget frees up, None when it cannot tell.
    """


class AuthError(TransientError):
    """Credentials were rejected or a session/token expired; re-authenticate once."""


class PermanentError(StockSyncError):
    """This request will fail the same way every time; do not retry it."""


class RecordGoneError(PermanentError):
    """A write by CRM id found no such record: it was deleted or invalidated (作废) in the
    CRM behind stocksync's back, or the CRM tenant was reset.

    Sending the same write again fails the same way; the pusher drops the binding and
    goes on as for a key it never pushed (look up by business key, else create).
    """


class UnmappedError(PermanentError):
    """The CRM does not know a SKU or warehouse yet: block the row, re-check each cycle."""

    def __init__(self, message: str, *, what: str, code: str, **context: Any) -> None:
        super().__init__(message, what=what, code=code, **context)
        #: "sku" or "warehouse"
        self.what = what
        self.code = code


class RecordError(StockSyncError):
    """One ERP record cannot be turned into a movement; it is quarantined with its payload."""

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        field: str | None = None,
        raw: Mapping[str, Any] | Sequence[Any] | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, key=key, field=field, **context)
        self.key = key
        self.field = field
        self.raw = raw


class ConflictError(StockSyncError):
    """Two views of the stock disagree in a way a policy must decide."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration file, located by its YAML path (and line when known)."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        return f"{where}: {self.message}"


class ConfigError(StockSyncError):
    """The configuration cannot be used. Carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[ConfigProblem], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        head = f"invalid configuration{f' in {source}' if source else ''}"
        body = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{head}:\n{body}" if body else head)

    @classmethod
    def single(cls, path: str, message: str, *, source: str | None = None) -> ConfigError:
        return cls([ConfigProblem(path, message)], source=source)
