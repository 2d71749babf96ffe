"""Conflicts, runs and cached tokens: the operational side of the state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    func,
    insert,
    select,
    update,
)

import sync.state.schema as s
from sync.settings import mask
from sync.state.base import StoreBase
from sync.state.rows import (
    ConflictRow,
    ReplicaRow,
    RunRow,
    conflict_row,
    run_row,
)
from sync.state.upsert import upsert


class OperationsReads(StoreBase):
    def conflicts(
        self,
        *,
        pipeline: str | None = None,
        kind: str | None = None,
        open_only: bool = False,
        limit: int = 1000,
    ) -> list[ConflictRow]:
        t = s.conflicts
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if pipeline:
            q = q.where(t.c.pipeline == pipeline)
        if kind:
            q = q.where(t.c.kind == kind)
        if open_only:
            q = q.where(t.c.resolved_at.is_(None))
        with self.engine.connect() as conn:
            return [conflict_row(r) for r in conn.execute(q).mappings()]

    def conflict(self, conflict_id: int) -> ConflictRow | None:
        t = s.conflicts
        with self.engine.connect() as conn:
            r = conn.execute(select(t).where(t.c.id == conflict_id)).mappings().first()
        return conflict_row(r) if r else None

    def open_conflict_counts(self) -> dict[tuple[str, str], int]:
        t = s.conflicts
        with self.engine.connect() as conn:
            return {
                (r[0], r[1]): int(r[2])
                for r in conn.execute(
                    select(t.c.pipeline, t.c.kind, func.count())
                    .where(t.c.resolved_at.is_(None))
                    .group_by(t.c.pipeline, t.c.kind)
                )
            }

    def resolve_conflict(self, conflict_id: int, note: str, now: datetime) -> bool:
        t = s.conflicts
        with self.transaction() as tx:
            result = tx.conn.execute(
                update(t)
                .where(t.c.id == conflict_id, t.c.resolved_at.is_(None))
                .values(resolution="manual", resolved_at=now, note=note)
            )
        return bool(result.rowcount)

    # -- runs -----------------------------------------------------------------------
    def start_run(self, run_id: str, pipeline: str, job: str, now: datetime) -> int:
        with self.transaction() as tx:
            result = tx.conn.execute(
                insert(s.runs).values(
                    run_id=run_id,
                    pipeline=pipeline,
                    job=job,
                    started_at=now,
                    status="running",
                    runner=self.runner,
                    pulled=0,
                    applied=0,
                    pushed=0,
                    failed=0,
                )
            )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def finish_run(
        self,
        row_id: int,
        now: datetime,
        *,
        status: str,
        pulled: int = 0,
        applied: int = 0,
        pushed: int = 0,
        failed: int = 0,
        error: str | None = None,
    ) -> None:
        with self.transaction() as tx:
            tx.conn.execute(
                update(s.runs)
                .where(s.runs.c.id == row_id)
                .values(
                    finished_at=now,
                    status=status,
                    pulled=pulled,
                    applied=applied,
                    pushed=pushed,
                    failed=failed,
                    error=mask(error) if error else None,
                )
            )

    def runs(self, pipeline: str | None = None, limit: int = 20) -> list[RunRow]:
        t = s.runs
        q = select(t).order_by(t.c.id.desc()).limit(limit)
        if pipeline:
            q = q.where(t.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [run_row(r) for r in conn.execute(q).mappings()]

    def last_successes(self, pipelines: Sequence[str], job: str) -> dict[str, datetime]:
        """When each pipeline's last ``ok`` run of ``job`` finished, in one query (a pipeline
        without one is absent): /healthz and /metrics read all pipelines at once."""
        t = s.runs
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.pipeline, func.max(t.c.finished_at))
                .where(t.c.pipeline.in_(list(pipelines)), t.c.job == job, t.c.status == "ok")
                .group_by(t.c.pipeline)
            ).all()
        return {
            name: at if isinstance(at, datetime) else s.from_micros(at)
            for name, at in rows
            if at is not None
        }

    def replicas(self) -> list[ReplicaRow]:
        """The daemons that share this database, newest heartbeat first, with the pipelines
        they hold a lease on (expiry judged by the database server's clock: ``runs`` and
        leases are written with it, see ``sync.service.leases``)."""
        r, le = s.replicas, s.leases
        with self.engine.connect() as conn:
            rows = conn.execute(select(r).order_by(r.c.heartbeat_at.desc())).mappings().all()
            leased = conn.execute(
                select(le.c.owner, le.c.pipeline, le.c.expires_at)
                .where(le.c.owner.is_not(None))
                .order_by(le.c.pipeline)
            ).all()
        # the newest heartbeat stands in for the server's clock (one read, no dialect SQL)
        now = max((row["heartbeat_at"] for row in rows), default=None)
        held: dict[str, list[str]] = {}
        for owner, pipeline, expires in leased:
            if now is not None and expires > now:
                held.setdefault(owner, []).append(pipeline)
        return [
            ReplicaRow(
                row["replica"],
                row["started_at"],
                row["heartbeat_at"],
                tuple(held.get(row["replica"], ())),
            )
            for row in rows
        ]

    # -- tokens (TokenCache) ------------------------------------------------------
    def get_token(self, name: str) -> tuple[str, datetime] | None:
        t = s.tokens
        with self.engine.connect() as conn:
            r = conn.execute(select(t.c.value, t.c.expires_at).where(t.c.name == name)).first()
        return (r[0], r[1]) if r else None

    def put_token(self, name: str, value: str, expires_at: datetime) -> None:
        with self.transaction() as tx:
            upsert(
                tx.conn,
                s.tokens,
                [{"name": name, "value": value, "expires_at": expires_at}],
                ("name",),
                lambda new: {"value": new.value, "expires_at": new.expires_at},
            )
