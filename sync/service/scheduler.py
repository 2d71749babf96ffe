"""APScheduler jobs per pipeline: cycle (interval), rescan (cron) and reconcile (cron).

A job starts only on the replica holding its pipeline's lease (``sync.service.leases``;
the others let the tick pass quietly) and only under its (pipeline, job) lock from
``sync.service.locks``: a replica that does not get it skips the tick (log event +
metric). Jobs of one pipeline are also serialised inside the process, so a reload can
swap a pipeline's connectors without pulling them from under a running job. A failing job logs
one structured error and the daemon keeps going.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sync.config import PipelineBase
from sync.reconcile_run import run_scheduled
from sync.runtime import Pipeline, run_cycle
from sync.service.health import Metrics
from sync.service.leases import AllPipelines, Ownership
from sync.service.locks import Locks, LockUnavailable

log = structlog.get_logger("stocksync.scheduler")

JOBS = ("cycle", "rescan", "reconcile")


@dataclass
class Slot:
    """A pipeline as the daemon holds it: live connectors plus a lock serialising its jobs."""

    pipeline: Pipeline
    lock: threading.Lock = field(default_factory=threading.Lock)


class JobRunner:
    """Runs one job of one pipeline: lock, runs row, metrics, error containment."""

    def __init__(
        self,
        slots: Mapping[str, Slot],
        locks: Locks,
        stop: threading.Event,
        metrics: Metrics | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        self.slots = slots
        self.locks = locks
        self.stop = stop
        self.metrics = metrics
        self.ownership: Ownership = ownership or AllPipelines()
        self._active = 0
        self._idle = threading.Condition()
        self._running: dict[str, int] = {}

    def running(self) -> frozenset[str]:
        """Pipelines with a job running in this process now."""
        with self._idle:
            return frozenset(self._running)

    @contextmanager
    def _tracked(self, name: str) -> Iterator[None]:
        with self._idle:
            self._active += 1
            self._running[name] = self._running.get(name, 0) + 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._running[name] -= 1
                if not self._running[name]:
                    del self._running[name]
                self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job is running; False when ``timeout_s`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout=timeout_s)

    def __call__(self, name: str, job: str) -> None:
        """The scheduled callable (never raises: APScheduler would only log a traceback)."""
        if self.stop.is_set():
            return
        slot = self.slots.get(name)
        if slot is None:
            return
        # counted as running before the lease is asked: a heartbeat gives back only idle
        # pipelines, and this one may be about to start
        with self._tracked(name):
            if not self.ownership.holds(name):
                return  # another replica runs this pipeline (or nobody may, until a heartbeat)
            with slot.lock:
                if self.ownership.holds(name):  # still ours after waiting for the slot
                    self._run(name, job, slot)

    def _run(self, name: str, job: str, slot: Slot) -> None:
        try:
            self._locked(name, job, slot)
        except LockUnavailable as exc:  # never run a job without its lock
            log.error("lock_unavailable", pipeline=name, job=job, error=str(exc))
            if self.metrics is not None:
                self.metrics.job_failures.labels(name, job).inc()

    def _locked(self, name: str, job: str, slot: Slot) -> None:
        with self.locks.job(name, job) as got:
            if not got:
                log.info("lock_skipped", pipeline=name, job=job)
                if self.metrics is not None:
                    self.metrics.lock_skips.labels(name, job).inc()
                return
            try:
                getattr(self, f"_{job}")(slot.pipeline)
            except Exception as exc:
                log.error(
                    "job_failed",
                    pipeline=name,
                    job=job,
                    error=f"{type(exc).__name__}: {exc}",
                )
                if self.metrics is not None:
                    self.metrics.job_failures.labels(name, job).inc()

    # -- the jobs ------------------------------------------------------------------
    def _cycle(self, p: Pipeline) -> None:
        started = time.monotonic()
        # judged before its runs row is written: /healthz never sees a CRM outage's
        # cycle as good, not even for the seconds the CRM check takes
        result = run_cycle(p, stop=self.stop, check_crm=True)
        if self.metrics is not None:
            self.metrics.record_cycle(p.name, result, time.monotonic() - started)

    def _rescan(self, p: Pipeline) -> None:
        self._recorded(p, "rescan", lambda run_id: p.rescan(run_id))

    def _reconcile(self, p: Pipeline) -> None:
        run_scheduled(p)  # writes its own runs row (job "reconcile")

    def _forecast(self, p: Pipeline) -> None:
        from sync.forecast.nightly import nightly_plan

        self._recorded(p, "forecast", lambda run_id: nightly_plan(p))

    def _recorded(self, p: Pipeline, job: str, body: Callable[[str], Any]) -> None:
        run_id = str(uuid.uuid4())
        row = p.store.start_run(run_id, p.name, job, p.now())
        structlog.contextvars.bind_contextvars(run_id=run_id, pipeline=p.name)
        try:
            outcome = body(run_id)
        except Exception as exc:
            p.store.finish_run(row, p.now(), status="error", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            structlog.contextvars.unbind_contextvars("run_id", "pipeline")
        p.store.finish_run(row, p.now(), status="ok")
        log.info(f"{job}_done", pipeline=p.name, run_id=run_id, result=repr(outcome))


def triggers(p: PipelineBase) -> dict[str, Any]:
    """The APScheduler trigger of each job this pipeline should have."""
    out: dict[str, Any] = {
        "cycle": IntervalTrigger(seconds=p.schedule.interval_s),
        "rescan": CronTrigger.from_crontab(p.schedule.rescan_cron),
        "reconcile": CronTrigger.from_crontab(p.schedule.reconcile_cron),
    }
    if p.forecast.nightly_cron is not None:
        out["forecast"] = CronTrigger.from_crontab(p.forecast.nightly_cron)
    return out


def _spec(p: PipelineBase, job: str) -> tuple[Any, ...]:
    s = p.schedule
    schedule = {
        "cycle": s.interval_s,
        "rescan": s.rescan_cron,
        "reconcile": s.reconcile_cron,
        "forecast": p.forecast.nightly_cron,
    }
    return (schedule[job], s.misfire_grace_s)


#: a job not yet scheduled (the scheduler is not started): it has no next run time yet
_PENDING: Any = object()


@dataclass(frozen=True)
class _JobCopy:
    """What ``JobScheduler`` needs to add a job back after a failed ``apply``."""

    id: str
    trigger: Any
    args: tuple[Any, ...]
    misfire_grace_time: int | None
    next_run_time: Any

    @classmethod
    def of(cls, job: Any) -> _JobCopy:
        return cls(
            job.id,
            job.trigger,
            tuple(job.args),
            job.misfire_grace_time,
            getattr(job, "next_run_time", _PENDING),
        )


class JobScheduler:
    """A BackgroundScheduler whose job set follows the config (``apply`` on start and reload)."""

    def __init__(self, runner: JobRunner, max_workers: int = 16) -> None:
        self.runner = runner
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers)},
            job_defaults={"max_instances": 1, "coalesce": True},
        )
        self._specs: dict[str, tuple[Any, ...]] = {}

    def apply(
        self, pipelines: Sequence[PipelineBase], *, now_jobs: bool = True
    ) -> dict[str, list[str]]:
        """Add, remove and reschedule jobs so that they match ``pipelines`` (enabled ones).

        All or nothing: if any step raises (a trigger APScheduler refuses, a failing
        ``add_job``), the jobs are put back as they were and the error is raised.
        """
        wanted: dict[str, tuple[PipelineBase, str, Any]] = {}
        for p in pipelines:
            if p.enabled:
                for job, trigger in triggers(p).items():
                    wanted[f"{p.name}:{job}"] = (p, job, trigger)
        snapshot = [_JobCopy.of(job) for job in self.scheduler.get_jobs()]
        specs = dict(self._specs)
        try:
            return self._change(wanted, now_jobs)
        except BaseException:
            self._restore(snapshot, specs)
            raise

    def _change(
        self, wanted: dict[str, tuple[PipelineBase, str, Any]], now_jobs: bool
    ) -> dict[str, list[str]]:
        changes: dict[str, list[str]] = {"added": [], "removed": [], "rescheduled": []}
        for job_id in sorted(set(self._specs) - set(wanted)):
            self.scheduler.remove_job(job_id)
            del self._specs[job_id]
            changes["removed"].append(job_id)
        for job_id, (p, job, trigger) in sorted(wanted.items()):
            spec = _spec(p, job)
            if job_id not in self._specs:
                extra = {"next_run_time": datetime.now(UTC)} if job == "cycle" and now_jobs else {}
                self.scheduler.add_job(
                    self.runner,
                    trigger,
                    args=(p.name, job),
                    id=job_id,
                    name=job_id,
                    misfire_grace_time=int(p.schedule.misfire_grace_s),
                    **extra,
                )
                changes["added"].append(job_id)
            elif self._specs[job_id] != spec:
                self.scheduler.modify_job(
                    job_id, misfire_grace_time=int(p.schedule.misfire_grace_s)
                )
                self.scheduler.reschedule_job(job_id, trigger=trigger)
                changes["rescheduled"].append(job_id)
            self._specs[job_id] = spec
        return changes

    def _restore(self, snapshot: list[_JobCopy], specs: dict[str, tuple[Any, ...]]) -> None:
        """Put back the jobs as they were before a failed ``apply`` (same next run times)."""
        for job in self.scheduler.get_jobs():
            self.scheduler.remove_job(job.id)
        for copy in snapshot:
            extra = {} if copy.next_run_time is _PENDING else {"next_run_time": copy.next_run_time}
            self.scheduler.add_job(
                self.runner,
                copy.trigger,
                args=copy.args,
                id=copy.id,
                name=copy.id,
                misfire_grace_time=copy.misfire_grace_time,
                **extra,
            )
        self._specs = specs

    def start(self) -> None:
        self.scheduler.start()

    def run_now(self, pipelines: Sequence[str]) -> None:
        """Start these pipelines' cycles at once (leases just claimed: their previous owner
        may be gone since an interval already)."""
        for name in pipelines:
            try:
                self.scheduler.modify_job(f"{name}:cycle", next_run_time=datetime.now(UTC))
            except JobLookupError:  # a reload removed the pipeline meanwhile
                continue

    def shutdown(self) -> None:
        """Stop scheduling new runs; running jobs are waited for by the daemon (with a grace)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
