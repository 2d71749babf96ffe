"""Issue 17's acceptance: 3 replicas share 60 pipelines on a real server state database.

Each pipeline has its own K/3 Cloud and Fxiaoke emulators (served from this process on
loopback ports). Three daemon processes run all 60 from one config; one replica is
SIGKILLed and restarted, then another, while the ERPs keep receiving documents. From the
run log in the state database (``runs``, with ``runs.runner`` naming the replica):

- no pipeline ever ran two cycles at once (a killed replica's open run ends at its kill);
- every pipeline kept cycling once the fleet was up (each pipeline's first cycle done):
  no gap between two cycle starts longer than interval + lease timeout (plus
  ``START_SLACK_S`` for a loaded machine to start a job);
- once settled, the live replicas split the pipelines within ±25 % of an even share;
- no replica logged an error (no pool wait, no lock or lease error);
- at the end the CRM equals the ERP for every pipeline, with no duplicate record.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.k3cloud.scenarios import MATERIALS, WAREHOUSES
from sync.state import StateStore
from sync.state import schema as s
from tests.conftest import server_url
from tests.daemon.conftest import (
    DaemonProcess,
    Systems,
    pipeline_config,
    receipt,
    start_systems,
    stop_systems,
    wait_until,
    write_config,
)

PIPELINES = 60
REPLICAS = 3
INTERVAL_S = 5.0
HEARTBEAT_S = 0.5
LEASE_TIMEOUT_S = 3.0
#: how late a loaded 2-core machine may start a due job (scheduler thread, GIL, 3 daemons,
#: and the suite's other worker running tests beside them)
START_SLACK_S = 3.0
#: warnings that mean the fleet did not run cleanly (a deadlocked or timed-out heartbeat)
TROUBLE = {"lease_heartbeat_failed", "lease_lost", "lock_unavailable", "reload_failed"}
SERVERS = {
    "postgresql": ("STOCKSYNC_TEST_PG_URL", "PostgreSQL"),
    "mysql": ("STOCKSYNC_TEST_MYSQL_URL", "MariaDB/MySQL"),
}


@dataclass
class Replica:
    """One daemon process and what the test knows of it."""

    label: str
    proc: DaemonProcess
    replica: str = ""
    killed_at: datetime | None = None


@dataclass
class Fleet:
    config: Path
    tmp: Path
    replicas: list[Replica] = field(default_factory=list)
    starts: Counter[str] = field(default_factory=Counter)

    def start(self, *labels: str) -> list[Replica]:
        """Start one daemon per label at once; return them once each has started."""
        started = []
        for label in labels:
            self.starts[label] += 1
            log = self.tmp / f"{label}{self.starts[label]}.log"
            started.append(Replica(f"{label}{self.starts[label]}", DaemonProcess(self.config, log)))
        for r in started:
            r.replica = r.proc.wait_event("daemon_started", timeout_s=60)["replica"]
            self.replicas.append(r)
        return started

    def kill(self, r: Replica) -> None:
        r.proc.kill()
        r.killed_at = datetime.now(UTC)

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.killed_at is None and r.proc.proc.poll() is None]


@pytest.fixture
def systems_60() -> Iterator[list[Systems]]:
    started: list[Systems] = []
    try:
        for _ in range(PIPELINES):
            started.append(start_systems())
        yield started
    finally:  # each stop waits up to half a second for its serving thread: all at once
        with ThreadPoolExecutor(max_workers=len(started) or 1) as pool:
            list(pool.map(stop_systems, started))


def owners(store: StateStore) -> Counter[str]:
    now = datetime.now(UTC)
    with store.engine.connect() as conn:
        rows = conn.execute(select(s.leases.c.owner, s.leases.c.expires_at)).all()
    return Counter(owner for owner, expires in rows if owner is not None and expires > now)


def settled(store: StateStore, fleet: Fleet) -> bool:
    """Every pipeline leased, by live replicas only, each within one of an even share."""
    held = owners(store)
    live = {r.replica for r in fleet.live()}
    even = PIPELINES / len(live)
    return (
        set(held) == live
        and sum(held.values()) == PIPELINES
        and all(abs(n - even) <= 1 for n in held.values())
    )


def cycled(store: StateStore, names: list[str]) -> bool:
    """Every pipeline has finished a cycle."""
    with store.engine.connect() as conn:
        done = conn.execute(
            select(s.runs.c.pipeline)
            .where(s.runs.c.job == "cycle", s.runs.c.finished_at.is_not(None))
            .where(s.runs.c.pipeline.in_(names))
            .distinct()
        ).all()
    return len(done) == len(names)


def some_receipts(systems: list[Systems], round_: int) -> None:
    for i, one in enumerate(systems):
        if (i + round_) % 3 == 0:
            material = MATERIALS[(i + round_) % len(MATERIALS)]
            stock = WAREHOUSES[round_ % len(WAREHOUSES)]
            receipt(one, material, stock, str(1 + (i + round_) % 7))


@dataclass
class Timeline:
    """What the run log is judged against (times of the test's own clock)."""

    began: datetime
    steady_from: datetime  # every pipeline has cycled once, the split has settled
    window: tuple[datetime, datetime]  # three live replicas, settled, after both kills
    ended: datetime


def fleet_config(systems: list[Systems], names: list[str], url: str, path: Path) -> Path:
    pipelines = [
        pipeline_config(
            one,
            name,
            erp={**one.connectors()["erp"], "streams": ["purchase_receipt"], "reservations": False},
            schedule={
                "interval_s": INTERVAL_S,
                "rescan_cron": "0 3 1 1 *",
                "reconcile_cron": "0 4 1 1 *",
            },
        )
        for one, name in zip(systems, names, strict=True)
    ]
    return write_config(
        path,
        pipelines,
        state_url=url,
        metrics_port=None,
        replicas={"heartbeat_s": HEARTBEAT_S, "lease_timeout_s": LEASE_TIMEOUT_S},
    )


def play(fleet: Fleet, store: StateStore, systems: list[Systems], names: list[str]) -> Timeline:
    """Three replicas; kill and restart one, then another; ERP documents throughout."""
    began = datetime.now(UTC)
    _a, b, c = fleet.start("a", "b", "c")
    wait_until(lambda: settled(store, fleet), 60, "an even split of the first 3 replicas")
    wait_until(lambda: cycled(store, names), 90, "a first cycle of every pipeline")
    # gaps count from here: a first cycle (the opening baseline) takes longer, and the
    # first replica up queues all 60 before the others join
    steady_from = datetime.now(UTC)
    some_receipts(systems, 0)
    for round_, victim in enumerate((c, b), start=1):
        time.sleep(INTERVAL_S)
        fleet.kill(victim)
        some_receipts(systems, round_)
        wait_until(lambda: settled(store, fleet), 30, "the survivors taking over")
        fleet.start(victim.label[0])
        wait_until(lambda: settled(store, fleet), 30, "an even split after the restart")
    window_from = datetime.now(UTC)
    some_receipts(systems, 9)
    time.sleep(INTERVAL_S + 1.5)  # every pipeline starts once in any interval
    window_to = datetime.now(UTC)
    wait_until(lambda: all(one.in_sync() for one in systems), 60, "CRM = ERP for all pipelines")
    ended = datetime.now(UTC)
    for r in fleet.live():
        assert r.proc.stop(30) == 0, r.proc.tail()
    return Timeline(began, steady_from, (window_from, window_to), ended)


def cycle_runs(store: StateStore, names: list[str], since: datetime) -> list[Any]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    s.runs.c.pipeline,
                    s.runs.c.runner,
                    s.runs.c.started_at,
                    s.runs.c.finished_at,
                    s.runs.c.status,
                ).where(
                    s.runs.c.job == "cycle",
                    s.runs.c.pipeline.in_(names),
                    s.runs.c.started_at >= since,
                )
            ).all()
        )


