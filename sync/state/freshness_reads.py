"""What end-to-end freshness is computed from (``sync.freshness``): a few grouped reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, func, select

import sync.state.schema as s
from sync.state.base import StoreBase
from sync.state.rows import ALERT

#: cycles whose pull completed: ``degraded`` ones read the ERP but could not reach the CRM
PULLED = ("ok", "degraded")


@dataclass(frozen=True)
class FreshnessInputs:
    """Per pipeline, the times bounding what the CRM may not reflect yet (None: none)."""

    #: the oldest outbox row's ``created_at`` (any state, alert rows aside): the change
    #: was seen then
    oldest_outbox: datetime | None = None
    #: the oldest level flagged changed and not queued yet (its last change)
    oldest_flagged: datetime | None = None
    #: start of the last cycle whose pull completed (status ok or degraded)
    last_pull: datetime | None = None
    #: start of the first cycle ever tried (what counts while no pull has completed)
    first_cycle: datetime | None = None


def _as_time(value: Any) -> datetime | None:
    # min()/max() keep the column's type on most drivers; some hand back the raw integer
    return value if value is None or isinstance(value, datetime) else s.from_micros(int(value))


def _per_pipeline(conn: Connection, query: Select[Any]) -> dict[str, datetime | None]:
    return {r[0]: _as_time(r[1]) for r in conn.execute(query)}


class FreshnessReads(StoreBase):
    def freshness_inputs(self) -> dict[str, FreshnessInputs]:
        """``FreshnessInputs`` for every pipeline with a row in the outbox, a flagged level or
        a cycle run.

        Four grouped scans (the outbox, the flagged levels, two index ranges of the runs),
        run at scrape or ``status`` time: nothing is added to the pull or push path.
        """
        o, lv, r = s.outbox, s.stock_levels, s.runs
        with self.engine.connect() as conn:
            # an undelivered alert is no stock the CRM lacks: a dead webhook must not
            # make a pipeline whose CRM is in sync look stale (and fail /healthz)
            outbox = _per_pipeline(
                conn,
                select(o.c.pipeline, func.min(o.c.created_at))
                .where(o.c.target != ALERT)
                .group_by(o.c.pipeline),
            )
            flagged = _per_pipeline(
                conn,
                select(lv.c.pipeline, func.min(lv.c.updated_at))
                .where(lv.c.push_pending == 1)
                .group_by(lv.c.pipeline),
            )
            cycles = select(r.c.pipeline).where(r.c.job == "cycle").group_by(r.c.pipeline)
            pulled = _per_pipeline(
                conn,
                cycles.add_columns(func.max(r.c.started_at)).where(r.c.status.in_(PULLED)),
            )
            first = _per_pipeline(conn, cycles.add_columns(func.min(r.c.started_at)))
        return {
            name: FreshnessInputs(
                outbox.get(name), flagged.get(name), pulled.get(name), first.get(name)
            )
            for name in sorted({*outbox, *flagged, *pulled, *first})
        }
