"""Hot reload: invalid edits are rejected and logged, valid ones apply without a restart."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from sync.service import daemon as daemon_module
from sync.service.daemon import Daemon
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


# -- issue 16: a config that validates but fails while being applied -----------------------


@pytest.fixture
def live(systems: Systems, tmp_path: Path) -> Iterator[tuple[Daemon, Path, str]]:
    """An in-process daemon (so a failure can be injected) with ``main`` and ``aux`` cycling."""
    url = f"sqlite:///{tmp_path}/state.db"
    path = tmp_path / "stocksync.yaml"
    write_config(path, [pipeline_config(systems), _AUX], state_url=url, metrics_port=None)
    daemon = Daemon(path)
    daemon.start()
    try:
        wait_until(systems.in_sync, 30, "first sync")
        yield daemon, path, url
    finally:
        daemon.stop.set()
        assert daemon.shutdown() == 0


_AUX = {
    "name": "aux",
    "schedule": {"interval_s": 1},
    "erp": {"type": "memory"},
    "crm": {"type": "memory-crm"},
}


def _cycles_after(url: str, at: datetime, name: str) -> int:
    store = StateStore(url)
    try:
        return len(
            [r for r in store.runs(name, limit=50) if r.job == "cycle" and r.started_at > at]
        )
    finally:
        store.close()


def _still_cycling(daemon: Daemon, systems: Systems, url: str) -> None:
    at = datetime.now(UTC)
    receipt(systems, "1.02.001", "CK003", "7")
    wait_until(systems.in_sync, 20, "sync to continue on the old config")
    wait_until(lambda: _cycles_after(url, at, "aux") >= 2, 20, "aux to keep cycling")
    assert _cycles_after(url, at, "main") >= 1


def test_a_job_the_scheduler_refuses_leaves_the_old_pipelines_running(
    systems: Systems, live: tuple[Daemon, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, path, url = live
    jobs_before = sorted(j.id for j in daemon.jobs.scheduler.get_jobs())
    main_before = daemon.slots["main"].pipeline
    # main changed (rebuilt), aux removed, "extra" added: the add of extra:cycle raises
    changed = pipeline_config(systems, pull={"page_size": 10, "overlap_s": 5})
    write_config(path, [changed, {**_AUX, "name": "extra"}], state_url=url, metrics_port=None)
    add_job = daemon.jobs.scheduler.add_job

    def refuse_extra(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("id") == "extra:cycle":
            raise OverflowError("date value out of range")
        return add_job(*args, **kwargs)

    monkeypatch.setattr(daemon.jobs.scheduler, "add_job", refuse_extra)
    with capture_logs() as logs:
        assert daemon.reload("test") is False
    failed = [e for e in logs if e["event"] == "reload_failed"]
    assert len(failed) == 1 and failed[0]["error"] == "OverflowError: date value out of range"
    assert not [e for e in logs if e["event"] == "config_applied"]
    assert sorted(j.id for j in daemon.jobs.scheduler.get_jobs()) == jobs_before
    assert sorted(daemon.slots) == ["aux", "main"]
    assert daemon.slots["main"].pipeline is main_before
    assert daemon.settings.pipelines[0].pull.page_size == 50
    _still_cycling(daemon, systems, url)


def test_a_connector_that_cannot_be_built_leaves_the_old_pipelines_running(
    systems: Systems, live: tuple[Daemon, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, path, url = live
    jobs_before = sorted(j.id for j in daemon.jobs.scheduler.get_jobs())
    secret = systems.connectors()["crm"]["app_secret"]
    # aux disabled and main's interval changed, but a new pipeline's build raises
    write_config(
        path,
        [
            pipeline_config(systems, schedule={"interval_s": 3}),
            {**_AUX, "enabled": False},
            {**_AUX, "name": "extra"},
        ],
        state_url=url,
        metrics_port=None,
    )
    build = daemon_module.build_pipeline

    def fail_extra(p: Any, store: Any) -> Any:
        if p.name == "extra":
            raise RuntimeError(f"login refused for secret {secret}")
        return build(p, store)

    monkeypatch.setattr(daemon_module, "build_pipeline", fail_extra)
    with capture_logs() as logs:
        assert daemon.reload("test") is False
    failed = [e for e in logs if e["event"] == "reload_failed"]
    assert len(failed) == 1 and failed[0]["error"] == "RuntimeError: login refused for secret ***"
    assert sorted(j.id for j in daemon.jobs.scheduler.get_jobs()) == jobs_before
    assert sorted(daemon.slots) == ["aux", "main"]
    assert daemon.slots["main"].pipeline.settings.schedule.interval_s == 1
    _still_cycling(daemon, systems, url)
