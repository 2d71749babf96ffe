"""The long-running daemon behind ``stocksync run``.

Lifecycle: load the config (refuse to start on any problem), configure logging,
take the daemon lock (SQLite), upgrade the state DB, build the pipelines, start
the health server and the scheduler (the first cycle runs at once), then wait.

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
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from sync import config as cfg
from sync.config import PipelineBase, SettingsBase
from sync.errors import ConfigError, StockSyncError
from sync.health import HealthServer, Metrics, build_app
from sync.locks import Locks
from sync.logging import configure
from sync.runtime import build_pipeline, open_store
from sync.scheduler import JobRunner, JobScheduler, Slot

log = structlog.get_logger("stocksync.daemon")

POLL_S = 1.0
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
        self._digest: str | None = None
        self._signal: str | None = None

    # -- start -----------------------------------------------------------------------
    def start(self) -> None:
        self._digest = file_digest(self.path)
        settings = cfg.load(self.path)
        self.settings = settings
        configure(settings.log.level, settings.log.format)
        self.store = open_store(settings, upgrade=False)
        self.locks = Locks(self.store.engine)
        self.locks.acquire_daemon()
        try:
            self.store.upgrade()
            self.metrics = Metrics(lambda: self.store, lambda: self.settings.pipelines)
            self.runner = JobRunner(self.slots, self.locks, self.stop, self.metrics)
            self.jobs = JobScheduler(self.runner)
            for p in settings.pipelines:
                if p.enabled:
                    self.slots[p.name] = Slot(build_pipeline(p, self.store))
            self._start_health(settings)
            changes = self.jobs.apply(settings.pipelines)
            self.jobs.start()
        except BaseException:
            self._close()
            raise
        log.info(
            "daemon_started",
            pid=os.getpid(),
            config=str(self.path),
            pipelines=sorted(self.slots),
            jobs=changes["added"],
        )

    def _start_health(self, settings: SettingsBase) -> None:
        if settings.metrics is None:
            return
        app = build_app(self.metrics, lambda: self.store, lambda: self.settings.pipelines)
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
        """Apply the config file if it is valid; otherwise log every problem and keep going."""
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
        old = self.settings
        if new.log != old.log:
            configure(new.log.level, new.log.format)
        restart_needed = [k for k in ("state", "metrics") if getattr(new, k) != getattr(old, k)]
        if restart_needed:
            log.warning(
                "config_restart_needed", keys=restart_needed, note="kept the running values"
            )
            new = new.model_copy(update={"state": old.state, "metrics": old.metrics})
        rebuilt = self._apply_pipelines(new)
        self.settings = new
        changes = self.jobs.apply(new.pipelines)
        log.info("config_applied", reason=reason, rebuilt=rebuilt, **changes)
        return True

    def _apply_pipelines(self, new: SettingsBase) -> list[str]:
        rebuilt: list[str] = []
        enabled = {p.name: p for p in new.pipelines if p.enabled}
        for name in sorted(set(self.slots) - set(enabled)):
            gone = self.slots.pop(name)
            with gone.lock:
                gone.pipeline.close()
        for name, p in enabled.items():
            slot = self.slots.get(name)
            try:
                if slot is None:
                    self.slots[name] = Slot(build_pipeline(p, self.store))
                elif needs_rebuild(slot.pipeline.settings, p):
                    fresh = build_pipeline(p, self.store)
                    with slot.lock:
                        slot.pipeline.close()
                        slot.pipeline = fresh
                    rebuilt.append(name)
                else:
                    slot.pipeline.settings = p
            except Exception as exc:
                log.error("pipeline_build_failed", pipeline=name, error=f"{exc}")
        return rebuilt

    # -- stop ------------------------------------------------------------------------
    def shutdown(self) -> int:
        grace = self.settings.shutdown_grace_s
        log.info("daemon_stopping", signal=self._signal, grace_s=grace)
        self.stop.set()
        self.jobs.shutdown()
        idle = self.runner.wait_idle(grace)
        if not idle:
            log.error("shutdown_grace_exceeded", grace_s=grace, note="jobs still running")
            return 1
        self._close()
        log.info("daemon_stopped")
        return 0

    def _close(self) -> None:
        if self.health is not None:
            self.health.stop()
            self.health = None
        for slot in self.slots.values():
            slot.pipeline.close()
        self.slots.clear()
        self.locks.release_daemon()
        self.store.close()


def run(config_path: str | os.PathLike[str] | None = None) -> int:
    """``stocksync run``: returns the exit code (0 clean stop, 1 grace exceeded)."""
    daemon = Daemon(config_path)
    daemon.install_signals()
    daemon.start()
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
