"""Pulling: ERP streams → ledger, page by page, each page one transaction (architecture §4).

Also the two pull-shaped jobs that complete the picture: the first-run
baseline (opening stock is not a movement) and the window rescan that turns
documents deleted in the ERP into inactive lines.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal

import structlog

from sync.ledger import (
    ApplyResult,
    LedgerOptions,
    Turn,
    apply_page,
    queue_pending_levels,
    set_baseline,
)
from sync.model import Cursor, Page, StockKey
from sync.pipeline import PagePipeline
from sync.ports import ErpSource, resume_cursor, source_zone
from sync.prefetch import Prefetched, gc_paused
from sync.state.store import StateStore, StoredMovement

log = structlog.get_logger("stocksync.pull")

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class PullOptions:
    page_size: int = 1000
    overlap_s: float = 120.0
    #: the day a stream without a cursor starts, at midnight in the ERP's zone
    #: (``sync.ports.source_zone``); None: the ERP's whole history
    history_since: date | None = None


@dataclass(slots=True)
class PullReport:
    pages: int = 0
    received: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    #: lines withdrawn because their document no longer has them (counted in ``updated``)
    withdrawn: int = 0
    touched: set[StockKey] = field(default_factory=set)
    stopped: bool = False

    def add(self, result: ApplyResult) -> None:
        self.pages += 1
        self.received += result.received
        self.inserted += result.inserted
        self.updated += result.updated
        self.rejected += result.rejected
        self.withdrawn += result.withdrawn
        self.touched |= result.touched

    @property
    def changed(self) -> int:
        return self.inserted + self.updated

    def merge(self, other: PullReport) -> None:
        """Count ``other``'s pull in this one (a first run's history pulls in its cycle)."""
        self.pages += other.pages
        self.received += other.received
        self.inserted += other.inserted
        self.updated += other.updated
        self.rejected += other.rejected
        self.withdrawn += other.withdrawn
        self.touched |= other.touched
        self.stopped = self.stopped or other.stopped


def start_cursor(
    store: StateStore,
    pipeline: str,
    stream: str,
    options: PullOptions,
    zone: tzinfo = UTC,
    source: ErpSource | None = None,
) -> Cursor | None:
    """Where the next pull of ``stream`` starts: the stored cursor minus the overlap (or as
    ``source`` resumes it, ``sync.ports.resume_cursor``), else midnight of ``history_since``
    in the ERP's ``zone``."""
    stored = store.cursor(pipeline, stream)
    if stored is not None:
        if source is not None:
            return resume_cursor(source, stream, stored, options.overlap_s)
        return Cursor(stored.updated_at - timedelta(seconds=options.overlap_s), "")
    if options.history_since is not None:
        return Cursor(day_start(options.history_since, zone), "")
    return None


