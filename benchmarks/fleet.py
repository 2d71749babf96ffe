"""Many pipelines on one and on three daemon processes sharing a PostgreSQL state database.

Issue 17: "a new ``fleet`` scenario runs 200 pipelines in one process and in 3 processes on
PostgreSQL and reports cycles per second, p95 cycle latency, state connections used and the
lease take-over time after a kill." The pipelines use the in-memory connectors (an empty
ERP, a CRM in the process), so every figure is the daemon's and the state database's own
overhead: scheduling, the job lock, the run log, cursors, leases.

Each run gets a fresh database (``CREATE DATABASE stocksync_bench_…`` on the server of
``STOCKSYNC_TEST_PG_URL``, dropped afterwards), so ``pg_stat_activity`` rows of that
database are exactly the fleet's; each replica names itself through ``application_name``.
A run: start the daemons, wait until every pipeline is leased (evenly, within one of an
equal share) and has finished a cycle (warm-up), measure a window from the run log, then
(three processes) SIGKILL one replica and time the take-over: until every pipeline it held
is leased by a live replica (``leases.taken_at``, the bound is ``replicas.lease_timeout_s``)
and until each has started a new cycle. Skipped without ``STOCKSYNC_TEST_PG_URL``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from benchmarks.common import Result
from benchmarks.fleet_procs import (
    BENCH_APP,
    ConnectionSampler,
    Daemon,
    connection_figures,
    fresh_database,
    with_app_name,
    write_config,
)
from benchmarks.fleet_report import rows
from benchmarks.fleet_stats import (
    CycleRun,
    by_pipeline,
    delays_behind_tick_s,
    drain_per_s,
    first_start_after,
    gaps_beyond_interval_s,
    overlaps,
    percentile,
    takeover_s,
)
from sync.state import schema as s
from sync.state.engine import create_state_engine, pool_options
from sync.state.store import StateStore

#: replicas in run B
REPLICAS = 3
#: the daemon's default ``workers``: the state pool is sized from it
WORKERS = 16


@dataclass(frozen=True, slots=True)
class Plan:
    pipelines: int
    interval_s: float
    window_s: float

    @property
    def heartbeat_s(self) -> float:
        return self.interval_s / 5

    @property
    def lease_timeout_s(self) -> float:
        # six heartbeats, as the defaults (5 s, 30 s)
        return 6 * self.heartbeat_s

    @property
    def offered_per_s(self) -> float:
        return self.pipelines / self.interval_s


def pipeline_configs(names: list[str], interval_s: float) -> list[dict[str, Any]]:
    """Pipelines on the in-memory connectors; the rescan and reconcile crons a year away."""
    return [
        {
            "name": name,
            "schedule": {
                "interval_s": interval_s,
                "rescan_cron": "0 3 1 1 *",
                "reconcile_cron": "0 4 1 1 *",
            },
            "erp": {"type": "memory"},
            "crm": {"type": "memory-crm"},
        }
        for name in names
    ]


def held(engine: Engine) -> dict[str, tuple[str, datetime]]:
    """Pipeline → (owner, taken_at) of every lease not expired (by this process's clock)."""
    now = datetime.now(UTC)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                s.leases.c.pipeline, s.leases.c.owner, s.leases.c.expires_at, s.leases.c.taken_at
            )
        ).all()
    return {p: (o, t) for p, o, e, t in rows if o is not None and e > now}


def cycles(engine: Engine) -> list[CycleRun]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                s.runs.c.pipeline, s.runs.c.runner, s.runs.c.started_at, s.runs.c.finished_at
            ).where(s.runs.c.job == "cycle")
        ).all()
    return [CycleRun(*row) for row in rows]


def wait_for(condition: Callable[[], bool], timeout_s: float, step_s: float = 0.1) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout_s`` has passed (False)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step_s)
    return True


def settled(engine: Engine, live: list[Daemon], n: int) -> bool:
    """Every pipeline leased by a live replica, each within one of an even share, and every
    pipeline has finished a cycle."""
    counts = Counter(owner for owner, _ in held(engine).values())
    even = n / len(live)
    if set(counts) != {d.replica for d in live} or sum(counts.values()) != n:
        return False
    if any(abs(c - even) > 1 for c in counts.values()):
        return False
    done = {r.pipeline for r in cycles(engine) if r.finished_at is not None}
    return len(done) == n


