"""Sink behaviour beyond the contract: resolution caches, orphans, check(), number format."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.fxiaoke.emulator import FxiaokeEmulator
from connectors.fxiaoke.mapping import UNMAPPED_PREFIX, decimal_str
from connectors.fxiaoke.sink import FxiaokeSink
from sync.errors import ConfigError, PermanentError, UnmappedError
from sync.model import LevelValue, Movement, MovementKind, StockKey
from tests.fxiaoke.conftest import FakeClock, SinkFactory

QUERY = "/cgi/crm/v2/data/query"


@pytest.mark.parametrize(
    ("value", "text"),
    [("100", "100"), ("1E+2", "100"), ("12.500", "12.5"), ("-0.00", "0"), ("0.0001", "0.0001")],
)
def test_numbers_are_plain_strings(value: str, text: str) -> None:
    assert decimal_str(Decimal(value)) == text


def test_unknown_sku_is_requeried_only_after_the_ttl(
    make_sink: SinkFactory, emulator: FxiaokeEmulator, clock: FakeClock
) -> None:
    sink = make_sink(lookup_ttl_s=300)
    key = StockKey("LATE-1", "WH-MAIN")
    for _ in range(3):
        with pytest.raises(UnmappedError) as info:
            sink.find_level(key)
        assert (info.value.what, info.value.code) == ("sku", "LATE-1")
    assert emulator.calls[QUERY] == 1
    emulator.add_product("LATE-1")
    clock.advance(301)
    assert sink.find_level(key) is None  # now known; no stock record yet
    assert emulator.calls[QUERY] == 4  # product again, warehouse, stock


def test_unknown_warehouse_is_reported(sink: FxiaokeSink) -> None:
    with pytest.raises(UnmappedError) as info:
        sink.create_level(StockKey("SKU-0001", "WH-NOWHERE"), LevelValue(Decimal(1), Decimal(1)))
    assert (info.value.what, info.value.code) == ("warehouse", "WH-NOWHERE")


def test_explicit_maps_override_lookups(make_sink: SinkFactory, emulator: FxiaokeEmulator) -> None:
    wh = emulator.add_warehouse("CRM-OTHER-NUMBER", "Mapped")
    sink = make_sink(warehouse_map={"ERP-WH": wh})
    crm_id = sink.create_level(StockKey("SKU-0003", "ERP-WH"), LevelValue(Decimal(2), Decimal(2)))
    (rec,) = emulator.stock_records()
    assert rec["_id"] == crm_id and rec["warehouse_id"] == wh
    (level,) = list(sink.read_levels())
    assert level.stock_key == StockKey("SKU-0003", "ERP-WH")


def test_read_levels_reports_unmappable_records_as_orphans(
    sink: FxiaokeSink, emulator: FxiaokeEmulator
) -> None:
    pid = emulator.store.create("ProductObj", {"name": "no code", "price": "1"})["_id"]
    wid = emulator.records("WarehouseObj")[0]["_id"]
    emulator.add_stock(pid, wid, "4")
    (level,) = list(sink.read_levels())
    assert level.sku == f"{UNMAPPED_PREFIX}{pid}"
    assert level.warehouse == "WH-MAIN" and level.qty == Decimal(4)


def test_read_levels_skips_invalid_records_and_pages(
    sink: FxiaokeSink, emulator: FxiaokeEmulator
) -> None:
    ids = [
        sink.create_level(StockKey(f"SKU-{i:04d}", wh), LevelValue(Decimal(i), Decimal(i)))
        for i in range(1, 21)
        for wh in ("WH-MAIN", "WH-EAST")
    ]
    emulator.store.set_status("StockObj", ids[:3], "invalid")
    levels = list(sink.read_levels())
    assert sorted(lvl.crm_id for lvl in levels) == sorted(ids[3:])


def test_movement_fields_are_written(sink: FxiaokeSink, emulator: FxiaokeEmulator) -> None:
    at = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    movement = Movement(
        "k3:SAL:1:2", MovementKind.SHIPMENT, "SKU-0001", "WH-MAIN", Decimal("-2.50"), at, at, "SO-1"
    )
    crm_id = sink.create_movement(movement)
    (rec,) = emulator.movement_records()
    assert rec["_id"] == crm_id
    assert rec["erp_key__c"] == "k3:SAL:1:2" and rec["qty__c"] == "-2.5"
    assert rec["occurred_at__c"] == int(at.timestamp() * 1000) and rec["active__c"] is True
    assert rec["kind__c"] == "shipment" and rec["doc_no__c"] == "SO-1"


def test_check_describes_every_object(make_sink: SinkFactory) -> None:
    line = make_sink(verify_movement_object=True).check()
    assert "StockObj" in line and "stock_movement__c" in line and "\n" not in line


def test_check_leaves_the_movement_object_alone_unless_asked(sink: FxiaokeSink) -> None:
    assert "stock_movement__c" not in sink.check()


def test_check_lists_every_missing_object_and_field(make_sink: SinkFactory) -> None:
    sink = make_sink(
        stock_real_field="nope_stock", movement_object="missing__c", verify_movement_object=True
    )
    with pytest.raises(ConfigError) as info:
        sink.check()
    paths = {p.path for p in info.value.problems}
    # real_stock is required (reference §7) and no longer filled: every create would fail
    assert paths == {"stock_real_field", "movement_object", "stock_object"}
    (unfilled,) = [p for p in info.value.problems if p.path == "stock_object"]
    assert "requires field 'real_stock'" in unfilled.message


def test_check_names_a_required_field_stocksync_would_leave_empty(make_sink: SinkFactory) -> None:
    # the fault: no blocked_stock, and every StockObj create is refused
    sink = make_sink(stock_blocked_field=None)
    with pytest.raises(ConfigError) as info:
        sink.check()
    (problem,) = info.value.problems
    assert problem.path == "stock_object"
    assert "requires field 'blocked_stock'" in problem.message
    with pytest.raises(PermanentError, match="必填字段 blocked_stock 未填写"):
        sink.create_level(StockKey("SKU-0001", "WH-MAIN"), LevelValue(Decimal(1), Decimal(1)))
