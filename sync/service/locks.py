"""Who may run a pipeline job: one daemon per SQLite file, one replica per job on a server DB.

- PostgreSQL: each (pipeline, job) runs under ``pg_try_advisory_lock`` taken on a
  dedicated connection and released when the job ends. Replicas sharing one
  database therefore never run the same job at once; the loser skips its tick.
- MySQL/MariaDB: the same with ``GET_LOCK(name, 0)`` / ``RELEASE_LOCK``.
- SQLite: a lock file next to the database, ``flock``-ed for the daemon's whole
  life. A second daemon on the same file refuses to start; inside one daemon the
  scheduler's ``max_instances=1`` already serialises each job.

Session-level locks die with their connection, so a replica that crashes or
loses its network never leaves a job locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import text
from sqlalchemy.engine import Engine

from sync.errors import StockSyncError
from sync.state.engine import sqlite_file

log = structlog.get_logger("stocksync.locks")


#: jobs that must never overlap share a lock name
LOCK_DOMAIN = {"cycle": "push", "reconcile": "push"}


class DaemonAlreadyRunning(StockSyncError):
    """Another daemon holds the SQLite state file."""


def lock_key(pipeline: str, job: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` (same on every replica)."""
    digest = hashlib.blake2b(f"stocksync:{pipeline}:{job}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_name(pipeline: str, job: str) -> str:
    """A MySQL lock name (at most 64 characters, unique per database server)."""
    digest = hashlib.blake2b(f"{pipeline}:{job}".encode(), digest_size=16).hexdigest()
    return f"stocksync:{digest}"


def sqlite_lock_path(engine: Engine) -> Path | None:
    """``<database>.lock`` next to the real database file; None for an in-memory one.

    The path is resolved first (symlinks, ``..``, a relative path against the working
    directory), so every name of the same file gives the same lock file (issue 16).
    A hard link in another folder is a different name of the same inode and is not
    covered: locking the database file itself would fight SQLite's own POSIX locks
    (closing any descriptor of the file drops them; sqlite.org/howtocorrupt.html §2.2).
    """
    real = sqlite_file(engine.url)  # a ``file:`` URI names its file after the prefix
    return None if real is None else real.with_name(real.name + ".lock")


class Locks:
    """Job locks for one state database (see the module docstring for each backend)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self._file: IO[str] | None = None
        self._local: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    # -- daemon-wide ---------------------------------------------------------------
    def acquire_daemon(self) -> None:
        """With SQLite, take the lock file for the daemon's lifetime or refuse to start."""
        if self.backend != "sqlite":
            return
        path = sqlite_lock_path(self.engine)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115  (held until release)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DaemonAlreadyRunning(
                f"another stocksync daemon is already running on {path.with_suffix('')} "
                f"(lock file {path} is held by pid {holder})",
                hint="stop the other daemon, or use PostgreSQL for several replicas",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        log.info("daemon_lock_acquired", lock_file=str(path))

    def release_daemon(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    # -- per job -------------------------------------------------------------------
    @contextmanager
    def job(self, pipeline: str, job: str) -> Iterator[bool]:
        """Hold the (pipeline, job) lock for the ``with`` body; yields False if it is taken.

        Jobs that push to the CRM (cycle, reconcile) share one lock: two pushers on
        one pipeline, even on different replicas, could both create a CRM record.
        """
        job = LOCK_DOMAIN.get(job, job)
        if self.backend == "postgresql":
            with self._server_lock(
                "SELECT pg_try_advisory_lock(:k)",
                "SELECT pg_advisory_unlock(:k)",
                {"k": lock_key(pipeline, job)},
            ) as got:
                yield got
        elif self.backend in ("mysql", "mariadb"):
            with self._server_lock(
                "SELECT GET_LOCK(:k, 0)", "SELECT RELEASE_LOCK(:k)", {"k": lock_name(pipeline, job)}
            ) as got:
                yield got
        else:
            with self._guard:
                local = self._local.setdefault((pipeline, job), threading.Lock())
            got = local.acquire(blocking=False)
            try:
                yield got
            finally:
                if got:
                    local.release()

    @contextmanager
    def _server_lock(self, take: str, give: str, params: dict[str, object]) -> Iterator[bool]:
        # a dedicated connection: the lock belongs to this session, not to the job's work
        conn = self.engine.connect()
        try:
            got = bool(conn.execute(text(take), params).scalar())
            conn.commit()
        except Exception:
            conn.invalidate()
            conn.close()
            raise
        try:
            yield got
        finally:
            try:
                if got:
                    conn.execute(text(give), params)
                    conn.commit()
            except Exception as exc:  # the session ends below, which frees the lock anyway
                log.warning("lock_release_failed", error=str(exc))
                conn.invalidate()
            finally:
                conn.close()


class JobBusy(StockSyncError):
    """A one-off command wants a job that a daemon (or another replica) is running."""


@contextmanager
def exclusive(
    engine: Engine,
    pipeline: str,
    job: str,
    *,
    daemon_hint: str = "let the daemon sync, or stop it before running this command",
) -> Iterator[None]:
    """Run a one-off command's job only where no daemon or replica can run it at once.

    Two pushers on one pipeline could both create the same CRM record, so
    `stocksync once` and `reconcile --apply` take what the daemon takes: the
    SQLite lock file, or the (pipeline, job) lock on a database server.
    """
    locks = Locks(engine)
    try:
        locks.acquire_daemon()
    except DaemonAlreadyRunning as exc:
        raise JobBusy(
            f"a stocksync daemon is running on this state database ({exc})",
            hint=daemon_hint,
        ) from None
    try:
        with locks.job(pipeline, job) as got:
            if not got:
                raise JobBusy(
                    f"pipeline {pipeline!r}: job {job!r} is running in another process",
                    hint="try again when it has finished",
                )
            yield
    finally:
        locks.release_daemon()
