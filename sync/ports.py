"""The only two things the core knows of connectors.

Connectors are small Protocol implementations: a source yields pages, a sink
performs single-record operations. The push *engine* (``sync.push``) owns the
idempotency flow — binding → update, else look up by business key → bind →
update, else create → bind — so every sink gets it for free and cannot get it wrong.
A sink whose CRM upserts by an external id may also offer batch writes
(``BatchLevelSink``, ``BatchMovementSink``): the engine then sends batches and needs
no look-up at all (architecture §5.1).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from sync.errors import StockSyncError
from sync.model import CrmLevel, Cursor, LevelValue, Movement, OnHand, Page, Reserved, StockKey


@runtime_checkable
class ErpSource(Protocol):
    """Reads stock-moving documents and on-hand figures from an ERP."""

    name: str

    def streams(self) -> Sequence[str]:
        """The document streams this source pulls, in a stable order."""
        ...

    def pull(self, stream: str, since: Cursor | None, page_size: int) -> Iterator[Page]:
        """Yield pages of movements changed at or after ``since`` (None: everything).

        Each page's cursor is the position after it; a source whose pages do not
        follow (source_updated_at, tie-break) order, such as a keyset on document ids,
        leaves it None on every page but the last, which covers everything the pull
        read (the core caps it at run start − overlap). Every document status is returned:
        cancelled, un-approved or deleted lines come back with ``active=False``.
        Re-reading records already seen is expected and harmless (ledger rule 1).
        Raises TransientError / PermanentError / ConfigError; malformed records go
        into ``Page.rejects`` instead of raising.
        """
        ...

    def keys_in_window(self, stream: str, since: datetime) -> Iterator[str]:
        """Every movement key the ERP still has whose business date is >= ``since``.

        Used by the window rescan: ledger keys missing from this set were deleted
        in the ERP (incremental queries never show deletions).
        """
        ...

    def on_hand(self) -> Iterator[OnHand]:
        """The ERP's current on-hand per stock key, in the base unit."""
        ...

    def reserved(self) -> Iterable[Reserved] | None:
        """The ERP's reserved stock now, per stock key, in the base unit; None when this
        ERP keeps no reservations (the CRM then shows available = on hand).

        A snapshot of the keys that have any: a key left out has none, so a release
        shows as the key dropping out. Items for one key add up (a source may give
        one per lot or location). The core reads it once per cycle, right after the
        pull (architecture §9), so its cost must grow with the reserved keys, not with
        every key the ERP stocks. Raises TransientError / PermanentError / ConfigError.
        """
        ...

    def check(self) -> str:
        """Log in and run one cheap query; return a one-line description of success."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class CrmSink(Protocol):
    """Single-record operations on the CRM's stock objects."""

    name: str

    def find_level(self, key: StockKey) -> str | None:
        """The CRM id of the stock record for ``key``, or None. Raises UnmappedError."""
        ...

    def create_level(self, key: StockKey, value: LevelValue) -> str:
        """Create the stock record; return its CRM id.

        Raises OutcomeUnknownError when the request may have been applied but no
        answer arrived (the engine then looks up before trying again).
        """
        ...

    def update_level(self, crm_id: str, key: StockKey, value: LevelValue) -> None:
        """Write ``value`` into the record ``crm_id``; idempotent, never creates.

        Raises RecordGoneError when no such live record exists (deleted or invalidated
        in the CRM): the engine then looks the key up or creates it. Otherwise
        TransientError / OutcomeUnknownError / PermanentError.
        """
        ...

    def shown_level(self, value: LevelValue) -> LevelValue:
        """``value`` as the CRM will show it once written: each number at its field's
        precision (Fxiaoke: rounded half-even to the describe's decimal places).

        The push engine compares "unchanged" on this value and reconcile compares the
        CRM with it, so a level the CRM cannot hold exactly is neither re-pushed nor
        reported. A rounded number is quantized (its exponent is the field's: 2 dp →
        ``Decimal("139.62")``); a sink that stores any value returns ``value`` itself.
        """
        ...

    def shown_reserved(self, value: LevelValue) -> Decimal:
        """The blocked (reserved) figure the CRM shows once ``value`` is written:
        ``shown_level(value).reserved`` (real − available as rounded), at the blocked
        field's own precision. Reconcile compares the CRM's blocked figure with it.
        """
        ...

    def prepare_levels(self, keys: Sequence[StockKey]) -> None:
        """About to find or create the records of ``keys``: fetch in bulk what that needs.

        An optimisation only (doing nothing is correct): a CRM that must map ERP
        codes to its own ids can look a page of them up in one query instead of
        one per key. Errors are logged by the caller; the single-record calls that
        follow meet them again and handle them row by row.
        """
        ...

    def read_levels(self) -> Iterator[CrmLevel]:
        """Every live stock record in the CRM, for reconcile and for binding in bulk.

        Duplicates included: two records for one key (made by a person, an import or
        another tool) come back as two CrmLevel, oldest first, so reconcile can
        report them (``duplicate_in_crm``, architecture §6.3).
        """
        ...

    def invalidate_level(self, crm_id: str, key: StockKey) -> None:
        """Retire one stock record (a duplicate of ``key``) so that it no longer shows.

        Soft delete where the CRM has one (Fxiaoke: ``data/invalid``, reference §5).
        Idempotent. Raises TransientError / OutcomeUnknownError / PermanentError.
        """
        ...

    def find_movement(self, movement_key: str) -> str | None: ...

    def create_movement(self, movement: Movement) -> str: ...

    def update_movement(self, crm_id: str, movement: Movement) -> None:
        """Rewrite the mirror record ``crm_id``; RecordGoneError as ``update_level``."""
        ...

    def check(self) -> str:
        """Authenticate and verify that configured objects/fields exist."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """One item's result in a batch write, at the item's position in the batch.

    Written: ``crm_id`` names the record (``created``: it is new), ``error`` is None.
    Not written: ``error`` says why, classed as for a single-record write —
    ``TransientError`` (say a record lock) → the row is tried again later;
    ``OutcomeUnknownError`` → the row is ``uncertain``; ``UnmappedError`` → blocked;
    ``PermanentError`` (a record-level rejection: a validation rule, a duplicate
    value) → that row alone is dead.
    """

    crm_id: str | None = None
    created: bool = False
    error: StockSyncError | None = None


@runtime_checkable
class BatchLevelSink(Protocol):
    """A CRM that upserts stock records by an external id, many in one call.

    Optional: the engine checks ``isinstance(sink, BatchLevelSink)`` and otherwise
    pushes one record at a time through ``CrmSink``.
    """

    #: most items one ``upsert_levels`` call takes (Salesforce collections: 200)
    batch_size: int

    def upsert_levels(self, items: Sequence[tuple[StockKey, LevelValue]]) -> Sequence[BatchOutcome]:
        """Create or update the one record of each key, matched by an external id that
        holds the key: the same call twice leaves the same records (no duplicate,
        whatever answer was lost). ``items`` has at most ``batch_size`` distinct keys;
        returns one outcome per item, in order.

        A failure of the whole call raises (TransientError, OutcomeUnknownError when
        the call may have been applied, BudgetExhaustedError, PermanentError): every
        item of it is then settled by that error.
        """
        ...


@runtime_checkable
class BatchMovementSink(Protocol):
    """The movement mirror's batch write, as ``BatchLevelSink`` (external id: the movement key)."""

    batch_size: int

    def upsert_movements(self, movements: Sequence[Movement]) -> Sequence[BatchOutcome]:
        """Create or update the mirror record of each movement; one outcome per item, in order."""
        ...


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """A CRM's call budget as last seen (Salesforce: ``Sforce-Limit-Info: api-usage=N/M``).

    ``used`` of ``limit`` calls in the CRM's window (Salesforce: the org's rolling 24 h,
    every app's calls counted); ``ceiling``: the usage at which stocksync pauses pushing.
    """

    used: int
    limit: int
    ceiling: int
    seen_at: datetime