def check_never_twice_at_once(by_pipeline: dict[str, list[Any]], fleet: Fleet) -> None:
    """A run's end is its ``finished_at``, or its replica's kill time if it was killed."""
    killed = {r.replica: r.killed_at for r in fleet.replicas if r.killed_at is not None}
    for name, runs in by_pipeline.items():
        for x, y in itertools.pairwise(runs):
            end = x.finished_at or killed.get(x.runner)
            assert end is not None, f"{name}: a run with no end on a live replica: {x}"
            assert end <= y.started_at, f"{name}: two cycles at once: {x} and {y}"


def worst_gaps(
    by_pipeline: dict[str, list[Any]], fleet: Fleet, t: Timeline
) -> dict[str, tuple[float, str]]:
    """Per pipeline, the longest time without a cycle start (from ``steady_from`` to the
    end) and where it was (replica labels)."""
    label = {r.replica: r.label for r in fleet.replicas}
    worst: dict[str, tuple[float, str]] = {}
    for name, runs in by_pipeline.items():
        starts = [(t.steady_from, "up")]
        starts += [
            (r.started_at, label.get(r.runner, "?")) for r in runs if r.started_at >= t.steady_from
        ]
        starts.append((t.ended, "end"))
        for (x, rx), (y, ry) in itertools.pairwise(starts):
            gap = (y - x).total_seconds()
            if gap > worst.get(name, (0.0, ""))[0]:
                worst[name] = (gap, f"{x:%H:%M:%S.%f} {rx} -> {y:%H:%M:%S.%f} {ry}")
    return worst


