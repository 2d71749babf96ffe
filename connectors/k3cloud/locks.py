"""The emulator's stock locks (锁库 / 预留): what STK_Inventory's lock and available columns show.

What was checked, and how (k3cloud-stock-quantities.md §1.1 tags these [T]; the
public code below was read with the research tools, no K/3 Cloud server):

- Verified [T], WebAPI field keys: an integrator's ExecuteBillQuery on STK_Inventory
  asks for ``FLockQty, FSecLockQty, FBaseQty, FQty, FBaseLockQty, FAVBQty,
  FBaseAVBQty, FSecAVBQty`` (Python CLI, find_string id 28742576092); Kingdee's own
  STK_Inventory list plug-in (decompiled SCM code, id 21966594644) always selects
  ``FLOCKQTY, FBASELOCKQTY, FSECLOCKQTY, FAVBQTY, FBASEAVBQTY, FSECAVBQTY``.
- Verified [T], meaning: available = on hand − locked, per inventory row. Integrator
  SQL computes ``SUM(FBaseQty) - SUM(FBaseLockQty)`` as the shippable quantity
  (id 12044369841) and ``FBASEQTY - FBASELOCKQTY`` as available (id 19987768903); a
  C# DTO labels ``FBaseAvbQty`` 可用量(基本单位) and ``FBASELOCKQTY`` 预留量(基本单位)
  (id 47040031979); the SCM analysis (id 60408838703) says FBASELOCKQTY is aggregated
  from the reservation detail and FBASEAVBQTY = on hand − locked.
- Verified [T], manual locks: Kingdee's lock dialog (``LockStockOperate``, decompiled,
  id 21722736020) locks one inventory row (``ObjectId = "STK_Inventory"``, the row's
  id as ``InvDetailID``), refuses a lock qty ≤ 0 (待锁数量不能录入负数或为0) and a lock
  over the row's lockable qty (当前锁库量不能超过当前可锁量). The lock form id is
  ``STK_LockStock`` (same code, and a constants file, id 6769796967: STK_库存锁库 =
  STK_LockStock, STK_锁库日志 = STK_LOCKSTOCKLOG).
- Inferred [I]: what "lockable" (CanLockQty) is exactly (taken as the row's
  available); whether other paths (sales-order reservations, strong reservation
  type 3) may lock beyond on hand: the reference is silent, so ``beyond_stock``
  switches (True: a lock may exceed on hand and available goes negative; False: a
  lock over available is refused with the dialog's message). That a shipment of the
  reserved order releases its lock by the quantity shipped is the reservation's
  purpose (T_PLN_RESERVELINK, §1.1), modelled in one step (``Store.ship_locked``).
- The emulator's stock unit is the base unit (as its FQty already is), so FLockQty =
  FBaseLockQty and FAvbQty = FBaseAvbQty; no secondary unit is modelled.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

#: (org, material, stock, lot): one STK_Inventory row's stock dimension
RowKey = tuple[str, str, str, str]
#: one lock asked of ``LockBook.add_many``: (org, material, stock, qty, lot or None)
LockRequest = tuple[str, str, str, Decimal, str | None]
#: Kingdee's own messages (LockStockOperate, see the module docstring)
MSG_NOT_POSITIVE = "待锁数量不能录入负数或为0"
MSG_OVER_LOCKABLE = "第1行物料[{material}]的第1行锁库信息，当前锁库量不能超过当前可锁量！"
MSG_NO_ROW = "物料[{material}]在仓库[{stock}]没有即时库存，不能锁库"


class LockRefused(ValueError):
    """The ERP refuses a lock, a change or a release; ``message`` is its own wording."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Lock:
    """One lock on one inventory row, ``qty`` in the material's base unit."""

    lock_id: str
    row: RowKey
    qty: Decimal


