"""The composition root: config → state store, connectors and options for each pipeline.

This is the one place in ``sync/`` that instantiates connectors, and it does so
only through the registry, so the core never imports a connector module.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

import connectors
from sync.alerts import check_alerts
from sync.config import PipelineBase, SettingsBase
from sync.ledger import LedgerOptions
from sync.ports import ConnectorContext, CrmSink, ErpSource
from sync.pull import PullOptions, PullReport, RescanReport, ensure_baseline, pull_all, rescan
from sync.push import Pusher, PushOptions, PushReport
from sync.reservations import ReservationReport, refresh_reservations
from sync.state import StateStore
from sync.state.engine import pool_options
from sync.webhook import Webhook

log = structlog.get_logger("stocksync.runtime")


def utcnow() -> datetime:
    return datetime.now(UTC)


def pull_options(p: PipelineBase) -> PullOptions:
    return PullOptions(
        page_size=p.pull.page_size,
        overlap_s=p.pull.overlap_s,
        history_since=p.pull.history_since,
    )


def ledger_options(p: PipelineBase) -> LedgerOptions:
    return LedgerOptions(precision=p.precision, mirror_movements=p.push.mirror_movements)


def push_options(p: PipelineBase) -> PushOptions:
    return PushOptions(
        batch_size=p.push.batch_size,
        max_attempts=p.push.max_attempts,
        retry_initial_s=p.push.retry_initial_s,
        retry_max_s=p.push.retry_max_s,
        reservations=dict(p.push.reservations),
        log_retention_days=p.push.log_retention_days,
    )


@dataclass
class Pipeline:
    """One configured pipeline with its live connectors."""

    settings: PipelineBase
    source: ErpSource
    sink: CrmSink
    store: StateStore
    now: Callable[[], datetime] = utcnow

    @property
    def name(self) -> str:
        return self.settings.name

    # the engines, wired with this pipeline's settings (one place for every caller)
    def ensure_baseline(self, run_id: str | None = None, pulled: PullReport | None = None) -> bool:
        return ensure_baseline(
            self.store,
            self.source,
            self.name,
            now=self.now,
            options=pull_options(self.settings),
            ledger=ledger_options(self.settings),
            run_id=run_id,
            pulled=pulled,
        )

    def pull(
        self,
        run_id: str | None = None,
        *,
        stop: threading.Event | None = None,
        on_page: Callable[[Any], None] | None = None,
    ) -> PullReport:
        return pull_all(
            self.store,
            self.source,
            self.name,
            now=self.now,
            options=pull_options(self.settings),
            ledger=ledger_options(self.settings),
            run_id=run_id,
            stop=stop,
            on_page=on_page,
        )

    def rescan(self, run_id: str | None = None) -> RescanReport:
        return rescan(
            self.store,
            self.source,
            self.name,
            now=self.now,
            window_days=self.settings.pull.rescan_days,
            ledger=ledger_options(self.settings),
            run_id=run_id,
        )

    def refresh_reservations(self) -> ReservationReport:
        """Read the ERP's reserved stock and queue the keys whose figure changed."""
        return refresh_reservations(
            self.store,
            self.source,
            self.name,
            now=self.now(),
            static=self.settings.push.reservations,
            precision=self.settings.precision,
        )

    def pusher(self) -> Pusher:
        hook = self.settings.alerts.webhook
        return Pusher(
            self.store,
            self.sink,
            self.name,
            now=self.now,
            options=push_options(self.settings),
            webhook=Webhook(hook) if hook is not None else None,
        )

    def close(self) -> None:
        for closeable in (self.source, self.sink):
            try:
                closeable.close()
            except Exception as exc:  # closing must not mask the real outcome
                log.warning("close_failed", pipeline=self.name, error=str(exc))


def build_connector(kind: str, section: Any, context: ConnectorContext) -> Any:
    spec = connectors.get(section.type, kind)  # type: ignore[arg-type]
    return spec.build(section, context)


def build_pipeline(
    settings: PipelineBase,
    store: StateStore,
    *,
    now: Callable[[], datetime] = utcnow,
    http_transport: Any = None,
) -> Pipeline:
    context = ConnectorContext(
        pipeline=settings.name, now=now, token_cache=store, http_transport=http_transport
    )
    source = build_connector("erp", settings.erp, context)
    sink = build_connector("crm", settings.crm, context)
    return Pipeline(settings, source, sink, store, now)


