"""Stock locks (锁库) in the emulator's STK_Inventory, and the source's reserved() over them.

Emulator rules from k3cloud-stock-quantities.md §1.1 (what was checked: the
``connectors.k3cloud.locks`` docstring): each row carries FBaseLockQty/FLockQty and
FBaseAvbQty/FAvbQty = on hand − locked; a lock is made on an existing inventory row.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest

from connectors.k3cloud import stock_reads
from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.locks import MSG_NO_ROW, MSG_NOT_POSITIVE, MSG_OVER_LOCKABLE, LockRefused
from connectors.k3cloud.source import K3CloudSource
from sync.errors import ConfigError
from sync.model import Reserved

from .test_emulator import envelope_of, post

COLUMNS = "FMaterialId.FNumber,FStockId.FNumber,FLot.FNumber,FBaseQty,FBaseLockQty,FLockQty,FBaseAvbQty,FAvbQty"  # noqa: E501


def inventory(emulator: K3CloudEmulator, filter_string: str = "") -> list[list[Any]]:
    """STK_Inventory over HTTP, as a client sees it: rows in FieldKeys order."""
    query = {"FormId": "STK_Inventory", "FieldKeys": COLUMNS, "FilterString": filter_string}
    rows: list[list[Any]] = post(emulator, "ExecuteBillQuery", {"data": query})
    return sorted(rows)


def row(material: str, stock: str, lot: str, *qty: int) -> list[Any]:
    on_hand, locked, available = qty
    return [material, stock, lot, on_hand, locked, locked, available, available]


def test_rows_carry_lock_and_available_and_locks_stack(emulator: K3CloudEmulator) -> None:
    emulator.set_opening("A", "W1", 50)
    emulator.set_opening("B", "W1", 8)
    assert inventory(emulator) == [row("A", "W1", "", 50, 0, 50), row("B", "W1", "", 8, 0, 8)]
    emulator.lock("A", "W1", 10)
    emulator.lock("A", "W1", "2.5")
    assert inventory(emulator) == [
        row("A", "W1", "", 50, Decimal("12.5"), Decimal("37.5")),  # type: ignore[arg-type]
        row("B", "W1", "", 8, 0, 8),
    ]
    assert emulator.reserved() == {("A", "W1"): Decimal("12.5")}


@pytest.mark.parametrize("spec", ["FBaseLockQty <> 0", "FBaseLockQty > 0", "fbaselockqty>=1"])
def test_lock_filters_return_only_locked_rows(emulator: K3CloudEmulator, spec: str) -> None:
    for material in ("A", "B", "C"):
        emulator.set_opening(material, "W1", 10)
    emulator.lock("B", "W1", 4)
    assert inventory(emulator, spec) == [row("B", "W1", "", 10, 4, 6)]
    assert inventory(emulator, "FBaseAvbQty < 10") == [row("B", "W1", "", 10, 4, 6)]


def test_change_unlock_and_ship_locked(emulator: K3CloudEmulator) -> None:
    emulator.set_opening("A", "W1", 40)
    lock = emulator.lock("A", "W1", 10)
    emulator.change_lock(lock, 15)
    assert inventory(emulator) == [row("A", "W1", "", 40, 15, 25)]
    fid = emulator.ship_locked(lock, 6)  # on hand and lock drop together, available stays
    assert inventory(emulator) == [row("A", "W1", "", 34, 9, 25)]
    bill = emulator.store.get("SAL_OUTSTOCK", fid)
    assert (bill.status, bill.cancel) == ("C", "A")
    assert [(ln.material, ln.stocks, ln.base_qty) for ln in bill.lines] == [
        ("A", ["W1"], Decimal(6))
    ]
    emulator.ship_locked(lock)  # the rest: the lock is gone
    assert inventory(emulator) == [row("A", "W1", "", 25, 0, 25)]
    with pytest.raises(KeyError):
        emulator.unlock(lock)
    other = emulator.lock("A", "W1", 5)
    emulator.unlock(other)  # released by cancellation: on hand untouched
    assert inventory(emulator) == [row("A", "W1", "", 25, 0, 25)]
    assert emulator.reserved() == {}
    zero = emulator.lock("A", "W1", 5)
    emulator.change_lock(zero, 0)  # a change to 0 releases too
    assert emulator.reserved() == {}


def test_a_lock_beyond_stock_shows_negative_available(emulator: K3CloudEmulator) -> None:
    assert emulator.lock_beyond_stock is True
    emulator.set_opening("A", "W1", 20)
    lock = emulator.lock("A", "W1", 30)
    assert inventory(emulator) == [row("A", "W1", "", 20, 30, -10)]
    emulator.change_lock(lock, 45)
    assert inventory(emulator) == [row("A", "W1", "", 20, 45, -25)]


def test_with_the_switch_off_a_lock_over_available_is_refused() -> None:
    emulator = K3CloudEmulator(lock_beyond_stock=False)
    emulator.set_opening("A", "W1", 20)
    first = emulator.lock("A", "W1", 15)
    with pytest.raises(LockRefused) as caught:
        emulator.lock("A", "W1", 6)  # 5 left to lock
    assert caught.value.message == MSG_OVER_LOCKABLE.format(material="A")
    with pytest.raises(LockRefused):
        emulator.change_lock(first, 21)
    emulator.change_lock(first, 20)  # up to on hand is fine
    emulator.change_lock(first, 3)  # lowering always is
    emulator.lock("A", "W1", 17)
    assert inventory(emulator) == [row("A", "W1", "", 20, 20, 0)]


def test_non_conforming_lock_requests_are_refused(emulator: K3CloudEmulator) -> None:
    emulator.set_opening("A", "W1", 20)
    before = emulator.store.version
    with pytest.raises(LockRefused) as caught:
        emulator.lock("NO-SUCH", "W1", 1)  # no inventory row to lock
    assert caught.value.message == MSG_NO_ROW.format(material="NO-SUCH", stock="W1")
    with pytest.raises(LockRefused):
        emulator.lock("A", "W2", 1)  # a known material, but not in that warehouse
    with pytest.raises(LockRefused):
        emulator.lock("A", "W1", 1, org="200")  # W1 belongs to org 100
    with pytest.raises(LockRefused):
        emulator.lock("A", "W1", 1, lot="L9")
    for qty in (0, -3):
        with pytest.raises(LockRefused) as caught:
            emulator.lock("A", "W1", qty)
        assert caught.value.message == MSG_NOT_POSITIVE
    lock = emulator.lock("A", "W1", 5)
    with pytest.raises(LockRefused):
        emulator.ship_locked(lock, 6)  # more than locked: refused, nothing shipped
    with pytest.raises(LockRefused):
        emulator.change_lock(lock, -1)
    with pytest.raises(KeyError):
        emulator.change_lock("LOCK999999", 1)
    assert emulator.store.docs["SAL_OUTSTOCK"] == {}
    assert emulator.reserved() == {("A", "W1"): Decimal(5)}
    assert emulator.store.version == before + 1  # only the one good lock changed anything


@pytest.mark.parametrize("key", ["FReservedQty", "FBaseLockQtyX", "FLockBaseQty"])
def test_an_unknown_inventory_field_key_is_msgcode_9(emulator: K3CloudEmulator, key: str) -> None:
    emulator.set_opening("A", "W1", 1)
    query = {"FormId": "STK_Inventory", "FieldKeys": f"FMaterialId.FNumber,{key}"}
    status = envelope_of(post(emulator, "ExecuteBillQuery", {"data": query}))
    assert status["MsgCode"] == 9
    assert status["Errors"][0]["Message"] == f"元数据中标识为{key}的字段不存在"
    query = {"FormId": "STK_Inventory", "FieldKeys": "FID", "FilterString": f"{key} <> 0"}
    assert envelope_of(post(emulator, "ExecuteBillQuery", {"data": query}))["MsgCode"] == 9


def test_a_lock_on_a_lot_split_row(emulator: K3CloudEmulator) -> None:
    emulator.set_opening("A", "W1", 30, lot="L1")
    emulator.set_opening("A", "W1", 20, lot="L2")
    emulator.lock("A", "W1", 12, lot="L2")
    emulator.lock("A", "W1", 25)  # no lot named: the first lot with room (L1)
    emulator.lock("A", "W1", 8)  # L1 has 5 left, L2 has 8: L2
    assert inventory(emulator) == [row("A", "W1", "L1", 30, 25, 5), row("A", "W1", "L2", 20, 20, 0)]
    assert emulator.reserved() == {("A", "W1"): Decimal(45)}


# -- the source ---------------------------------------------------------------------


def test_reserved_sums_locked_rows_per_key_in_scope(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    emulator.set_warehouse_org("W9", "200")
    emulator.set_opening("A", "W1", 30, lot="L1")
    emulator.set_opening("A", "W1", 20, lot="L2")
    emulator.set_opening("A", "W2", 5)
    emulator.set_opening("B", "W1", 7)
    emulator.set_opening("A", "W9", 9)
    emulator.set_opening("A", "WX", 9)
    emulator.lock("A", "W1", 10, lot="L1")
    emulator.lock("A", "W1", "2.5", lot="L2")
    emulator.lock("A", "W2", 8)  # beyond stock
    emulator.lock("A", "W9", 1)  # org 200
    emulator.lock("A", "WX", 1)  # excluded warehouse
    source = make_source(warehouses_exclude=["WX"])
    assert source.reserved() == [
        Reserved("A", "W1", Decimal("12.5")),
        Reserved("A", "W2", Decimal(8)),
        Reserved("A", "W9", Decimal(1)),
    ]
    scoped = make_source(warehouses_exclude=["WX"], stock_orgs=["100"])
    assert scoped.reserved() == [Reserved("A", "W1", Decimal("12.5")), Reserved("A", "W2", 8)]  # type: ignore[arg-type]
    assert make_source(reservations=False).reserved() is None
    emulator.store.locks.locks.clear()
    emulator.store.changed()
    assert source.reserved() == []  # every lock released: an empty snapshot, not None


class QueryLog:
    """Every ExecuteBillQuery the emulator answers: (FormId, FilterString, rows answered)."""

    def __init__(self, emulator: K3CloudEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries: list[tuple[str, str, int]] = []
        answer = emulator.run_query

        def logged(params: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
            keys, rows = answer(params)
            self.entries.append((str(params["FormId"]), str(params["FilterString"]), len(rows)))
            return keys, rows

        monkeypatch.setattr(emulator, "run_query", logged)

    def forms(self) -> Counter[str]:
        return Counter(form for form, _, _ in self.entries)


@pytest.mark.parametrize(("locked", "page_size"), [(0, 3), (5, 2), (6, 3), (7, 3)])
def test_reserved_reads_the_locked_rows_only(
    emulator: K3CloudEmulator,
    make_source: Callable[..., K3CloudSource],
    monkeypatch: pytest.MonkeyPatch,
    locked: int,
    page_size: int,
) -> None:
    for i in range(60):  # 60 inventory rows, ``locked`` of them locked
        emulator.set_opening(f"M{i:02d}", "W1", 10)
    for i in range(locked):
        emulator.lock(f"M{i * 7:02d}", "W1", i + 1)
    source = make_source()
    log = QueryLog(emulator, monkeypatch)
    found = stock_reads.reserved(
        source.client, source._filter, source._in_scope, page_size=page_size
    )
    assert [(r.sku, r.qty) for r in found] == [(f"M{i * 7:02d}", i + 1) for i in range(locked)]
    assert log.forms() == {"STK_Inventory": math.ceil(locked / page_size) + 1}
    assert all("FBaseLockQty <> 0" in spec for _, spec, _ in log.entries)
    assert sum(rows for _, _, rows in log.entries) == locked  # never a scan of all 60
    log.entries.clear()
    assert len(source.reserved() or []) == locked  # the source's page of 2000: one answer
    assert log.forms() == {"STK_Inventory": 2 if locked else 1}  # + the empty one


def test_a_server_without_the_lock_key_names_the_setting(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    emulator.set_opening("A", "W1", 1)
    emulator.forget_fields("STK_Inventory", "FBaseLockQty")
    source = make_source()
    with pytest.raises(ConfigError) as caught:
        source.reserved()
    assert caught.value.problems[0].path == "erp.reservations"
    with pytest.raises(ConfigError) as caught:
        source.check()
    assert caught.value.problems[0].path == "erp.reservations"
    quiet = make_source(reservations=False)
    assert quiet.reserved() is None and "signed in" in quiet.check()


def _lots(beyond_stock: bool = True) -> K3CloudEmulator:
    """Stock over lots and two orgs, so that the lot rule and the org both matter."""
    emulator = K3CloudEmulator(lock_beyond_stock=beyond_stock)
    emulator.set_warehouse_org("W2", "200")
    emulator.set_opening("A", "W1", 5, lot="L1")
    emulator.set_opening("A", "W1", 20, lot="L2")
    emulator.set_opening("B", "W1", 10)
    emulator.set_opening("C", "W2", 3)
    return emulator


def _book(emulator: K3CloudEmulator) -> list[tuple[str, Any, Decimal]]:
    return [(i, lock.row, lock.qty) for i, lock in sorted(emulator.store.locks.locks.items())]


def test_lock_many_makes_the_locks_lock_would() -> None:
    """The bulk path (benchmarks seed thousands of locks with it) follows ``lock``'s rules:
    same ids, same rows (first lot covering the qty, else the first lot), same totals."""
    asked = [("A", "W1", 4), ("A", "W1", 4), ("A", "W1", 30), ("B", "W1", "2.5"), ("C", "W2", 1)]
    one_by_one, bulk = _lots(), _lots()
    bulk.lock("B", "W1", 1)  # locks already in the book count against available
    one_by_one.lock("B", "W1", 1)
    ids = [one_by_one.lock(material, stock, qty) for material, stock, qty in asked]
    assert bulk.lock_many(asked) == ids
    assert _book(bulk) == _book(one_by_one)
    assert [row[1][3] for row in _book(bulk)[1:4]] == ["L1", "L2", "L1"]
    assert (
        bulk.reserved()
        == one_by_one.reserved()
        == {
            ("A", "W1"): Decimal(38),
            ("B", "W1"): Decimal("3.5"),
            ("C", "W2"): Decimal(1),
        }
    )
    assert inventory(bulk) == inventory(one_by_one)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (("A", "W1", 26), MSG_OVER_LOCKABLE.format(material="A")),
        (("A", "W9", 1), MSG_NO_ROW.format(material="A", stock="W9")),
        (("B", "W1", 0), MSG_NOT_POSITIVE),
    ],
)
def test_lock_many_refuses_as_lock_does_and_makes_none(
    bad: tuple[str, str, int], message: str
) -> None:
    one_by_one, bulk = _lots(beyond_stock=False), _lots(beyond_stock=False)
    good = ("A", "W1", 5)
    one_by_one.lock(*good)
    with pytest.raises(LockRefused) as sequential:
        one_by_one.lock(*bad)
    with pytest.raises(LockRefused) as refused:
        bulk.lock_many([good, bad])
    assert refused.value.message == sequential.value.message == message
    assert _book(bulk) == [] and bulk.reserved() == {}, "all or nothing"
    assert bulk.lock_many([good]) == ["LOCK000001"], "a refused batch uses no lock id"
