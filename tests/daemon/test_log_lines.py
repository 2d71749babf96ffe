"""The daemon's log is one JSON object per line, library records included (issue 16, defect 8).

APScheduler, httpx and the other libraries log through the standard ``logging``
module; their records used to reach stderr as plain text between the JSON lines.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemon.conftest import (
    DaemonProcess,
    Systems,
    pipeline_config,
    receipt,
    wait_until,
    write_config,
)

WAREHOUSE = "成品仓"
URL_PASSWORD = "Url-pw-in-log-8"
SKIPPED = "maximum number of running instances reached"


def test_library_records_are_masked_json_lines_with_chinese_kept(
    systems: Systems, tmp_path: Path
) -> None:
    systems.fx.add_warehouse(WAREHOUSE)
    receipt(systems, "1.01.001", WAREHOUSE, "5")
    pipeline = pipeline_config(systems, alerts={"thresholds": {f"1.01.001@{WAREHOUSE}": 100}})
    # httpx logs each request's URL, userinfo and all
    pipeline["erp"]["server_url"] = pipeline["erp"]["server_url"].replace(
        "http://", f"http://stocksync:{URL_PASSWORD}@"
    )
    config = write_config(
        tmp_path / "stocksync.yaml",
        [pipeline],
        state_url=f"sqlite:///{tmp_path}/state.db",
        metrics_port=None,
        log_level="debug",
    )
    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        daemon.wait_event("stock_low")
        systems.erp_http.delay_s = 0.1  # a cycle outlasts the 1 s interval: APScheduler skips
        wait_until(lambda: SKIPPED in daemon.log_path.read_text("utf-8"), 20, "a skipped tick")
        systems.erp_http.delay_s = 0
        assert daemon.stop() == 0, daemon.tail()
    text = daemon.log_path.read_text("utf-8")
    events = [json.loads(line) for line in text.splitlines()]  # every line, no plain text
    assert all({"event", "level", "logger", "timestamp"} <= e.keys() for e in events), text
    skipped = [e for e in events if SKIPPED in e["event"]]
    assert skipped[0]["logger"] == "apscheduler.scheduler" and skipped[0]["level"] == "warning"
    low = next(e for e in events if e["event"] == "stock_low")
    assert low["warehouse"] == WAREHOUSE and f'"warehouse": "{WAREHOUSE}"' in text
    requests = [e for e in events if e["logger"] == "httpx"]
    assert requests and all(":***@127.0.0.1" in e["event"] for e in requests if "K3" in e["event"])
    assert URL_PASSWORD not in text
