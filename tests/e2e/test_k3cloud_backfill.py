"""``stocksync backfill --since DAY`` starts at midnight of DAY in the ERP's time zone."""

from __future__ import annotations

from datetime import datetime

import yaml

from sync.runtime import open_store
from tests.test_cli import run

from .conftest import Systems


def test_backfill_since_is_midnight_in_erp_timezone(systems: Systems) -> None:
    """erp.timezone Asia/Shanghai: 2024-03-31 begins at 2024-03-30 16:00 UTC. A bill stamped
    00:30 local that day is re-pulled (read as UTC midnight it was not); one stamped 23:30
    the evening before is not."""
    clock = [datetime(2024, 3, 30, 23, 30)]
    systems.erp.store.now = lambda: clock[0]
    line = {"material": "A-100", "qty": "100", "stock": "WH-MAIN"}
    systems.erp.create_document("STK_InStock", [line], status="C")
    clock[0] = datetime(2024, 3, 31, 0, 30)
    systems.erp.create_document("STK_InStock", [{**line, "qty": "1"}], status="C")
    config = systems.tmp / "stocksync.yaml"
    config.write_text(yaml.safe_dump(systems.config()))
    result = run(
        "backfill", "--pipeline", "main", "--since", "2024-03-31", "--stream",
        "purchase_receipt", "-c", str(config),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "purchase_receipt: 1 read" in result.stdout
    store = open_store(systems.settings())
    try:
        levels = store.levels("main")
    finally:
        store.close()
    assert {(k.sku, k.warehouse): v for k, v in levels.items() if v} == {("A-100", "WH-MAIN"): 1}
