"""Who may run a pipeline job: one daemon per SQLite file, one replica per job on a server DB.

- PostgreSQL: each (pipeline, job) runs under ``pg_try_advisory_lock``, released
  (``pg_advisory_unlock``) when the job ends. Replicas sharing one database therefore
  never run the same job at once; the loser skips its tick.
- MySQL/MariaDB: the same with ``GET_LOCK(name, 0)`` / ``RELEASE_LOCK``.
- SQLite: a lock file next to the database, ``flock``-ed for the daemon's whole
  life. A second daemon on the same file refuses to start; inside one daemon the
  scheduler's ``max_instances=1`` already serialises each job.

Every session lock of a ``Locks`` lives on one dedicated connection of its own (outside
the state pool, autocommit, used under a thread lock for one quick statement at a
time), so 40 running jobs hold 40 locks on one connection, not 40 pooled ones (issue 17).
Session-level locks die with their connection, so a replica that crashes or loses
its network never leaves a job locked. When that connection dies under a live process
(a server restart, an administrator's ``pg_terminate_backend``), its locks are gone:
the next take or release notices, opens a new connection and takes back the locks of
the jobs still running. A job whose lock another replica took in between is logged
(``lock_lost``, error) — it is not stopped, but no job starts without its lock, and a
take that cannot reach the server raises ``LockUnavailable`` instead of running unlocked.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from sync.errors import StockSyncError, TransientError
from sync.settings import mask
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


class LockUnavailable(TransientError):
    """The lock connection cannot reach the state database: the job must not start."""


_PG = ("SELECT pg_try_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)", "pg_backend_pid()")
_MYSQL = ("SELECT GET_LOCK(:k, 0)", "SELECT RELEASE_LOCK(:k)", "CONNECTION_ID()")


class SessionLocks:
    """The session locks of one process on one dedicated autocommit connection.

    Not re-entrant by design: a key this object already holds is refused (both
    servers would grant it again on the same session).
    """

    def __init__(self, engine: Engine) -> None:
        pg = engine.dialect.name == "postgresql"
        self._take, self._give, self._whoami = _PG if pg else _MYSQL
        # outside the state pool: never waits for, nor is starved by, the jobs' connections
        self._engine = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self._conn: Connection | None = None
        self._use = threading.Lock()
        self._held: set[object] = set()
        #: connections opened so far (1 + reconnects after a lost connection)
        self.connections = 0
        #: the server's id of the lock session (PostgreSQL backend pid, MySQL connection id)
        self.session_id: int | None = None

    def take(self, key: object) -> bool:
        """True when this process now holds ``key``; False when anyone (this process too)
        holds it. Raises ``LockUnavailable`` when the database cannot be reached."""
        with self._use:
            if key in self._held:
                return False
            got = bool(self._run(self._take, key))
            if got:
                self._held.add(key)
            return got

    def give(self, key: object) -> None:
        """Release ``key`` (a lost connection has released it already)."""
        with self._use:
            self._held.discard(key)
            try:
                self._run(self._give, key)
            except LockUnavailable as exc:  # the session is gone, and its locks with it
                log.warning("lock_release_failed", error=str(exc))

    def close(self) -> None:
        with self._use:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._held.clear()
            self._engine.dispose()

    def _run(self, sql: str, key: object) -> object:
        for attempt in (1, 2):
            try:
                return self._connection().execute(text(sql), {"k": key}).scalar()
            except DBAPIError as exc:
                # a dead session took every lock of this process with it
                self._drop()
                if attempt == 2 or not exc.connection_invalidated:
                    raise LockUnavailable(f"lock connection: {mask(str(exc.orig))}") from exc
                log.warning("lock_connection_lost", held=len(self._held), error=mask(str(exc.orig)))
        raise AssertionError("unreachable")

    def _connection(self) -> Connection:
        if self._conn is None:
            try:
                conn = self._engine.connect()
            except DBAPIError as exc:
                raise LockUnavailable(f"lock connection: {mask(str(exc.orig))}") from exc
            self._conn = conn
            self.connections += 1
            self.session_id = int(conn.execute(text(f"SELECT {self._whoami}")).scalar_one())
            log.info("lock_connection_opened", session=self.session_id, held=len(self._held))
            if self._held:
                self._retake(conn)
        return self._conn

    def _retake(self, conn: Connection) -> None:
        """Take back the locks of the jobs still running after the connection was lost."""
        for key in sorted(self._held, key=str):
            if not conn.execute(text(self._take), {"k": key}).scalar():
                self._held.discard(key)
                log.error(
                    "lock_lost",
                    key=str(key),
                    note="another runner took this job's lock while the lock connection "
                    "was down; the running job is not stopped",
                )

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()


class Locks:
    """Job locks for one state database (see the module docstring for each backend)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.backend = engine.dialect.name
        self._file: IO[str] | None = None
        self._local: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self._session: SessionLocks | None = None

    @property
    def session(self) -> SessionLocks:
        """The dedicated lock connection (server backends), opened on first use."""
        with self._guard:
            if self._session is None:
                self._session = SessionLocks(self.engine)
            return self._session

    def close(self) -> None:
        """Release every session lock (closes the lock connection) and the daemon lock."""
        if self._session is not None:
            self._session.close()
            self._session = None
        self.release_daemon()

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
        Raises ``LockUnavailable`` when a server backend cannot be reached.
        """
        job = LOCK_DOMAIN.get(job, job)
        if self.backend == "postgresql":
            key: object = lock_key(pipeline, job)
        elif self.backend in ("mysql", "mariadb"):
            key = lock_name(pipeline, job)
        else:
            with self._guard:
                local = self._local.setdefault((pipeline, job), threading.Lock())
            got = local.acquire(blocking=False)
            try:
                yield got
            finally:
                if got:
                    local.release()
            return
        session = self.session
        got = session.take(key)
        try:
            yield got
        finally:
            if got:
                session.give(key)


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
        locks.close()
