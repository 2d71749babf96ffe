"""A life-cycle scenario: folding pulled movements reproduces the ERP's own on-hand."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from connectors.k3cloud.emulator import K3CloudEmulator
from connectors.k3cloud.source import K3CloudSource
from sync.model import Cursor, Movement

OVERLAP = timedelta(seconds=120)


class Follower:
    """What the core does, minus the database: incremental pulls with overlap, latest wins."""

    def __init__(self, source: K3CloudSource) -> None:
        self.source = source
        self.cursors: dict[str, Cursor | None] = dict.fromkeys(source.streams())
        self.latest: dict[str, Movement] = {}

    def catch_up(self) -> None:
        for stream, cursor in self.cursors.items():
            since = None if cursor is None else Cursor(cursor.updated_at - OVERLAP, "")
            for page in self.source.pull(stream, since, 3):
                assert not page.rejects
                for movement in page.movements:
                    self.latest[movement.key] = movement
                if page.cursor is not None:
                    self.cursors[stream] = page.cursor

    def rescan(self, since: datetime) -> set[str]:
        alive: set[str] = set()
        for stream in self.source.streams():
            alive |= set(self.source.keys_in_window(stream, since))
        return {key for key in self.latest if key not in alive}

    def levels(
        self, vanished: set[str], opening: dict[tuple[str, str], Decimal]
    ) -> dict[tuple[str, str], Decimal]:
        totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal, opening)
        for key, movement in self.latest.items():
            if key not in vanished:
                totals[(movement.sku, movement.warehouse)] += movement.effective_qty
        return {k: v for k, v in totals.items() if v != 0}


def test_folded_movements_equal_erp_on_hand(
    emulator: K3CloudEmulator, make_source: Callable[..., K3CloudSource]
) -> None:
    opening = {("A", "WH1"): Decimal("100"), ("B", "WH1"): Decimal("40.5")}
    for (sku, wh), qty in opening.items():
        emulator.set_opening(sku, wh, qty)
    source = make_source()
    follower = Follower(source)

    receipt = emulator.create_document(
        "STK_InStock",
        [
            {"material": "A", "qty": "10.1", "stock": "WH1"},
            {"material": "B", "qty": "0.2", "stock": "WH2"},
        ],
    )
    emulator.audit("STK_InStock", receipt)
    shipment = emulator.create_document(
        "SAL_OUTSTOCK", [{"material": "A", "qty": "3.3", "stock": "WH1"}]
    )
    emulator.audit("SAL_OUTSTOCK", shipment)
    follower.catch_up()

    sales_return = emulator.create_document(
        "SAL_RETURNSTOCK", [{"material": "A", "qty": "1", "stock": "WH1"}]
    )
    emulator.audit("SAL_RETURNSTOCK", sales_return)
    supplier_return = emulator.create_document(
        "PUR_MRB", [{"material": "B", "qty": "0.1", "stock": "WH2"}]
    )
    emulator.audit("PUR_MRB", supplier_return)
    transfer = emulator.create_document(
        "STK_TransferDirect",
        [{"material": "A", "qty": "5", "src_stock": "WH1", "dest_stock": "WH3"}],
    )
    emulator.audit("STK_TransferDirect", transfer)
    loss = emulator.create_document(
        "STK_StockCountLoss", [{"material": "B", "qty": "0.5", "stock": "WH1"}]
    )
    emulator.audit("STK_StockCountLoss", loss)
    follower.catch_up()

    # approved → un-approved → edited (other warehouse and qty) → approved again
    emulator.unaudit("STK_InStock", receipt)
    follower.catch_up()
    entry = emulator.line_ids("STK_InStock", receipt)[0]
    emulator.edit_line("STK_InStock", receipt, entry, qty="12", stock="WH2")
    follower.catch_up()
    emulator.audit("STK_InStock", receipt)

    # a cancelled shipment and a deleted (never re-pulled) misc issue
    doomed = emulator.create_document(
        "SAL_OUTSTOCK", [{"material": "B", "qty": "7", "stock": "WH1"}]
    )
    emulator.audit("SAL_OUTSTOCK", doomed)
    misc = emulator.create_document(
        "STK_MisDelivery", [{"material": "A", "qty": "2", "stock": "WH3"}]
    )
    emulator.audit("STK_MisDelivery", misc)
    misc_line = emulator.line_ids("STK_MisDelivery", misc)[0]
    follower.catch_up()
    emulator.cancel("SAL_OUTSTOCK", doomed)
    emulator.unaudit("STK_MisDelivery", misc)
    emulator.delete("STK_MisDelivery", misc)
    follower.catch_up()

    vanished = follower.rescan(datetime(2000, 1, 1).astimezone())
    assert vanished == {f"k3cloud:STK_MisDelivery:{misc}:{misc_line}"}
    erp = {(row.sku, row.warehouse): row.qty for row in source.on_hand()}
    assert follower.levels(vanished, opening) == erp
    assert erp[("A", "WH1")] == Decimal("100") - Decimal("3.3") + 1 - 5
    assert erp[("B", "WH2")] == Decimal("0.2") - Decimal("0.1")
    assert erp[("A", "WH2")] == Decimal("12")
