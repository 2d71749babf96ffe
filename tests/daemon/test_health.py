"""/healthz and /metrics over HTTP, with the CRM going down and coming back."""

from __future__ import annotations

import re
from pathlib import Path

from tests.daemon.conftest import (
    DaemonProcess,
    Systems,
    pipeline_config,
    receipt,
    wait_until,
    write_config,
)

METRICS = (
    "stocksync_movements_pulled_total",
    "stocksync_movements_applied_total",
    "stocksync_pushes_total",
    "stocksync_outbox_rows",
    "stocksync_open_conflicts",
    "stocksync_cycle_duration_seconds",
    "stocksync_last_success_timestamp_seconds",
    "stocksync_cursor_lag_seconds",
    "stocksync_freshness_seconds",
    "stocksync_lock_skips_total",
)


def sample(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_healthz_and_metrics(systems: Systems, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "stocksync.yaml",
        [pipeline_config(systems)],
        state_url=f"sqlite:///{tmp_path}/state.db",
    )
    systems.crm_down()  # before the first success: 503
    with DaemonProcess(config, tmp_path / "run.log") as daemon:
        first = daemon.get("/healthz")
        assert first.status_code == 503
        assert first.json()["status"] == "fail"
        assert "no successful cycle yet" in first.json()["reason"]
        daemon.wait_event("cycle_degraded")
        assert daemon.get("/healthz").status_code == 503

        systems.crm_up()
        wait_until(lambda: daemon.get("/healthz").status_code == 200, 20, "healthy")
        body = daemon.get("/healthz").json()
        assert body["status"] == "ok" and body["pipelines"]["main"]["last_success"]
        wait_until(systems.in_sync, 20, "first sync")

        text = daemon.get("/metrics").text
        for name in METRICS:
            assert f"# TYPE {name.removesuffix('_total')}" in text, name
        assert 'stocksync_cycle_duration_seconds_count{pipeline="main"}' in text
        assert 'stocksync_cursor_lag_seconds{pipeline="main",stream="purchase_receipt"}' in text
        assert 'stocksync_freshness_seconds{pipeline="main"}' in text
        pulled = sample(text, "stocksync_movements_pulled_total", 'pipeline="main"')
        pushed = sample(text, "stocksync_pushes_total", 'pipeline="main",result="pushed"')
        assert pulled > 0 and pushed > 0

        receipt(systems, "1.01.001", "CK002", "3")
        wait_until(systems.in_sync, 20, "the new receipt in the CRM")

        def grew() -> bool:
            now = daemon.get("/metrics").text
            return (
                sample(now, "stocksync_movements_applied_total", 'pipeline="main"') > 0
                and sample(now, "stocksync_pushes_total", 'pipeline="main",result="pushed"')
                > pushed
            )

        wait_until(grew, 10, "counters to increase")

        systems.crm_down()  # down for more than 3 intervals: 503 with the reason
        failing = wait_until(
            lambda: (r := daemon.get("/healthz")).status_code == 503 and r, 15, "unhealthy"
        )
        reason = failing.json()["reason"]
        assert "main: last successful cycle" in reason, reason
        systems.crm_up()
        wait_until(lambda: daemon.get("/healthz").status_code == 200, 20, "healthy again")
        assert daemon.stop() == 0
