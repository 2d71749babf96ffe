"""One runner per pipeline job: leases and advisory locks between replicas, a lock file
for SQLite. (tests/daemon/test_fleet.py splits 60 pipelines between 3 replicas.)"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from sync.state import StateStore
from sync.state import schema as s
from tests.conftest import server_url
from tests.daemon.conftest import (
    DaemonProcess,
    Systems,
    pipeline_config,
    receipt,
    run_cli,
    wait_until,
    write_config,
)


@pytest.mark.pg
def test_two_replicas_on_postgresql_one_runs_the_pipeline_never_both_at_once(
    systems: Systems, tmp_path: Path
) -> None:
    url = server_url("STOCKSYNC_TEST_PG_URL", "PostgreSQL")
    name = f"ha_{uuid.uuid4().hex[:8]}"
    config = write_config(
        tmp_path / "stocksync.yaml", [pipeline_config(systems, name)], state_url=url
    )
    systems.erp_http.delay_s = 0.02  # cycles last long enough to collide without the lock
    store = StateStore(url)

    def cycles() -> list:  # type: ignore[type-arg]
        return [r for r in store.runs(name, limit=200) if r.job == "cycle"]

    with (
        DaemonProcess(config, tmp_path / "a.log") as a,
        DaemonProcess(config, tmp_path / "b.log") as b,
    ):
        a.wait_event("daemon_started")
        b.wait_event("daemon_started")
        receipt(systems, "1.01.002", "CK002", "9")
        wait_until(lambda: len([r for r in cycles() if r.finished_at]) >= 6, 40, "6 cycles")
        wait_until(systems.in_sync, 20, "CRM equal to ERP")
        replicas = {
            a.events("daemon_started")[0]["replica"],
            b.events("daemon_started")[0]["replica"],
        }
        # the standby stops first: the holder's stop releases its lease, which a standby
        # still running would rightly take over (a hand-over, not two holders at once)
        standby, holder = (b, a) if a.events("cycle_done") else (a, b)
        assert standby.stop() == 0 and holder.stop() == 0
        ids_a = {e["run_id"] for e in a.events("cycle_done")}
        ids_b = {e["run_id"] for e in b.events("cycle_done")}

    runs = sorted(cycles(), key=lambda r: r.started_at)
    with store.engine.connect() as conn:
        rows = conn.execute(select(s.runs.c.run_id, s.runs.c.runner)).all()
    runners = {r.run_id: r.runner for r in rows}
    store.close()
    # one pipeline, two replicas: the lease gives it to one of them, the other stands by
    assert len({runners[r.run_id] for r in runs}) == 1
    assert {runners[r.run_id] for r in runs} < replicas
    assert not (ids_a and ids_b)
    for x, y in itertools.pairwise(runs):
        assert x.finished_at is not None and x.finished_at <= y.started_at, (x, y)
    # each cycle (and so each cursor advance) was done by exactly one replica
    assert not ids_a & ids_b
    assert {r.run_id for r in runs if r.status == "ok"} <= ids_a | ids_b
    assert not systems.crm_duplicates()


def test_a_second_daemon_on_the_same_sqlite_file_refuses_to_start(
    systems: Systems, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "stocksync.yaml",
        [pipeline_config(systems)],
        state_url=f"sqlite:///{tmp_path}/state.db",
    )
    with DaemonProcess(config, tmp_path / "a.log") as first:
        first.wait_event("daemon_started")
        second = run_cli("run", "-c", str(config))
        assert second.returncode == 2, second.stdout + second.stderr
        assert "another stocksync daemon is already running" in second.stderr
        assert first.proc.poll() is None
        assert first.stop() == 0


def test_a_second_daemon_through_a_symlink_to_the_sqlite_file_refuses_to_start(
    systems: Systems, tmp_path: Path
) -> None:
    (tmp_path / "link.db").symlink_to(tmp_path / "state.db")
    first_config, second_config = (
        write_config(
            tmp_path / f"{name}.yaml",
            [pipeline_config(systems)],
            state_url=f"sqlite:///{tmp_path}/{db}",
        )
        for name, db in (("first", "state.db"), ("second", "link.db"))
    )
    with DaemonProcess(first_config, tmp_path / "a.log") as first:
        first.wait_event("daemon_started")
        plain = run_cli("run", "-c", str(first_config))
        linked = run_cli("run", "-c", str(second_config))
        assert linked.returncode == plain.returncode == 2, linked.stdout + linked.stderr
        assert f"already running on {tmp_path.resolve()}/state.db" in linked.stderr
        assert linked.stderr == plain.stderr
        assert first.proc.poll() is None
        assert first.stop() == 0
