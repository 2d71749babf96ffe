"""A bound CRM record deleted or invalidated (作废) behind stocksync's back, or a tenant reset.

The update by the bound id is refused (32000 "数据不存在" / "数据已作废", RecordGoneError);
the pusher drops the binding and, in the same attempt, looks the key up and creates the
record again (architecture §5). Every case runs the real Pusher and Fxiaoke sink over
HTTP against the emulator and ends with exactly one live record per key.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from sync.model import StockKey
from sync.resync import queue_resync
from sync.state import StateStore
from sync.state.store import DEAD, LEVEL, MOVEMENT, level_ref
from tests.fxiaoke.rig import CREATE, M_CREATE, UPDATE, Rig

KEY = StockKey("SKU-0001", "WH-MAIN")
REF = level_ref(KEY)


@pytest.fixture
def rig(store: StateStore) -> Iterator[Rig]:
    r = Rig(store, mirror=False)
    yield r
    r.close()


def _bound_level(rig: Rig, qty: int = 10) -> str:
    """Push ``qty`` of KEY into a fresh StockObj; its CRM id (the binding's)."""
    rig.put(KEY.sku, KEY.warehouse, qty)
    rig.pull()
    assert rig.push().created == 1
    binding = rig.store.binding(rig.pipeline, LEVEL, REF)
    assert binding is not None
    return binding.crm_id


def _retire(rig: Rig, api_name: str, crm_id: str, how: str) -> None:
    """A person invalidates (作废) the record, and for "deleted" deletes it for good."""
    rig.emulator.store.set_status(api_name, [crm_id], "invalid")
    if how == "deleted":
        rig.emulator.store.delete(api_name, [crm_id])


def _assert_recreated(rig: Rig, old_id: str, qty: Decimal) -> None:
    (record,) = rig.stock_by_key()[KEY]  # exactly one live StockObj for the key
    assert Decimal(record["real_stock"]) == qty
    assert record["_id"] != old_id
    binding = rig.store.binding(rig.pipeline, LEVEL, REF)
    assert binding is not None and binding.crm_id == record["_id"]
    assert rig.store.outbox_rows(rig.pipeline) == []


@pytest.mark.parametrize("how", ["deleted", "invalidated"])
def test_a_changed_level_re_creates_a_record_gone_from_the_crm(rig: Rig, how: str) -> None:
    old_id = _bound_level(rig)
    _retire(rig, "StockObj", old_id, how)
    rig.put(KEY.sku, KEY.warehouse, 5)
    rig.pull()
    rig.reset()
    with capture_logs() as logs:
        report = rig.push()
    assert (report.pushed, report.created, report.dead, report.retried) == (1, 1, 0, 0)
    assert (rig.calls()[UPDATE], rig.calls()[CREATE]) == (1, 1)  # refused update, one create
    _assert_recreated(rig, old_id, Decimal(15))
    (gone,) = [e for e in logs if e["event"] == "binding_gone"]
    assert (gone["ref"], gone["crm_id"], gone["target"]) == ("SKU-0001@WH-MAIN", old_id, LEVEL)


def test_resync_of_an_unchanged_level_re_creates_a_deleted_record(rig: Rig) -> None:
    old_id = _bound_level(rig, 7)
    _retire(rig, "StockObj", old_id, "deleted")
    assert rig.push().pushed == 0  # unchanged: an ordinary push writes nothing
    assert queue_resync(rig.store, rig.pipeline, [KEY], rig.clock.now()) == 1
    report = rig.push()
    assert (report.created, report.dead) == (1, 0)
    _assert_recreated(rig, old_id, Decimal(7))


def test_a_dead_row_requeued_by_retry_re_creates_the_record(rig: Rig) -> None:
    """A row that died for another cause (a refused update) while its record was deleted:
    `stocksync retry` (requeue_dead) now pushes it through."""
    old_id = _bound_level(rig)
    rig.put(KEY.sku, KEY.warehouse, 2)
    rig.pull()
    rig.emulator.fail_next(UPDATE, "error:15002")
    assert rig.push().dead == 1
    _retire(rig, "StockObj", old_id, "deleted")
    (dead,) = rig.store.outbox_rows(rig.pipeline)
    assert dead.state == DEAD
    assert rig.store.requeue_dead([dead.id], rig.clock.now()) == 1
    assert rig.push().created == 1
    _assert_recreated(rig, old_id, Decimal(12))


def test_a_deleted_movement_mirror_record_is_created_again(store: StateStore) -> None:
    rig = Rig(store, mirror=True)
    try:
        line = rig.put(KEY.sku, KEY.warehouse, 4)
        rig.pull()
        rig.push()
        (old,) = rig.mirror_by_key()[line.key]
        _retire(rig, "stock_movement__c", old["_id"], "deleted")
        rig.clock.advance(60)
        rig.erp.put(line._replace(qty=Decimal(6)))  # the document line is edited
        rig.pull()
        rig.reset()
        report = rig.push()
        assert report.dead == 0 and rig.calls()[M_CREATE] == 1
        (new,) = rig.mirror_by_key()[line.key]
        assert new["_id"] != old["_id"] and Decimal(new["qty__c"]) == 6
        binding = store.binding(rig.pipeline, MOVEMENT, line.key)
        assert binding is not None and binding.crm_id == new["_id"]
        assert Decimal(rig.stock_by_key()[KEY][0]["real_stock"]) == 6
    finally:
        rig.close()
