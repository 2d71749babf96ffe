"""Which replica runs which pipeline: leases in the state database (issue 17).

Every daemon on a server backend is a *replica*. Each ``heartbeat_s`` it runs one
short READ COMMITTED transaction on a connection of its own:

1. read the database server's clock (one clock for every replica: no skew);
2. write its own heartbeat row in ``replicas``;
3. list the live replicas: those whose heartbeat is younger than the lease lifetime
   (``lease_timeout_s - heartbeat_s``), so a dead replica stops counting when its leases
   expire — the replica count needs no configuration. Its even share follows from its
   rank among them: ``pipelines // live``, one more for the first ``pipelines % live``;
4. renew its leases (their rows locked first) and learn which it lost (another replica
   took a lease it failed to renew in time: ``lease_lost``);
5. give back, above its share, leases of pipelines that are not running at the moment —
   as many as the other live replicas *want* (each writes how many leases it is short of
   its share) beyond the leases already free, so a replica that joins gets work and a
   surplus nobody wants (replicas whose configs list fewer pipelines) stays put;
6. below its share, claim free or expired leases with ``SELECT … FOR UPDATE SKIP LOCKED``:
   replicas claiming at once take different rows and never wait for each other. Besides
   its share it takes *orphans*, leases free for over 1.5 heartbeats that nobody under
   their share took;
7. write how many leases it is short of its share (``replicas.wants``).

Every wait of the heartbeat's sessions is bounded by about a heartbeat (``bound_session``):
a heartbeat stalled inside its transaction cannot keep lease rows locked for long.

A replica that dies (SIGKILL, lost network) stops renewing; its leases expire at most
``lease_timeout_s - heartbeat_s`` after its last heartbeat, and the others claim them
at their next heartbeat: within ``lease_timeout_s`` of the death. A replica that stops
cleanly leaves the live replicas and gives back its idle pipelines at once (``drain``),
keeps renewing the leases of jobs still finishing, and gives those back when they end.

Locally a lease counts only until ``heartbeat start + lifetime`` (the monotonic clock,
measured before the transaction began): a replica cut off from the database stops
starting jobs before the others may take them over. The advisory lock of each job
(``sync.service.locks``) stays the safety net against two runners: a job that outlives
its lease keeps its lock, and the new owner's job skips its tick until it is done.

SQLite has one daemon per file (the lock file) and no leases: ``AllPipelines``.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import Connection, and_, delete, event, func, insert, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from sync.settings import mask
from sync.state import schema as s

log = structlog.get_logger("stocksync.leases")

#: the database server's clock in epoch microseconds, per dialect
_NOW_US = {
    "postgresql": "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)",
    "mysql": "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))",
    "mariadb": "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))",
}
#: replica rows older than this many lease lifetimes are deleted by any heartbeat
_FORGET_LIFETIMES = 20


def replica_id() -> str:
    """``host:pid:random`` (at most 64 characters): unique per process, readable in logs."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Ownership(Protocol):
    """What the scheduler asks before starting a job of a pipeline."""

    def holds(self, pipeline: str) -> bool: ...


class AllPipelines:
    """SQLite: the daemon lock file already makes this process the only runner."""

    def holds(self, pipeline: str) -> bool:
        return True


@dataclass
class Beat:
    """What one heartbeat changed (names of pipelines)."""

    live_replicas: int
    share: int
    held: frozenset[str]
    claimed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)


