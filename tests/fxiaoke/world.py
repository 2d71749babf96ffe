"""A whole pipeline built from YAML: MemoryErp → ledger → FxiaokeSink → emulator in-process."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from connectors._emulator import transport_for
from connectors.fxiaoke.emulator import FxiaokeEmulator, build_emulator
from connectors.memory import source as memory_source
from connectors.memory.source import MemoryErp
from sync import config as cfg
from sync.model import Movement, MovementKind, StockKey
from sync.runtime import Pipeline, build_pipeline, run_cycle
from sync.state import StateStore
from tests.fxiaoke.conftest import BASE_URL, FakeClock

KEY = StockKey("SKU-0001", "WH-MAIN")


class World:
    """One pipeline: MemoryErp → ledger → FxiaokeSink → emulator (in-process)."""

    def __init__(
        self, store: StateStore, clock: FakeClock, extra: str = "", crm_extra: str = ""
    ) -> None:
        self.clock = clock
        self.emulator: FxiaokeEmulator = build_emulator("demo", clock=clock.time)
        self.name = f"p{uuid.uuid4().hex[:10]}"
        self.erp = memory_source.REGISTRY[self.name] = MemoryErp(now=clock.now)
        info = self.emulator.connection_info(BASE_URL)
        crm = ", ".join(
            f"{k}: '{info[k]}'" for k in ("app_id", "app_secret", "permanent_code", "open_user_id")
        )
        yaml = (
            "pipelines:\n"
            f"  - name: {self.name}\n"
            "    erp: {type: memory}\n"
            f"    crm: {{type: fxiaoke, base_url: '{BASE_URL}', {crm}{crm_extra}}}\n"
            "    pull: {overlap_s: 0}\n" + extra
        )
        settings = cfg.parse(yaml).pipeline(self.name)
        self.pipeline: Pipeline = build_pipeline(
            settings, store, now=clock.now, http_transport=transport_for(self.emulator)
        )
        self.lines = 0

    def put(self, qty: str, key: StockKey = KEY) -> None:
        self.lines += 1
        self.clock.advance(1)
        amount = Decimal(qty)
        kind = MovementKind.RECEIPT if amount > 0 else MovementKind.SHIPMENT
        now = self.clock.now()
        self.erp.put(
            Movement(f"memory:d:{self.lines}:1", kind, key.sku, key.warehouse, amount, now, now)
        )

    def cycle(self) -> tuple[int, int]:
        """One pull → push; (created + updated, skipped)."""
        push = run_cycle(self.pipeline).push
        return push.created + push.updated, push.skipped

    def record(self, key: StockKey = KEY) -> dict[str, str]:
        skus = {r["_id"]: r["product_code"] for r in self.emulator.records("ProductObj")}
        (rec,) = [r for r in self.emulator.stock_records() if skus[r["product_id"]] == key.sku]
        return rec


MakeWorld = Callable[..., World]


@pytest.fixture
def make_world(store: StateStore, clock: FakeClock) -> Iterator[MakeWorld]:
    worlds: list[World] = []

    def factory(extra: str = "", crm_extra: str = "") -> World:
        worlds.append(World(store, clock, extra, crm_extra))
        return worlds[-1]

    yield factory
    for w in worlds:
        w.pipeline.close()
        memory_source.REGISTRY.pop(w.name, None)
