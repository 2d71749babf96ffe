"""SIGTERM mid-cycle: a clean exit within the grace period, and the next start loses nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from sync.state import StateStore
from tests.daemon.conftest import (
    MATERIALS,
    DaemonProcess,
    Systems,
    pipeline_config,
    receipt,
    wait_until,
    write_config,
)

GRACE_S = 15


def test_sigterm_during_a_cycle_exits_0_and_the_next_start_resumes(
    systems: Systems, tmp_path: Path
) -> None:
    for i in range(120):  # enough pages that the first cycle is still pulling at SIGTERM
        receipt(systems, MATERIALS[i % 4], "CK002", f"{i % 7 + 1}")
    url = f"sqlite:///{tmp_path}/state.db"
    config = write_config(
        tmp_path / "stocksync.yaml",
        [pipeline_config(systems, pull={"page_size": 10, "overlap_s": 5})],
        state_url=url,
        grace_s=GRACE_S,
    )
    systems.erp_http.delay_s = 0.05
    with DaemonProcess(config, tmp_path / "run1.log") as daemon:
        daemon.wait_event("daemon_started")
        daemon.wait_event("stream_pulled")  # the first cycle is under way
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(GRACE_S + 5) == 0, daemon.tail()
        took = time.monotonic() - sent
        assert took < GRACE_S, took
        assert daemon.events("daemon_stopped")
    store = StateStore(url)
    try:
        runs = store.runs("main")
        assert runs and all(r.status != "running" for r in runs), runs
        assert not systems.in_sync()  # it really was interrupted
    finally:
        store.close()

    receipt(systems, "1.01.001", "CK003", "5")  # the ERP moves on while it is down
    systems.erp_http.delay_s = 0
    with DaemonProcess(config, tmp_path / "run2.log") as daemon:
        daemon.wait_event("daemon_started")  # a SIGTERM before the handlers is another test
        wait_until(systems.in_sync, 30, "CRM equal to ERP after the restart")
        assert daemon.stop() == 0
    assert not systems.crm_duplicates()