class Leases:
    """The leases of one replica on a server state database.

    ``heartbeat()`` runs from the ``Heartbeat`` thread (and once from the daemon at start and
    at stop); ``holds`` from any thread. One heartbeat runs at a time, and none after
    ``release_all``. ``holds`` raises nothing; ``heartbeat`` raises ``SQLAlchemyError`` when
    the database cannot be reached or a statement times out (the caller logs it; the leases
    lapse locally).
    """

    def __init__(
        self,
        engine: Engine,
        replica: str,
        *,
        heartbeat_s: float,
        lease_timeout_s: float,
        busy: Callable[[], Iterable[str]] = frozenset,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease_timeout_s < 3 * heartbeat_s:
            raise ValueError("lease_timeout_s must be at least 3 heartbeats")
        self.engine = engine
        self.replica = replica
        self.heartbeat_s = heartbeat_s
        self.lifetime_s = lease_timeout_s - heartbeat_s
        self._busy = busy
        self._clock = clock
        self._now_sql = text(_NOW_US[engine.dialect.name])
        self._guard = threading.Lock()  # the fields below
        self._beating = threading.Lock()  # one heartbeat (or release) at a time
        self._pipelines: frozenset[str] = frozenset()
        self._held: frozenset[str] = frozenset()
        self._valid_until = -math.inf
        self._started_us: int | None = None
        self._draining = False
        self._closed = False
        bound_session(engine, heartbeat_s)

    # -- what the scheduler asks ------------------------------------------------------
    def holds(self, pipeline: str) -> bool:
        """True while this replica's lease on ``pipeline`` is renewed and not lapsed."""
        with self._guard:
            return pipeline in self._held and self._clock() < self._valid_until

    @property
    def held(self) -> frozenset[str]:
        with self._guard:
            return self._held if self._clock() < self._valid_until else frozenset()

    def set_pipelines(self, names: Iterable[str]) -> None:
        """The enabled pipelines of this replica's config (on start and on reload)."""
        with self._guard:
            self._pipelines = frozenset(names)

    def drain(self) -> None:
        """Stopping: from the next heartbeat on, leave the live replicas (the others stop
        counting this one and take its share), give back every lease of a pipeline with no
        job running, and keep renewing the others until their jobs end."""
        with self._guard:
            self._draining = True

    # -- the heartbeat ----------------------------------------------------------------
    def heartbeat(self) -> Beat:
        """One heartbeat transaction (see the module docstring); returns what changed.

        After ``release_all`` it does nothing and returns an empty ``Beat``.
        """
        with self._beating:
            if self._closed:
                return Beat(live_replicas=0, share=0, held=frozenset())
            started = self._clock()
            with self._guard:
                pipelines, before, draining = self._pipelines, self._held, self._draining
            busy = set(self._busy())
            if draining:
                pipelines = pipelines & busy
            with self._connect() as conn, conn.begin():
                beat = self._beat(conn, pipelines, before, busy, draining)
            with self._guard:
                self._held = beat.held
                self._valid_until = started + self.lifetime_s
        for name in beat.lost:
            log.error(
                "lease_lost",
                pipeline=name,
                replica=self.replica,
                note="another replica took over this pipeline while our heartbeat was late",
            )
        if beat.claimed or beat.released:
            log.info(
                "leases_changed",
                replica=self.replica,
                claimed=beat.claimed,
                released=beat.released,
                held=len(beat.held),
                share=beat.share,
                live_replicas=beat.live_replicas,
            )
        return beat

    def release_all(self) -> None:
        """Give every lease back and leave the replica table (a clean stop). No heartbeat
        runs after it: one in flight is waited for, so it cannot claim the leases back."""
        with self._beating:
            self._closed = True
            with self._guard:
                self._held = frozenset()
                self._valid_until = -math.inf
            with self._connect() as conn, conn.begin():
                conn.execute(
                    update(s.leases)
                    .where(s.leases.c.owner == self.replica)
                    .values(owner=None, expires_at=_at(0))
                )
                conn.execute(delete(s.replicas).where(s.replicas.c.replica == self.replica))
        log.info("leases_released", replica=self.replica)

    def _connect(self) -> Connection:
        conn = self.engine.connect()
        return conn.execution_options(isolation_level="READ COMMITTED")

    def _beat(
        self,
        conn: Connection,
        pipelines: frozenset[str],
        before: frozenset[str],
        busy: set[str],
        draining: bool,
    ) -> Beat:
        now_us = int(conn.execute(self._now_sql).scalar_one())
        now, expires = _at(now_us), _at(now_us + int(self.lifetime_s * 1_000_000))
        if draining:  # no longer one of the live replicas: the others take its share now
            conn.execute(delete(s.replicas).where(s.replicas.c.replica == self.replica))
        else:
            self._register(conn, now_us)
        self._create_rows(conn, pipelines, now)
        live_since = _at(now_us - int(self.lifetime_s * 1_000_000))
        live_rows = conn.execute(
            select(s.replicas.c.replica, s.replicas.c.wants).where(
                s.replicas.c.heartbeat_at > live_since
            )
        ).all()
        live_ids = sorted(r.replica for r in live_rows)
        live = max(len(live_ids), 1)
        rank = live_ids.index(self.replica) if self.replica in live_ids else 0
        share = len(pipelines) // live + (1 if rank < len(pipelines) % live else 0)
        if draining:
            share = 0

        # locked: a replica claiming one of these (expired) at this moment waits for us or
        # has taken it already, so what we renew below is ours for the whole lifetime
        mine = set(
            conn.execute(
                select(s.leases.c.pipeline)
                .where(s.leases.c.owner == self.replica)
                .with_for_update()
            )
            .scalars()
            .all()
        )
        lost = sorted(before - mine)
        released = sorted(mine - pipelines)  # no longer in this replica's config
        keep = mine & pipelines
        if len(keep) > share:
            # give back only what other live replicas want and free leases do not cover:
            # a surplus nobody wants (replicas whose configs list fewer pipelines) is kept
            wanted = sum(r.wants for r in live_rows if r.replica != self.replica)
            room = len(keep) - share if draining else wanted - self._free(conn, pipelines, now)
            idle = sorted(keep - busy, reverse=True)
            extra = idle[: max(0, min(len(keep) - share, room))]
            released += extra
            keep -= set(extra)
        if released:
            conn.execute(
                update(s.leases)
                .where(and_(s.leases.c.pipeline.in_(released), s.leases.c.owner == self.replica))
                .values(owner=None, expires_at=_at(0) if draining else now)
            )
        if keep:
            conn.execute(
                update(s.leases)
                .where(
                    and_(s.leases.c.pipeline.in_(sorted(keep)), s.leases.c.owner == self.replica)
                )
                .values(expires_at=expires)
            )
        claimed = (
            []
            if draining
            else self._claim(conn, sorted(pipelines - keep), share - len(keep), now_us)
        )
        if claimed:
            conn.execute(
                update(s.leases)
                .where(s.leases.c.pipeline.in_(claimed))
                .values(
                    owner=self.replica,
                    expires_at=expires,
                    taken_at=now,
                    takes=s.leases.c.takes + 1,
                )
            )
        held = frozenset(keep | set(claimed))
        if not draining:  # what this replica is short of: the others give theirs back
            conn.execute(
                update(s.replicas)
                .where(s.replicas.c.replica == self.replica)
                .values(wants=max(0, share - len(held)))
            )
        return Beat(
            live_replicas=live,
            share=share,
            held=held,
            claimed=[c for c in claimed if c not in before],
            released=released,
            lost=lost,
        )

    @staticmethod
    def _free(conn: Connection, pipelines: frozenset[str], now: datetime) -> int:
        """How many leases of ``pipelines`` are unowned or expired."""
        if not pipelines:
            return 0
        return int(
            conn.execute(
                select(func.count())
                .select_from(s.leases)
                .where(
                    and_(
                        s.leases.c.pipeline.in_(sorted(pipelines)),
                        or_(s.leases.c.owner.is_(None), s.leases.c.expires_at < now),
                    )
                )
            ).scalar_one()
        )

    def _claim(self, conn: Connection, candidates: list[str], need: int, now_us: int) -> list[str]:
        """Free or expired leases this replica may take: up to ``need`` (its share), plus
        every *orphan* — a lease free for over 1.5 heartbeats, which no replica under its
        share wanted (one that counts a dead replica as live until its heartbeat ages out,
        or whose config lists fewer pipelines). Rows locked by another replica's heartbeat
        are skipped, never waited for."""
        if not candidates:
            return []
        free = or_(s.leases.c.owner.is_(None), s.leases.c.expires_at < _at(now_us))
        claimed: list[str] = []
        if need > 0:
            claimed = list(
                conn.execute(
                    select(s.leases.c.pipeline)
                    .where(and_(s.leases.c.pipeline.in_(candidates), free))
                    .order_by(s.leases.c.pipeline)
                    .limit(need)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
        orphaned_before = _at(now_us - int(1.5 * self.heartbeat_s * 1_000_000))
        rest = sorted(set(candidates) - set(claimed))
        if rest:
            claimed += conn.execute(
                select(s.leases.c.pipeline)
                .where(
                    and_(
                        s.leases.c.pipeline.in_(rest),
                        free,
                        s.leases.c.expires_at < orphaned_before,
                    )
                )
                .order_by(s.leases.c.pipeline)
                .with_for_update(skip_locked=True)
            ).scalars()
        return claimed

    def _register(self, conn: Connection, now_us: int) -> None:
        now = _at(now_us)
        if self._started_us is None:
            self._started_us = now_us
        changed = conn.execute(
            update(s.replicas).where(s.replicas.c.replica == self.replica).values(heartbeat_at=now)
        ).rowcount
        if not changed:
            conn.execute(
                insert(s.replicas).values(
                    replica=self.replica,
                    started_at=_at(self._started_us),
                    heartbeat_at=now,
                    wants=0,
                )
            )
        # forget replicas long dead: rows another heartbeat has locked are left for later
        # (a plain DELETE would lock every row it scans and deadlock two heartbeats on InnoDB)
        forget = now_us - int(_FORGET_LIFETIMES * self.lifetime_s * 1_000_000)
        gone = list(
            conn.execute(
                select(s.replicas.c.replica)
                .where(s.replicas.c.heartbeat_at < _at(forget))
                .with_for_update(skip_locked=True)
            ).scalars()
        )
        if gone:
            conn.execute(delete(s.replicas).where(s.replicas.c.replica.in_(gone)))

    def _create_rows(self, conn: Connection, names: frozenset[str], now: datetime) -> None:
        """Lease rows for pipelines no replica has seen yet (a row per pipeline, free since
        ``now``). Checked on every heartbeat: a heartbeat that failed after creating them
        rolled them back."""
        if not names:
            return
        existing = set(
            conn.execute(select(s.leases.c.pipeline).where(s.leases.c.pipeline.in_(sorted(names))))
            .scalars()
            .all()
        )
        for name in sorted(names - existing):
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(s.leases).values(pipeline=name, owner=None, expires_at=now, takes=0)
                    )
            except IntegrityError:  # another replica created it at the same moment
                pass


def bound_session(engine: Engine, heartbeat_s: float) -> None:
    """Bound every wait of the heartbeat's sessions by about a heartbeat.

    A heartbeat stalled inside its transaction (a paused process, a host that lost its
    network) would otherwise keep its lease rows locked until the server drops the session
    (TCP keepalive: hours), and every other heartbeat would skip or wait for them. The
    server ends such a transaction (PostgreSQL ``idle_in_transaction_session_timeout``,
    MariaDB ``idle_transaction_timeout``), and a heartbeat waits at most that long for a
    row lock (``lock_timeout`` / ``innodb_lock_wait_timeout``) or a statement.
    """
    wait_s = max(1.0, heartbeat_s)
    if engine.dialect.name == "postgresql":
        ms = int(wait_s * 1000)
        settings = [
            f"SET idle_in_transaction_session_timeout = {ms}",
            f"SET lock_timeout = {ms}",
            f"SET statement_timeout = {2 * ms}",
        ]
    else:
        whole = max(1, math.ceil(wait_s))
        settings = [
            f"SET SESSION idle_transaction_timeout = {whole}",  # MariaDB ≥ 10.3
            f"SET SESSION innodb_lock_wait_timeout = {whole}",
            f"SET SESSION max_statement_time = {2 * wait_s:g}",  # MariaDB
        ]

    @event.listens_for(engine, "connect")
    def _bound(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for sql in settings:
                try:
                    cursor.execute(sql)
                except Exception as exc:  # a MySQL without the MariaDB variable
                    log.debug("lease_session_setting_unsupported", sql=sql, error=str(exc))
        finally:
            cursor.close()
        if engine.dialect.name == "postgresql":
            dbapi_connection.commit()  # psycopg opened a transaction for the SETs


def _at(epoch_us: int) -> datetime:
    return s.from_micros(epoch_us)


class Heartbeat:
    """The thread that renews a replica's leases every ``heartbeat_s``.

    ``on_beat(beat)`` runs after each heartbeat that went through (the daemon starts the
    cycles of claimed pipelines at once instead of waiting for the next interval tick,
    and updates its gauges).
    """

    def __init__(
        self,
        leases: Leases,
        on_beat: Callable[[Beat], None] = lambda _beat: None,
    ) -> None:
        self.leases = leases
        self.on_beat = on_beat
        #: set by ``halt``: the thread runs until then, through the daemon's shutdown grace
        #: (the leases of jobs still running are renewed while they finish)
        self.halted = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stocksync-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def beat_once(self) -> Beat | None:
        """One heartbeat; None (logged) when it failed (database unreachable, a timeout)."""
        try:
            beat = self.leases.heartbeat()
        except SQLAlchemyError as exc:
            log.warning(
                "lease_heartbeat_failed",
                replica=self.leases.replica,
                error=mask(f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"),
                note="leases lapse locally if this lasts; no new job starts without one",
            )
            self._failing = True
            return None
        if self._failing:
            log.info("lease_heartbeat_recovered", replica=self.leases.replica)
            self._failing = False
        try:
            self.on_beat(beat)
        except Exception as exc:  # the beat itself went through: its leases count
            log.warning("lease_beat_hook_failed", error=mask(f"{type(exc).__name__}: {exc}"))
        return beat

    def _loop(self) -> None:
        while not self.halted.wait(self.leases.heartbeat_s):
            try:
                self.beat_once()
            except Exception as exc:  # never let the heartbeat thread die silently
                log.error("lease_heartbeat_error", error=mask(f"{type(exc).__name__}: {exc}"))

    def halt(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and wait for a beat in flight (bounded by the session timeouts)."""
        self.halted.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