def window_split(rows: list[Any], t: Timeline) -> dict[str, set[str]]:
    """The pipelines each replica ran in the settled window."""
    per_runner: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if t.window[0] <= r.started_at <= t.window[1]:
            per_runner[r.runner].add(r.pipeline)
    return per_runner


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_three_replicas_share_sixty_pipelines_through_kills(
    server: str, systems_60: list[Systems], tmp_path: Path
) -> None:
    url = server_url(*SERVERS[server])
    store = StateStore(url)
    with store.engine.begin() as conn:  # earlier tests' replicas are no part of this fleet
        conn.execute(s.leases.delete())
        conn.execute(s.replicas.delete())
    names = [f"fleet{i:02d}" for i in range(PIPELINES)]
    fleet = Fleet(fleet_config(systems_60, names, url, tmp_path / "stocksync.yaml"), tmp_path)
    try:
        t = play(fleet, store, systems_60, names)
    finally:
        for r in fleet.replicas:
            r.proc.__exit__()
    rows = cycle_runs(store, names, t.began)
    store.close()
    by_pipeline: dict[str, list[Any]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.started_at):
        by_pipeline[row.pipeline].append(row)
    assert set(by_pipeline) == set(names)

    # 1. never two cycles of one pipeline at once
    check_never_twice_at_once(by_pipeline, fleet)

    # 2. every pipeline kept cycling, through both kills
    bound_s = INTERVAL_S + LEASE_TIMEOUT_S + START_SLACK_S
    worst = worst_gaps(by_pipeline, fleet, t)
    slowest = sorted(worst.items(), key=lambda kv: -kv[1][0])[:3]
    assert slowest[0][1][0] <= bound_s, slowest
    killed = {r.replica for r in fleet.replicas if r.killed_at is not None}
    assert {r.runner for r in rows} >= killed, "a killed replica never ran: nothing was tested"

    # 3. the live replicas shared the work evenly in the settled window
    per_runner = window_split(rows, t)
    assert set(per_runner) == {r.replica for r in fleet.replicas if r.killed_at is None}
    even = PIPELINES / REPLICAS
    for runner, ran in per_runner.items():
        assert abs(len(ran) - even) <= 0.25 * even, (runner, len(ran))
    print(  # the figures, for the record (pytest -s)
        f"\n{server}: {len(rows)} cycles; worst gaps {slowest} (bound {bound_s:g} s); "
        f"window split {sorted(len(v) for v in per_runner.values())} of {PIPELINES}"
    )

    # 4. no replica logged an error: no pool wait, no lock or lease error
    for r in fleet.replicas:
        errors = [
            e
            for e in r.proc.events()
            if e.get("level") in ("error", "critical") or e.get("event") in TROUBLE
        ]
        assert not errors, (r.label, errors[:3])
        text = "\n".join(r.proc.lines())
        assert "TimeoutError" not in text and "QueuePool limit" not in text, r.label

    # 5. CRM = ERP everywhere (waited for in ``play``), and no CRM record twice
    assert not [name for name, one in zip(names, systems_60, strict=True) if one.crm_duplicates()]
