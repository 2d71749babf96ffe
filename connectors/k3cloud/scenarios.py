"""Seed data for the emulator: a small demo and a large benchmark data set.

Seeding goes through the same document API tests use, so seeded data follows
the real life-cycle (created, then approved) and the on-hand table agrees.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors._catalogue import K3CLOUD_DEMO_MATERIALS, K3CLOUD_DEMO_WAREHOUSES

if TYPE_CHECKING:
    from connectors.k3cloud.emulator import K3CloudEmulator

#: shared with the Fxiaoke emulator's demo catalogue (connectors/_catalogue.py)
MATERIALS = tuple(K3CLOUD_DEMO_MATERIALS)
WAREHOUSES = tuple(K3CLOUD_DEMO_WAREHOUSES)


class _StepClock:
    """A clock that advances one second per reading, so seeded FModifyDates are distinct."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


def seed(emulator: K3CloudEmulator, scenario: str) -> None:
    name, _, arg = scenario.partition(":")
    if name == "demo":
        seed_demo(emulator)
    elif name == "bench":
        seed_bench(emulator, int(arg or 200_000))
    else:
        raise ValueError(f"unknown k3cloud scenario {scenario!r}; known: demo, bench[:lines]")


def _approved(emulator: K3CloudEmulator, form: str, lines: list[dict[str, Any]]) -> int:
    fid = emulator.create_document(form, lines)
    emulator.audit(form, fid)
    return fid


def seed_demo(emulator: K3CloudEmulator) -> None:
    """A few materials in three warehouses, one document of each stock form, mixed statuses,
    and 15 of 1.01.002 reserved (locked) at CK001."""
    for i, material in enumerate(MATERIALS):
        emulator.set_opening(material, WAREHOUSES[0], 100 + 10 * i)
    _approved(
        emulator, "STK_InStock", [{"material": m, "qty": "50", "stock": "CK001"} for m in MATERIALS]
    )
    _approved(emulator, "SAL_OUTSTOCK", [{"material": "1.01.001", "qty": "12.5", "stock": "CK001"}])
    _approved(emulator, "SAL_RETURNSTOCK", [{"material": "1.01.001", "qty": "2", "stock": "CK001"}])
    _approved(emulator, "PUR_MRB", [{"material": "1.01.002", "qty": "3", "stock": "CK001"}])
    _approved(
        emulator,
        "STK_TransferDirect",
        [{"material": "1.02.001", "qty": "20", "src_stock": "CK001", "dest_stock": "CK002"}],
    )
    _approved(
        emulator, "STK_MISCELLANEOUS", [{"material": "2.01.001", "qty": "7", "stock": "CK003"}]
    )
    _approved(emulator, "STK_MisDelivery", [{"material": "2.01.001", "qty": "1", "stock": "CK003"}])
    _approved(
        emulator, "STK_StockCountGain", [{"material": "1.01.002", "qty": "0.5", "stock": "CK001"}]
    )
    _approved(
        emulator, "STK_StockCountLoss", [{"material": "1.02.001", "qty": "1.25", "stock": "CK002"}]
    )
    # a draft and a cancelled document: pulled as inactive lines, no stock effect
    emulator.create_document(
        "STK_InStock", [{"material": "1.01.001", "qty": "999", "stock": "CK002"}]
    )
    fid = _approved(
        emulator, "SAL_OUTSTOCK", [{"material": "1.01.002", "qty": "4", "stock": "CK001"}]
    )
    emulator.cancel("SAL_OUTSTOCK", fid)
    # a sales order's reservation (锁库): STK_Inventory's FBaseLockQty, so a newcomer's
    # first sync shows reserved (blocked) and available stock in the CRM
    emulator.lock("1.01.002", "CK001", "15")


def seed_bench(emulator: K3CloudEmulator, lines: int, per_doc: int = 10) -> None:
    """``lines`` approved purchase-receipt lines (``per_doc`` per bill) with distinct stamps."""
    emulator.store.now = _StepClock(datetime(2024, 1, 1, 8, 0, 0))
    remaining = lines
    doc = 0
    while remaining > 0:
        count = min(per_doc, remaining)
        specs = [
            {
                "material": f"M{(doc * per_doc + i) % 5000:05d}",
                "qty": f"{1 + (doc + i) % 97}.{i % 10}",
                "stock": WAREHOUSES[(doc + i) % len(WAREHOUSES)],
            }
            for i in range(count)
        ]
        emulator.create_document("STK_InStock", specs, status="C")
        remaining -= count
        doc += 1
