"""The emulator's lock operations (锁库 / 解锁), mixed into ``K3CloudEmulator``.

What tests and the demo drive: a lock (a reservation) on one STK_Inventory row,
changed, released by cancellation, or released by the shipment of the reserved
order. The rules and what they rest on are in ``connectors.k3cloud.locks``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from connectors.k3cloud.locks import LockRefused
from connectors.k3cloud.store import Store

SHIPMENT_FORM = "SAL_OUTSTOCK"


class LockOperations:
    """Lock, change, unlock and ship-locked on ``self.store``, under ``self._lock``."""

    store: Store
    _lock: threading.RLock

    @property
    def lock_beyond_stock(self) -> bool:
        """True: a lock may exceed the row's available (FBaseAvbQty below zero); False:
        such a lock is refused (LockRefused). The reference is silent on which."""
        return self.store.locks.beyond_stock

    @lock_beyond_stock.setter
    def lock_beyond_stock(self, value: bool) -> None:
        self.store.locks.beyond_stock = value

    def lock(
        self, material: str, stock: str, qty: Any, *, org: str | None = None, lot: str | None = None
    ) -> str:
        """Lock ``qty`` (base unit) of ``material`` in ``stock``; returns the lock id.

        ``org`` defaults to the warehouse's; ``lot`` None picks the first lot whose
        available covers ``qty``. Locks stack per row. Raises LockRefused when there
        is no inventory row to lock, qty ≤ 0, or qty over available with
        ``lock_beyond_stock`` False.
        """
        with self._lock:
            org = org or self.store.catalog.org_of(stock)
            rows = self.store.inventory()
            lock_id = self.store.locks.add(rows, org, material, stock, Decimal(str(qty)), lot)
            self.store.changed()
            return lock_id

    def lock_many(self, locks: Iterable[tuple[str, str, Any]]) -> list[str]:
        """Lock each (material, stock, qty) in order, as that many ``lock`` calls with the
        warehouse's org and no lot would; returns the lock ids in the same order.

        The inventory is read and indexed once (``LockBook.add_many``), so seeding
        thousands of locks on a large inventory stays linear. All or nothing: a
        refused lock raises LockRefused as ``lock`` does and none is made.
        """
        with self._lock:
            catalog = self.store.catalog
            requests = [
                (catalog.org_of(stock), material, stock, Decimal(str(qty)), None)
                for material, stock, qty in locks
            ]
            ids = self.store.locks.add_many(self.store.inventory(), requests)
            self.store.changed()
            return ids

    def change_lock(self, lock_id: str, qty: Any) -> None:
        """Set the lock's quantity (0 releases it). KeyError for an unknown lock,
        LockRefused as ``lock``."""
        with self._lock:
            book = self.store.locks
            row = book.get(lock_id).row
            on_hand = self.store.inventory().get(row, Decimal(0))
            book.change(lock_id, Decimal(str(qty)), on_hand)
            self.store.changed()

    def unlock(self, lock_id: str) -> None:
        """Release the whole lock (the reservation cancelled). KeyError if unknown."""
        with self._lock:
            self.store.locks.release(lock_id)
            self.store.changed()

    def ship_locked(self, lock_id: str, qty: Any = None) -> int:
        """Ship ``qty`` of a lock (None: all of it): one approved SAL_OUTSTOCK for the
        lock's material, warehouse and lot, and the lock released by ``qty``, in one
        step (no query sees one without the other). Returns the bill's FID.

        Raises KeyError (unknown lock), LockRefused (qty ≤ 0 or over the lock's qty).
        """
        with self._lock:
            book = self.store.locks
            lock = book.get(lock_id)
            shipped = lock.qty if qty is None else Decimal(str(qty))
            if shipped <= 0 or shipped > lock.qty:
                raise LockRefused(f"出库数量{shipped:f}必须大于0且不超过锁库数量{lock.qty:f}")
            _org, material, stock, lot = lock.row
            line = {"material": material, "qty": shipped, "stock": stock, "lot": lot}
            fid = self.store.create(SHIPMENT_FORM, [line])
            self.store.set_status(SHIPMENT_FORM, fid, "C")
            book.release(lock_id, shipped)
            self.store.changed()
            return fid

    def reserved(self) -> dict[tuple[str, str], Decimal]:
        """FBaseLockQty summed per (material, stock) over lots and orgs, non-zero only:
        the truth a connector's reserved() must match."""
        with self._lock:
            totals: dict[tuple[str, str], Decimal] = {}
            for (_org, material, stock, _lot), qty in self.store.locks.per_row().items():
                totals[(material, stock)] = totals.get((material, stock), Decimal(0)) + qty
        return {key: qty for key, qty in totals.items() if qty}