def day_start(day: date, zone: tzinfo) -> datetime:
    """The first instant of ``day`` in ``zone``, in UTC. fold=0 is right for both kinds of
    change at midnight: a repeated midnight gives its first occurrence, and a skipped
    one (00:00 → 01:00) the offset before the change, i.e. the instant the day began."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def pull_stream(
    store: StateStore,
    source: ErpSource,
    pipeline: str,
    stream: str,
    *,
    now: Clock,
    options: PullOptions = PullOptions(),
    ledger: LedgerOptions = LedgerOptions(),
    run_id: str | None = None,
    since: Cursor | None = None,
    stop: threading.Event | None = None,
    on_page: Callable[[ApplyResult], None] | None = None,
) -> PullReport:
    """Pull one stream from its cursor (or ``since``) to the end, one transaction per page.

    ``stop`` is checked between pages: a shutdown finishes the current page and
    returns, and the next run resumes from the committed cursor.
    """
    report = PullReport()
    started = now()
    cursor_limit = started - timedelta(seconds=options.overlap_s)
    begin = since
    if begin is None:
        begin = start_cursor(store, pipeline, stream, options, source_zone(source), source)
    pages = Prefetched(source.pull(stream, begin, options.page_size), name=f"pull-{stream}")

    def apply(page: Page, turn: Turn | None = None) -> ApplyResult:
        with gc_paused():
            return apply_page(
                store,
                pipeline,
                page,
                now=now(),
                options=ledger,
                cursor_limit=cursor_limit,
                run_id=run_id,
                turn=turn,
            )

    def applied(result: ApplyResult) -> None:
        report.add(result)
        if on_page is not None:
            on_page(result)

    stopping = stop or threading.Event()
    with pages:
        if store.dialect == "sqlite":  # one writer at a time: page after page
            _apply_serially(pages, apply, applied, stopping)
        else:
            _apply_pipelined(pages, apply, applied, stopping, f"apply-{stream}")
    report.stopped = stopping.is_set()
    if report.changed and not report.stopped:
        # a shutdown leaves the flags to the next push: queueing a big first pull's
        # levels could outlast the grace period
        queue_pending_levels(store, pipeline, now=now())
    log.info(
        "stream_pulled",
        pipeline=pipeline,
        stream=stream,
        run_id=run_id,
        pages=report.pages,
        received=report.received,
        inserted=report.inserted,
        updated=report.updated,
        withdrawn=report.withdrawn,
        rejected=report.rejected,
    )
    return report


def _apply_serially(
    pages: Prefetched[Page],
    apply: Callable[[Page], ApplyResult],
    applied: Callable[[ApplyResult], None],
    stop: threading.Event,
) -> None:
    """Each page applied in turn; a stop is seen between pages."""
    for page in pages:
        applied(apply(page))
        if stop.is_set():
            pages.abandon()  # shutting down: not waiting for a page read ahead
            return


def _apply_pipelined(
    pages: Prefetched[Page],
    apply: Callable[[Page, Turn], ApplyResult],
    applied: Callable[[ApplyResult], None],
    stop: threading.Event,
    name: str,
) -> None:
    """Two pages in flight (``sync.pipeline``); a stop ends the loop even while the next
    page is being read, and the pages in flight still commit (and are counted)."""
    with PagePipeline(apply, name=name) as flight:
        for page in pages.until(stop):
            for result in flight.submit(page):
                applied(result)
            if stop.is_set():
                break
        if stop.is_set():
            pages.abandon()  # shutting down: not waiting for a page read ahead
        for result in flight.drain():
            applied(result)


def pull_all(
    store: StateStore,
    source: ErpSource,
    pipeline: str,
    *,
    now: Clock,
    options: PullOptions = PullOptions(),
    ledger: LedgerOptions = LedgerOptions(),
    run_id: str | None = None,
    stop: threading.Event | None = None,
    on_page: Callable[[ApplyResult], None] | None = None,
) -> PullReport:
    """Pull every stream of the source; stop early (between pages) when asked."""
    total = PullReport()
    for stream in source.streams():
        report = pull_stream(
            store,
            source,
            pipeline,
            stream,
            now=now,
            options=options,
            ledger=ledger,
            run_id=run_id,
            stop=stop,
            on_page=on_page,
        )
        total.merge(report)
        if report.stopped:
            break
    return total


def snapshot(source: ErpSource) -> dict[StockKey, Decimal]:
    return {row.stock_key: row.qty for row in source.on_hand()}


def ensure_baseline(
    store: StateStore,
    source: ErpSource,
    pipeline: str,
    *,
    now: Clock,
    options: PullOptions = PullOptions(),
    ledger: LedgerOptions = LedgerOptions(),
    run_id: str | None = None,
    max_rounds: int = 5,
    pulled: PullReport | None = None,
) -> bool:
    """On a pipeline's first run, store opening stock so that ledger = ERP on-hand.

    The snapshot is only trusted for keys that did not move while it was taken:
    catch up, snapshot, catch up again; keys touched by the second catch-up are
    in flux and the round is repeated. Returns True when a baseline was written;
    the history pulled on the way is counted into ``pulled``.
    """
    if store.meta(pipeline, "baseline_at") is not None:
        return False
    in_flux: set[StockKey] = set()
    taken: dict[StockKey, Decimal] = {}
    history = pulled if pulled is not None else PullReport()
    for _ in range(max_rounds):
        history.merge(
            pull_all(
                store, source, pipeline, now=now, options=options, ledger=ledger, run_id=run_id
            )
        )
        taken = snapshot(source)
        catch_up = pull_all(
            store, source, pipeline, now=now, options=options, ledger=ledger, run_id=run_id
        )
        history.merge(catch_up)
        in_flux = catch_up.touched
        if not in_flux:
            break
    if in_flux:
        log.warning(
            "baseline_in_flux",
            pipeline=pipeline,
            keys=len(in_flux),
            detail="these keys kept moving; reconcile will settle them",
        )
        levels = store.levels(pipeline)
        for key in in_flux:
            taken[key] = levels.get(key, Decimal(0))
    set_baseline(store, pipeline, taken, now=now(), precision=ledger.precision)
    return True


@dataclass(slots=True)
class RescanReport:
    listed: int = 0
    vanished: list[str] = field(default_factory=list)


def rescan(
    store: StateStore,
    source: ErpSource,
    pipeline: str,
    *,
    now: Clock,
    window_days: int = 35,
    ledger: LedgerOptions = LedgerOptions(),
    run_id: str | None = None,
) -> RescanReport:
    """Deactivate ledger lines whose ERP document is gone (deletions never show in pulls).

    The ERP's keys are listed first and the ledger read second: a line created
    in between is not in the ledger yet, so it cannot be mistaken for a deletion.
    """
    report = RescanReport()
    at = now()
    since = at - timedelta(days=window_days)
    for stream in source.streams():
        present = set(source.keys_in_window(stream, since))
        report.listed += len(present)
        gone = [
            m for m in store.movements_in_window(pipeline, stream, since) if m.key not in present
        ]
        if not gone:
            continue
        _deactivate(store, pipeline, stream, gone, now=at, ledger=ledger, run_id=run_id)
        report.vanished.extend(m.key for m in gone)
        log.warning(
            "vanished_in_erp", pipeline=pipeline, stream=stream, count=len(gone), run_id=run_id
        )
    return report


def _deactivate(
    store: StateStore,
    pipeline: str,
    stream: str,
    gone: list[StoredMovement],
    *,
    now: datetime,
    ledger: LedgerOptions,
    run_id: str | None,
) -> None:
    """Turn vanished lines inactive and log each as a ``vanished_in_erp`` conflict.

    The stored stamp is kept, not ours: if the document comes back, the ERP's
    newer stamp still applies (ledger rule 1).
    """
    page = Page(stream, [m.as_movement(active=False) for m in gone], None)
    apply_page(store, pipeline, page, now=now, options=ledger, run_id=run_id, reason="vanished")
    queue_pending_levels(store, pipeline, now=now)
    with store.transaction() as tx:
        for m in gone:
            tx.record_conflict(
                kind="vanished_in_erp",
                pipeline=pipeline,
                ref=m.key,
                now=now,
                detail={
                    "stream": stream,
                    "doc_no": m.doc_no,
                    "sku": m.sku,
                    "warehouse": m.warehouse,
                    "qty": str(m.qty),
                },
                ledger=m.qty,
                resolution="deactivated",
            )
