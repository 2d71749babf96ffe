"""End-to-end freshness: how old the oldest ERP change the CRM may not reflect yet is.

Per pipeline, ``freshness_s = now − since``, where ``since`` is the earliest of:

- the oldest outbox row's ``created_at``, whatever its state (pending, retrying,
  uncertain, blocked on an unmapped SKU or warehouse, dead): the time stocksync saw the
  change. A later change to the same key bumps the row and keeps that time, so the age
  is not reset while the CRM still lacks the first change; only confirming the row in
  the CRM (or the value already being there) deletes it;
- the oldest level flagged changed but not queued yet (a pull in progress, or one that
  crashed before queueing);
- the start of the last cycle whose pull completed (``ok``, or ``degraded`` when the
  CRM could not be reached): ERP changes made since then are not known yet. Until a
  pull completes, the start of the first cycle tried.

The last term is always counted, not only when the pull is failing: it makes the
figure a bound (the CRM reflects every ERP change seen before ``since``) with no
threshold of its own to tune. A healthy idle pipeline therefore reads between 0 and
one ``interval_s`` plus a cycle's duration and never grows; a pipeline whose ERP pull
fails grows from its last completed pull; a CRM outage grows from the oldest change
it holds back. A change pulled and confirmed within the cycle that saw it never
shows: it is younger than the cycle's start. A row changed again while its push was
in flight keeps its first time until the next push confirms it: an overstatement of
at most one cycle, never an understatement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sync.state import StateStore
from sync.state.store import FreshnessInputs

#: what sets ``since``: an outbox row, a flagged level, or the ERP pull
Cause = Literal["outbox", "levels", "pull"]


@dataclass(frozen=True)
class Freshness:
    """A pipeline's freshness at ``now``: ``freshness_s`` seconds (≥ 0) since ``since``."""

    pipeline: str
    freshness_s: float
    since: datetime
    cause: Cause

    def explain(self) -> str:
        """Where the oldest unconfirmed change is, for a person."""
        if self.cause == "outbox":
            return "held in the outbox (pending, retrying, uncertain, blocked or dead rows)"
        if self.cause == "levels":
            return "a changed level not queued for the CRM yet"
        return f"no ERP pull completed since {self.since.isoformat(timespec='seconds')}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``freshness_s`` rounded to 0.1 s, ``since`` in ISO 8601, ``cause``."""
        return {
            "freshness_s": round(self.freshness_s, 1),
            "since": self.since.isoformat(timespec="seconds"),
            "cause": self.cause,
        }


def measure(pipeline: str, inputs: FreshnessInputs, now: datetime) -> Freshness | None:
    """The pipeline's freshness from its ``inputs``; None when it has never run a cycle and
    holds nothing for the CRM. A clock behind the stored times gives 0, never less."""
    pulled = inputs.last_pull or inputs.first_cycle
    times: tuple[tuple[datetime | None, Cause], ...] = (
        (inputs.oldest_outbox, "outbox"),
        (inputs.oldest_flagged, "levels"),
        (pulled, "pull"),
    )
    candidates = [(at, cause) for at, cause in times if at is not None]
    if not candidates:
        return None
    # min() keeps the first of equal times: a held change names its cause before the pull
    since, cause = min(candidates, key=lambda c: c[0])
    return Freshness(pipeline, max(0.0, (now - since).total_seconds()), since, cause)


def freshness(store: StateStore, now: datetime) -> dict[str, Freshness]:
    """Every pipeline's ``Freshness`` known to the state database, by name (one read)."""
    found = {name: measure(name, inputs, now) for name, inputs in store.freshness_inputs().items()}
    return {name: f for name, f in found.items() if f is not None}
