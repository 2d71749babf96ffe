"""Pushing: drain the outbox into the CRM without ever duplicating a record (architecture §5).

The flow per row reads like OCA's importer: binding → update by id; no binding
→ look up by business key → bind → update; nothing found → create → bind. A
bound record the CRM says is gone (deleted or invalidated there) loses its
binding and the row goes on as unbound in the same attempt.
A create whose outcome is unknown leaves the row ``uncertain`` and its next
attempt looks up first. Levels are read at push time, so ten movements on one
SKU become one CRM write, and a value equal to the last pushed one is no write.
Safety-stock alerts are outbox rows too (``sync.alert_push``): the webhook gets
the same backoff, attempts and dead rows as the CRM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import structlog

from sync import alert_push, binding, push_batch, reservations
from sync.backoff import backoff_s
from sync.binding import level_hash, movement_hash
from sync.errors import (
    BudgetExhaustedError,
    OutcomeUnknownError,
    PermanentError,
    RecordGoneError,
    StockSyncError,
    TransientError,
    UnmappedError,
)
from sync.ledger import queue_pending_levels
from sync.model import LevelValue, StockKey
from sync.ports import BatchLevelSink, BatchMovementSink, CrmSink
from sync.reservations import level_value
from sync.settings import mask
from sync.state.store import (
    ALERT,
    BLOCKED,
    DEAD,
    LEVEL,
    MOVEMENT,
    PENDING,
    UNCERTAIN,
    OutboxRow,
    PushLogEntry,
    StateStore,
    display_ref,
    parse_level_ref,
)

if TYPE_CHECKING:
    from sync.webhook import Webhook

log = structlog.get_logger("stocksync.push")

#: push log outcomes of a row that reached the CRM, or needed not
CREATED, UPDATED, SKIPPED = "created", "updated", "skipped"


@dataclass(frozen=True, slots=True)
class PushOptions:
    batch_size: int = 200
    max_attempts: int = 8
    retry_initial_s: float = 30.0
    retry_max_s: float = 3600.0
    #: static reservations per "SKU@WAREHOUSE", added to the ERP's reserved stock
    reservations: Mapping[str, Decimal] = field(default_factory=dict)
    #: with at least this many unbound level rows, bind from one bulk read instead of lookups
    bulk_bind_threshold: int = 20
    #: days a push outcome stays in the push log (``stocksync explain``)
    log_retention_days: int = 30


@dataclass(slots=True)
class PushReport:
    pushed: int = 0
    skipped: int = 0
    created: int = 0
    updated: int = 0
    bound: int = 0
    retried: int = 0
    dead: int = 0
    blocked: int = 0
    #: safety-stock alerts the webhook accepted
    alerted: int = 0
    stopped: bool = False
    #: why pushing paused this run (the CRM's call budget, ``BudgetExhaustedError``);
    #: the rows not pushed stay pending with their attempts unchanged
    paused: str | None = None
    #: (target, ref) of every level or movement row this run could not push (retried,
    #: dead or blocked); alerts are left out: an undelivered one is no stock difference
    unfinished: set[tuple[str, str]] = field(default_factory=set)

    @property
    def failed(self) -> int:
        return self.dead + self.blocked


class Pusher:
    """Drains one pipeline's outbox into one CRM sink."""

    def __init__(
        self,
        store: StateStore,
        sink: CrmSink,
        pipeline: str,
        *,
        now: Callable[[], datetime],
        options: PushOptions = PushOptions(),
        webhook: Webhook | None = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.pipeline = pipeline
        self.now = now
        self.options = options
        #: where alert rows go (None: they are finished unsent, see ``sync.alert_push``)
        self.webhook = webhook

    # -- scheduling of failures ----------------------------------------------------
    def _backoff(self, attempts: int, hint_s: float | None) -> timedelta:
        seconds = backoff_s(
            attempts,
            initial_s=self.options.retry_initial_s,
            max_s=self.options.retry_max_s,
            hint_s=hint_s,
        )
        return timedelta(seconds=seconds)

    def _fail(self, row: OutboxRow, exc: Exception, report: PushReport, *, state: str) -> None:
        now = self.now()
        attempts = row.attempts + 1
        hint = getattr(exc, "retry_after_s", None)
        if state != DEAD and attempts >= self._max_attempts(row):
            state = DEAD
        with self.store.transaction() as tx:
            tx.reschedule_outbox(
                row,
                state=state,
                attempts=attempts,
                next_attempt_at=now + self._backoff(attempts, hint),
                error=str(exc),
                now=now,
            )
            outcome = "retrying" if state == PENDING else state
            tx.log_push(self.pipeline, self._entry(row, now, outcome, attempts, str(exc)))
        if state == DEAD:
            report.dead += 1
        else:
            report.retried += 1
        if row.target != ALERT:  # an undelivered alert is no stock difference
            report.unfinished.add((row.target, row.ref))
        log.warning(
            "push_failed",
            pipeline=self.pipeline,
            target=row.target,
            ref=row.ref.replace("\x1f", "@"),
            state=state,
            attempts=attempts,
            error=mask(str(exc)),
            error_type=type(exc).__name__,
        )

    def _max_attempts(self, row: OutboxRow) -> int:
        if row.target == ALERT and self.webhook is not None:
            return self.webhook.max_attempts
        return self.options.max_attempts

    def _block(self, row: OutboxRow, exc: UnmappedError, report: PushReport) -> None:
        now = self.now()
        with self.store.transaction() as tx:
            tx.reschedule_outbox(
                row,
                state=BLOCKED,
                attempts=row.attempts,
                next_attempt_at=now,
                error=str(exc),
                now=now,
            )
            if row.state != BLOCKED:  # logged once, not on every cycle it stays blocked
                tx.log_push(self.pipeline, self._entry(row, now, BLOCKED, row.attempts, str(exc)))
            tx.record_conflict(
                kind=f"unmapped_{exc.what}",
                pipeline=self.pipeline,
                ref=row.ref,
                now=now,
                detail={"code": exc.code, "target": row.target, "message": str(exc)},
            )
        report.blocked += 1
        report.unfinished.add((row.target, row.ref))
        log.warning("push_blocked", pipeline=self.pipeline, what=exc.what, code=exc.code)

    def _nothing_to_show(self, row: OutboxRow) -> bool:
        """A level with nothing on hand and nothing reserved, for a product or warehouse
        the CRM does not know: no record exists there to correct and none is needed."""
        value = self.value_of(parse_level_ref(row.ref))
        return not value.real and not value.available

    def _drop_unmappable(self, row: OutboxRow, report: PushReport) -> None:
        """Finish such a row instead of blocking it for ever (say, a static reservation
        typed for a SKU the CRM lacks, then removed from the config)."""
        now = self.now()
        with self.store.transaction() as tx:
            if not tx.finish_outbox(row):  # re-queued meanwhile: the newer value is pushed
                tx.reschedule_outbox(
                    row, state=PENDING, attempts=0, next_attempt_at=now, error=None, now=now
                )
            for kind in ("unmapped_sku", "unmapped_warehouse"):
                tx.resolve_conflicts(
                    self.pipeline, kind, row.ref, now, "nothing_to_write", "nothing to show"
                )
            tx.log_push(self.pipeline, self._entry(row, now, "dropped", row.attempts))
        report.skipped += 1

    # -- one row --------------------------------------------------------------------
    def reserved_of(self, key: StockKey) -> Decimal:
        """Reserved stock of ``key``: the ERP's last snapshot plus the static reservation."""
        stored = self.store.reserved(self.pipeline, key)
        return reservations.reserved_of(stored, key, self.options.reservations)

    def value_of(self, key: StockKey) -> LevelValue:
        """What the CRM should hold for ``key`` now: on hand and available."""
        return level_value(self.store.level(self.pipeline, key), self.reserved_of(key))

    def _push_level(self, row: OutboxRow, report: PushReport, bulk_bound: bool) -> None:
        key = parse_level_ref(row.ref)
        value = self.value_of(key)
        # "unchanged" is judged on what the CRM shows (its field precision), and that
        # is what the binding remembers as pushed: 139.625 shown as 139.62 is no write
        shown = self.sink.shown_level(value)
        digest = level_hash(shown)
        binding = self.store.binding(self.pipeline, LEVEL, row.ref)
        if binding is not None and binding.pushed_hash == digest and row.state != UNCERTAIN:
            self.finish(row, report, LEVEL, binding.crm_id, digest, shown, SKIPPED)
            return
        if binding is not None:
            bound_id = binding.crm_id
            if self._update_bound(
                row, bound_id, lambda: self.sink.update_level(bound_id, key, value)
            ):
                report.updated += 1
                self.finish(row, report, LEVEL, bound_id, digest, shown, UPDATED)
                return
        crm_id = None  # a binding found gone is no bulk bind's doing: look it up again
        if binding is not None or row.state == UNCERTAIN or not bulk_bound:
            crm_id = self.sink.find_level(key)
            if crm_id is not None:
                report.bound += 1
        if crm_id is None:
            crm_id, outcome = self.sink.create_level(key, value), CREATED
            report.created += 1
        else:
            self.sink.update_level(crm_id, key, value)
            outcome = UPDATED
            report.updated += 1
        self.finish(row, report, LEVEL, crm_id, digest, shown, outcome)

    def _update_bound(self, row: OutboxRow, crm_id: str, update: Callable[[], None]) -> bool:
        """Update the bound record; False when the CRM says it is gone (deleted or
        invalidated behind stocksync's back, or a tenant reset): the binding is then
        dropped and the caller goes on as for a key never pushed (look up, else create).

        Raises what ``update`` raises but RecordGoneError.
        """
        try:
            update()
        except RecordGoneError as exc:
            with self.store.transaction() as tx:
                tx.unbind(self.pipeline, row.target, row.ref)
            log.warning(
                "binding_gone",
                pipeline=self.pipeline,
                target=row.target,
                ref=display_ref(row.ref),
                crm_id=crm_id,
                error=mask(str(exc)),
            )
            return False
        return True

    def _push_movement(self, row: OutboxRow, report: PushReport) -> None:
        stored = self.store.movement(self.pipeline, row.ref)
        if stored is None:
            self.finish(row, report, MOVEMENT, None, None, None, SKIPPED)
            return
        movement = stored.as_movement()
        digest = movement_hash(movement)
        binding = self.store.binding(self.pipeline, MOVEMENT, row.ref)
        if binding is not None and binding.pushed_hash == digest and row.state != UNCERTAIN:
            self.finish(row, report, MOVEMENT, binding.crm_id, digest, None, SKIPPED)
            return
        if binding is not None:
            bound_id = binding.crm_id
            if self._update_bound(
                row, bound_id, lambda: self.sink.update_movement(bound_id, movement)
            ):
                report.updated += 1
                self.finish(row, report, MOVEMENT, bound_id, digest, None, UPDATED)
                return
        crm_id = self.sink.find_movement(movement.key)
        if crm_id is None:
            crm_id, outcome = self.sink.create_movement(movement), CREATED
            report.created += 1
        else:
            self.sink.update_movement(crm_id, movement)
            outcome = UPDATED
            report.updated += 1
        self.finish(row, report, MOVEMENT, crm_id, digest, None, outcome)

    def _push_alert(self, row: OutboxRow, report: PushReport) -> None:
        if alert_push.deliver(self.store, row, self.webhook, self.now):
            report.alerted += 1
        else:
            report.skipped += 1

    def finish(
        self,
        row: OutboxRow,
        report: PushReport,
        target: str,
        crm_id: str | None,
        digest: str | None,
        shown: LevelValue | None,
        outcome: str,
    ) -> None:
        """Settle a row that reached the CRM, or needed not (``outcome``): bind ``crm_id``
        with the digest of what it now holds, log it, and finish the row unless it was
        queued again meanwhile (then it stays for the newer value)."""
        now = self.now()
        with self.store.transaction() as tx:
            if crm_id is not None:
                tx.bind(
                    self.pipeline,
                    target,
                    row.ref,
                    crm_id,
                    pushed_hash=digest,
                    pushed_qty=None if shown is None else shown.real,
                    now=now,
                )
            tx.log_push(
                self.pipeline, self._entry(row, now, outcome, row.attempts, None, crm_id, shown)
            )
            if not tx.finish_outbox(row):
                # re-enqueued while we pushed: the row stays for the newer value, but
                # whatever we learnt (uncertain → bound) is kept
                tx.reschedule_outbox(
                    row,
                    state=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    error=None,
                    now=now,
                )
            if target == LEVEL and row.state == BLOCKED:
                for kind in ("unmapped_sku", "unmapped_warehouse"):
                    tx.resolve_conflicts(
                        self.pipeline, kind, row.ref, now, "mapped", "now known to the CRM"
                    )
        if outcome == SKIPPED:
            report.skipped += 1
        else:
            report.pushed += 1

    def _entry(
        self,
        row: OutboxRow,
        at: datetime,
        outcome: str,
        attempts: int,
        error: str | None = None,
        crm_id: str | None = None,
        shown: LevelValue | None = None,
    ) -> PushLogEntry:
        """The push log's record of one outcome (written in the outcome's transaction)."""
        return PushLogEntry(
            target=row.target,
            ref=row.ref,
            at=at,
            outcome=outcome,
            crm_id=crm_id,
            qty=None if shown is None else shown.real,
            available=None if shown is None else shown.available,
            attempts=attempts,
            error=error,
        )

    def push_row(self, row: OutboxRow, report: PushReport, *, bulk_bound: bool = False) -> None:
        """Push one row; its failure is settled here, but a spent budget is raised
        (``BudgetExhaustedError``: the run pauses, the row stays as it is)."""
        try:
            if row.target == LEVEL:
                self._push_level(row, report, bulk_bound)
            elif row.target == ALERT:
                self._push_alert(row, report)
            else:
                self._push_movement(row, report)
        except BudgetExhaustedError:
            raise
        except StockSyncError as exc:
            self.settle_error(row, exc, report)

    def settle_error(self, row: OutboxRow, exc: StockSyncError, report: PushReport) -> None:
        """Reschedule, block or kill ``row`` as ``exc`` says (one row, or one item of a
        batch write). Raises ``BudgetExhaustedError`` and errors outside the push classes."""
        if isinstance(exc, BudgetExhaustedError):
            raise exc
        if isinstance(exc, UnmappedError):
            if row.target == LEVEL and self._nothing_to_show(row):
                self._drop_unmappable(row, report)
            else:
                self._block(row, exc, report)
        elif isinstance(exc, OutcomeUnknownError):
            # the write may have landed: the next attempt must look up before creating,
            # and must not skip a value equal to the last one known pushed
            self._fail(row, exc, report, state=UNCERTAIN)
        elif isinstance(exc, TransientError):
            self._fail(row, exc, report, state=row.state if row.state == UNCERTAIN else PENDING)
        elif isinstance(exc, PermanentError):
            self._fail(row, exc, report, state=DEAD)
        else:
            raise exc

    # -- bulk binding (``sync.binding``) ----------------------------------------------
    def bind_from_crm(self) -> int:
        """Bind every existing CRM stock record in one paged read; see ``binding.bind_from_crm``."""
        return binding.bind_from_crm(self.store, self.sink, self.pipeline)

    def _push_alerts(
        self,
        rows: Sequence[OutboxRow],
        report: PushReport,
        on_row: Callable[[PushReport], None] | None,
    ) -> None:
        """Deliver the run's alert rows until one fails for a transient cause: the others
        wait for the next run, so a dead receiver costs one POST per run, not one per alert."""
        for row in rows:
            retried = report.retried
            self.push_row(row, report)
            if on_row is not None:
                on_row(report)
            if report.retried > retried:
                break

    # -- a whole run -----------------------------------------------------------------
    def _bulk_bind(self, report: PushReport) -> bool:
        """Bind from one bulk read when many level rows are unbound; whether it did.

        Not for a batch sink: its upsert by external id needs no binding to find a
        record, so the read would only cost calls (architecture §5.1).
        """
        if isinstance(self.sink, BatchLevelSink):
            return False
        if self.store.unbound_count(self.pipeline, LEVEL) < self.options.bulk_bind_threshold:
            return False
        try:
            report.bound += self.bind_from_crm()
        except TransientError as exc:
            # not fatal: every unbound row then looks itself up before creating
            log.warning("bulk_bind_failed", pipeline=self.pipeline, error=mask(str(exc)))
            return False
        return True

    def _push_due(
        self,
        report: PushReport,
        alerts: list[OutboxRow],
        bulk_bound: bool,
        stop: threading.Event | None,
        on_row: Callable[[PushReport], None] | None,
    ) -> None:
        """Push the due level and movement rows in outbox batches (alert rows are
        collected into ``alerts``). Raises BudgetExhaustedError."""
        after_id = 0
        started = self.now()
        size = self.options.batch_size
        if isinstance(self.sink, BatchLevelSink | BatchMovementSink):
            size = max(size, self.sink.batch_size)  # a full call where rows allow
        while True:
            rows = self.store.outbox_due(self.pipeline, started, size, after_id=after_id)
            if not rows:
                return
            binding.prepare_levels(self.store, self.sink, self.pipeline, rows)
            alerts.extend(row for row in rows if row.target == ALERT)
            stock = [row for row in rows if row.target != ALERT]
            single = push_batch.push_batches(self, stock, report, on_row)
            for row in single:
                self.push_row(row, report, bulk_bound=bulk_bound)
                if on_row is not None:
                    on_row(report)
            after_id = rows[-1].id
            if stop is not None and stop.is_set():
                report.stopped = True
                return

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        on_row: Callable[[PushReport], None] | None = None,
    ) -> PushReport:
        """Push every due row once. Rows that fail are rescheduled, not retried in this run.

        Levels still flagged by the ledger (a pull that crashed before queueing
        them) are queued first, so nothing a committed page changed is left behind.
        """
        report = PushReport()
        retention = timedelta(days=self.options.log_retention_days)
        self.store.prune_push_log(self.pipeline, self.now() - retention)
        self.store.prune_alert_events(self.pipeline, self.now() - retention)
        queue_pending_levels(self.store, self.pipeline, now=self.now())
        bulk_bound = self._bulk_bind(report)
        alerts: list[OutboxRow] = []  # stock first: the webhook gets the end of the run
        try:
            self._push_due(report, alerts, bulk_bound, stop, on_row)
        except BudgetExhaustedError as exc:
            report.paused = str(exc)
            log.warning("push_paused", pipeline=self.pipeline, reason=mask(str(exc)))
        finally:
            push_batch.record_usage(self.store, self.sink, self.pipeline, report.paused)
        if not report.stopped:  # a paused CRM does not hold the webhook back
            self._push_alerts(alerts, report, on_row)
        log.info(
            "push_done",
            pipeline=self.pipeline,
            pushed=report.pushed,
            skipped=report.skipped,
            created=report.created,
            updated=report.updated,
            retried=report.retried,
            dead=report.dead,
            blocked=report.blocked,
            alerted=report.alerted,
        )
        return report
