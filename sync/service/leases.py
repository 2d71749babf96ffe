"""Which replica runs which pipeline: leases in the state database (issue 17).

Every daemon on a server backend is a *replica*. Each ``heartbeat_s`` it runs one
short READ COMMITTED transaction on a connection of its own:

1. read the database server's clock (one clock for every replica: no skew);
2. write its own heartbeat row in ``replicas``;
3. list the live replicas: those whose heartbeat is younger than the lease lifetime
   (``lease_timeout_s - heartbeat_s``), so a dead replica stops counting when its leases
   expire — the replica count needs no configuration. Its even share follows from its
   rank among them: ``pipelines // live``, one more for the first ``pipelines % live``;
4. renew its leases and learn which it lost (another replica took a lease it failed
   to renew in time: ``lease_lost``);
5. give back, above its share, leases of pipelines that are not running at the
   moment, so a replica that joins gets work;
6. below its share, claim free or expired leases with ``SELECT … FOR UPDATE SKIP LOCKED``:
   replicas claiming at once take different rows and never wait for each other.

A replica that dies (SIGKILL, lost network) stops renewing; its leases expire at most
``lease_timeout_s - heartbeat_s`` after its last heartbeat, and the others claim them
at their next heartbeat: within ``lease_timeout_s`` of the death. A replica that stops
cleanly gives its leases back at once.

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
from typing import Protocol

import structlog
from sqlalchemy import Connection, and_, delete, insert, or_, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

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

    ``heartbeat()`` is called by one thread (``Heartbeat``); ``holds`` from any thread.
    Raises nothing from ``holds``; ``heartbeat`` raises ``DBAPIError`` when the
    database cannot be reached (the caller logs it; the leases lapse locally).
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
        self._guard = threading.Lock()
        self._pipelines: frozenset[str] = frozenset()
        self._known: frozenset[str] = frozenset()  # pipelines whose lease rows exist
        self._held: frozenset[str] = frozenset()
        self._valid_until = -math.inf
        self._started_us: int | None = None

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

    # -- the heartbeat ----------------------------------------------------------------
    def heartbeat(self) -> Beat:
        """One heartbeat transaction (see the module docstring); returns what changed."""
        started = self._clock()
        with self._guard:
            pipelines = self._pipelines
            before = self._held
        busy = set(self._busy())
        with self._connect() as conn, conn.begin():
            beat = self._beat(conn, pipelines, before, busy)
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
        """Give every lease back and leave the replica table (a clean stop)."""
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
        self, conn: Connection, pipelines: frozenset[str], before: frozenset[str], busy: set[str]
    ) -> Beat:
        now_us = int(conn.execute(self._now_sql).scalar_one())
        now, expires = _at(now_us), _at(now_us + int(self.lifetime_s * 1_000_000))
        self._register(conn, now_us)
        if pipelines - self._known:
            self._create_rows(conn, pipelines - self._known, now)
            self._known = self._known | pipelines
        live_since = _at(now_us - int(self.lifetime_s * 1_000_000))
        live_ids = sorted(
            conn.execute(select(s.replicas.c.replica).where(s.replicas.c.heartbeat_at > live_since))
            .scalars()
            .all()
        )
        live = max(len(live_ids), 1)
        rank = live_ids.index(self.replica) if self.replica in live_ids else 0
        share = len(pipelines) // live + (1 if rank < len(pipelines) % live else 0)

        mine = set(
            conn.execute(select(s.leases.c.pipeline).where(s.leases.c.owner == self.replica))
            .scalars()
            .all()
        )
        lost = sorted(before - mine)
        released = sorted(mine - pipelines)  # no longer in this replica's config
        keep = mine & pipelines
        if len(keep) > share:
            idle = sorted(keep - busy, reverse=True)
            released += idle[: len(keep) - share]
            keep -= set(released)
        if released:
            conn.execute(
                update(s.leases)
                .where(and_(s.leases.c.pipeline.in_(released), s.leases.c.owner == self.replica))
                .values(owner=None, expires_at=now)
            )
        if keep:
            conn.execute(
                update(s.leases)
                .where(
                    and_(s.leases.c.pipeline.in_(sorted(keep)), s.leases.c.owner == self.replica)
                )
                .values(expires_at=expires)
            )
        claimed = self._claim(conn, sorted(pipelines - keep), share - len(keep), now_us)
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
        return Beat(
            live_replicas=live,
            share=share,
            held=frozenset(keep | set(claimed)),
            claimed=[c for c in claimed if c not in before],
            released=released,
            lost=lost,
        )

    def _claim(self, conn: Connection, candidates: list[str], need: int, now_us: int) -> list[str]:
        """Free or expired leases this replica may take: up to ``need`` (its share), plus
        every *orphan* — a lease free for over 1.5 heartbeats, which no replica under its
        share wanted (one that counts a dead replica as live until its heartbeat ages out,
        or that runs an older config). Rows locked by another replica's heartbeat are
        skipped, never waited for. Rebalancing later gives surplus leases back."""
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
                    replica=self.replica, started_at=_at(self._started_us), heartbeat_at=now
                )
            )
        forget = now_us - int(_FORGET_LIFETIMES * self.lifetime_s * 1_000_000)
        conn.execute(delete(s.replicas).where(s.replicas.c.heartbeat_at < _at(forget)))

    def _create_rows(self, conn: Connection, names: frozenset[str], now: datetime) -> None:
        """Lease rows for pipelines no replica has seen yet (a row per pipeline, free since
        ``now``)."""
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
        stop: threading.Event,
        on_beat: Callable[[Beat], None] = lambda _beat: None,
    ) -> None:
        self.leases = leases
        self.stop = stop
        self.on_beat = on_beat
        self._thread = threading.Thread(target=self._loop, name="stocksync-heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def beat_once(self) -> Beat | None:
        """One heartbeat; None (logged) when the database could not be reached."""
        try:
            beat = self.leases.heartbeat()
        except DBAPIError as exc:
            log.warning(
                "lease_heartbeat_failed",
                replica=self.leases.replica,
                error=mask(f"{type(exc).__name__}: {exc.orig}"),
                note="leases lapse locally if this lasts; no new job starts without one",
            )
            self._failing = True
            return None
        if self._failing:
            log.info("lease_heartbeat_recovered", replica=self.leases.replica)
            self._failing = False
        self.on_beat(beat)
        return beat

    def _loop(self) -> None:
        while not self.stop.wait(self.leases.heartbeat_s):
            try:
                self.beat_once()
            except Exception as exc:  # never let the heartbeat thread die silently
                log.error("lease_heartbeat_error", error=mask(f"{type(exc).__name__}: {exc}"))

    def join(self, timeout_s: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout_s)