def api_usage(sink: CrmSink) -> ApiUsage | None:
    """The sink's call budget as last seen, when it has one (an ``api_usage()`` method
    returning ``ApiUsage``); None otherwise or before its first call."""
    hook = getattr(sink, "api_usage", None)
    if callable(hook):
        usage = hook()
        if isinstance(usage, ApiUsage):
            return usage
    return None


class TokenCache(Protocol):
    """Where connectors keep access tokens across restarts (the state DB in production).

    Fxiaoke allows 10 token requests per minute: a daemon that restarts in a loop
    must not burn them, so tokens outlive the process.
    """

    def get_token(self, name: str) -> tuple[str, datetime] | None: ...

    def put_token(self, name: str, value: str, expires_at: datetime) -> None: ...


class MemoryTokenCache:
    """A process-local TokenCache, for tests and one-off commands."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, datetime]] = {}

    def get_token(self, name: str) -> tuple[str, datetime] | None:
        return self._tokens.get(name)

    def put_token(self, name: str, value: str, expires_at: datetime) -> None:
        self._tokens[name] = (value, expires_at)


def source_zone(source: ErpSource) -> tzinfo:
    """The time zone of the ERP's calendar: a source may say it with a ``timezone``
    attribute holding a ``tzinfo`` (K/3 Cloud: ``erp.timezone``); without one, UTC.

    The core reads dates a person gives (``pull.history_since``, ``backfill --since``)
    as midnights in this zone, the ERP's own business days.
    """
    zone = getattr(source, "timezone", None)
    return zone if isinstance(zone, tzinfo) else UTC


def resume_cursor(source: ErpSource, stream: str, stored: Cursor, overlap_s: float) -> Cursor:
    """Where the next pull of ``stream`` starts, given its stored cursor (architecture §4.6).

    A source may say it with a ``resume_cursor(stream, stored, overlap_s)`` method: one whose
    cursor is a position or row version in ``tie_break`` (the SQL source's journal and version
    streams) resumes from the stored cursor itself and applies its own overlap. Without the
    method: the stored time minus ``overlap_s``, tie-break dropped.
    """
    hook = getattr(source, "resume_cursor", None)
    if callable(hook):
        resumed = hook(stream, stored, overlap_s)
        if isinstance(resumed, Cursor):
            return resumed
    return Cursor(stored.updated_at - timedelta(seconds=overlap_s), "")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ConnectorContext:
    """What the composition root hands a connector factory besides its settings.

    ``http_transport`` lets tests route a connector's HTTP to an in-process
    emulator (an ``httpx.BaseTransport``); it is typed loosely so the core does
    not import httpx.
    """

    pipeline: str = "default"
    now: Callable[[], datetime] = _utcnow
    token_cache: TokenCache = field(default_factory=MemoryTokenCache)
    http_transport: Any = None
    sleep: Callable[[float], None] = time.sleep