def open_store(settings: SettingsBase, *, upgrade: bool = True) -> StateStore:
    """The state store, its connection pool sized for ``settings.workers`` job threads."""
    store = StateStore(settings.state.url, pool=pool_options(settings.workers))
    if upgrade:
        store.upgrade()
    return store


@dataclass
class CycleResult:
    run_id: str
    pulled: int = 0
    applied: int = 0
    rejected: int = 0
    #: keys whose reserved stock changed this cycle
    reserved: int = 0
    push: PushReport = field(default_factory=PushReport)
    stopped: bool = False
    error: str | None = None
    #: why the cycle did not reach the CRM (``crm_problem``): recorded as ``degraded``
    degraded: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_cycle(
    pipeline: Pipeline,
    *,
    stop: threading.Event | None = None,
    on_page: Callable[[Any], None] | None = None,
    on_row: Callable[[PushReport], None] | None = None,
    check_crm: bool = False,
) -> CycleResult:
    """One pull → push cycle, recorded as a ``runs`` row. Errors are recorded, then raised.

    ``check_crm`` (the daemon): a cycle that did not reach the CRM (``crm_problem``) is
    recorded as ``degraded`` in the same write as its end, so it never counts as good
    for ``/healthz`` (architecture §8.1).
    """
    run_id = str(uuid.uuid4())
    store = pipeline.store
    row = store.start_run(run_id, pipeline.name, "cycle", pipeline.now())
    result = CycleResult(run_id)
    structlog.contextvars.bind_contextvars(run_id=run_id, pipeline=pipeline.name)
    try:
        report = PullReport()  # a first run's history counts in its cycle
        pipeline.ensure_baseline(run_id, pulled=report)
        report.merge(pipeline.pull(run_id, stop=stop, on_page=on_page))
        result.pulled, result.applied, result.rejected = (
            report.received,
            report.changed,
            report.rejected,
        )
        result.stopped = report.stopped
        if not report.stopped:
            # right after the pull, never before it: a release is then seen with or
            # before the shipment that made it, never counted twice (architecture §9)
            result.reserved = pipeline.refresh_reservations().changed
            # before the push, which delivers the webhooks this queues; never raises:
            # an alert problem must not fail the cycle
            check_alerts(pipeline)
            result.push = pipeline.pusher().run(stop=stop, on_row=on_row)
            result.stopped = result.push.stopped
        if check_crm and not result.stopped:
            result.degraded = crm_problem(pipeline, result)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        log.error("cycle_failed", error=result.error)
        raise
    finally:
        structlog.contextvars.unbind_contextvars("run_id", "pipeline")
        store.finish_run(
            row,
            pipeline.now(),
            status="error" if result.error else "degraded" if result.degraded else "ok",
            pulled=result.pulled,
            applied=result.applied,
            pushed=result.push.pushed,
            failed=result.push.failed,
            error=result.error or result.degraded,
        )
    if result.degraded:
        log.warning(
            "cycle_degraded", pipeline=pipeline.name, run_id=run_id, problem=result.degraded
        )
    log.info(
        "cycle_done",
        pipeline=pipeline.name,
        run_id=run_id,
        pulled=result.pulled,
        applied=result.applied,
        pushed=result.push.pushed,
        failed=result.push.failed,
    )
    return result


def crm_problem(p: Pipeline, result: CycleResult) -> str | None:
    """Why this cycle did not reach the CRM, or None.

    Push failures are per row (rescheduled, not raised), so a CRM outage does
    not fail ``run_cycle``. A cycle counts as good only if some push got
    through, or — when there was nothing to push — the CRM answered a check; a push
    paused for the CRM's call budget (``BudgetExhaustedError``) is no good cycle.
    """
    push = result.push
    if push.paused:
        return f"pushing paused: {push.paused}"
    attempted = push.pushed + push.skipped + push.retried + push.dead + push.blocked
    if attempted:
        if push.retried and not (push.pushed or push.skipped):
            return f"every push attempt failed ({push.retried} rescheduled)"
        return None
    try:
        p.sink.check()
    except Exception as exc:
        return f"CRM check failed: {type(exc).__name__}: {exc}"
    return None