class LockBook:
    """The locks, stacking per inventory row; ``beyond_stock`` is the switch above."""

    def __init__(self, *, beyond_stock: bool = True) -> None:
        self.beyond_stock = beyond_stock
        self.locks: dict[str, Lock] = {}
        self._ids = itertools.count(1)

    def per_row(self) -> dict[RowKey, Decimal]:
        """Locked base qty per inventory row (rows without a lock are absent)."""
        totals: dict[RowKey, Decimal] = defaultdict(Decimal)
        for lock in self.locks.values():
            totals[lock.row] += lock.qty
        return dict(totals)

    def get(self, lock_id: str) -> Lock:
        """The lock ``lock_id``; KeyError if it was never made or is released."""
        try:
            return self.locks[lock_id]
        except KeyError:
            raise KeyError(f"no lock {lock_id!r} (never made, or released)") from None

    def add(
        self,
        rows: Mapping[RowKey, Decimal],
        org: str,
        material: str,
        stock: str,
        qty: Decimal,
        lot: str | None,
    ) -> str:
        """Lock ``qty`` on one row of ``rows`` (row → on hand): the given ``lot``, or the
        first lot (in lot order) whose available covers ``qty``, else the first lot.

        Raises LockRefused for qty ≤ 0, no inventory row for material × stock (× lot) in
        ``org`` (a lock is made on an inventory row), or qty over the row's available
        when ``beyond_stock`` is False.
        """
        return self.add_many(rows, [(org, material, stock, qty, lot)])[0]

    def add_many(
        self, rows: Mapping[RowKey, Decimal], requests: Sequence[LockRequest]
    ) -> list[str]:
        """Lock each of ``requests`` as ``add`` would, one after the other; returns their ids.

        The same rules and the same rows chosen as that many ``add`` calls in this
        order, but the rows are indexed once: O(rows + requests) instead of O(rows)
        per lock (what a 100,000-row benchmark needs). All or nothing: a refused
        request (LockRefused, as ``add``) leaves the book as it was.
        """
        index: dict[tuple[str, str, str], list[RowKey]] = defaultdict(list)
        for row in rows:
            index[row[:3]].append(row)
        for candidates in index.values():
            candidates.sort()
        locked = defaultdict(Decimal, self.per_row())
        placed: list[tuple[RowKey, Decimal]] = []
        for org, material, stock, qty, lot in requests:
            _positive(qty)
            candidates = [
                r for r in index.get((org, material, stock), ()) if lot is None or r[3] == lot
            ]
            row = self._place(rows, candidates, locked, material, stock, qty)
            locked[row] += qty
            placed.append((row, qty))
        return [self._new(row, qty) for row, qty in placed]

    def _place(
        self,
        rows: Mapping[RowKey, Decimal],
        candidates: Sequence[RowKey],
        locked: Mapping[RowKey, Decimal],
        material: str,
        stock: str,
        qty: Decimal,
    ) -> RowKey:
        """The row a lock of ``qty`` goes on: the first of the sorted ``candidates`` whose
        available covers it, else the first; LockRefused as ``add``."""
        if not candidates:
            raise LockRefused(MSG_NO_ROW.format(material=material, stock=stock))
        free = {row: rows[row] - locked.get(row, Decimal(0)) for row in candidates}
        row = next((r for r in candidates if free[r] >= qty), candidates[0])
        self._check_room(material, free[row], qty)
        return row

    def _new(self, row: RowKey, qty: Decimal) -> str:
        lock_id = f"LOCK{next(self._ids):06d}"
        self.locks[lock_id] = Lock(lock_id, row, qty)
        return lock_id

    def change(self, lock_id: str, qty: Decimal, on_hand: Decimal) -> None:
        """Set the lock's qty (0 releases it); ``on_hand`` is its row's on hand.

        Raises KeyError (unknown lock), LockRefused (qty < 0, or a raise over the
        row's available with ``beyond_stock`` False).
        """
        lock = self.get(lock_id)
        if qty == 0:
            self.release(lock_id)
            return
        _positive(qty)
        if qty > lock.qty:
            others = self.per_row().get(lock.row, Decimal(0)) - lock.qty
            self._check_room(lock.row[1], on_hand - others, qty)
        lock.qty = qty

    def release(self, lock_id: str, qty: Decimal | None = None) -> Decimal:
        """Release ``qty`` of the lock (None: all of it); returns the qty released.

        Raises KeyError (unknown lock), LockRefused (qty ≤ 0 or over the lock's qty).
        """
        lock = self.get(lock_id)
        qty = lock.qty if qty is None else qty
        _positive(qty)
        if qty > lock.qty:
            raise LockRefused(f"解锁数量{qty:f}超过锁库数量{lock.qty:f}")
        lock.qty -= qty
        if lock.qty == 0:
            del self.locks[lock_id]
        return qty

    def _check_room(self, material: str, free: Decimal, qty: Decimal) -> None:
        if qty > free and not self.beyond_stock:
            raise LockRefused(MSG_OVER_LOCKABLE.format(material=material))


def _positive(qty: Decimal) -> None:
    if qty <= 0:
        raise LockRefused(MSG_NOT_POSITIVE)


def inventory_columns(on_hand: Any, locked: Decimal) -> dict[str, Any]:
    """STK_Inventory's lock and available columns of one row (lower-case keys).

    ``on_hand`` is the row's FBaseQty (kept raw if it is not a number: the
    emulator's bad-data cases); available = on hand − locked (§1.1).
    """
    available = on_hand - locked if isinstance(on_hand, Decimal) else on_hand
    return {
        "fbaselockqty": locked,
        "flockqty": locked,
        "fbaseavbqty": available,
        "favbqty": available,
    }
