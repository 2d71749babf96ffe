"""The long-running daemon behind ``stocksync run``.

Lifecycle: load the config (refuse to start on any problem), configure logging,
take the daemon lock (SQLite), upgrade the state DB, check that it takes writes
(refuse to start on a read-only one), build the pipelines, start the health server
and the scheduler (the first cycle runs at once), then wait.

- SIGTERM/SIGINT: stop scheduling, set the stop event (a running cycle finishes
  its current page or push batch), wait for running jobs up to
  ``shutdown_grace_s``, exit 0 (1 if the grace ran out).
- SIGHUP, or a change of the config file's content (polled every second, by
  hash: robust against editors that replace the file): reload. A valid new
  config is applied to the running scheduler; an invalid one is rejected with
  every problem in one log event and the old config keeps running.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from sync import config as cfg
from sync.backoff import backoff_s
from sync.config import PipelineBase, SettingsBase
from sync.errors import ConfigError, StockSyncError, TransientError
from sync.runtime import Pipeline, build_pipeline, open_store
from sync.service.health import HEALTH_POOL, HealthServer, Metrics, build_app
from sync.service.leases import Beat, Heartbeat, Leases, replica_id
from sync.service.locks import Locks
from sync.service.logging import configure
from sync.service.scheduler import JobRunner, JobScheduler, Slot
from sync.settings import mask
from sync.state import StateStore
from sync.state.engine import create_state_engine

log = structlog.get_logger("stocksync.daemon")

POLL_S = 1.0
#: waiting for an unreachable state database at start: the first pause and the longest
STATE_WAIT_INITIAL_S = 1.0
STATE_WAIT_MAX_S = 60.0
#: the heartbeat's own connections: it must renew leases whatever the jobs hold
LEASE_POOL: dict[str, Any] = {"pool_size": 1, "max_overflow": 1, "pool_timeout": 5.0}
#: settings that only change how often jobs run: no need to rebuild connectors
_SCHEDULE_ONLY = {"schedule", "enabled"}


def file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def needs_rebuild(old: PipelineBase, new: PipelineBase) -> bool:
    """True when anything but the schedule changed (connectors, pull/push options…)."""
    return old.model_dump(exclude=_SCHEDULE_ONLY) != new.model_dump(exclude=_SCHEDULE_ONLY)


class Daemon:
    """One daemon process: ``start``, then ``serve`` (blocks; returns the exit code)."""

    def __init__(self, config_path: str | os.PathLike[str] | None = None) -> None:
        self.path = cfg.resolve_path(config_path)
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self.slots: dict[str, Slot] = {}
        self.health: HealthServer | None = None
        self.leases: Leases | None = None
        self.heartbeat: Heartbeat | None = None
        #: this process's name in ``replicas``, ``leases`` and ``runs.runner``
        self.replica = replica_id()
        self._digest: str | None = None
        self._signal: str | None = None

    # -- start -----------------------------------------------------------------------
    def start(self) -> bool:
        """Load the config, open the state and start the jobs; False when a stop signal came
        while waiting for an unreachable state database (nothing was started)."""
        self._digest = file_digest(self.path)
        settings = cfg.load(self.path)
        self.settings = settings
        configure(settings.log.level, settings.log.format)
        self.store = open_store(settings, upgrade=False)
        self.locks = Locks(self.store.engine)
        self.locks.acquire_daemon()
        try:
            if not self._upgrade_when_reachable():
                self._close()
                return False
            self.store.check_writable()  # a read-only database: refuse, not fail every cycle
            self.health_store = self._open_health_store(settings)
            self.metrics = Metrics(lambda: self.health_store, lambda: self.settings.pipelines)
            self.store.runner = self.replica
            self.runner = JobRunner(self.slots, self.locks, self.stop, self.metrics)
            self.jobs = JobScheduler(self.runner, max_workers=settings.workers)
            for p in settings.pipelines:
                if p.enabled:
                    self.slots[p.name] = Slot(build_pipeline(p, self.store))
            self._start_health(settings)
            changes = self.jobs.apply(settings.pipelines)
            self._start_leases(settings)
            self.jobs.start()
            if self.heartbeat is not None:
                self.heartbeat.start()
        except BaseException:
            self._close()
            raise
        log.info(
            "daemon_started",
            pid=os.getpid(),
            replica=self.replica,
            config=str(self.path),
            pipelines=sorted(self.slots),
            jobs=changes["added"],
        )
        return True

    def _upgrade_when_reachable(self) -> bool:
        """Migrate the state database, waiting (with backoff) while its server cannot be
        reached: a database server still booting with the host is no reason to give up, and
        exit 2 would keep a supervisor from restarting us. A database that refuses (missing,
        read-only, wrong credentials…) still raises at once. False when stopped while waiting.
        """
        attempt = 0
        while True:
            try:
                self.store.upgrade()
                return True
            except TransientError as exc:
                attempt += 1
                wait_s = backoff_s(attempt, initial_s=STATE_WAIT_INITIAL_S, max_s=STATE_WAIT_MAX_S)
                log.warning(
                    "state_unreachable",
                    error=mask(str(exc)),
                    attempt=attempt,
                    retry_in_s=round(wait_s, 1),
                )
                if self.stop.wait(wait_s):
                    return False

    def _start_leases(self, settings: SettingsBase) -> None:
        """On a server backend, share the pipelines with the other replicas: one heartbeat
        now (this replica's first leases before its first tick), then a thread."""
        if self.store.dialect == "sqlite":
            return  # one daemon per file: it runs every pipeline
        r = settings.replicas
        self.leases = Leases(
            create_state_engine(settings.state.url, pool=LEASE_POOL),
            self.replica,
            heartbeat_s=r.heartbeat_s,
            lease_timeout_s=r.lease_timeout_s,
            busy=self.runner.running,
        )
        self.leases.set_pipelines(self.slots)
        self.runner.ownership = self.leases
        self.heartbeat = Heartbeat(self.leases, on_beat=self._on_beat)
        self.heartbeat.beat_once()

    def _on_beat(self, beat: Beat) -> None:
        if beat.claimed:
            self.jobs.run_now(beat.claimed)
        self.metrics.leases_held.set(len(beat.held))
        self.metrics.replicas_live.set(beat.live_replicas)

    def _open_health_store(self, settings: SettingsBase) -> StateStore:
        """``/healthz`` and ``/metrics`` read through a small pool of their own on a server
        backend, so they answer (within ``HEALTH_POOL``'s wait) whatever the jobs hold."""
        if self.store.dialect == "sqlite":
            return self.store  # one file (or one in-memory database): no pool to starve
        store = StateStore(settings.state.url, pool=HEALTH_POOL)
        with store.connect():  # connected before the jobs start: a first scrape never waits
            pass
        return store

    def _start_health(self, settings: SettingsBase) -> None:
        if settings.metrics is None:
            return
        app = build_app(self.metrics, lambda: self.health_store, lambda: self.settings.pipelines)
        try:
            server = HealthServer(app, settings.metrics.host, settings.metrics.port)
        except OSError as exc:
            raise StockSyncError(
                f"cannot serve /healthz and /metrics on "
                f"{settings.metrics.host}:{settings.metrics.port}: {exc}",
                hint="choose another metrics.port (0 picks a free one) or set metrics: null",
            ) from None
        self.health = server.start()

    # -- signals ---------------------------------------------------------------------
    def install_signals(self) -> None:
        """SIGTERM/SIGINT stop, SIGHUP reloads (handlers only set flags; the loop acts)."""

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self._signal = signal.Signals(signum).name
            self.stop.set()

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    # -- main loop -------------------------------------------------------------------
    def serve(self) -> int:
        while not self.stop.wait(POLL_S / 4 if self.reload_requested.is_set() else POLL_S):
            digest = file_digest(self.path)
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._digest = digest
                self.reload("SIGHUP")
            elif digest is not None and digest != self._digest:
                self._digest = digest
                self.reload("file changed")
        return self.shutdown()

    def reload(self, reason: str) -> bool:
        """Apply the config file if it is valid; otherwise log why and keep the old one running.

        A config that validates but fails while being applied (a connector that cannot
        be built, a job the scheduler refuses) is undone: ``reload_failed`` is logged with
        the error (secrets masked) and the previous pipelines and jobs keep running.
        """
        try:
            new = cfg.load(self.path)
        except ConfigError as exc:
            log.error(
                "config_rejected",
                reason=reason,
                config=str(self.path),
                problems=[str(p) for p in exc.problems],
                note="the previous configuration keeps running",
            )
            return False
        try:
            self._apply(new, reason)
        except Exception as exc:
            log.error(
                "reload_failed",
                reason=reason,
                config=str(self.path),
                error=mask(f"{type(exc).__name__}: {exc}"),
                note="the previous configuration keeps running",
            )
            return False
        return True

    def _apply(self, new: SettingsBase, reason: str) -> None:
        old = self.settings
        restart_needed = [
            k
            for k in ("state", "metrics", "workers", "replicas")
            if getattr(new, k) != getattr(old, k)
        ]
        if restart_needed:
            new = new.model_copy(
                update={
                    "state": old.state,
                    "metrics": old.metrics,
                    "workers": old.workers,
                    "replicas": old.replicas,
                }
            )
        swap = _Swap(self.slots, self.store)
        try:
            rebuilt = swap.stage(new)
            swap.commit()
            changes = self.jobs.apply(new.pipelines)
        except BaseException:
            swap.undo()
            raise
        swap.close_replaced()
        if self.leases is not None:
            self.leases.set_pipelines(self.slots)
        self.settings = new
        if new.log != old.log:
            configure(new.log.level, new.log.format)
        if restart_needed:
            log.warning(
                "config_restart_needed", keys=restart_needed, note="kept the running values"
            )
        log.info("config_applied", reason=reason, rebuilt=rebuilt, **changes)

    # -- stop ------------------------------------------------------------------------
    def shutdown(self) -> int:
        grace = self.settings.shutdown_grace_s
        log.info("daemon_stopping", signal=self._signal, grace_s=grace)
        self.stop.set()
        self.jobs.shutdown()
        self._drain_leases()
        idle = self.runner.wait_idle(grace)
        if not idle:
            log.error("shutdown_grace_exceeded", grace_s=grace, note="jobs still running")
            return 1
        self._release_leases()
        self._close()
        log.info("daemon_stopped")
        return 0

    def _drain_leases(self) -> None:
        """Stopping: leave the live replicas and give back idle pipelines now (one beat),
        while the heartbeat thread keeps renewing the leases of jobs still finishing."""
        if self.leases is None or self.heartbeat is None:
            return
        self.leases.drain()
        self.heartbeat.beat_once()

    def _release_leases(self) -> None:
        """Once the jobs ended: give back the rest, so the other replicas take them at their
        next heartbeat instead of waiting for them to expire."""
        if self.leases is None:
            return
        if self.heartbeat is not None:
            self.heartbeat.halt()
        try:
            self.leases.release_all()
        except Exception as exc:
            log.warning(
                "leases_release_failed",
                error=mask(f"{type(exc).__name__}: {exc}"),
                note="they expire after replicas.lease_timeout_s",
            )

    def _close(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.halt()
            self.heartbeat = None
        if self.leases is not None:
            self.leases.engine.dispose()
            self.leases = None
        if self.health is not None:
            self.health.stop()
            self.health = None
        for slot in self.slots.values():
            slot.pipeline.close()
        self.slots.clear()
        self.locks.close()
        health_store = getattr(self, "health_store", self.store)
        if health_store is not self.store:
            health_store.close()
        self.store.close()


class _Swap:
    """The slot changes of one reload, undoable until the new jobs are in place.

    ``stage`` builds the new and changed pipelines without touching the slots (any
    failure closes what it built and raises); ``commit`` puts them in the slots;
    ``undo`` puts the previous pipelines back; ``close_replaced`` closes the previous
    pipelines once the reload has succeeded.
    """

    def __init__(self, slots: dict[str, Slot], store: Any) -> None:
        self.slots = slots
        self.store = store
        self.fresh: dict[str, Pipeline] = {}
        self.settings_only: dict[str, PipelineBase] = {}
        self.previous: dict[str, Pipeline | None] = {}
        self.removed: dict[str, Slot] = {}

    def stage(self, new: SettingsBase) -> list[str]:
        """Build what ``new`` needs; returns the names of the rebuilt existing pipelines."""
        enabled = {p.name: p for p in new.pipelines if p.enabled}
        rebuilt: list[str] = []
        try:
            for name, p in enabled.items():
                slot = self.slots.get(name)
                if slot is None or needs_rebuild(slot.pipeline.settings, p):
                    self.fresh[name] = build_pipeline(p, self.store)
                    if slot is not None:
                        rebuilt.append(name)
                else:
                    self.settings_only[name] = p
        except BaseException:
            self._close(self.fresh.values())
            self.fresh.clear()
            raise
        self.removed = {n: self.slots[n] for n in sorted(set(self.slots) - set(enabled))}
        return rebuilt

    def commit(self) -> None:
        for name in self.removed:
            del self.slots[name]
        for name, fresh in self.fresh.items():
            slot = self.slots.get(name)
            if slot is None:
                self.previous[name] = None
                self.slots[name] = Slot(fresh)
                continue
            with slot.lock:
                self.previous[name] = slot.pipeline
                slot.pipeline = fresh
        for name, p in self.settings_only.items():
            slot = self.slots[name]
            self.previous[name] = slot.pipeline
            self.settings_only[name], slot.pipeline.settings = slot.pipeline.settings, p

    def undo(self) -> None:
        for name, p in self.settings_only.items():
            if name in self.previous:
                self.slots[name].pipeline.settings = p
        for name in self.fresh:
            if name not in self.previous:
                continue
            before = self.previous[name]
            if before is None:
                self.slots.pop(name, None)
            else:
                slot = self.slots[name]
                with slot.lock:
                    slot.pipeline = before
        self.slots.update(self.removed)
        self._close(self.fresh.values())

    def close_replaced(self) -> None:
        """After success: close the pipelines that were rebuilt or removed."""
        replaced = [self.previous[n] for n in self.fresh if self.previous.get(n) is not None]
        self._close(p for p in replaced if p is not None)
        for gone in self.removed.values():
            with gone.lock:
                self._close([gone.pipeline])

    @staticmethod
    def _close(pipelines: Iterable[Pipeline]) -> None:
        for p in pipelines:
            try:
                p.close()
            except Exception as exc:
                log.warning("pipeline_close_failed", error=mask(f"{type(exc).__name__}: {exc}"))


def run(config_path: str | os.PathLike[str] | None = None) -> int:
    """``stocksync run``: returns the exit code (0 clean stop, 1 grace exceeded)."""
    daemon = Daemon(config_path)
    daemon.install_signals()
    if not daemon.start():
        return 0  # stopped while waiting for the state database: nothing ran
    code = daemon.serve()
    if code != 0:
        # worker threads are still inside a job: do not wait for them at interpreter exit
        _flush()
        os._exit(code)
    return code


def _flush(*streams: Any) -> None:
    for stream in streams or (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