class FleetRun:
    """One run: ``processes`` daemons on a fresh database, measured as the module says."""

    def __init__(self, plan: Plan, processes: int, server_url: str, tmp: Path) -> None:
        self.plan = plan
        self.processes = processes
        self.server_url = server_url
        self.tmp = tmp
        self.names = [f"fleet{i:03d}" for i in range(plan.pipelines)]
        self.daemons: list[Daemon] = []
        self.figures: dict[str, Any] = {"processes": processes}
        self.checks: dict[str, bool] = {}
        self.window = (datetime.now(UTC), datetime.now(UTC))
        self.runs: list[CycleRun] = []

    def run(self, kill: bool) -> FleetRun:
        with fresh_database(self.server_url) as (url, dbname):
            store = StateStore(url)
            store.upgrade()
            store.close()
            engine = create_state_engine(with_app_name(url, BENCH_APP), pool={"pool_size": 1})
            try:
                with ConnectionSampler(self.server_url, dbname) as sampler:
                    self._play(url, engine, sampler, kill)
                self._judge(engine, sampler)
            finally:
                for d in self.daemons:
                    d.kill()
                engine.dispose()
        return self

    def _start(self, url: str) -> None:
        for i in range(self.processes):
            label = "abcdefgh"[i]
            config = write_config(
                self.tmp / f"{self.processes}-{label}.yaml",
                pipeline_configs(self.names, self.plan.interval_s),
                state_url=with_app_name(url, f"fleet-{label}"),
                heartbeat_s=self.plan.heartbeat_s,
                lease_timeout_s=self.plan.lease_timeout_s,
            )
            log = self.tmp / f"{self.processes}-{label}.log"
            self.daemons.append(Daemon(label, config, log))
        for d in self.daemons:
            d.wait_started(120)

    def _play(self, url: str, engine: Engine, sampler: ConnectionSampler, kill: bool) -> None:
        plan = self.plan
        began = time.monotonic()
        self._start(url)
        warm_up_s = 120 + 3 * plan.interval_s
        if not wait_for(lambda: settled(engine, self.daemons, plan.pipelines), warm_up_s, 0.25):
            raise RuntimeError(
                f"after {warm_up_s:g} s not every pipeline was leased evenly and had cycled"
            )
        self.figures["warm_up_s"] = round(time.monotonic() - began, 2)
        self.window = (datetime.now(UTC), datetime.now(UTC))
        w0 = time.monotonic()
        self.figures["split"] = sorted(
            Counter(o for o, _ in held(engine).values()).values(), reverse=True
        )
        time.sleep(plan.window_s)
        w1 = time.monotonic()
        self.window = (self.window[0], datetime.now(UTC))
        apps = [f"fleet-{d.label}" for d in self.daemons]
        self.figures["connections"] = {
            "whole_run": connection_figures(sampler.between(began, w1), apps),
            "window": connection_figures(sampler.between(w0, w1), apps),
        }
        if kill:
            self._kill_one(engine)
            apps = [f"fleet-{d.label}" for d in self.daemons if d.killed_at is None]
            after = connection_figures(sampler.between(w1, time.monotonic()), apps)
            self.figures["connections"]["after_kill"] = after
        self.figures["exit_status"] = {
            d.label: d.stop() for d in self.daemons if d.killed_at is None
        }

    def _kill_one(self, engine: Engine) -> None:
        """SIGKILL the last replica; wait until its pipelines are leased and cycling again."""
        plan = self.plan
        victim = self.daemons[-1]
        mine = sorted(p for p, (o, _) in held(engine).items() if o == victim.replica)
        # the time before the signal: a take-over is never measured short
        victim.killed_at = kill = datetime.now(UTC)
        victim.kill()
        live = {d.replica for d in self.daemons if d.killed_at is None}

        def leased() -> bool:
            now_held = held(engine)
            return all(p in now_held and now_held[p][0] in live for p in mine)

        def restarted() -> bool:
            return set(first_start_after(cycles(engine), kill, not_by=victim.replica)) >= set(mine)

        bound = plan.lease_timeout_s
        # waited for three bounds: a slower take-over fails the check below, with its figure
        wait_for(leased, 3 * bound, step_s=0.05)
        wait_for(restarted, 3 * bound + plan.interval_s)
        now_held = held(engine)
        taken = {p: now_held[p][1] for p in mine if p in now_held and now_held[p][0] in live}
        lease_s, unleased = takeover_s(kill, mine, taken)
        cycle_s, idle = takeover_s(
            kill, mine, first_start_after(cycles(engine), kill, not_by=victim.replica)
        )
        self.figures["takeover"] = {
            "victim_pipelines": len(mine),
            "lease_s": lease_s,
            "first_cycle_s": cycle_s,
            "bound_s": bound,
            "heartbeat_s": plan.heartbeat_s,
            "not_leased_again": unleased,
            "no_new_cycle": idle,
        }
        self.checks[f"the killed replica held pipelines ({len(mine)})"] = bool(mine)
        self.checks[f"leases taken over within lease_timeout_s ({bound:g} s)"] = (
            lease_s is not None and lease_s <= bound
        )
        self.checks["each of its pipelines started a cycle on a survivor"] = cycle_s is not None

    def _judge(self, engine: Engine, sampler: ConnectionSampler) -> None:
        plan = self.plan
        runs = self.runs = cycles(engine)
        killed = {d.replica: d.killed_at for d in self.daemons if d.killed_at is not None}
        self.checks["no two cycles of one pipeline at once"] = not overlaps(runs, killed)
        w0, w1 = self.window
        window = [r for r in runs if w0 <= r.started_at < w1]
        done = [r for r in window if r.finished_at is not None]
        self.checks["every pipeline cycled in the window"] = {r.pipeline for r in done} == set(
            self.names
        )
        durations = [(r.finished_at - r.started_at).total_seconds() for r in done if r.finished_at]
        seconds = (w1 - w0).total_seconds()
        gaps = [
            g
            for seq in by_pipeline(r for r in runs if r.started_at >= w0).values()
            for g in gaps_beyond_interval_s(
                [r.started_at for r in seq if r.started_at < w1], plan.interval_s
            )
        ]
        starts = {
            runner: [r.started_at for r in window if r.runner == runner]
            for runner in {r.runner for r in window}
        }
        delays = [d for v in starts.values() for d in delays_behind_tick_s(v, plan.interval_s)]
        drains = {k: drain_per_s(v, plan.interval_s, WORKERS) for k, v in starts.items()}
        per_runner = Counter(r.runner for r in done)
        label = {d.replica: d.label for d in self.daemons}
        self.figures.update(
            window_s=round(seconds, 2),
            cycles=len(done),
            cycles_per_s=len(done) / seconds,
            cycle_p50_s=percentile(durations, 50) if durations else None,
            cycle_p95_s=percentile(durations, 95) if durations else None,
            cycle_max_s=max(durations, default=None),
            gap_p95_s=percentile(gaps, 95) if gaps else None,
            gap_max_s=max(gaps, default=None),
            tick_delay_p95_s=percentile(delays, 95) if delays else None,
            tick_delay_max_s=max(delays, default=None),
            cycles_per_replica={label.get(k or "", "?"): n for k, n in per_runner.items()},
            drain_per_s={
                label.get(k or "", "?"): statistics.median(v) if v else None
                for k, v in drains.items()
            },
        )
        statuses = Counter(self._statuses(engine))
        self.figures["statuses"] = dict(statuses)
        self.checks["every cycle ended ok"] = set(statuses) <= {"ok"}
        errors = {d.label: d.errors()[:3] for d in self.daemons if d.errors()}
        self.figures["errors"] = errors
        self.figures["warnings"] = {d.label: dict(d.warnings()) for d in self.daemons}
        self.checks["no error logged by any daemon"] = not errors
        self.checks["every live daemon stopped cleanly (exit 0)"] = all(
            code == 0 for code in self.figures["exit_status"].values()
        )

    def _statuses(self, engine: Engine) -> list[str]:
        killed = {d.replica for d in self.daemons if d.killed_at is not None}
        with engine.connect() as conn:
            rows = conn.execute(
                select(s.runs.c.status, s.runs.c.runner).where(s.runs.c.job == "cycle")
            ).all()
        # a killed replica's open run stays 'running': that is the kill, not a failure
        return [st for st, runner in rows if not (runner in killed and st == "running")]


