"""Hot reload: invalid edits are rejected and logged, valid ones apply without a restart."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

from sync.state import StateStore
from tests.daemon.conftest import (
    DaemonProcess,
    Systems,
    pipeline_config,
    receipt,
    wait_until,
    write_config,
)


def test_invalid_edit_is_rejected_and_a_valid_one_applies_live(
    systems: Systems, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    path = tmp_path / "stocksync.yaml"
    aux = {
        "name": "aux",
        "schedule": {"interval_s": 1},
        "erp": {"type": "memory"},
        "crm": {"type": "memory-crm"},
    }
    write_config(path, [pipeline_config(systems), aux], state_url=url)
    store = StateStore(url)
    with DaemonProcess(path, tmp_path / "run.log") as daemon:
        wait_until(systems.in_sync, 30, "first sync")
        daemon.wait_event("cycle_done", count=3)

        # an invalid edit: two problems, both logged in one event, the old config keeps running
        bad = pipeline_config(systems, schedule={"interval_s": 0}, bogus=1)
        write_config(path, [bad, aux], state_url=url)
        rejected = daemon.wait_event("config_rejected")
        problems = " | ".join(rejected["problems"])
        assert "pipelines[0].schedule.interval_s" in problems
        assert "pipelines[0].bogus" in problems and "unknown key" in problems
        receipt(systems, "1.02.001", "CK003", "11")
        wait_until(systems.in_sync, 20, "sync to continue on the old config")
        assert daemon.proc.poll() is None

        # a valid edit: main every 2 s, aux disabled
        write_config(
            path,
            [pipeline_config(systems, schedule={"interval_s": 2}), {**aux, "enabled": False}],
            state_url=url,
        )
        applied = daemon.wait_event("config_applied")
        assert "aux:cycle" in applied["removed"] and "main:cycle" in applied["rescheduled"]
        at = datetime.fromisoformat(applied["timestamp"].replace("Z", "+00:00"))

        def later_main_cycles() -> list[datetime]:
            runs = [r for r in store.runs("main", limit=50) if r.job == "cycle"]
            return sorted(r.started_at for r in runs if r.started_at > at)

        starts = wait_until(
            lambda: len(later_main_cycles()) >= 3 and later_main_cycles(), 20, "3 cycles"
        )
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        assert all(g > 1.5 for g in gaps), gaps
        assert not [r for r in store.runs("aux", limit=50) if r.started_at > at]
        receipt(systems, "2.01.001", "CK002", "4")
        wait_until(systems.in_sync, 20, "sync on the new config")
        assert daemon.stop() == 0
    store.close()
