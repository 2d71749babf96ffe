"""`stocksync demo`, the README's main job, as a user runs it — then the report on its state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stocksync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKSYNC_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=180,
        check=False,
    )


def test_demo_ends_equal_and_its_report_makes_sense(tmp_path: Path) -> None:
    state = tmp_path / "demo"
    demo = stocksync("demo", "--duration", "4", "--state-dir", str(state), cwd=tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "ERP and CRM are equal" in demo.stdout
    assert "product A at WH-MAIN = 115" in demo.stdout
    assert "TABLET-S@WH-MAIN (available 5 < 10)" in demo.stdout

    config = str(state / "stocksync.yaml")
    report = stocksync("report", "-c", config, "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = {(r["sku"], r["warehouse"]): r for r in json.loads(report.stdout)}
    phones = rows[("PHONE-X", "WH-MAIN")]
    # 200 opening − 100 shipped − 40 transferred + 30 returned = 90 on hand; customer demand
    # 100 − 30 = 70 over 30 days (2.3333 a day: 38.6 days); the transfer is no demand
    assert Decimal(phones["on_hand"]) == 90
    assert (phones["demand"], phones["shipments"], phones["customer_returns"]) == (
        "70",
        "100",
        "30",
    )
    assert phones["transfers_out"] == "40"
    assert Decimal(phones["days_of_cover"]) == Decimal("38.6")
    tablets = rows[("TABLET-S", "WH-MAIN")]
    # 80 − 50 shipped − 25 reserved and then shipped; nothing reserved at the end
    assert Decimal(tablets["on_hand"]) == 5 and Decimal(tablets["demand"]) == 75
    assert Decimal(tablets["reserved"]) == 0 and Decimal(tablets["available"]) == 5
    assert Decimal(tablets["reorder_qty"]) > 0
    assert rows[("A-100", "WH-MAIN")]["on_hand"] == "115"

    alerts = stocksync("alerts", "list", "-c", config, "--format", "json", cwd=tmp_path)
    assert alerts.returncode == 0, alerts.stderr
    assert [(a["sku"], a["warehouse"]) for a in json.loads(alerts.stdout)] == [
        ("TABLET-S", "WH-MAIN")
    ]
