"""A memory pipeline whose ledger holds the forecast tests' keys, synced once per session."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.memory import sink as memory_sink
from connectors.memory import source as memory_source
from connectors.memory.sink import MemoryCrm
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.model import Movement, MovementKind
from sync.runtime import build_pipeline, open_store, run_cycle
from tests.reconcile.conftest import memory_yaml

NAME = "fccli"
EXTRA = (
    "    alerts: {thresholds: {NEG: 3}}\n"
    "    forecast: {lead_time_days: 4, review_days: 3, horizon_days: 14}\n"
)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """IDLE: stock, no movement; NEW: shipped 4, 0, 5 on its three days; NEG: shipped 6 with
    no stock; SEAS: 120 days of a weekly pattern. Forecast settings: lead time 4 days."""
    tmp = tmp_path_factory.mktemp("fc")
    path = tmp / "stocksync.yaml"
    path.write_text(memory_yaml(NAME, EXTRA, f"sqlite:///{tmp / 'state.db'}"))
    erp, crm = MemoryErp(), MemoryCrm()
    memory_source.REGISTRY[NAME], memory_sink.REGISTRY[NAME] = erp, crm
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    erp.set_opening("IDLE", "WH-MAIN", 50)
    erp.set_opening("NEW", "WH-MAIN", 20)
    erp.set_opening("SEAS", "WH-MAIN", 10_000)

    def ship(key: str, sku: str, qty: int, days_ago: int) -> None:
        at = today - timedelta(days=days_ago)
        erp.put(Movement(key, MovementKind.SHIPMENT, sku, "WH-MAIN", Decimal(-qty), at, at))

    ship("m:so:n1:1", "NEW", 4, 3)  # a new key: 4, 0, 5 on its three days
    ship("m:so:n2:1", "NEW", 5, 1)
    ship("m:so:g1:1", "NEG", 6, 1)  # shipped with no stock: on hand −6
    for day in range(1, 121):  # 120 days: 9–11 a day on weekdays, 2 at weekends
        weekend = (today - timedelta(days=day)).weekday() > 4
        ship(f"m:so:s{day}:1", "SEAS", 2 if weekend else 9 + day % 3, day)
    settings = cfg.load(path)
    store = open_store(settings)
    run_cycle(build_pipeline(settings.pipeline(NAME), store))
    yield path
    store.close()
    memory_source.REGISTRY.pop(NAME, None)
    memory_sink.REGISTRY.pop(NAME, None)
