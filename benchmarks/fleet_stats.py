"""Pure figures of the fleet scenario: percentiles, overlapping runs, start lateness, take-over.

No I/O: ``benchmarks.fleet`` reads the run log and the leases from the state database and
hands the rows here. Times are timezone-aware datetimes; durations are seconds.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CycleRun:
    """One ``runs`` row of job 'cycle'."""

    pipeline: str
    runner: str | None
    started_at: datetime
    finished_at: datetime | None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ``values``, linear between closest ranks.

    Raises ``ValueError`` for no values or ``q`` outside 0–100.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def by_pipeline(runs: Iterable[CycleRun]) -> dict[str, list[CycleRun]]:
    """The runs of each pipeline, in order of start."""
    out: dict[str, list[CycleRun]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: r.started_at):
        out[run.pipeline].append(run)
    return dict(out)


def overlaps(
    runs: Iterable[CycleRun], killed: Mapping[str, datetime]
) -> list[tuple[CycleRun, CycleRun]]:
    """Pairs of runs of one pipeline that were running at the same time.

    A run ends at its ``finished_at``; a run left open by a replica in ``killed`` (runner →
    time of its SIGKILL) ends at the kill. An open run of a live replica followed by
    another run of its pipeline counts as an overlap: nothing ended it.
    """
    found = []
    for seq in by_pipeline(runs).values():
        for x, y in itertools.pairwise(seq):
            end = x.finished_at
            if end is None and x.runner is not None:
                end = killed.get(x.runner)
            if end is None or end > y.started_at:
                found.append((x, y))
    return found


def gaps_beyond_interval_s(starts: Sequence[datetime], interval_s: float) -> list[float]:
    """For each start after the first, the time since the previous start minus the interval,
    seconds: 0 when a cycle started exactly one interval after the one before, above 0 when
    it came late. (An interval trigger keeps its phase, so a late start followed by a
    punctual one gives a negative figure; a skipped tick shows as about one interval.)
    What a pipeline's freshness sees, whatever the phase of its schedule."""
    ordered = sorted(starts)
    return [(y - x).total_seconds() - interval_s for x, y in itertools.pairwise(ordered)]


def ticks(starts: Sequence[datetime], interval_s: float) -> list[list[datetime]]:
    """The starts of one process's jobs grouped by the tick they fell due at, in order.

    A daemon adds every pipeline's cycle job with its first run "now", so on one process
    all of them fall due at the same moments (one tick per interval) and the scheduler's
    workers work through the tick's queue. Starts are grouped by order: a start more than
    half an interval after its tick's first opens the next tick. (A lease claimed later
    starts its pipeline at once, on a phase of its own: the grouping is then approximate.)
    """
    out: list[list[datetime]] = []
    for start in sorted(starts):
        if not out or (start - out[-1][0]).total_seconds() > interval_s / 2:
            out.append([])
        out[-1].append(start)
    return out


def delays_behind_tick_s(starts: Sequence[datetime], interval_s: float) -> list[float]:
    """Each start's delay behind the first start of its tick (``ticks``), seconds: the
    first start of a tick is the closest to on time, so this is lateness from queueing."""
    return [(s - tick[0]).total_seconds() for tick in ticks(starts, interval_s) for s in tick]


def drain_per_s(starts: Sequence[datetime], interval_s: float, workers: int) -> list[float]:
    """Per tick of more than ``workers`` starts, the rate its queue was worked through:
    starts after the first / seconds from the first to the last start. While a tick's
    queue lasts the process runs cycles as fast as it can: this is its capacity. (A tick
    of at most ``workers`` starts has no queue: all start at once, the rate means nothing.)
    """
    rates = []
    for tick in ticks(starts, interval_s):
        span = (tick[-1] - tick[0]).total_seconds()
        if len(tick) > workers and span > 0:
            rates.append((len(tick) - 1) / span)
    return rates


def takeover_s(
    kill: datetime, pipelines: Iterable[str], when: Mapping[str, datetime]
) -> tuple[float | None, list[str]]:
    """Seconds from ``kill`` until the last of ``pipelines`` was taken over (its time in
    ``when``), and the pipelines not taken over at all (the figure is then None)."""
    missing = sorted(p for p in pipelines if p not in when)
    times = [when[p] for p in pipelines if p in when]
    if missing or not times:
        return None, missing
    return max((t - kill).total_seconds() for t in times), []


def first_start_after(
    runs: Iterable[CycleRun], after: datetime, *, not_by: str
) -> dict[str, datetime]:
    """Per pipeline, the first cycle start after ``after`` by a runner other than ``not_by``."""
    first: dict[str, datetime] = {}
    for run in runs:
        if run.started_at <= after or run.runner == not_by:
            continue
        if run.pipeline not in first or run.started_at < first[run.pipeline]:
            first[run.pipeline] = run.started_at
    return first