def fleet(pipelines: int, interval_s: float, window_s: float) -> list[Result]:
    """Run A (one process) and run B (three processes, one killed) of ``pipelines``."""
    plan = Plan(pipelines, interval_s, window_s)
    result = Result(
        "fleet",
        f"{pipelines} in-memory pipelines every {interval_s:g} s on 1 and on {REPLICAS} "
        f"daemons sharing a PostgreSQL state database ({window_s:g} s measured)",
    )
    url = os.environ.get("STOCKSYNC_TEST_PG_URL")
    if not url:
        result.skipped = "STOCKSYNC_TEST_PG_URL is not set"
        return [result]
    with tempfile.TemporaryDirectory(prefix="stocksync-fleet-") as tmp:
        one = FleetRun(plan, 1, url, Path(tmp)).run(kill=False)
        three = FleetRun(plan, REPLICAS, url, Path(tmp)).run(kill=True)
    for label, r in (("1 process", one), (f"{REPLICAS} processes", three)):
        for what, ok in r.checks.items():
            result.check(f"{label}: {what}", ok)
    pool = pool_options(WORKERS)
    result.figures = {
        "plan": {
            "pipelines": pipelines,
            "interval_s": interval_s,
            "window_s": window_s,
            "heartbeat_s": plan.heartbeat_s,
            "lease_timeout_s": plan.lease_timeout_s,
            "offered_cycles_per_s": plan.offered_per_s,
            "workers": WORKERS,
            "state_pool": pool,
        },
        "one_process": one.figures,
        "three_processes": three.figures,
    }
    result.rows = rows(one.figures, three.figures, plan)
    return [result]
