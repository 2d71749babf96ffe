"""``/healthz`` and ``/metrics`` (Prometheus text) on a small threaded WSGI server.

Counters and the cycle histogram are fed by the scheduler as jobs finish; the
gauges (outbox depth, open conflicts, last success, cursor lag, freshness) are read from
the state database at scrape time, so every replica reports the shared truth.
Health is judged from the runs table for the same reason: a replica that lost
every lock race is healthy as long as some replica keeps the pipeline in sync.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sync.config import PipelineBase
from sync.freshness import Freshness, freshness
from sync.push_batch import recorded_usage
from sync.service.wsgi_server import ThreadedWsgiServer, WsgiApp
from sync.state import StateStore

log = structlog.get_logger("stocksync.health")

#: the pool of the health server's own state connections (server backends): a few
#: concurrent scrapes, and a short wait so that a stuck database gives a quick 503
HEALTH_POOL: dict[str, Any] = {"pool_size": 2, "max_overflow": 2, "pool_timeout": 1.0}
#: a pipeline is healthy when its last good cycle ended within this many intervals
HEALTHY_INTERVALS = 3
PUSH_RESULTS = ("pushed", "skipped", "retried", "dead", "blocked", "alerted")


class Metrics:
    """The daemon's Prometheus registry (dedicated: never the global default one)."""

    def __init__(
        self,
        store: Callable[[], StateStore],
        pipelines: Callable[[], Sequence[PipelineBase]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = CollectorRegistry()
        self.pulled = Counter(
            "stocksync_movements_pulled",
            "ERP movement lines read",
            ["pipeline"],
            registry=self.registry,
        )
        self.applied = Counter(
            "stocksync_movements_applied",
            "movement lines that changed the ledger",
            ["pipeline"],
            registry=self.registry,
        )
        self.pushes = Counter(
            "stocksync_pushes",
            "outbox rows handled, by result",
            ["pipeline", "result"],
            registry=self.registry,
        )
        self.cycle_duration = Histogram(
            "stocksync_cycle_duration_seconds",
            "duration of one pull → push cycle",
            ["pipeline"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=self.registry,
        )
        self.lock_skips = Counter(
            "stocksync_lock_skips",
            "ticks skipped because another replica held the job's lock",
            ["pipeline", "job"],
            registry=self.registry,
        )
        self.job_failures = Counter(
            "stocksync_job_failures",
            "jobs that ended with an error",
            ["pipeline", "job"],
            registry=self.registry,
        )
        self.leases_held = Gauge(
            "stocksync_leases_held",
            "pipelines this replica holds the lease of (server state backends)",
            registry=self.registry,
        )
        self.replicas_live = Gauge(
            "stocksync_replicas_live",
            "replicas sharing the state database, as this replica's last heartbeat counted",
            registry=self.registry,
        )
        self.registry.register(_StateCollector(store, pipelines, now))

    def record_cycle(self, pipeline: str, result: Any, duration_s: float) -> None:
        """Count one finished cycle (a ``sync.runtime.CycleResult``)."""
        self.pulled.labels(pipeline).inc(result.pulled)
        self.applied.labels(pipeline).inc(result.applied)
        for name in PUSH_RESULTS:
            self.pushes.labels(pipeline, name).inc(getattr(result.push, name))
        self.cycle_duration.labels(pipeline).observe(duration_s)


class _StateCollector(Collector):
    def __init__(
        self,
        store: Callable[[], StateStore],
        pipelines: Callable[[], Sequence[PipelineBase]],
        now: Callable[[], datetime],
    ) -> None:
        self.store, self.pipelines, self.now = store, pipelines, now

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._collect()
        except Exception as exc:  # a scrape must never take the daemon down
            log.warning("metrics_state_failed", error=str(exc))

    def _collect(self) -> Iterator[Metric]:
        store, now = self.store(), self.now()
        names = {p.name for p in self.pipelines()}
        outbox = GaugeMetricFamily(
            "stocksync_outbox_rows", "outbox rows by state", labels=["pipeline", "state"]
        )
        for (pipeline, state), count in sorted(store.outbox_counts().items()):
            outbox.add_metric([pipeline, state], count)
        conflicts = GaugeMetricFamily(
            "stocksync_open_conflicts", "unresolved conflicts by kind", labels=["pipeline", "kind"]
        )
        for (pipeline, kind), count in sorted(store.open_conflict_counts().items()):
            conflicts.add_metric([pipeline, kind], count)
        last = GaugeMetricFamily(
            "stocksync_last_success_timestamp_seconds",
            "end of the last successful cycle (Unix time)",
            labels=["pipeline"],
        )
        for name, at in sorted(store.last_successes(sorted(names), "cycle").items()):
            last.add_metric([name], at.timestamp())
        lag = GaugeMetricFamily(
            "stocksync_cursor_lag_seconds",
            "now minus the stream cursor's position",
            labels=["pipeline", "stream"],
        )
        for row in store.cursors():
            if row.pipeline in names:
                lag.add_metric(
                    [row.pipeline, row.stream], (now - row.cursor.updated_at).total_seconds()
                )
        fresh = GaugeMetricFamily(
            "stocksync_freshness_seconds",
            "age of the oldest ERP change the CRM may not reflect yet (sync.freshness)",
            labels=["pipeline"],
        )
        for name, f in sorted(freshness(store, now).items()):
            if name in names:
                fresh.add_metric([name], f.freshness_s)
        yield from (outbox, conflicts, last, lag, fresh)
        yield from _budget(store, names)


def _budget(store: StateStore, names: set[str]) -> Iterator[Metric]:
    """The CRM's call budget per pipeline as the last push saw it (Salesforce's daily API
    usage from ``Sforce-Limit-Info``), and whether pushing paused on it."""
    families = {
        "used": GaugeMetricFamily(
            "stocksync_crm_api_used", "CRM API calls used in its window", labels=["pipeline"]
        ),
        "limit": GaugeMetricFamily(
            "stocksync_crm_api_limit", "CRM API calls allowed in its window", labels=["pipeline"]
        ),
        "ceiling": GaugeMetricFamily(
            "stocksync_crm_api_ceiling",
            "CRM API usage at which stocksync pauses pushing",
            labels=["pipeline"],
        ),
    }
    paused = GaugeMetricFamily(
        "stocksync_push_paused",
        "1 while pushing is paused on the CRM's call budget",
        labels=["pipeline"],
    )
    for pipeline, figures in sorted(recorded_usage(store).items()):
        if pipeline not in names:
            continue
        for name, family in families.items():
            value = figures.get(name)
            if isinstance(value, int | float):
                family.add_metric([pipeline], value)
        paused.add_metric([pipeline], 1 if figures.get("paused") else 0)
    yield from (*families.values(), paused)


def health(
    store: StateStore, pipelines: Sequence[PipelineBase], now: datetime
) -> tuple[bool, dict[str, Any]]:
    """(healthy, JSON body): every enabled pipeline had a good cycle within 3 intervals,
    and its oldest unconfirmed ERP change is within ``schedule.freshness_limit_s``."""
    report: dict[str, Any] = {}
    problems: list[str] = []
    fresh = freshness(store, now)
    # one query for all pipelines: a scrape stays quick beside many busy job threads
    last = store.last_successes([p.name for p in pipelines if p.enabled], "cycle")
    for p in pipelines:
        if not p.enabled:
            continue
        window = HEALTHY_INTERVALS * p.schedule.interval_s
        at = last.get(p.name)
        age = None if at is None else (now - at).total_seconds()
        entry: dict[str, Any] = {
            "last_success": at.isoformat() if at else None,
            "age_s": None if age is None else round(age, 1),
            "max_age_s": window,
        }
        reasons: list[str] = []
        if age is None:
            reasons.append("no successful cycle yet")
        elif age > window:
            reasons.append(f"last successful cycle {age:.0f}s ago (more than {window:g}s)")
        stale = _freshness(entry, fresh.get(p.name), p.schedule.freshness_limit_s)
        if stale:
            reasons.append(stale)
        if reasons:
            entry["reason"] = "; ".join(reasons)
            problems.append(f"{p.name}: {entry['reason']}")
        report[p.name] = entry
    if not report:
        problems.append("no enabled pipeline")
    body: dict[str, Any] = {"status": "fail" if problems else "ok", "pipelines": report}
    if problems:
        body["reason"] = "; ".join(problems)
    return not problems, body


def _freshness(entry: dict[str, Any], fresh: Freshness | None, limit_s: float) -> str | None:
    """Add the freshness fields to a pipeline's ``/healthz`` entry; the reason when stale."""
    entry["freshness_s"] = None if fresh is None else round(fresh.freshness_s, 1)
    entry["max_freshness_s"] = limit_s
    if fresh is None or fresh.freshness_s <= limit_s:
        return None
    entry["freshness_cause"] = fresh.cause
    return (
        f"oldest unconfirmed change {fresh.freshness_s:.0f}s old (limit {limit_s:g}s): "
        f"{fresh.explain()}"
    )


def build_app(
    metrics: Metrics,
    store: Callable[[], StateStore],
    pipelines: Callable[[], Sequence[PipelineBase]],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> WsgiApp:
    """A WSGI app routing ``/healthz`` and ``/metrics``; anything else is 404."""
    prometheus = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return prometheus(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            try:
                ok, body = health(store(), pipelines(), now())
            except Exception as exc:
                ok, body = False, {"status": "fail", "reason": f"state database: {exc}"}
            status = "200 OK" if ok else "503 Service Unavailable"
            return _json(start_response, status, body)
        return _json(start_response, "404 Not Found", {"error": "try /healthz or /metrics"})

    return app


def _json(start_response: Callable[..., Any], status: str, body: Any) -> list[bytes]:
    data = json.dumps(body, default=str).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class HealthServer(ThreadedWsgiServer):
    """Serves the health app in a daemon thread; ``port`` is the bound one (0 picks a free port)."""

    def __init__(self, app: WsgiApp, host: str, port: int) -> None:
        super().__init__(app, host, port, name="stocksync-health")

    def start(self) -> HealthServer:
        super().start()
        log.info("health_listening", host=self.host, port=self.port)
        return self
