"""Client-side rate limiting keeps below the CRM's per-path limit; its 30004s are retried."""

from __future__ import annotations

from decimal import Decimal

from connectors.fxiaoke.emulator import FxiaokeEmulator
from sync.model import LevelValue, StockKey
from tests.fxiaoke.conftest import FakeClock, SinkFactory

UPDATE = "/cgi/crm/v2/data/update"
KEY = StockKey("SKU-0001", "WH-MAIN")


def test_500_writes_at_the_documented_limit_never_hit_30004(
    make_sink: SinkFactory, emulator: FxiaokeEmulator, clock: FakeClock
) -> None:
    sink = make_sink(rate_limit_calls=100, rate_limit_period_s=20.0)
    crm_id = sink.create_level(KEY, LevelValue(Decimal(0), Decimal(0)))
    start = clock.time()
    for i in range(500):
        sink.update_level(crm_id, KEY, LevelValue(Decimal(i), Decimal(i)))
    assert emulator.errors[30004] == 0
    assert emulator.calls[UPDATE] == 500
    assert clock.time() - start >= 80.0  # 500 calls at 100 per 20 s need four full windows
    assert emulator.stock_records()[0]["real_stock"] == "499"


def test_lower_server_limit_is_absorbed_by_retries(
    make_sink: SinkFactory, emulator: FxiaokeEmulator, clock: FakeClock
) -> None:
    emulator.rate_limit_calls = 30
    sink = make_sink(rate_limit_calls=100, rate_limit_period_s=20.0, max_attempts=10)
    crm_id = sink.create_level(KEY, LevelValue(Decimal(0), Decimal(0)))
    for i in range(1, 201):
        sink.update_level(crm_id, KEY, LevelValue(Decimal(i), Decimal(i)))
    assert emulator.errors[30004] > 0
    assert emulator.errors[0] >= 200
    assert emulator.stock_records()[0]["real_stock"] == "200"
    assert clock.slept  # backoff happened on the injected sleep, not the wall clock
